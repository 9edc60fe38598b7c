/**
 * Can this user keep its state in the configured directory? Checked before an
 * agent starts, so that the default /var/lib/purge-cache-agent for a non-root
 * user, or a root-owned directory, is said as such — the path, the reason and
 * the fix — instead of surfacing as a bare EACCES from deep inside.
 */
import { access, stat, constants } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULTS } from '../config/index.js';
import { StateDirUnusableError, errnoCode, errnoReason } from '../errors.js';

export type StateDirCheck = { ok: true; exists: boolean } | { ok: false; reason: string; fix: string };

function whoAmI(): string {
  return process.getuid ? `this user (uid ${process.getuid()})` : 'this user';
}

/** The nearest existing directory at or above `dir` (mkdir -p creates the rest there). */
async function nearestExisting(dir: string): Promise<{ at: string; exists: boolean }> {
  let at = dir;
  for (;;) {
    try {
      await stat(at);
      return { at, exists: at === dir };
    } catch (err) {
      const parent = path.dirname(at);
      if (errnoCode(err) !== 'ENOENT' || parent === at) return { at, exists: at === dir };
      at = parent;
    }
  }
}

function describeMode(st: { uid: number; mode: number }): string {
  return `owned by uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}`;
}

/** Whether `dir` can hold the state: writable (or creatable), or only readable for a dry run. */
export async function checkStateDir(dir: string, opts: { write: boolean }): Promise<StateDirCheck> {
  const fix =
    path.resolve(dir) === DEFAULTS.stateDir
      ? 'run as root (as the systemd unit does), or give a directory this user owns with --state-dir (or PURGE_CACHE_AGENT_STATE_DIR)'
      : 'give this user write access to it, or choose another --state-dir (or PURGE_CACHE_AGENT_STATE_DIR)';
  const { at, exists } = await nearestExisting(dir);
  let st;
  try {
    st = await stat(at);
  } catch (err) {
    return { ok: false, reason: `cannot look at ${at}: ${errnoReason(errnoCode(err))}`, fix };
  }
  if (!st.isDirectory()) {
    return { ok: false, reason: exists ? 'it is not a directory' : `${at} is not a directory, so the state directory cannot be created under it`, fix };
  }
  if (!opts.write && !exists) return { ok: true, exists };
  const mode = opts.write ? constants.W_OK | constants.X_OK : constants.R_OK | constants.X_OK;
  try {
    await access(at, mode);
  } catch (err) {
    const code = errnoCode(err);
    const what = opts.write ? 'write' : 'read';
    const reason = exists
      ? `${whoAmI()} cannot ${what} it (${code === 'EROFS' ? errnoReason(code) : describeMode(st)})`
      : `it does not exist, and ${whoAmI()} cannot create it in ${at} (${code === 'EROFS' ? errnoReason(code) : describeMode(st)})`;
    return { ok: false, reason, fix };
  }
  return { ok: true, exists };
}

/** Throw a StateDirUnusableError (exit 2) naming --state-dir, the path, the reason and the fix. */
export async function requireUsableStateDir(dir: string, opts: { write: boolean }): Promise<void> {
  const check = await checkStateDir(dir, opts);
  if (!check.ok) throw new StateDirUnusableError(dir, check.reason, check.fix);
}
