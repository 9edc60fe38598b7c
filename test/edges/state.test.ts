/**
 * The state directory's lock, as a second agent meets it: the pid it names is
 * the live holder's, never a process that held the lock before.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateLockedError } from '../../src/errors.js';
import { LOCK_FILE, StateStore } from '../../src/edges/state.js';
import { silentLogger } from '../../src/log.js';
import { eventually } from '../helpers/wait.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const logger = silentLogger();

let tmp: TempDir;
let holder: ChildProcess | null = null;

beforeEach(async () => {
  tmp = await makeTempDir('pca-state-');
});
afterEach(async () => {
  holder?.kill('SIGKILL');
  holder = null;
  await tmp.cleanup();
});

/** A pid that belonged to a process which has exited. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

async function openError(): Promise<StateLockedError> {
  const err = await StateStore.open(tmp.path, { logger }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StateLockedError);
  return err as StateLockedError;
}

describe('the state lock', () => {
  it('a store that closes clears its pid, so nobody names it later', async () => {
    const store = await StateStore.open(tmp.path, { logger });
    expect((await readFile(path.join(tmp.path, LOCK_FILE), 'utf8')).trim()).toBe(String(process.pid));
    await store.close();
    expect(await readFile(path.join(tmp.path, LOCK_FILE), 'utf8')).toBe('');
  });

  it('names the live holder once it has written its pid, not the dead one before it', async () => {
    const lock = path.join(tmp.path, LOCK_FILE);
    const stale = await deadPid();
    await writeFile(lock, `${stale}\n`);
    holder = spawn('flock', ['-x', lock, 'sh', '-c', `echo $$ > '${lock}'; exec sleep 600`], { stdio: 'ignore' });
    let written = '';
    await eventually(async () => {
      written = (await readFile(lock, 'utf8')).trim();
      return written !== '' && written !== String(stale);
    }, 'the holder to write its pid');
    expect((await openError()).holderPid).toBe(Number(written));
  });

  it('does not name a holder that crashed: a dead pid left in the file reads as unknown', async () => {
    const lock = path.join(tmp.path, LOCK_FILE);
    await writeFile(lock, `${await deadPid()}\n`);
    holder = spawn('flock', ['-x', lock, 'sleep', '600'], { stdio: 'ignore' });
    await eventually(async () => !(await lockIsFree(lock)), 'the holder to take the lock');
    const err = await openError();
    expect(err.holderPid).toBeNull();
    expect(err.message).toContain('pid unknown');
  });
});

/** Whether flock(1) could take the lock right now (it lets go at once). */
async function lockIsFree(lock: string): Promise<boolean> {
  const probe = spawn('flock', ['-n', '-x', lock, 'true'], { stdio: 'ignore' });
  const code = await new Promise<number | null>((resolve) => probe.once('exit', resolve));
  return code === 0;
}
