/**
 * Gentleness: how much a file-heavy workload beside the agent (a stand-in for
 * a build: create, write, stat, read and delete many small files) slows down
 * while a purge's trash is being deleted — at normal priority, at the
 * daemon's default low priority (nice 19, idle I/O class, in a child), and
 * low priority plus --delete-rate: what an operator gains from each setting.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { TRASH_DIR_NAME } from '../../src/core/names.js';
import { fileURLToPath } from 'node:url';
import { emptyTrashInChild } from '../../src/edges/caches/trash-worker.js';
import { makeTree, median, round, scratch, type Result } from '../lib.js';

const TREE_FILES = 200_000;
const TREE_DIRS = 2_000;
const DELETE = fileURLToPath(new URL('../../src/edges/caches/delete.js', import.meta.url));

/** The workload, as its own process at normal priority; prints its duration in ms. */
const WORKLOAD = `
const fs = require('node:fs'); const path = require('node:path');
const dir = process.argv[1]; fs.mkdirSync(dir, { recursive: true });
const data = Buffer.alloc(4096, 7); const start = performance.now();
for (let round = 0; round < 6; round++) {
  for (let i = 0; i < 2000; i++) { const f = path.join(dir, 'o' + i); fs.writeFileSync(f, data); fs.statSync(f); }
  for (let i = 0; i < 2000; i++) { const f = path.join(dir, 'o' + i); fs.readFileSync(f); fs.unlinkSync(f); }
}
let x = 0; for (let i = 0; i < 3e7; i++) x = (x + i * 7) % 1000003;
console.log(performance.now() - start + (x < 0 ? 1 : 0));
`;

function workload(dir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', WORKLOAD, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.on('close', (code) => {
      if (code === 0) resolve(Number(out));
      else reject(new Error(`workload exited ${code}`));
    });
  });
}

/** Deletion at normal priority, in its own process like the child, for a fair comparison. */
function deleteAtNormalPriority(trash: string): Promise<void> {
  const code = `import(${JSON.stringify(DELETE)}).then((m) => m.deleteContents(${JSON.stringify(trash)}))`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
    child.on('close', (c) => {
      if (c === 0) resolve();
      else reject(new Error(`deleter exited ${c}`));
    });
  });
}

export async function gentleness(): Promise<Result[]> {
  const dir = await scratch('gentle');
  const work = path.join(dir.path, 'work');
  // A trash as the agent makes one: its own name, and mode 0700 (any other trash is left alone).
  const trash = path.join(dir.path, TRASH_DIR_NAME);
  await mkdir(trash, { mode: 0o700 });
  /**
   * Each mode is compared with the workload alone measured right before it,
   * under the same conditions (the tree just made and synced): on a shared VM
   * disk, conditions drift too much between scenarios for one early baseline.
   */
  const pair = async (startDeletion: () => Promise<unknown>): Promise<{ alone: number; beside: number }> => {
    await makeTree(path.join(trash, 'entry'), TREE_DIRS, TREE_FILES, 16);
    spawnSync('sync');
    const alone = await workload(work);
    const deletion = startDeletion();
    const beside = await workload(work);
    await deletion;
    // A deletion that did nothing would make any priority look gentle.
    if ((await readdir(trash)).length > 0) throw new Error(`the deletion left ${trash} unemptied`);
    spawnSync('sync');
    return { alone, beside };
  };
  const mode = async (label: string, startDeletion: () => Promise<unknown>): Promise<Result> => {
    const pairs = [await pair(startDeletion), await pair(startDeletion)];
    const ratio = median(pairs.map((p) => p.beside / p.alone));
    return {
      scenario: `gentleness: workload slowdown beside a purge's deletion, ${label}`,
      value: round(ratio, 2),
      unit: '×',
      note: `workload beside / alone, median of 2 pairs: ${pairs.map((p) => `${round(p.beside)} / ${round(p.alone)} ms`).join('; ')}`,
    };
  };
  try {
    return [
      await mode('normal priority', () => deleteAtNormalPriority(trash)),
      await mode('nice 19 + idle I/O (the default)', () => emptyTrashInChild([trash])),
      await mode('nice 19 + idle I/O + --delete-rate 20000', () => emptyTrashInChild([trash], { rateLimit: 20_000 })),
    ];
  } finally {
    spawnSync('rm', ['-rf', dir.path]);
  }
}
