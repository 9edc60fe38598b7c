import { spawn, type ChildProcess } from 'node:child_process';
import { CLI_PATH } from './tmp.js';
import { eventually } from './wait.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Environment for a child CLI: none of this machine's Taskcluster or agent settings leak in. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (/^(TASKCLUSTER_|PURGE_CACHE_AGENT_|STATE_DIRECTORY|RUNTIME_DIRECTORY|LOG_LEVEL)/.test(key)) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/** Run the built CLI to completion. */
export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = startCli(args, opts);
  return finished(child, opts.timeoutMs ?? 120_000);
}

/** Start the built CLI and leave it running (for `run`, `serve`). */
export function startCli(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): ChildProcess & { output: { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: cleanEnv(opts.env),
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { output: { stdout: string; stderr: string } };
  child.output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (child.output.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (child.output.stderr += d));
  return child;
}

export function finished(child: ChildProcess & { output: { stdout: string; stderr: string } }, timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI did not exit within ${timeoutMs} ms; stderr:\n${child.output.stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ...child.output });
    });
  });
}

/** Wait until `predicate` holds for the child's output (polling; bounded). */
export async function waitForOutput(
  child: { output: { stdout: string; stderr: string } },
  predicate: (o: { stdout: string; stderr: string }) => boolean,
  timeoutMs = 120_000,
): Promise<void> {
  await eventually(() => predicate(child.output), 'the output', { timeoutMs, explain: () => `stderr so far:\n${child.output.stderr}` });
}

/** Parse pino JSON lines from stderr (non-JSON lines are skipped). */
export function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}
