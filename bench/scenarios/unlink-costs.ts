/**
 * Where the time of deleting an empty file goes, one thread, per file, beside
 * `rm -rf` on an identical tree in the same run. The deleter names each file
 * through its directory held open (`/proc/self/fd/<fd>/<name>`, Node having no
 * unlinkat) and counts the bytes it frees with an lstat; a name relative to
 * the working directory is what unlinkat costs, the floor for any deleter.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, lstatSync, mkdirSync, opendirSync, openSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { median, round, scratch, settle, type Result } from '../lib.js';

const DIRS = 100;
const PER_DIR = 200;
const FILES = DIRS * PER_DIR;
const ROUNDS = 3;

type Way = 'relative' | 'proc' | 'proc+lstat';

function makeFlatTree(top: string): void {
  mkdirSync(top);
  for (let d = 0; d < DIRS; d++) {
    const dir = path.join(top, `d${d}`);
    mkdirSync(dir);
    for (let f = 0; f < PER_DIR; f++) writeFileSync(path.join(dir, `f${f}`), '');
  }
}

/** Delete the tree's files one way, its directories after them; milliseconds. */
function deleteOneWay(top: string, way: Way): number {
  const home = process.cwd();
  const start = performance.now();
  for (let d = 0; d < DIRS; d++) {
    const dir = path.join(top, `d${d}`);
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    const prefix = `/proc/self/fd/${fd}/`;
    if (way === 'relative') process.chdir(prefix);
    const listing = opendirSync(prefix);
    for (let entry = listing.readSync(); entry !== null; entry = listing.readSync()) {
      if (way === 'relative') unlinkSync(entry.name);
      else {
        if (way === 'proc+lstat') lstatSync(prefix + entry.name, { throwIfNoEntry: false });
        unlinkSync(prefix + entry.name);
      }
    }
    listing.closeSync();
    closeSync(fd);
    rmdirSync(dir);
  }
  process.chdir(home);
  rmdirSync(top);
  return performance.now() - start;
}

export async function unlinkCosts(): Promise<Result[]> {
  const dir = await scratch('unlink-costs');
  const samples: Record<Way | 'rm', number[]> = { rm: [], relative: [], proc: [], 'proc+lstat': [] };
  try {
    // Rounds that alternate the ways, so that none always meets the warmer disk.
    for (let round = 0; round < ROUNDS; round++) {
      for (const way of ['rm', 'relative', 'proc', 'proc+lstat'] as const) {
        const top = path.join(dir.path, `${round}-${way.replace('+', '-')}`);
        makeFlatTree(top);
        settle();
        let ms: number;
        if (way === 'rm') {
          const start = performance.now();
          spawnSync('rm', ['-rf', top]);
          ms = performance.now() - start;
        } else ms = deleteOneWay(top, way);
        samples[way].push((ms * 1000) / FILES);
      }
    }
  } finally {
    await dir.remove();
  }
  const perFile = { rm: median(samples.rm), relative: median(samples.relative), proc: median(samples.proc), 'proc+lstat': median(samples['proc+lstat']) };
  const us = (x: number): string => `${round(x, 1)} µs`;
  return [
    {
      scenario: `reclaim: deleting one empty file, one thread (${FILES.toLocaleString('en')} files, median of ${ROUNDS}): the deleter's way`,
      value: round(perFile['proc+lstat'], 1),
      unit: 'µs',
      reference: round(perFile.rm, 1),
      ratio: round(perFile['proc+lstat'] / perFile.rm, 2),
      note:
        `rm -rf ${us(perFile.rm)} per file. From Node: unlink by a name relative to the directory (the cost of unlinkat, which Node lacks) ${us(perFile.relative)}; ` +
        `through /proc/self/fd/<fd>/<name>, as the deleter names it (a thread cannot change directory) ${us(perFile.proc)}; ` +
        `the same with the lstat that counts the bytes freed ${us(perFile['proc+lstat'])}. On empty files nothing else costs: ` +
        'the lstat is most of the gap to rm -rf, the /proc lookup the rest, and threads can only spread them over the cores',
    },
  ];
}
