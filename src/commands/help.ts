/**
 * What each command's --help shows besides its own options: the settings it
 * uses (from the table in src/config/settings.ts, each with its environment
 * variable), the settings that have no flag, and one or two examples.
 */
import { Help, Option, type Command } from 'commander';
import { SETTINGS, defaultTextFor, type CommandName, type Settings } from '../config/index.js';

export const PROGRAM = 'purge-cache-agent';

const collect = (value: string, previous?: string[]): string[] => [...(previous ?? []), value];

const EXAMPLES: Partial<Record<CommandName, string[]>> = {
  once: [
    'purge-cache-agent once --worker-pool-id proj-builds/linux --cache-root /var/cache/tasks --root-url https://tc.example.com',
    'purge-cache-agent once --config /etc/purge-cache-agent/agent.yaml --jitter 2m   # from a cron line shared by a fleet',
  ],
  run: [
    'purge-cache-agent run --config /etc/purge-cache-agent/agent.yaml',
    'purge-cache-agent run --worker-pool-id proj-builds/linux --cache-root /var/cache/tasks --listen 127.0.0.1:9464',
  ],
  doctor: [
    'purge-cache-agent doctor --config /etc/purge-cache-agent/agent.yaml',
    'purge-cache-agent doctor --worker-pool-id proj-builds/linux --cache-root /var/cache/tasks --json',
  ],
  caches: ['purge-cache-agent caches --cache-root /var/cache/tasks', 'purge-cache-agent caches --config /etc/purge-cache-agent/agent.yaml --json'],
  request: ["purge-cache-agent request 'cargo registry' --root-url https://tc.example.com --worker-pool-id proj-builds/linux"],
  requests: [
    'purge-cache-agent requests --root-url https://tc.example.com --worker-pool-id proj-builds/linux',
    'purge-cache-agent requests --all --json --root-url https://tc.example.com',
  ],
  ping: ['purge-cache-agent ping --root-url https://tc.example.com'],
  status: ['purge-cache-agent status', 'purge-cache-agent status --api http://127.0.0.1:9464 --api-token-file /etc/purge-cache-agent/api-token --json'],
  sync: ['purge-cache-agent sync --wait'],
  purge: ["purge-cache-agent purge 'cargo registry' --dry-run", "purge-cache-agent purge 'cargo registry' --wait"],
  'lease acquire': ['purge-cache-agent lease acquire cargo --owner task-42 --ttl 30m'],
  'lease release': ['purge-cache-agent lease release cargo --owner task-42'],
  exec: ['purge-cache-agent exec --sync --cache cargo --cache "node modules" -- ./build.sh'],
  serve: [
    'purge-cache-agent serve --port 8080',
    'purge-cache-agent serve --host 0.0.0.0 --port 8080 --clients /etc/purge-cache/clients.json --data /var/lib/purge-cache/requests.json',
  ],
};

/** The command's name as typed: `once`, `lease acquire`. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command = command; c.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export function seeHelp(command: Command): string {
  const name = commandPath(command);
  return `see \`${PROGRAM}${name ? ` ${name}` : ''} --help\``;
}

function ownOptionsFirst<T>(this: Help, unsorted: T[], visible: T[], getGroup: (item: T) => string): Map<string, T[]> {
  const groups = Help.prototype.groupItems.call(this, unsorted as never, visible as never, getGroup as never) as unknown as Map<string, T[]>;
  const own = groups.get('Options:');
  return own ? new Map([['Options:', own], ...[...groups].filter(([heading]) => heading !== 'Options:')]) : groups;
}

/**
 * Add the config-file flag and every setting's flag to a command, after its
 * own options. Settings the command does not use are accepted but not shown,
 * so one set of flags still serves every command.
 */
export function addSettings(command: Command, name: CommandName, opts: { except?: (keyof Settings)[]; config?: boolean } = {}): Command {
  // The help flag stays with the command's own options, and they come first, even when -h is the only one.
  command.helpOption('-h, --help', 'show this help');
  command.configureHelp({ groupItems: ownOptionsFirst });
  command.optionsGroup('Settings (a flag overrides its environment variable, which overrides the config file):');
  const config = new Option('--config <file>', 'YAML or JSON config file, keys as in the README [env: PURGE_CACHE_AGENT_CONFIG]');
  if (opts.config === false) config.hideHelp();
  command.addOption(config);
  for (const spec of SETTINGS) {
    if (!spec.flag || opts.except?.includes(spec.key)) continue;
    const env = spec.env?.length ? ` [env: ${spec.env.join(', ')}]` : '';
    const defaultText = defaultTextFor(spec, name);
    const option = new Option(spec.flag, `${spec.describe}${env}${defaultText ? ` (default: ${defaultText})` : ''}`);
    if (spec.repeatable) option.argParser(collect);
    if (!spec.commands.includes(name)) option.hideHelp();
    command.addOption(option);
  }
  const lines: string[] = [];
  const flagless = SETTINGS.filter((spec) => !spec.flag && spec.commands.includes(name));
  if (flagless.length > 0) {
    lines.push('', 'Environment only (never flags, which show in ps):');
    for (const spec of flagless) {
      const env = spec.key === 'credentials' ? 'TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN, TASKCLUSTER_CERTIFICATE' : (spec.env ?? []).join(', ');
      lines.push(
        `  ${env}`,
        `      ${spec.key === 'credentials' ? 'Taskcluster credentials (or credentials: in the config file); anonymous when unset' : spec.describe}`,
      );
    }
  }
  const examples = EXAMPLES[name];
  if (examples) lines.push('', 'Examples:', ...examples.map((e) => `  ${e}`));
  if (lines.length > 0) command.addHelpText('after', lines.join('\n'));
  return command;
}
