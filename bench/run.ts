/**
 * `npm run bench`: every performance claim of the README, measured on this
 * machine. Prints a table (scenario, this project, reference, ratio) and
 * writes bench/results.json. Run a subset with `npm run bench -- cycle fleet`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { cycleAtScale } from './scenarios/cycle.js';
import { fleet } from './scenarios/fleet.js';
import { footprint } from './scenarios/footprint.js';
import { visibility } from './scenarios/visibility.js';
import { reclaim } from './scenarios/reclaim.js';
import { gentleness } from './scenarios/gentleness.js';
import { startup } from './scenarios/startup.js';
import { purgeOnce } from './scenarios/purge-once.js';
import type { Result } from './lib.js';

// The fleet simulation computes without I/O, so a scenario may also answer at once.
const SCENARIOS: Record<string, () => Promise<Result[]> | Result[]> = {
  startup,
  visibility,
  reclaim,
  purge: purgeOnce,
  gentleness,
  cycle: cycleAtScale,
  fleet,
  footprint,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const names = wanted.length > 0 ? wanted : Object.keys(SCENARIOS);
  const file = new URL('../../bench/results.json', import.meta.url);
  // A run of some scenarios keeps the others' latest results.
  const previous = await readFile(file, 'utf8').then(
    (t) => (JSON.parse(t) as { results: (Result & { group?: string })[] }).results,
    () => [] as (Result & { group?: string })[],
  );
  const results: (Result & { group: string })[] = previous.filter((r): r is Result & { group: string } => r.group !== undefined && !names.includes(r.group));
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: os.release(),
    loadAverage: os.loadavg().map((l) => Math.round(l * 10) / 10),
  };
  const save = async (): Promise<void> => {
    results.sort((a, b) => Object.keys(SCENARIOS).indexOf(a.group) - Object.keys(SCENARIOS).indexOf(b.group));
    machine.loadAverage = os.loadavg().map((l) => Math.round(l * 10) / 10);
    await writeFile(file, JSON.stringify({ date: new Date().toISOString(), machine, results }, null, 2) + '\n');
  };
  for (const name of names) {
    const run = SCENARIOS[name];
    if (!run) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
    process.stderr.write(`bench: ${name}...\n`);
    for (const result of await run()) {
      results.push({ group: name, ...result });
      printRow(result);
    }
    // Saved after each group, so a long run stopped part-way keeps what it measured.
    await save();
  }
  process.stdout.write(
    `\nmachine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, Linux ${machine.kernel}, load average ${machine.loadAverage.join(' ')}\nwrote bench/results.json\n`,
  );
}

function printRow(r: Result): void {
  const cells = [
    r.scenario,
    `${r.value} ${r.unit}`,
    r.reference === undefined ? '—' : `${r.reference} ${r.unit}`,
    r.ratio === undefined ? '—' : String(r.ratio),
    r.target ? `${r.target}: ${r.met ? 'met' : 'NOT met'}` : '',
  ];
  process.stdout.write(`| ${cells.join(' | ')} |\n${r.note ? `|   ${r.note} |\n` : ''}`);
}

await main();
