import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadSettings, requirePool, requireService, requireCaches, SETTINGS, flagAttribute } from '../src/config/index.js';
import { ConfigError } from '../src/errors.js';
import { parseDuration, formatDuration } from '../src/core/duration.js';
import { scrub, clearSecrets } from '../src/secrets.js';
import { makeTempDir, type TempDir } from './helpers/tmp.js';

let tmp: TempDir;
beforeEach(async () => {
  tmp = await makeTempDir('pca-config-');
});
afterEach(async () => {
  clearSecrets();
  await tmp.cleanup();
});

const load = (flags: Record<string, unknown> = {}, env: Record<string, string> = {}) => loadSettings({ flags, env, cwd: tmp.path });

describe('durations', () => {
  it.each([
    ['0', 0],
    ['500ms', 500],
    ['15s', 15_000],
    ['5m', 300_000],
    ['24h', 86_400_000],
    ['1d', 86_400_000],
    ['1.5h', 5_400_000],
  ])('%s → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
  it.each(['', '5', '-5m', '5 m', '5min', 'abc', '1e3s'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
  it('formats compactly', () => {
    expect(formatDuration(300_000)).toBe('5m');
    expect(formatDuration(1500)).toBe('1500ms');
  });
});

describe('precedence: flag > environment > config file > default', () => {
  it('applies defaults', async () => {
    const s = await load();
    expect(s.skewMargin).toBe(300_000);
    expect(s.schedule).toBe('* * * * *');
    expect(s.jitter).toBe(15_000);
    expect(s.maxGap).toBe(86_400_000);
    expect(s.onGap).toBe('warn');
    expect(s.dryRun).toBe(false);
    expect(s.stateDir).toBe('/var/lib/purge-cache-agent');
    expect(s.recheck).toBe(5000);
  });

  it('layers file, environment and flags', async () => {
    const file = path.join(tmp.path, 'agent.yaml');
    await writeFile(file, 'rootUrl: https://file.example.com/\nskewMargin: 1m\njitter: 3s\nschedule: "*/2 * * * *"\n');
    const s = await load({ config: file, jitter: '7s' }, { TASKCLUSTER_ROOT_URL: 'https://env.example.com', PURGE_CACHE_AGENT_JITTER: '5s' });
    expect(s.rootUrl).toBe('https://env.example.com');
    expect(s.skewMargin).toBe(60_000);
    expect(s.jitter).toBe(7_000);
    expect(s.schedule).toBe('*/2 * * * *');
  });

  it('reads JSON config files too, and PURGE_CACHE_AGENT_CONFIG', async () => {
    const file = path.join(tmp.path, 'agent.json');
    await writeFile(file, JSON.stringify({ workerPoolId: 'p/w', cacheRoots: ['a', '/abs'] }));
    const s = await load({}, { PURGE_CACHE_AGENT_CONFIG: file });
    expect(requirePool(s)).toEqual({ provisionerId: 'p', workerType: 'w' });
    expect(s.cacheRoots).toEqual([path.join(tmp.path, 'a'), '/abs']);
  });

  it('splits PURGE_CACHE_AGENT_CACHE_ROOTS on colons, and flags repeat', async () => {
    expect((await load({}, { PURGE_CACHE_AGENT_CACHE_ROOTS: '/a::/b' })).cacheRoots).toEqual(['/a', '/b']);
    expect((await load({ cacheRoot: ['/x', '/y'] }, { PURGE_CACHE_AGENT_CACHE_ROOTS: '/a' })).cacheRoots).toEqual(['/x', '/y']);
  });

  it('parses --cache NAME=PATH at the first "=" and PURGE_CACHE_AGENT_CACHES as JSON', async () => {
    expect((await load({ cache: ['my cache=/c/1', 'b=/c/=2'] })).caches).toEqual([
      { name: 'my cache', path: '/c/1' },
      { name: 'b', path: '/c/=2' },
    ]);
    expect((await load({}, { PURGE_CACHE_AGENT_CACHES: '{"a=b":"/c"}' })).caches).toEqual([{ name: 'a=b', path: '/c' }]);
  });

  it('takes the first of systemd STATE_DIRECTORY, and PURGE_CACHE_AGENT_STATE_DIR first', async () => {
    expect((await load({}, { STATE_DIRECTORY: '/var/lib/a:/var/lib/b' })).stateDir).toBe('/var/lib/a');
    expect((await load({}, { STATE_DIRECTORY: '/var/lib/a', PURGE_CACHE_AGENT_STATE_DIR: '/s' })).stateDir).toBe('/s');
  });
});

describe('errors name the setting and what it accepts', () => {
  const expectConfigError = async (promise: Promise<unknown>, pattern: RegExp) => {
    const err = await promise.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).exitCode).toBe(2);
    expect((err as Error).message).toMatch(pattern);
  };

  it('rejects unknown keys in the config file', async () => {
    const file = path.join(tmp.path, 'bad.yaml');
    await writeFile(file, 'rootUrl: https://x.example.com\nskewMargn: 5m\n');
    await expectConfigError(load({ config: file }), /unknown setting "skewMargn"/);
  });
  it('rejects bad values with what they accept', async () => {
    await expectConfigError(load({ skewMargin: '5 minutes' }), /skewMargin \(flag --skew-margin\).*ms, s, m, h or d/);
    await expectConfigError(load({}, { PURGE_CACHE_AGENT_ON_GAP: 'panic' }), /onGap \(environment variable PURGE_CACHE_AGENT_ON_GAP\).*warn, purge-all/);
    await expectConfigError(load({ schedule: '61 * * * *' }), /schedule.*cron/);
    await expectConfigError(load({ rootUrl: 'ftp://x' }), /rootUrl.*http/);
  });
  it('refuses a size without a unit, saying which units exist; 0 needs none', async () => {
    await expectConfigError(
      load({ maxSize: '200' }),
      /maxSize \(flag --max-size\): expected a size with a unit: B; K, M, G, T .*a bare number such as 200 has no unit/,
    );
    await expectConfigError(load({}, { PURGE_CACHE_AGENT_MIN_FREE: '20' }), /minFree .*a percentage such as 15%, or a size with a unit/);
    const file = path.join(tmp.path, 'sizes.yaml');
    await writeFile(file, 'maxSize: 200\n');
    await expectConfigError(load({ config: file }), /maxSize \(config file .*a bare number such as 200 has no unit/);
    expect((await load({ maxSize: '0' })).maxSize).toBe(0);
    expect((await load({ maxSize: '200G', minFree: '10%' })).maxSize).toBe(200 * 1024 ** 3);
    expect((await load({ maxSize: '4096B' })).maxSize).toBe(4096);
    expect((await load({ maxSize: '2TB' })).maxSize).toBe(2e12);
  });
  it('gives a command its own default where it has one: once does not wait unless told', async () => {
    expect((await loadSettings({ flags: {}, env: {}, cwd: tmp.path, command: 'once' })).jitter).toBe(0);
    expect((await loadSettings({ flags: {}, env: {}, cwd: tmp.path, command: 'run' })).jitter).toBe(15_000);
    expect((await loadSettings({ flags: {}, env: { PURGE_CACHE_AGENT_JITTER: '2m' }, cwd: tmp.path, command: 'once' })).jitter).toBe(120_000);
  });
  it('rejects a missing or malformed config file', async () => {
    await expectConfigError(load({ config: 'nope.yaml' }), /cannot read config file .*nope\.yaml.*does not exist/);
    const file = path.join(tmp.path, 'list.yaml');
    await writeFile(file, '- a\n- b\n');
    await expectConfigError(load({ config: file }), /must hold a map/);
  });
  it('validates the worker pool', async () => {
    await expectConfigError(load().then(requirePool), /no worker pool configured/);
    await expectConfigError(load({ workerPoolId: 'no-slash' }).then(requirePool), /invalid workerPoolId/);
    await expectConfigError(load({ workerPoolId: `${'a'.repeat(39)}/w` }).then(requirePool), /invalid workerPoolId/);
    await expectConfigError(load({ provisionerId: 'p' }).then(requirePool), /go together/);
    expect(requirePool(await load({ provisionerId: 'p', workerType: 'w' }))).toEqual({ provisionerId: 'p', workerType: 'w' });
  });
  it('requires a service and caches where commands need them', async () => {
    await expectConfigError(load().then(requireService), /--root-url/);
    await expectConfigError(load().then(requireCaches), /--cache-root/);
    expect(() => {
      requireService({ proxyUrl: 'http://proxy' } as never);
    }).not.toThrow();
  });
});

describe('credentials', () => {
  it('come from the environment and are registered as secrets', async () => {
    const s = await load({}, { TASKCLUSTER_CLIENT_ID: 'me', TASKCLUSTER_ACCESS_TOKEN: 'sekrit-token-value-1234' });
    expect(s.credentials).toEqual({ clientId: 'me', accessToken: 'sekrit-token-value-1234' });
    expect(scrub('oops sekrit-token-value-1234 leaked')).toBe('oops [REDACTED] leaked');
  });
  it('need both a client id and an access token, and never echo the token', async () => {
    const err = await load({}, { TASKCLUSTER_ACCESS_TOKEN: 'lonely-secret-token-xyz' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/TASKCLUSTER_CLIENT_ID is not set/);
    expect((err as Error).message).not.toContain('lonely-secret-token-xyz');
  });
  it('may come from the config file', async () => {
    const file = path.join(tmp.path, 'c.yaml');
    await writeFile(file, 'credentials:\n  clientId: a\n  accessToken: file-secret-1234567\n');
    expect((await load({ config: file })).credentials?.clientId).toBe('a');
  });
});

describe('the settings table', () => {
  it('gives every flag a unique commander attribute and every setting a description', () => {
    const attrs = SETTINGS.map(flagAttribute).filter(Boolean);
    expect(new Set(attrs).size).toBe(attrs.length);
    for (const spec of SETTINGS) expect(spec.describe.length).toBeGreaterThan(10);
  });
});

describe('the README', () => {
  it('shows the settings table generated from the code (run `npm run docs` after changing a setting)', async () => {
    const { readFile } = await import('node:fs/promises');
    const { settingsTable, SETTINGS_START, SETTINGS_END } = await import('../src/config/docs.js');
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf(SETTINGS_START);
    const end = readme.indexOf(SETTINGS_END);
    expect(start).toBeGreaterThan(0);
    expect(readme.slice(start + SETTINGS_START.length, end).trim()).toBe(settingsTable());
  });
});
