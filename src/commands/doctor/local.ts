/**
 * `doctor`'s checks of this host: the state directory and its lock, the cache
 * locations and their filesystems, the system tools, the API socket and port.
 * Each looks and never changes anything an agent relies on.
 */
import { access, constants, lstat, open, readFile, readdir, realpath, stat, statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import type { Settings } from '../../config/index.js';
import { errnoCode, errnoReason, errorMessage } from '../../errors.js';
import { FlockUnavailableError, tryFlock } from '../../edges/flock.js';
import { LOCK_FILE } from '../../edges/state.js';
import { serverSocketPath } from '../../api/config.js';
import { findAgent } from '../../api/client.js';
import { checkStateDir } from '../state-dir.js';
import { formatBytes } from '../cycle-commands.js';
import { fail, ok, warn, type CheckResult } from './check.js';
import { mountOf, parseMountinfo } from './mounts.js';

/** The agent answering on this configuration's API socket, if one runs. */
export interface RunningAgent {
  pid: number;
  tcp: string | null;
}

/** Only the socket `run` would listen on counts: an agent elsewhere is not this configuration's. One that cannot be reached counts as none. */
export async function findRunningAgent(settings: Settings): Promise<RunningAgent | null> {
  const found = await findAgent(settings, { socketPath: serverSocketPath(settings) }).catch(() => null);
  if (!found?.client) return null;
  try {
    const status = await found.client.status();
    return { pid: status.pid, tcp: status.api.tcp ?? null };
  } catch {
    return null;
  } finally {
    await found.client.close().catch(() => {});
  }
}

async function commandLineOf(pid: number): Promise<string> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const line = raw.split('\0').filter(Boolean).join(' ');
  return line ? `: ${line.length > 120 ? `${line.slice(0, 117)}...` : line}` : '';
}

export async function checkStateDirectory(settings: Settings, agent: RunningAgent | null): Promise<CheckResult> {
  const label = 'state directory';
  const dir = settings.stateDir;
  const usable = await checkStateDir(dir, { write: true });
  if (!usable.ok) return fail(label, `${dir}: ${usable.reason}`, usable.fix);
  if (!usable.exists) return ok(label, `${dir} does not exist yet; this user can create it`);
  const lockPath = path.join(dir, LOCK_FILE);
  let handle;
  try {
    handle = await open(lockPath, 'a+', 0o600);
  } catch (err) {
    return fail(
      label,
      `cannot open its lock file ${lockPath}: ${errnoReason(errnoCode(err))}`,
      'give this user write access to the state directory, or choose another --state-dir',
    );
  }
  try {
    if ((await tryFlock(handle.fd, 'exclusive')) === 'locked') return ok(label, `${dir}: writable, and no agent holds it`);
    const pid = Number.parseInt((await readFile(lockPath, 'utf8').catch(() => '')).trim(), 10);
    if (agent && pid === agent.pid) return ok(label, `${dir}: writable; the running agent (pid ${pid}), which answers on its API socket, holds it`);
    const who = Number.isSafeInteger(pid) && pid > 0 ? `pid ${pid}${await commandLineOf(pid)}` : 'a process whose pid is not recorded';
    return fail(
      label,
      `${dir}: another purge-cache-agent (${who}) holds its lock, so once and run with this configuration would exit 1`,
      'stop that agent, or give this configuration its own --state-dir',
    );
  } catch (err) {
    if (err instanceof FlockUnavailableError) return fail(label, `cannot test the lock on ${lockPath}: flock(1) is not installed`, 'install util-linux');
    return fail(label, `cannot test the lock on ${lockPath}: ${errorMessage(err)}`, 'check the state directory and its filesystem');
  } finally {
    await handle.close();
  }
}

/** Each cache root and single cache: there, a directory, readable, its parent writable (a purge renames), and its filesystem. */
export async function checkCacheLocations(settings: Settings): Promise<CheckResult[]> {
  const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8').catch(() => ''));
  const results: CheckResult[] = [];
  for (const root of settings.cacheRoots) results.push(await checkLocation(`cache root ${root}`, root, 'root', mounts));
  for (const single of settings.caches) results.push(await checkLocation(`cache ${JSON.stringify(single.name)}`, single.path, 'single', mounts));
  return results;
}

async function checkLocation(label: string, where: string, kind: 'root' | 'single', mounts: ReturnType<typeof parseMountinfo>): Promise<CheckResult> {
  const owner = "run the agent as the caches' owner, or as root (as the systemd unit does)";
  let real: string;
  try {
    real = await realpath(where);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' && kind === 'single') return ok(label, `${where} does not exist yet: nothing to purge until the worker creates it`);
    if (code === 'ENOENT') return fail(label, `${where} does not exist`, `create it (mkdir -p ${where}), or correct --cache-root`);
    return fail(label, `cannot resolve ${where}: ${errnoReason(code)}`, owner);
  }
  if (!(await stat(real)).isDirectory())
    return fail(
      label,
      `${where} is not a directory`,
      kind === 'root' ? 'point --cache-root at the directory that holds the caches' : 'point the cache at a directory',
    );
  let count = 0;
  try {
    count = (await readdir(real)).filter((entry) => !entry.startsWith('.')).length;
  } catch (err) {
    return fail(label, `this user cannot read ${where}: ${errnoReason(errnoCode(err))}`, owner);
  }
  // A purge renames the cache within its root (or next to a single cache): that needs write access there.
  const renameIn = kind === 'root' ? real : path.dirname(real);
  try {
    await access(renameIn, constants.W_OK | constants.X_OK);
  } catch (err) {
    return fail(label, `this user cannot purge here: renaming in ${renameIn} is not allowed (${errnoReason(errnoCode(err))})`, owner);
  }
  const mount = mountOf(mounts, real);
  const fs = mount
    ? `${mount.fsType} (mounted at ${mount.mountPoint}${mount.options.split(',').includes('ro') ? ', read-only' : ''})`
    : 'an unknown filesystem';
  const space = await statfs(real).then(
    (s) => `, ${formatBytes(s.bavail * s.bsize)} free`,
    () => '',
  );
  const what = kind === 'root' ? `${count} cache${count === 1 ? '' : 's'}` : 'a directory';
  return ok(label, `${what}, readable, purgeable by this user, on ${fs}${space}`);
}

async function onPath(name: string, env: NodeJS.ProcessEnv): Promise<string | null> {
  for (const dir of (env.PATH ?? '').split(':').filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return null;
}

/** flock(1) and perl take the rename lock on a cache; ionice puts trash deletion in the idle I/O class. */
export async function checkTools(settings: Settings, env: NodeJS.ProcessEnv = process.env): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const flock = await onPath('flock', env);
  results.push(
    flock
      ? ok('flock', flock)
      : fail(
          'flock',
          'flock(1) is not on the PATH: the agent cannot lock a cache before renaming it, so it would not purge',
          'install util-linux (apt-get install util-linux)',
        ),
  );
  const perl = await onPath('perl', env);
  results.push(
    perl
      ? ok('perl', perl)
      : fail('perl', 'perl is not on the PATH: the agent takes its locks on many caches at once with it', 'install perl (apt-get install perl-base)'),
  );
  const ionice = await onPath('ionice', env);
  if (ionice) results.push(ok('ionice', ionice));
  else if (settings.deletePriority === 'idle')
    results.push(
      fail(
        'ionice',
        'ionice is not on the PATH: trash deletion cannot run in the idle I/O class and competes with builds for the disk',
        'install util-linux, or set --delete-priority normal',
      ),
    );
  else results.push(ok('ionice', 'not on the PATH, and not needed with --delete-priority normal'));
  return results;
}

/** The API socket `run` would listen on, and the --listen port: free, or already the running agent's. */
export async function checkApiEndpoints(settings: Settings, agent: RunningAgent | null): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const socket = serverSocketPath(settings);
  const label = 'API socket';
  let st: Awaited<ReturnType<typeof lstat>> | null = null;
  try {
    st = await lstat(socket);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT')
      return [fail(label, `cannot look at ${socket}: ${errnoReason(errnoCode(err))}`, 'set --api-socket to a path this user may use')];
  }
  if (st === null) {
    const dir = await checkStateDir(path.dirname(socket), { write: true });
    results.push(
      dir.ok
        ? ok(label, `${socket} is free`)
        : fail(label, `${socket}: its directory is not usable: ${dir.reason}`, 'set --api-socket to a path in a directory this user may write'),
    );
  } else if (!st.isSocket()) {
    results.push(fail(label, `${socket} exists and is not a socket; run never removes it, so it would not start`, 'remove that file, or set --api-socket'));
  } else if (agent) {
    results.push(ok(label, `${socket}: the running agent (pid ${agent.pid}) listens on it`));
  } else {
    results.push(ok(label, `${socket}: a socket left by an agent that stopped; run replaces it`));
  }
  if (settings.listen) results.push(await checkPort(settings.listen, agent));
  return results;
}

async function checkPort(listen: { host: string; port: number }, agent: RunningAgent | null): Promise<CheckResult> {
  const label = `API port ${listen.host}:${listen.port}`;
  const server = createServer();
  const error = await new Promise<unknown>((resolve) => {
    server.once('error', resolve);
    server.listen(listen.port, listen.host, () => {
      resolve(null);
    });
  });
  await new Promise<void>((resolve) => {
    if (server.listening)
      server.close(() => {
        resolve();
      });
    else resolve();
  });
  if (error === null) return ok(label, 'free');
  const code = errnoCode(error);
  if (code === 'EADDRINUSE' && agent?.tcp?.endsWith(`:${listen.port}`)) return ok(label, `the running agent (pid ${agent.pid}) serves it`);
  if (code === 'EADDRINUSE')
    return fail(
      label,
      'another process listens there, so run would not start',
      `stop it (\`ss -ltnp 'sport = :${listen.port}'\` names it), or choose another --listen port`,
    );
  if (code === 'EADDRNOTAVAIL')
    return fail(label, `${listen.host} is not an address of this host`, 'set --listen to an address of this host, such as 127.0.0.1');
  if (code === 'EACCES') return fail(label, 'this user may not listen on that port', 'choose a port above 1023, or grant CAP_NET_BIND_SERVICE');
  return fail(label, `cannot listen there: ${errorMessage(error)}`, 'choose another --listen');
}

/** A warning for a state directory that is also a cache location: a purge could take the agent's own state. */
export function checkOverlap(settings: Settings): CheckResult[] {
  const state = path.resolve(settings.stateDir);
  const inside = settings.cacheRoots.find((root) => state === root || state.startsWith(`${root}/`));
  return inside ? [warn('state directory', `${state} is inside the cache root ${inside}`, 'keep the state outside every cache root')] : [];
}
