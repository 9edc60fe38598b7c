/**
 * The one `run` daemon (with an API token) that a file of route tests shares,
 * with the caches those tests use. Importing this module registers the hooks
 * that start it before the file's tests and stop it after them; `fx` and `d`
 * are live bindings, set once the daemon is up.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { makeFixture, type Fixture } from '../helpers/fixture.js';
import { bearer, startDaemon, tokenFile, firstCycle, TOKEN, type Daemon, type Target } from '../helpers/api.js';

export let fx: Fixture;
export let d: Daemon;

beforeAll(async () => {
  fx = await makeFixture();
  for (const name of ['plain', 'a/b', '..', 'sized', 'leased', 'doomed', 'dry']) await fx.makeCache(name);
  await fx.makeCache('sized', { 'one.bin': 'x'.repeat(1000), 'sub/two.bin': 'y'.repeat(24) });
  d = await startDaemon(fx, { args: ['--api-token-file', await tokenFile(fx)] });
  await firstCycle(d);
});
afterAll(async () => {
  // Unset when beforeAll failed early: stop only what was started.
  const result = await (d as Daemon | undefined)?.stop();
  expect(result?.code, result?.stderr).toBe(0);
  await (fx as Fixture | undefined)?.close();
});

export const auth = bearer(TOKEN);
/** The same request over both transports: the socket needs no token, TCP gets the right one. */
export const both = (): [string, Target, Record<string, string>][] => [
  ['unix socket', d.socket, {}],
  ['TCP', d.tcp, auth],
];
