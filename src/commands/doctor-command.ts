/**
 * `doctor`: check a configuration end to end, one line per check, each
 * failing one with its fix. Exit 0 when every check passes, 1 otherwise. It
 * reads the same settings as `run` and `once`, and changes nothing an agent
 * relies on (it creates no state directory; it tests the state lock by taking
 * it for a moment, as a starting agent would).
 */
import { loadSettings, requireCaches, requirePool, requireService, type Settings } from '../config/index.js';
import { resolveApiServerConfig } from '../api/config.js';
import { ConfigError } from '../errors.js';
import type { WorkerPool } from '../core/model.js';
import { fail, formatCheck, ok, summarize, type CheckResult } from './doctor/check.js';
import { checkApiEndpoints, checkCacheLocations, checkOverlap, checkStateDirectory, checkTools, findRunningAgent } from './doctor/local.js';
import { checkService } from './doctor/service.js';
import type { SettingFlags } from './context.js';

export interface DoctorFlags extends SettingFlags {
  json?: boolean;
}

export async function doctorCommand(flags: DoctorFlags): Promise<number> {
  const results: CheckResult[] = [];
  const print = (result: CheckResult): void => {
    results.push(result);
    if (!flags.json) process.stdout.write(`${formatCheck(result)}\n`);
  };
  const source = flags.config ?? process.env.PURGE_CACHE_AGENT_CONFIG;
  let settings: Settings | null = null;
  try {
    settings = await loadSettings({ flags, env: process.env, cwd: process.cwd(), command: 'doctor' });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    print(fail('configuration', err.message, 'correct that setting; `purge-cache-agent doctor --help` lists what each accepts'));
  }
  if (settings) {
    const needed = await configurationChecks(settings);
    const problems = needed.filter((r) => r.status === 'fail');
    if (problems.length === 0) print(ok('configuration', `parses (${source ? `config file ${source}, ` : ''}flags and environment)`));
    for (const problem of problems) print(problem);
    const pool = poolOf(settings);
    const agent = await findRunningAgent(settings);
    print(await checkStateDirectory(settings, agent));
    for (const result of checkOverlap(settings)) print(result);
    for (const result of await checkCacheLocations(settings)) print(result);
    for (const result of await checkTools(settings)) print(result);
    if (settings.rootUrl || settings.proxyUrl) for (const result of await checkService(settings, pool)) print(result);
    for (const result of await checkApiEndpoints(settings, agent)) print(result);
  }
  const summary = summarize(results);
  if (flags.json) process.stdout.write(`${JSON.stringify({ passed: summary.passed, checks: results }, null, 2)}\n`);
  else process.stdout.write(`${summary.line}\n`);
  return summary.passed ? 0 : 1;
}

/** What `run` would refuse at start: a pool, a service, caches, and the local API's settings. */
async function configurationChecks(settings: Settings): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const require of [requirePool, requireService, requireCaches]) {
    try {
      require(settings);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      results.push(fail('configuration', err.message, 'set it by flag, environment variable or config file (`purge-cache-agent doctor --help` lists them)'));
    }
  }
  try {
    await resolveApiServerConfig(settings);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    results.push(fail('configuration', err.message, 'correct the local API settings (`purge-cache-agent doctor --help` lists them)'));
  }
  return results;
}

function poolOf(settings: Settings): WorkerPool | null {
  try {
    return requirePool(settings);
  } catch {
    return null;
  }
}
