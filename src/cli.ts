#!/usr/bin/env node
/**
 * The command line: which commands exist and which flags they take. The work
 * of each command lives in src/commands/. Every command accepts every setting
 * (see src/config/settings.ts), so one config file or one set of flags serves
 * them all; its --help shows only the settings it uses.
 *
 * Exit codes: 0 success; 1 the work failed (service unreachable, a purge
 * failed, another agent holds the state); 2 bad usage or configuration.
 */
import { Command, CommanderError } from 'commander';
import { addSettings as addAllSettings, PROGRAM, seeHelp } from './commands/help.js';
import type { SettingFlags } from './commands/context.js';
import { AgentError, errnoCode, errorMessage, systemErrorMessage } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { scrub } from './secrets.js';
import { VERSION } from './version.js';
import { formatDuration } from './core/duration.js';
import { DEFAULT_LEASE_TTL_SECONDS } from './core/leases.js';

/**
 * Each command's code is loaded only when that command runs: the daemon
 * never loads the embedded service, `status` never loads the upstream client,
 * and so on — memory a long-running process would otherwise carry for nothing.
 */
const commands = {
  cycle: () => import('./commands/cycle-commands.js'),
  caches: () => import('./commands/caches-command.js'),
  upstream: () => import('./commands/upstream-commands.js'),
  serve: () => import('./commands/serve-command.js'),
  demo: () => import('./commands/demo-command.js'),
  api: () => import('./commands/api-commands.js'),
  exec: () => import('./commands/exec-command.js'),
  doctor: () => import('./commands/doctor-command.js'),
};
type Modules = { [K in keyof typeof commands]: Awaited<ReturnType<(typeof commands)[K]>> };

/** A command's positional arguments (a variadic one is an array), then its flags, typed by the command. */
type Positional = (string | string[])[];
type Run<A extends Positional, F extends SettingFlags> = (...args: [...A, F]) => Promise<number>;

function lazy<K extends keyof Modules, A extends Positional, F extends SettingFlags>(module: K, pick: (m: Modules[K]) => Run<A, F>): Run<A, F> {
  return async (...args) => pick((await commands[module]()) as Modules[K])(...args);
}

const collect = (value: string, previous?: string[]): string[] => [...(previous ?? []), value];

/**
 * Run an action and turn its result or error into an exit code. Commander
 * calls it with the positional arguments the command declares, its options
 * and itself; the command's function states the types of both.
 */
function action<A extends Positional, F extends SettingFlags>(run: Run<A, F>) {
  return async (...args: unknown[]): Promise<void> => {
    const command = args.at(-1);
    if (!(command instanceof Command)) throw new Error('commander called an action without its command');
    const flags = command.opts<F>();
    try {
      process.exitCode = await run(...(args.slice(0, -2) as A), flags);
    } catch (err) {
      process.exitCode = report(err, flags, command);
    }
  };
}

function report(err: unknown, flags: SettingFlags, command: Command): number {
  const logger: Logger = (err as { logger?: Logger }).logger ?? createLogger({ level: 'info' });
  if (err instanceof AgentError) {
    // A usage or configuration error points at the command's help, which lists what it accepts.
    const hint = err.exitCode === 2 ? ` (${seeHelp(command)})` : '';
    logger.error({ code: err.code }, scrub(err.message) + hint);
    return err.exitCode;
  }
  const system = systemErrorMessage(err);
  if (system) {
    logger.error({ code: errnoCode(err) }, scrub(system));
    return 1;
  }
  const stack = err instanceof Error ? err.stack : undefined;
  logger.fatal({ err: scrub(errorMessage(err)), stack: flags.logLevel === 'debug' ? scrub(String(stack)) : undefined }, 'unexpected error');
  return 1;
}

/** A command and its place in the help: short usage errors that point at `<command> --help`. */
function define(parent: Command, name: string, description: string): Command {
  const command = parent.command(name).description(description);
  command.showHelpAfterError(seeHelp(command));
  return command;
}

/**
 * The whole command line, or — when `only` names the command being run — every
 * command but with the settings' flags (some 40 options each) on that one
 * alone: building them all cost start-up several ms for options never parsed.
 */
export function buildProgram(only?: string): Command {
  const addSettings: typeof addAllSettings = (command, name, opts) =>
    only === undefined || name.split(' ')[0] === only ? addAllSettings(command, name, opts) : command;
  const program = new Command(PROGRAM)
    .description('Apply Taskcluster purge-cache requests to the cache directories of this worker, safely.')
    .version(VERSION, '-V, --version')
    .enablePositionalOptions()
    .exitOverride();
  program.showHelpAfterError(seeHelp(program));
  program.addHelpText('after', `\nEach command's --help lists the settings it uses. Exit codes: 0 success, 1 the work failed, 2 bad usage or configuration.`);

  const once = define(program, 'once', 'run one cycle, then exit (0 ok, 1 failed, 2 bad configuration)').option(
    '--json',
    'print the cycle report as JSON on stdout',
  );
  addSettings(once, 'once').action(action(lazy('cycle', (m) => m.onceCommand)));
  addSettings(define(program, 'run', 'run the daemon: a cycle at start, then on the schedule, until SIGTERM/SIGINT'), 'run').action(
    action(lazy('cycle', (m) => m.runCommand)),
  );
  const doctor = define(
    program,
    'doctor',
    'check a configuration end to end: one line per check, each failing one with the fix (exit 0 all pass, 1 otherwise)',
  ).option('--json', 'print the checks as JSON');
  addSettings(doctor, 'doctor').action(action(lazy('doctor', (m) => m.doctorCommand)));
  const caches = define(program, 'caches', 'list the local caches (name, path, created) without contacting the service').option('--json', 'print JSON');
  addSettings(caches, 'caches').action(action(lazy('caches', (m) => m.cachesCommand)));
  const request = define(program, 'request', 'file a purge request upstream for a cache of this worker pool').argument('<cacheName>', 'the cache to purge');
  addSettings(request, 'request').action(action(lazy('upstream', (m) => m.requestCommand)));
  const requests = define(program, 'requests', 'list the open purge requests for this worker pool')
    .option('--all', 'list the requests of every worker pool')
    .option('--json', 'print JSON');
  addSettings(requests, 'requests').action(action(lazy('upstream', (m) => m.requestsCommand)));
  addSettings(define(program, 'ping', 'check that the purge-cache service answers'), 'ping').action(action(lazy('upstream', (m) => m.pingCommand)));
  const serve = define(program, 'serve', 'run the embedded Taskcluster-compatible purge-cache service')
    .option('--host <host>', 'address to listen on; any but a loopback address needs --clients (or --allow-anonymous)', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 picks a free one)', '8080')
    .option('--data <file>', 'keep requests in this JSON file (default: in memory)')
    .option('--clients <file>', 'verify Hawk against this {clientId: {accessToken, scopes}} file (default: open access, loopback only)')
    .option('--allow-anonymous', 'serve open access on a non-loopback --host: anyone who reaches the port may file and read purge requests');
  addSettings(serve, 'serve', { config: false }).action(action(lazy('serve', (m) => m.serveCommand)));
  // The running agent, through its local API (src/api/).
  const status = define(program, 'status', "show the running agent's state through its local API").option('--json', 'print JSON');
  addSettings(status, 'status').action(action(lazy('api', (m) => m.statusCommand)));
  const sync = define(program, 'sync', 'make the running agent sync with the service now')
    .option('--wait', "follow the cycle's output until it ends; exit 1 if it failed")
    .option('--json', 'print JSON');
  addSettings(sync, 'sync').action(action(lazy('api', (m) => m.syncCommand)));
  const purge = define(program, 'purge', 'make the running agent purge a local cache now, under the rules of a purge request (--dry-run: list what would go)')
    .argument('<cacheName>', 'the cache to purge')
    .option('--wait', "follow the purge's output until it ends; exit 1 if it failed")
    .option('--json', 'print JSON');
  addSettings(purge, 'purge').action(action(lazy('api', (m) => m.purgeCommand)));
  const lease = define(program, 'lease', 'hold or release a lease on a cache: while a lease is live, the agent does not purge the cache');
  const acquire = define(lease, 'acquire', 'create or extend a lease (through the running agent, or in the state file when none runs)')
    .argument('<cacheName>', 'the cache')
    .requiredOption('--owner <id>', 'who holds the lease (a task id, a worker slot, ...)')
    .option('--ttl <duration>', 'how long the lease lasts unless extended again', formatDuration(DEFAULT_LEASE_TTL_SECONDS * 1000))
    .option('--json', 'print JSON');
  addSettings(acquire, 'lease acquire').action(action(lazy('api', (m) => m.leaseAcquireCommand)));
  const release = define(lease, 'release', 'release a lease early')
    .argument('<cacheName>', 'the cache')
    .requiredOption('--owner <id>', 'who holds the lease')
    .option('--json', 'print JSON');
  addSettings(release, 'lease release').action(action(lazy('api', (m) => m.leaseReleaseCommand)));
  // exec's --cache names a cache to use (single caches, NAME=PATH, come from the config file here).
  const exec = define(program, 'exec', 'run a command on the named caches: pending purges first, then held (flock + lease) until it ends')
    .option('--cache <name>', 'a cache the command uses (repeatable); its directory is in PURGE_CACHE_AGENT_CACHE_<n>', collect)
    .option('--sync', 'first run a cycle against the service, so every request filed up to now applies')
    .option('--wait-timeout <duration>', 'how long to wait for a cache someone else holds', '10m')
    .option('--lease-ttl <duration>', "the lease's TTL; it is extended every third of it while the command runs", '2m')
    .option('--owner <id>', 'who holds the leases (default: exec:<hostname>:<pid>)')
    .option(
      '--purge-on-exit <codes>',
      "purge the caches once the command ends with one of these exit codes (exec's own: 128+N for signal N) or, for the word signal, is killed by a signal; comma-separated, such as 1,signal",
    )
    .argument('<command...>', 'the command and its arguments, after --')
    .passThroughOptions();
  addSettings(exec, 'exec', { except: ['caches'] }).action(action(lazy('exec', (m) => m.execCommand)));
  define(program, 'demo', 'the `npm start` demo: the daemon against an embedded service, with demo caches under ./.demo').action(
    action(lazy('demo', (m) => m.demoCommand)),
  );
  return program;
}

/**
 * The daemon runs for weeks, mostly idle, and what it touches once stays
 * resident. Set from here so that a daemon started without NODE_OPTIONS gets
 * them too (V8 reads these flags each time it would use them):
 * - the young generation stays at its initial size instead of growing to
 *   16 MB after a busy cycle (as `--max-semi-space-size=1` in the shipped units);
 * - no Turbofan: its compiler code and optimised code cost ~5 MB resident for
 *   cycles that spend their time waiting on the disk and the service anyway;
 * - V8's memory-saving heuristics (heap growth, code flushing).
 * Not --single-threaded-gc: V8 crashes when that one changes after start-up.
 */
async function tuneHeapForDaemon(argv: readonly string[]): Promise<void> {
  if (argv[2] !== 'run') return;
  const { setFlagsFromString } = await import('node:v8');
  for (const flag of ['--semi-space-growth-factor=1', '--no-turbofan', '--optimize-for-size']) setFlagsFromString(flag);
}

const COMMAND_NAMES = new Set(['once', 'run', 'doctor', 'caches', 'request', 'requests', 'ping', 'serve', 'status', 'sync', 'purge', 'lease', 'exec', 'demo']);

async function main(): Promise<void> {
  await tuneHeapForDaemon(process.argv);
  // Only a known command name skips the others' settings: help, typos and suggestions see every command whole.
  const name = process.argv[2];
  const program = buildProgram(name !== undefined && COMMAND_NAMES.has(name) ? name : undefined);
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; any other usage problem is exit code 2.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    throw err;
  }
}

await main();
