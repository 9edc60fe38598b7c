/**
 * A build task turned attacker: an unprivileged user (nobody, through
 * setpriv) acting on directories the test made writable to it. Root only; the
 * scenarios skip, saying why, where that is impossible.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod } from 'node:fs/promises';

export const NOBODY = 65534;

/** Why an attacker cannot be played here, or null when it can. */
export function attackerUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root, to run the attacker as another user';
  const probe = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'perl', '-e', '1']);
  if (probe.error || probe.status !== 0) return `setpriv/perl unavailable: ${probe.error?.message ?? probe.stderr.toString().trim()}`;
  return null;
}

/** Run a command as nobody. */
export function asNobody(cmd: string, args: string[], opts: { cwd?: string } = {}): ChildProcess {
  return spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, ...args], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Run a command as nobody to completion; throws with its stderr when it fails. */
export function asNobodySync(cmd: string, args: string[]): void {
  const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, ...args]);
  if (r.status !== 0) throw new Error(`as nobody: ${cmd} ${args.join(' ')}: ${r.stderr.toString().trim()}`);
}

/**
 * A loop exchanging two names with renameat2(RENAME_EXCHANGE), as fast as it
 * goes, until killed: whoever resolves either name meanwhile gets one or the
 * other. Prints `ready` once it has swapped once.
 */
export function exchangeLoop(a: string, b: string): ChildProcess {
  const perl = String.raw`
    my ($a, $b) = @ARGV;
    my $nr = eval { require "syscall.ph"; &SYS_renameat2 } || 316;
    $| = 1;
    syscall($nr, -100, $a, -100, $b, 2) == 0 or die "renameat2: $!\n";
    print "ready\n";
    while (1) { syscall($nr, -100, $a, -100, $b, 2); }
  `;
  return asNobody('perl', ['-e', perl, a, b]);
}

/** Resolves once the child printed `ready`; rejects with its stderr if it exits first. */
export function whenReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    child.on('exit', (code, signal) => {
      reject(new Error(`the attacker exited (${signal ?? code}) before it was ready: ${err.trim()}`));
    });
  });
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise((r) => child.once('close', r));
  child.kill('SIGKILL');
  await closed;
}

/** Let nobody traverse `dirs` and write into `writable` (test temp dirs only). */
export async function openUp(traversable: string[], writable: string[]): Promise<void> {
  for (const d of traversable) await chmod(d, 0o755);
  for (const d of writable) await chmod(d, 0o777);
}
