/**
 * `doctor`'s checks of the purge-cache service, with the configuration's own
 * credentials: it answers, it accepts the credentials and grants the scope
 * (a real purgeRequests call, as a cycle makes), and its clock agrees with
 * this worker's. One attempt each, no retries: doctor reports, it does not wait.
 */
import type { Settings } from '../../config/index.js';
import { formatDuration } from '../../core/duration.js';
import { UpstreamHttpError, errorMessage } from '../../errors.js';
import { silentLogger } from '../../log.js';
import type { WorkerPool } from '../../core/model.js';
import { PurgeCacheClient } from '../../edges/upstream/client.js';
import { fail, ok, skip, warn, type CheckResult } from './check.js';

/** An upstream error's message is "what happened", possibly over lines, then "what to do" on the last line. */
function split(err: unknown): { detail: string; fix: string | undefined } {
  const lines = errorMessage(err)
    .split('\n')
    .map((line) => line.replace(/```/g, '').trim())
    .filter(Boolean);
  if (lines.length < 2) return { detail: lines[0] ?? '', fix: undefined };
  return { detail: lines.slice(0, -1).join(' '), fix: lines.at(-1) };
}

export async function checkService(settings: Settings, pool: WorkerPool | null): Promise<CheckResult[]> {
  const where = settings.proxyUrl ? `${settings.proxyUrl} (taskcluster-proxy)` : String(settings.rootUrl);
  const client = new PurgeCacheClient({
    rootUrl: settings.rootUrl,
    proxyUrl: settings.proxyUrl,
    credentials: settings.credentials,
    logger: silentLogger(),
    maxRetries: 0,
    timeoutMs: 10_000,
  });
  try {
    const answer = await client.ping();
    const results: CheckResult[] = [ok('service', `${where} answers (uptime ${answer.uptime}s)`)];
    return results.concat(pool ? await checkAccess(settings, client, pool) : [skip('credentials and scope', 'no worker pool configured')]);
  } catch (err) {
    const { detail, fix } = split(err);
    return [
      fail('service', detail, fix ?? 'check --root-url (or TASKCLUSTER_ROOT_URL), and that this host reaches it (DNS, proxy, firewall)'),
      skip('credentials and scope', 'the service did not answer'),
      skip('clock', 'the service did not answer'),
    ];
  }
}

async function checkAccess(settings: Settings, client: PurgeCacheClient, pool: WorkerPool): Promise<CheckResult[]> {
  const poolId = `${pool.provisionerId}/${pool.workerType}`;
  const scope = `purge-cache:purge-requests::${poolId}`;
  const who = settings.proxyUrl
    ? 'the credentials taskcluster-proxy signs with'
    : settings.credentials
      ? `clientId ${settings.credentials.clientId}`
      : 'anonymous access';
  const sent = Date.now();
  try {
    const result = await client.purgeRequests(pool);
    const received = Date.now();
    const access = ok(
      'credentials and scope',
      `${who}: purgeRequests for ${poolId} answered (${result.requests.length} open request${result.requests.length === 1 ? '' : 's'}), so ${scope} is granted`,
    );
    return [access, clockCheck(settings, result.serverDate, sent, received)];
  } catch (err) {
    const { detail, fix } = split(err);
    const http = err instanceof UpstreamHttpError ? err : undefined;
    // The service's own words for a refusal are long; its status and code say it, and the fix says what to do.
    const answered = http ? `the service answered ${http.status}${http.serviceCode ? ` ${http.serviceCode}` : ''}` : '';
    const line =
      http?.status === 401
        ? fail(
            'credentials and scope',
            `the service rejected the credentials (${who}): ${answered}`,
            fix ?? 'check TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN',
          )
        : http?.status === 403
          ? fail('credentials and scope', `${who} lacks the scope ${scope}: ${answered}`, fix ?? `grant ${scope} (note the two colons)`)
          : fail('credentials and scope', detail, fix ?? 'see the message');
    return [line, skip('clock', 'purgeRequests did not answer')];
  }
}

/**
 * The service's clock minus this worker's, from the Date header (one-second
 * resolution) against the middle of the call.
 */
export function clockCheck(settings: Settings, serverDate: number | null, sent: number, received: number): CheckResult {
  if (serverDate === null) return warn('clock', 'the service sent no Date header, so the offset is unknown', 'check that this worker keeps time with NTP');
  const offsetMs = serverDate - (sent + received) / 2;
  const seconds = (Math.abs(offsetMs) / 1000).toFixed(1);
  const direction = offsetMs >= 0 ? 'ahead of' : 'behind';
  // The header has one-second resolution: a second of error either way is no offset.
  if (Math.abs(offsetMs) <= 1500) return ok('clock', `agrees with the service's to within the Date header's one-second resolution`);
  const text = `the service's clock is ${seconds}s ${direction} this worker's`;
  if (Math.abs(offsetMs) > settings.skewMargin) {
    return fail(
      'clock',
      `${text}, more than --skew-margin (${formatDuration(settings.skewMargin)}): decisions about caches created near a request's time could be wrong`,
      "synchronise this worker's clock (timedatectl set-ntp true, or chrony), or raise --skew-margin",
    );
  }
  return ok('clock', `${text}, within --skew-margin (${formatDuration(settings.skewMargin)})`);
}
