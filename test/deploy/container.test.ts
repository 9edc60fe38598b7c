/**
 * The Containerfile, checked where no container engine is at hand: its stages,
 * defaults and the tools the agent needs. (package.test.ts runs the image's
 * command line for real.)
 */
import { describe, expect, it } from 'vitest';
import { AGENT_ENV, execForm, parseContainerfile, readRepoFile, stageEnv } from './helpers.js';

describe('Containerfile', () => {
  const stages = parseContainerfile(readRepoFile('Containerfile'));
  const final = stages.at(-1)!;
  const ops = (op: string) => final.filter((i) => i.op === op);

  it('is multi-stage; the final stage takes only the packed package with production dependencies', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.slice(0, -1).flat();
    const buildRuns = build
      .filter((i) => i.op === 'RUN')
      .map((i) => i.args)
      .join('\n');
    expect(buildRuns).toMatch(/npm pack/);
    expect(buildRuns).toMatch(/npm ci --omit=dev/);
    // Nothing in the final stage installs packages from npm, and everything it copies comes from the build stage's /opt.
    const finalRuns = ops('RUN')
      .map((i) => i.args)
      .join('\n');
    expect(finalRuns).not.toMatch(/npm (ci|install|i)\b/);
    const copies = ops('COPY');
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) expect(copy.args).toMatch(/^--from=build \/opt\/purge-cache-agent /);
  });

  it('runs as a non-root user by default, with the exception documented', () => {
    const user = ops('USER').at(-1)?.args ?? 'root';
    expect(user.split(':')[0]).toMatch(/^[1-9]\d*$/); // numeric, so runAsNonRoot can check it
    const text = readRepoFile('Containerfile');
    expect(text).toMatch(/exception/i);
    expect(text).toContain('--cap-add DAC_OVERRIDE');
  });

  it('stops with SIGTERM, checks /healthz, and runs `purge-cache-agent run`', () => {
    expect(ops('STOPSIGNAL').at(-1)?.args).toBe('SIGTERM');
    const health = ops('HEALTHCHECK').at(-1)!.args;
    expect(health).toMatch(/\/healthz/);
    const cmdAt = health.indexOf('CMD ');
    expect(execForm(health.slice(cmdAt + 4))[0]).toBe('node');
    expect(execForm(ops('ENTRYPOINT').at(-1)!.args)).toEqual(['purge-cache-agent']);
    expect(execForm(ops('CMD').at(-1)!.args)).toEqual(['run']);
  });

  it('configures the agent through environment variables it reads', () => {
    const env = stageEnv(final);
    const unknown = Object.keys(env).filter((k) => !AGENT_ENV.has(k) && k !== 'NODE_ENV' && k !== 'NODE_OPTIONS');
    expect(unknown).toEqual([]);
    expect(env.PURGE_CACHE_AGENT_STATE_DIR).toBe('/var/lib/purge-cache-agent');
  });

  it("installs the system tools the agent runs, and fails the build without them; the README's Set-up names the same", () => {
    const finalRuns = ops('RUN')
      .map((i) => i.args)
      .join('\n');
    expect(finalRuns).toMatch(/apt-get install[^\n]*\butil-linux\b/);
    expect(finalRuns).toMatch(/apt-get install[^\n]*\bperl(-base)?\b/);
    for (const check of ['command -v flock', 'command -v ionice', 'perl -MFcntl']) expect(finalRuns).toContain(check);
    const setup = readRepoFile('README.md')
      .split(/^## Set-up$/m)[1]!
      .split(/^## /m)[0]!;
    for (const tool of ['util-linux', 'flock', 'perl', 'ionice']) expect(setup, tool).toContain(tool);
  });

  it('.dockerignore keeps local builds, dependencies and the repository out of the context', () => {
    const ignored = readRepoFile('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['node_modules', 'dist', '.git']) expect(ignored).toContain(entry);
  });
});
