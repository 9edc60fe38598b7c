/**
 * The layers of src/ and the one direction their imports run (docs/architecture.md):
 * core ← foundations ← edges ← engine ← interfaces, with the embedded service
 * beside the engine. An import against the direction fails here, naming it.
 */
import { describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from './helpers/tmp.js';

const SRC = path.join(REPO_ROOT, 'src');

type Layer = 'core' | 'foundations' | 'edges' | 'engine' | 'service' | 'interfaces';

function layerOf(file: string): Layer {
  const rel = path.relative(SRC, file).split(path.sep).join('/');
  if (rel.startsWith('core/')) return 'core';
  if (rel.startsWith('edges/')) return 'edges';
  if (rel.startsWith('engine/')) return 'engine';
  if (rel.startsWith('service/')) return 'service';
  if (rel.startsWith('api/') || rel.startsWith('commands/') || rel === 'cli.ts') return 'interfaces';
  return 'foundations';
}

/** What each layer may import, besides itself. */
const MAY_IMPORT: Record<Layer, Layer[]> = {
  core: ['foundations'],
  foundations: ['core'],
  edges: ['core', 'foundations'],
  // The embedded service is an application of its own beside the engine: it keeps its requests with the same clock and store edges.
  service: ['core', 'foundations', 'edges'],
  engine: ['core', 'foundations', 'edges'],
  interfaces: ['core', 'foundations', 'edges', 'engine', 'service'],
};

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const at = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(at)));
    else if (/\.(ts|cjs)$/.test(entry.name)) out.push(at);
  }
  return out;
}

/**
 * The one import against the direction, kept on purpose: short-lived commands
 * in the engine (exec, leases) reach a running agent through the local API's
 * own client, so there is one client for the API, beside its server.
 */
const ALLOWED = new Set(['engine/agent-link.ts -> api/client.ts', 'engine/exec/coordinator.ts -> api/client.ts']);

describe('the layers of src/', () => {
  it('import only in one direction', async () => {
    const wrong: string[] = [];
    const files = await sources(SRC);
    expect(files.length).toBeGreaterThan(50);
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      const from = layerOf(file);
      for (const [, spec] of text.matchAll(/(?:from|import\(|require\()\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
        const target = path.resolve(path.dirname(file), spec!);
        const to = layerOf(target);
        const pair = `${path.relative(SRC, file)} -> ${path.relative(SRC, target).replace(/\.js$/, '.ts')}`;
        if (to !== from && !MAY_IMPORT[from].includes(to) && !ALLOWED.has(pair)) wrong.push(`${path.relative(SRC, file)} (${from}) imports ${spec} (${to})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('declare every error class in src/errors.ts, each derived from AgentError with a code of its own', async () => {
    const elsewhere: string[] = [];
    for (const file of await sources(SRC)) {
      if (file === path.join(SRC, 'errors.ts')) continue;
      const text = await readFile(file, 'utf8');
      for (const [name] of text.matchAll(/class \w+ extends \w*Error\b/g)) elsewhere.push(`${path.relative(SRC, file)}: ${name}`);
    }
    expect(elsewhere).toEqual([]);
    const errors = await readFile(path.join(SRC, 'errors.ts'), 'utf8');
    const bases = [...errors.matchAll(/export (?:abstract )?class (\w+) extends (\w+)/g)].filter(([, name]) => name !== 'AgentError');
    expect(bases.length).toBeGreaterThan(20);
    const known = new Set(['AgentError', ...bases.map(([, name]) => name)]);
    expect(bases.filter(([, , base]) => !known.has(base))).toEqual([]);
    const codes = [...errors.matchAll(/readonly code = '(PCA_\w+)'/g)].map(([, code]) => code);
    expect(new Set(codes).size).toBe(codes.length);
  });
});
