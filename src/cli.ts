#!/usr/bin/env node
/**
 * The command line: which commands exist and which flags they take. The work
 * of each command lives in src/commands/. Every command accepts every setting
 * (see src/config/settings.ts), so one config file or one set of flags serves
 * them all.
 *
 * Exit codes: 0 success; 1 the work failed (service unreachable, a purge
 * failed, another agent holds the state); 2 bad usage or configuration.
 */
import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError, Option } from 'commander';
import { SETTINGS } from './config/index.js';
import { AgentError, errorMessage } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { scrub } from './secrets.js';
import { VERSION } from './version.js';

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
};
type Modules = { [K in keyof typeof commands]: Awaited<ReturnType<(typeof commands)[K]>> };
function lazy<K extends keyof Modules>(module: K, pick: (m: Modules[K]) => Action): Action {
  return async (...args) => pick((await commands[module]()) as Modules[K])(...args);
}

type Action = (...args: any[]) => Promise<number>;

const collect = (value: string, previous?: string[]): string[] => [...(previous ?? []), value];

/** Add the config-file flag and every setting's flag to a command. */
function withSettings(command: Command, except: string[] = []): Command {
  command.option('--config <file>', 'YAML or JSON config file (env PURGE_CACHE_AGENT_CONFIG)');
  for (const spec of SETTINGS) {
    if (!spec.flag || except.includes(spec.key)) continue;
    const option = new Option(spec.flag, spec.describe + (spec.defaultText ? ` (default: ${spec.defaultText})` : ''));
    if (spec.repeatable) option.argParser(collect);
    command.addOption(option);
  }
  return command;
}

/** Run an action and turn its result or error into an exit code. */
function action(run: Action) {
  return async (...args: unknown[]): Promise<void> => {
    const command = args[args.length - 1] as Command;
    const flags = command.opts();
    try {
      process.exitCode = await run(...args.slice(0, -2), flags);
    } catch (err) {
      process.exitCode = report(err, flags);
    }
  };
}

function report(err: unknown, flags: Record<string, unknown>): number {
  const logger: Logger = (err as { logger?: Logger }).logger ?? createLogger({ level: 'info' });
  if (err instanceof AgentError) {
    logger.error({ code: err.code }, scrub(err.message));
    return err.exitCode;
  }
  logger.fatal({ err: scrub(errorMessage(err)), stack: flags.logLevel === 'debug' ? scrub(String((err as Error)?.stack)) : undefined }, 'unexpected error');
  return 1;
}

export function buildProgram(): Command {
  const program = new Command('purge-cache-agent')
    .description('Apply Taskcluster purge-cache requests to the cache directories of this worker, safely.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError()
    .enablePositionalOptions()
    .exitOverride();

  withSettings(program.command('once').description('run one cycle, then exit (0 ok, 1 failed, 2 bad configuration)'))
    .option('--json', 'print the cycle report as JSON on stdout')
    .action(action(lazy('cycle', (m) => m.onceCommand)));
  withSettings(program.command('run').description('run the daemon: a cycle at start, then on the schedule, until SIGTERM/SIGINT'))
    .action(action(lazy('cycle', (m) => m.runCommand)));
  withSettings(program.command('caches').description('list the local caches (name, path, created) without contacting the service'))
    .option('--json', 'print JSON')
    .action(action(lazy('caches', (m) => m.cachesCommand)));
  withSettings(program.command('request').description('file a purge request upstream for a cache of this worker pool'))
    .argument('<cacheName>', 'the cache to purge')
    .action(action(lazy('upstream', (m) => m.requestCommand)));
  withSettings(program.command('requests').description('list the open purge requests for this worker pool'))
    .option('--all', 'list the requests of every worker pool')
    .option('--json', 'print JSON')
    .action(action(lazy('upstream', (m) => m.requestsCommand)));
  withSettings(program.command('ping').description('check that the purge-cache service answers')).action(action(lazy('upstream', (m) => m.pingCommand)));
  withSettings(program.command('serve').description('run the embedded Taskcluster-compatible purge-cache service'))
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 picks a free one)', '8080')
    .option('--data <file>', 'keep requests in this JSON file (default: in memory)')
    .option('--clients <file>', 'verify Hawk against this {clientId: {accessToken, scopes}} file (default: open access)')
    .action(action(lazy('serve', (m) => m.serveCommand)));
  // The running agent, through its local API (src/api/).
  withSettings(program.command('status').description("show the running agent's state through its local API"))
    .option('--json', 'print JSON')
    .action(action(lazy('api', (m) => m.statusCommand)));
  withSettings(program.command('sync').description('make the running agent sync with the service now'))
    .option('--wait', "follow the cycle's output until it ends; exit 1 if it failed")
    .option('--json', 'print JSON')
    .action(action(lazy('api', (m) => m.syncCommand)));
  withSettings(program.command('purge').description('make the running agent purge a local cache now, under the rules of a purge request (--dry-run: list what would go)'))
    .argument('<cacheName>', 'the cache to purge')
    .option('--wait', "follow the purge's output until it ends; exit 1 if it failed")
    .option('--json', 'print JSON')
    .action(action(lazy('api', (m) => m.purgeCommand)));
  const lease = program.command('lease').description('hold or release a lease on a cache: while a lease is live, the agent does not purge the cache');
  withSettings(lease.command('acquire').description('create or extend a lease (through the running agent, or in the state file when none runs)'))
    .argument('<cacheName>', 'the cache')
    .requiredOption('--owner <id>', 'who holds the lease (a task id, a worker slot, ...)')
    .option('--ttl <duration>', 'how long the lease lasts unless extended again', '10m')
    .option('--json', 'print JSON')
    .action(action(lazy('api', (m) => m.leaseAcquireCommand)));
  withSettings(lease.command('release').description('release a lease early'))
    .argument('<cacheName>', 'the cache')
    .requiredOption('--owner <id>', 'who holds the lease')
    .option('--json', 'print JSON')
    .action(action(lazy('api', (m) => m.leaseReleaseCommand)));
  // exec's --cache names a cache to use (single caches, NAME=PATH, come from the config file here).
  withSettings(program.command('exec').description('run a command on the named caches: pending purges first, then held (flock + lease) until it ends'), ['caches'])
    .option('--cache <name>', 'a cache the command uses (repeatable); its directory is in PURGE_CACHE_AGENT_CACHE_<n>', collect)
    .option('--sync', 'first run a cycle against the service, so every request filed up to now applies')
    .option('--wait-timeout <duration>', 'how long to wait for a cache someone else holds', '10m')
    .option('--lease-ttl <duration>', "the lease's TTL; it is extended every third of it while the command runs", '2m')
    .option('--owner <id>', 'who holds the leases (default: exec:<hostname>:<pid>)')
    .argument('<command...>', 'the command and its arguments, after --')
    .passThroughOptions()
    .action(action(lazy('exec', (m) => m.execCommand)));
  program
    .command('demo')
    .description('the `npm start` demo: the daemon against an embedded service, with demo caches under ./.demo')
    .action(action(lazy('demo', (m) => m.demoCommand)));
  return program;
}

/**
 * The daemon runs for weeks, mostly idle. Left alone, V8 grows its young
 * generation to 16 MB after a busy cycle and that memory stays resident; this
 * keeps it at its initial size, as `--max-semi-space-size=1` in the shipped
 * units does, for a daemon started without NODE_OPTIONS. (The growth factor is
 * read each time the young generation would grow, so setting it here works.)
 */
function tuneHeapForDaemon(argv: readonly string[]): void {
  if (argv[2] === 'run') setFlagsFromString('--semi-space-growth-factor=1');
}

async function main(): Promise<void> {
  tuneHeapForDaemon(process.argv);
  const program = buildProgram();
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
