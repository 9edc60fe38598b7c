/**
 * Secrets ("Secrets"): access tokens, certificates and API tokens
 * never appear in anything the agent prints — logs at every level, error
 * messages, /v1/status, crash output — in successful runs and in failing ones
 * (wrong credentials against `serve --clients`, tampered and malformed
 * certificates, bad configuration). Everything every child printed, and every
 * API answer, is collected and searched for each secret. And the files the
 * agent writes have the modes they must: state and lock 0600, the state
 * directory 0700, the API socket 0660, serve's data file 0600.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { runCli, startCli, finished, waitForOutput, logLines, type CliResult } from '../helpers/cli.js';
import { exists, POOL } from '../helpers/fixture.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { createTemporaryCredentials } from '../../src/service/index.js';
import { call } from '../helpers/api.js';
import { record } from './support.js';
import { eventually } from '../helpers/wait.js';

const distinct = (label: string) => `${label}-${randomBytes(12).toString('hex')}`;
const ISSUER_TOKEN = distinct('ISSUER-TOKEN');
const PLAIN_TOKEN = distinct('PLAIN-TOKEN');
const WRONG_TOKEN = distinct('WRONG-TOKEN');
const API_TOKEN = distinct('API-TOKEN');
const WRONG_API_TOKEN = distinct('WRONG-API-TOKEN');
const CONFIG_TOKEN = distinct('CONFIG-TOKEN');
const SHORT_API_TOKEN = 'shortsecret9'; // refused as too short; still a secret
const MALFORMED_CERT_SECRET = distinct('MALFORMED-CERT');

let tmp: TempDir;
let serve: ReturnType<typeof startCli>;
let serveUrl: string;
const printed: { what: string; text: string }[] = [];
let temp: { clientId: string; accessToken: string; certificate: string };

const keep = (what: string, r: { stdout?: string; stderr?: string; text?: string }) =>
  printed.push({ what, text: `${r.stdout ?? ''}\n${r.stderr ?? ''}\n${r.text ?? ''}` });

beforeAll(async () => {
  tmp = await makeTempDir('pca-adv-secrets-');
  const now = Date.now();
  temp = createTemporaryCredentials({
    clientId: 'agent-temp',
    credentials: { clientId: 'issuer', accessToken: ISSUER_TOKEN },
    scopes: [`purge-cache:purge-requests::${POOL}`],
    start: now - 60_000,
    expiry: now + 3_600_000,
  });
  const clients = {
    issuer: { accessToken: ISSUER_TOKEN, scopes: ['purge-cache:*'] },
    'agent-plain': { accessToken: PLAIN_TOKEN, scopes: [`purge-cache:purge-requests::${POOL}`] },
  };
  await writeFile(path.join(tmp.path, 'clients.json'), JSON.stringify(clients), { mode: 0o600 });
  serve = startCli([
    'serve',
    '--port',
    '0',
    '--clients',
    path.join(tmp.path, 'clients.json'),
    '--data',
    path.join(tmp.path, 'service.json'),
    '--log-level',
    'trace',
  ]);
  await waitForOutput(serve, (o) => /^http:\/\/127\.0\.0\.1:\d+$/m.test(o.stdout));
  serveUrl = /^(http:\/\/127\.0\.0\.1:\d+)$/m.exec(serve.output.stdout)![1]!;
});

afterAll(async () => {
  serve.kill('SIGTERM');
  const r = await finished(serve);
  keep('serve', r);
  await tmp.cleanup();
});

function secrets(): [string, string][] {
  const cert = JSON.parse(temp.certificate);
  return [
    ['issuer access token', ISSUER_TOKEN],
    ['plain access token', PLAIN_TOKEN],
    ['wrong access token', WRONG_TOKEN],
    ['temporary access token', temp.accessToken],
    ['certificate', temp.certificate],
    ['certificate signature', cert.signature],
    ['certificate seed', cert.seed],
    ['certificate as Hawk ext', Buffer.from(JSON.stringify({ certificate: cert })).toString('base64')],
    ['API token', API_TOKEN],
    ['wrong API token', WRONG_API_TOKEN],
    ['token in a config file', CONFIG_TOKEN],
    ['a too-short API token', SHORT_API_TOKEN],
    ['secret in a malformed certificate', MALFORMED_CERT_SECRET],
  ];
}

describe('no secret is ever printed', () => {
  it('in every command, successful and failing, at log level trace', async (ctx) => {
    const root = path.join(tmp.path, 'caches');
    const stateDir = path.join(tmp.path, 'state');
    await mkdir(path.join(root, 'a-cache'), { recursive: true });
    const base = [
      '--root-url',
      serveUrl,
      '--worker-pool-id',
      POOL,
      '--cache-root',
      root,
      '--state-dir',
      stateDir,
      '--log-level',
      'trace',
      '--in-use-checks',
      'locks',
    ];
    const tempEnv = { TASKCLUSTER_CLIENT_ID: temp.clientId, TASKCLUSTER_ACCESS_TOKEN: temp.accessToken, TASKCLUSTER_CERTIFICATE: temp.certificate };
    const plainEnv = { TASKCLUSTER_CLIENT_ID: 'agent-plain', TASKCLUSTER_ACCESS_TOKEN: PLAIN_TOKEN };
    const tampered = JSON.stringify({ ...JSON.parse(temp.certificate), scopes: ['purge-cache:*'] });
    const configBad = path.join(tmp.path, 'bad-credentials.yaml');
    await writeFile(configBad, `credentials:\n  clientId: x\n  accessToken: ${CONFIG_TOKEN}\n  extra: 1\n`);
    const configBroken = path.join(tmp.path, 'broken.yaml');
    await writeFile(configBroken, `credentials:\n  clientId: x\n  accessToken: "${CONFIG_TOKEN}\n  certificate: [unclosed\n`);
    const configQuoted = path.join(tmp.path, 'quoted.yaml');
    await writeFile(configQuoted, `credentials: {clientId: x, accessToken: ${CONFIG_TOKEN} : oops}\n`);
    const configUnknown = path.join(tmp.path, 'unknown.yaml');
    await writeFile(configUnknown, `accessToken: ${CONFIG_TOKEN}\n`);
    const configWrongType = path.join(tmp.path, 'wrong-type.yaml');
    await writeFile(configWrongType, `apiToken: [${CONFIG_TOKEN}]\n`);

    const runs: [string, string[], Record<string, string>, number[]][] = [
      ['once with temporary credentials', ['once', '--json', ...base], tempEnv, [0]],
      ['once with plain credentials', ['once', '--json', ...base], plainEnv, [0]],
      ['once with a wrong access token', ['once', '--json', ...base], { ...plainEnv, TASKCLUSTER_ACCESS_TOKEN: WRONG_TOKEN }, [1]],
      ['once with a tampered certificate', ['once', '--json', ...base], { ...tempEnv, TASKCLUSTER_CERTIFICATE: tampered }, [1]],
      [
        'once with a malformed certificate',
        ['once', '--json', ...base],
        { ...tempEnv, TASKCLUSTER_CERTIFICATE: `{"seed":"${MALFORMED_CERT_SECRET}", "signature": ` },
        [2],
      ],
      [
        'once with a certificate that is not an object',
        ['once', '--json', ...base],
        { ...tempEnv, TASKCLUSTER_CERTIFICATE: `["${MALFORMED_CERT_SECRET}"]` },
        [2],
      ],
      ['once with a token but no client id', ['once', '--json', ...base], { TASKCLUSTER_ACCESS_TOKEN: PLAIN_TOKEN }, [2]],
      ['once through a proxy URL with credentials', ['once', '--json', ...base, '--proxy-url', serveUrl], plainEnv, [0, 1]],
      ['request (403: scope missing)', ['request', 'some cache', ...base], plainEnv, [1]],
      ['request with temporary credentials (403)', ['request', 'some cache', ...base], tempEnv, [1]],
      ['requests --all (403)', ['requests', '--all', ...base], tempEnv, [1]],
      ['requests', ['requests', '--json', ...base], tempEnv, [0]],
      ['ping', ['ping', ...base], tempEnv, [0]],
      ['caches', ['caches', '--json', ...base], tempEnv, [0]],
      ['a config file with a bad credentials map', ['once', ...base, '--config', configBad], {}, [2]],
      ['a config file that is not valid YAML', ['once', ...base, '--config', configBroken], {}, [2]],
      ['a config file whose YAML error points at the token', ['once', ...base, '--config', configQuoted], {}, [2]],
      ['a config file with an unknown key holding a token', ['once', ...base, '--config', configUnknown], {}, [2]],
      ['a config file with a token of the wrong type', ['run', ...base, '--config', configWrongType], {}, [2]],
      ['run with a too-short API token', ['run', ...base, '--listen', '127.0.0.1:0'], { ...tempEnv, PURGE_CACHE_AGENT_API_TOKEN: SHORT_API_TOKEN }, [2]],
      ['once with an unusable state directory', ['once', ...base, '--state-dir', path.join(tmp.path, 'clients.json')], tempEnv, [2]],
      ['once killed at a fault point', ['once', ...base], { ...tempEnv, PURGE_CACHE_AGENT_TEST_KILL_AT: '1' }, [-9]],
    ];
    const codes: Record<string, number | string | null> = {};
    for (const [what, args, env, expected] of runs) {
      const r: CliResult = await runCli(args, { env, timeoutMs: 60_000 });
      keep(what, r);
      codes[what] = r.code ?? r.signal;
      expect(expected, `${what}: exit ${r.code ?? r.signal}\n${r.stderr.slice(-1500)}`).toContain(r.code ?? (r.signal === 'SIGKILL' ? -9 : r.code));
    }
    // Failures say what is wrong, without the value.
    expect(printed.find((p) => p.what === 'once with a wrong access token')!.text).toMatch(/AuthenticationFailed|authenticat/i);
    expect(printed.find((p) => p.what === 'request (403: scope missing)')!.text).toContain('purge-cache:test-prov/test-worker:some cache');

    // The daemon, its local API (status, metrics, errors), and the client commands that talk to it.
    const daemon = startCli(['run', ...base, '--listen', '127.0.0.1:0', '--schedule', '0 0 1 1 *', '--jitter', '0'], {
      env: { ...tempEnv, PURGE_CACHE_AGENT_API_TOKEN: API_TOKEN },
    });
    const done = finished(daemon, 240_000);
    try {
      await eventually(() => logLines(daemon.output.stderr).some((l) => l.msg === 'local API listening') || daemon.exitCode !== null, 'the API');
      const tcpUrl = String(logLines(daemon.output.stderr).find((l) => l.msg === 'local API listening')!.tcp);
      const port = Number(new URL(tcpUrl).port);
      await eventually(
        async () => (await call({ port }, 'GET', '/v1/status', { headers: { authorization: `Bearer ${API_TOKEN}` } })).json?.lastCycle,
        'a cycle',
      );
      for (const [route, headers] of [
        ['/v1/status', { authorization: `Bearer ${API_TOKEN}` }],
        ['/v1/status', { authorization: `Bearer ${WRONG_API_TOKEN}` }],
        ['/v1/caches', { authorization: `Bearer ${API_TOKEN}` }],
        ['/metrics', {}],
        ['/readyz', {}],
      ] as const) {
        const reply = await call({ port }, 'GET', route, { headers });
        keep(`GET ${route}`, { text: reply.text });
      }
      const socketStatus = await call({ socketPath: path.join(stateDir, 'api.sock') }, 'GET', '/v1/status');
      keep('GET /v1/status over the socket', { text: socketStatus.text });
      expect(socketStatus.json.config.credentials).toEqual({ clientId: 'agent-temp', temporary: true });
      for (const [what, env, expected] of [
        ['status --api with the token', { PURGE_CACHE_AGENT_API_TOKEN: API_TOKEN }, 0],
        ['status --api with a wrong token', { PURGE_CACHE_AGENT_API_TOKEN: WRONG_API_TOKEN }, 1],
        ['sync --wait --api with a wrong token', { PURGE_CACHE_AGENT_API_TOKEN: WRONG_API_TOKEN }, 1],
      ] as const) {
        const r = await runCli([what.split(' ')[0]!, ...(what.startsWith('sync') ? ['--wait'] : []), '--json', '--api', tcpUrl, '--log-level', 'trace'], {
          env,
        });
        keep(what, r);
        expect(r.code, `${what}: ${r.stderr}\ndaemon ${daemon.exitCode ?? daemon.signalCode ?? 'running'}: ${daemon.output.stderr.slice(-3000)}`).toBe(
          expected,
        );
      }
      // Socket 0660, state 0600, lock 0600, state directory 0700, serve's data 0600.
      expect((await stat(path.join(stateDir, 'api.sock'))).mode & 0o777).toBe(0o660);
    } finally {
      daemon.kill('SIGTERM');
    }
    keep('run', await done);
    const modes: Record<string, number> = {};
    for (const [file, mode] of [
      [path.join(stateDir, 'state.json'), 0o600],
      [path.join(stateDir, 'lock'), 0o600],
      [stateDir, 0o700],
      [path.join(tmp.path, 'service.json'), 0o600],
    ] as const) {
      if (!(await exists(file))) continue;
      modes[path.basename(file)] = (await stat(file)).mode & 0o777;
      expect((await stat(file)).mode & 0o777, file).toBe(mode);
    }
    expect(Object.keys(modes)).toEqual(['state.json', 'lock', 'state', 'service.json']);

    // Now the search: every secret, in everything printed.
    const leaks: string[] = [];
    for (const [name, value] of secrets()) {
      for (const p of printed) if (p.text.includes(value)) leaks.push(`${name} in the output of ${p.what}`);
    }
    expect(leaks).toEqual([]);
    record(ctx, {
      cases: printed.length,
      unit: 'outputs searched',
      detail: `${secrets().length} secrets searched for in the stdout+stderr of ${runs.length + 4} commands (incl. ${Object.values(codes).filter((c) => c !== 0).length} failing ones), serve's own log, and 6 local API answers; file modes checked: state.json 0600, lock 0600, state dir 0700, api.sock 0660, serve --data 0600`,
    });
  }, 1_200_000);
});
