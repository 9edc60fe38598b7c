/**
 * Each command's --help, and usage errors, through the built CLI: the help
 * lists the command's own options first, then only the settings it uses (each
 * with its environment variable), then examples; a usage error is two lines.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { SETTINGS, settingsFor, type CommandName } from '../../src/config/index.js';

const longFlag = (flag: string) => flag.split(' ')[0]!;
const COMMANDS: CommandName[] = [
  'once',
  'run',
  'doctor',
  'caches',
  'request',
  'requests',
  'ping',
  'status',
  'sync',
  'purge',
  'lease acquire',
  'lease release',
  'exec',
  'serve',
];

describe('--help per command', () => {
  it.each(COMMANDS)('%s --help lists only the settings it uses, own options first, with environment variables and examples', async (command) => {
    const result = await runCli([...command.split(' '), '--help']);
    expect(result.code, result.stderr).toBe(0);
    const help = result.stdout;
    const settingsAt = help.indexOf('Settings (');
    expect(settingsAt).toBeGreaterThan(0);
    // The command's own options (and -h) come before the settings.
    expect(help.indexOf('-h, --help')).toBeLessThan(settingsAt);
    const used = settingsFor(command);
    for (const spec of SETTINGS) {
      if (!spec.flag || (command === 'exec' && spec.key === 'caches')) continue;
      const shown = new RegExp(`^\\s+${longFlag(spec.flag)}(?= |$)`, 'm').test(help);
      expect(shown, `${command} --help and ${spec.flag}`).toBe(used.includes(spec));
      if (shown) for (const env of spec.env ?? []) expect(help.replace(/\s+/g, ' '), `${command}: ${spec.flag}'s ${env}`).toContain(env);
    }
    expect(help).toMatch(/\nExamples:\n {2}purge-cache-agent /);
  });

  it('serve --help offers no agent setting, and no "required" worker pool', async () => {
    const result = await runCli(['serve', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain('--worker-pool-id');
    expect(result.stdout).not.toContain('required');
    expect(result.stdout.indexOf('--host')).toBeLessThan(result.stdout.indexOf('--log-level'));
    expect(result.stdout).toContain('--allow-anonymous');
    // Far from the 76 lines of every setting.
    expect(result.stdout.split('\n').length).toBeLessThan(25);
  });

  it('names the environment variables of settings that have no flag', async () => {
    const result = await runCli(['once', '--help']);
    expect(result.stdout).toContain('TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN, TASKCLUSTER_CERTIFICATE');
    expect(result.stdout).toMatch(/--jitter <duration>[\s\S]*?\(default: 0\)/);
    expect((await runCli(['run', '--help'])).stdout).toMatch(/--jitter <duration>[\s\S]*?\(default: 15s/);
  });

  it('still accepts, unlisted, the settings a command does not use: one set of flags serves every command', async () => {
    const result = await runCli(['serve', '--worker-pool-id', 'a/b', '--port', '-1']);
    // Past option parsing: the port is what it refuses.
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('invalid --port -1');
  });
});

describe('usage errors are short', () => {
  const expectShort = (result: { code: number | null; stderr: string; stdout: string }, error: RegExp, command: string) => {
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(error);
    expect(result.stderr).toContain(`see \`purge-cache-agent ${command}--help\``);
    expect(result.stderr).not.toContain('Usage:');
    expect(result.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
    expect(result.stdout).toBe('');
  };
  it('an unknown option', async () => {
    expectShort(await runCli(['once', '--frobnicate']), /unknown option '--frobnicate'/, 'once ');
  });
  it('an unknown command', async () => {
    expectShort(await runCli(['frobnicate']), /unknown command 'frobnicate'/, '');
  });
  it('a missing argument or required option of a subcommand', async () => {
    expectShort(await runCli(['request']), /missing required argument 'cacheName'/, 'request ');
    expectShort(await runCli(['lease', 'acquire', 'cargo']), /required option '--owner <id>'/, 'lease acquire ');
  });
  it('a bad setting names it, and points at the help', async () => {
    const result = await runCli(['once', '--skew-margin', 'soon', '--log-level', 'info']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/skewMargin \(flag --skew-margin\)/);
    expect(result.stderr).toContain('see `purge-cache-agent once --help`');
    expect(result.stderr).not.toContain('unexpected error');
  });
});

describe('sizes need a unit', () => {
  it.each([
    ['--max-size', '200', 'maxSize'],
    ['--min-free', '20', 'minFree'],
  ])('%s %s is refused, naming the units', async (flag, value, key) => {
    const result = await runCli(['once', flag, value, '--worker-pool-id', 'a/b', '--root-url', 'http://127.0.0.1:9', '--cache-root', '/nonexistent-root']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`invalid ${key} (flag ${flag})`);
    expect(result.stderr).toContain(`a bare number such as ${value} has no unit`);
    for (const unit of ['B;', 'K, M, G, T', 'KiB', 'KB, MB, GB, TB']) expect(result.stderr).toContain(unit);
  });
});
