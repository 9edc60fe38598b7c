/**
 * Emptying the trash in a child process at low priority, so that the daemon stays responsive, and the disk and CPU go to the
 * builds first. The child lowers every one of its threads to nice 19 and the
 * idle I/O class (`ionice -c3`, where ionice exists and the I/O scheduler
 * honours it) before it starts; threads it starts later inherit both.
 *
 *   node dist/edges/caches/trash-worker.js [--rate N] [--concurrency N] [--] TRASH_DIR...
 *
 * prints one JSON line on stdout: the DeleteReport, plus the `nice` and
 * `ioClass` it ran with. SIGTERM stops it early; it still prints what it did.
 * Exit code 0 when it printed a report (failures are in the report), 2 for
 * bad usage, 1 when it could not run at all.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, realpathSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { errorMessage, TrashWorkerError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { emptyReport, type DeleteReport } from './delete.js';
import { emptyTrash } from './trash.js';

export interface TrashWorkerOptions {
  rateLimit?: number;
  concurrency?: number;
  /** Aborting sends the child SIGTERM; the promise then resolves with what it did. */
  signal?: AbortSignal;
  logger?: Logger;
  /** The compiled worker script; defaults to this module's own .js file. */
  script?: string;
}

export interface WorkerReport extends DeleteReport {
  /** The nice value the child ran at (null if it could not be read). */
  nice: number | null;
  /** 'idle' when ionice put the child in the idle I/O class. */
  ioClass: 'idle' | null;
  /** The child's peak resident memory (MiB), for the reliability report and the bench. */
  peakMiB?: number;
}

const DEFAULT_SCRIPT = fileURLToPath(new URL('./trash-worker.js', import.meta.url));

/** Empty `trashDirs` in a child process at low priority; resolves with its report. */
export function emptyTrashInChild(trashDirs: readonly string[], opts: TrashWorkerOptions = {}): Promise<WorkerReport> {
  const script = opts.script ?? DEFAULT_SCRIPT;
  const args = [script];
  if (opts.rateLimit) args.push('--rate', String(opts.rateLimit));
  if (opts.concurrency) args.push('--concurrency', String(opts.concurrency));
  args.push('--', ...trashDirs);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
    const stop = (): void => void child.kill('SIGTERM');
    opts.signal?.addEventListener('abort', stop, { once: true });
    if (opts.signal?.aborted) stop();
    child.on('error', (err) => {
      reject(new TrashWorkerError(`cannot start the trash worker ${script}: ${errorMessage(err)}`));
    });
    child.on('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', stop);
      try {
        // Stopped before it could even start: it did nothing.
        if (signal === 'SIGTERM' && opts.signal?.aborted) {
          resolve({ ...emptyReport(), nice: null, ioClass: null });
          return;
        }
        if (code !== 0) throw new Error(`exited with ${signal ?? `code ${code}`}`);
        resolve(JSON.parse(stdout) as WorkerReport);
      } catch (err) {
        const detail = stderr.trim() || errorMessage(err);
        reject(new TrashWorkerError(`the trash worker (${script}) failed: ${detail}; the trash is kept and retried on the next run`));
      }
    });
  });
}

/**
 * Lower this process to nice 19 and the idle I/O class. On Linux both are per
 * thread, so every thread that exists now is lowered; threads started later
 * inherit from their creator.
 */
export function lowerPriority(): { nice: number | null; ioClass: 'idle' | null } {
  let tids: number[] = [0];
  try {
    tids = readdirSync('/proc/self/task').map(Number);
  } catch {
    // No /proc: only the calling thread (pid 0 = self).
  }
  let nice: number | null = null;
  try {
    for (const tid of tids) os.setPriority(tid, 19);
    nice = os.getPriority();
  } catch {
    // Not permitted or not supported: run at the priority we have.
  }
  const ionice = spawnSync('ionice', ['-c', '3', '-p', ...tids.map(String)], { stdio: 'ignore' });
  return { nice, ioClass: ionice.status === 0 ? 'idle' : null };
}

export function parseArgs(argv: readonly string[]): { rateLimit?: number; concurrency?: number; dirs: string[] } | string {
  const out: { rateLimit?: number; concurrency?: number; dirs: string[] } = { dirs: [] };
  // One iterator: an option takes its value from it, and `--` hands it the rest.
  const args = argv.values();
  for (const arg of args) {
    if (arg === '--') {
      out.dirs.push(...args);
      break;
    }
    if (arg === '--rate' || arg === '--concurrency') {
      const value = Number(args.next().value);
      if (!Number.isFinite(value) || value < 0) return `${arg} takes a number >= 0`;
      if (arg === '--rate') out.rateLimit = value;
      else out.concurrency = value;
    } else if (arg.startsWith('-')) return `unknown option ${arg}`;
    else out.dirs.push(arg);
  }
  if (out.dirs.length === 0) return 'no trash directory given';
  return out;
}

async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    process.stderr.write(`trash-worker: ${args}\nusage: trash-worker [--rate N] [--concurrency N] [--] TRASH_DIR...\n`);
    return 2;
  }
  const controller = new AbortController();
  for (const sig of ['SIGTERM', 'SIGINT'] as const)
    process.once(sig, () => {
      controller.abort();
    });
  const priority = lowerPriority();
  const report = await emptyTrash(args.dirs, { rateLimit: args.rateLimit, concurrency: args.concurrency, signal: controller.signal });
  const peakMiB = Math.round(process.resourceUsage().maxRSS / 1024);
  process.stdout.write(JSON.stringify({ ...report, ...priority, peakMiB }) + '\n');
  return 0;
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return pathToFileURL(realpathSync(entry)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`trash-worker: ${errorMessage(err)}\n`);
      process.exitCode = 1;
    },
  );
}
