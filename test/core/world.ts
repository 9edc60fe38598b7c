/**
 * A small simulated world for the purge contract's model-based tests: a
 * purge-cache service with its own clock and expiry, cache locations that go
 * unreadable or get mounted over, caches created, held and removed by hand, a
 * worker clock that jumps, and an agent whose only memory across crashes is
 * what it persisted. The agent's decisions are the real core's
 * (src/core/*); this file plays the shell around them, in the engine's order
 * (src/engine/cycle.ts, src/engine/look.ts), and checks the contract after every step.
 */
import { sinceFor, queryMark, clockOffsetMs, type CursorIdentity } from '../../src/core/cursor.js';
import { reconcileIdentity, receiveAnswer, settleLook, type ContractState } from '../../src/core/contract.js';
import { selectCandidates, decide, type Outcome } from '../../src/core/judge.js';
import { instanceTag, recordKey, type LocationRead, type ValidRequest } from '../../src/core/records.js';
import type { ObservedCache } from '../../src/core/rule.js';

export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const MARGIN = 5 * MIN;
export const NAMES = ['a', 'b', 'c'] as const;
export const LOCATIONS = ['A', 'B', 'C'] as const;
export type Loc = (typeof LOCATIONS)[number];
export type Crash = 'after-answer' | 'after-record' | 'after-rename';

export type Step =
  | { t: 'wait'; ms: number }
  | { t: 'file'; pool: 0 | 1; name: string }
  | { t: 'create'; loc: Loc; name: string; noBirth?: boolean }
  | { t: 'remove'; loc: Loc; name: string }
  | { t: 'hold'; loc: Loc; name: string }
  | { t: 'release'; loc: Loc; name: string }
  | { t: 'unreadable'; loc: Loc }
  | { t: 'readable'; loc: Loc }
  | { t: 'unmount'; loc: Loc }
  | { t: 'mount'; loc: Loc }
  | { t: 'cycle'; fail?: boolean; renameFails?: boolean; crash?: Crash }
  | { t: 'recheck'; crash?: 'after-rename' }
  | { t: 'restart' }
  | { t: 'switch-pool' }
  | { t: 'switch-service' }
  | { t: 'configure'; loc: Loc; on: boolean }
  /** The worker's clock is stepped (the service's is the reference: its clock never jumps). */
  | { t: 'jump'; ms: number };

interface Dir {
  id: number;
  name: string;
  /** Birth time on the worker's clock; null on a filesystem without birth times. */
  birth: number | null;
  createdReal: number;
  held: boolean;
  /** Created while the worker clock was within the margin of the service's: the margin rule promises nothing otherwise. */
  sane: boolean;
}

interface Location {
  /** Caches on the disk: hidden while it is not mounted. */
  disk: Map<string, Dir>;
  readable: boolean;
  mounted: boolean;
}

interface ServiceRequest {
  pool: number;
  name: string;
  /** On the service's clock. */
  before: number;
  /** Real time at which the service forgets it: 25 to 49 hours after its last POST. */
  expiresReal: number;
}

type AgentMemory = ContractState;

export class Violation extends Error {}

export class World {
  real = Date.parse('2026-11-01T00:00:00Z');
  workerOffset = 0;
  readonly serviceOffset = 0;
  private nextId = 1;
  private readonly locations = new Map<Loc, Location>(LOCATIONS.map((l) => [l, { disk: new Map(), readable: true, mounted: true }]));
  private service: ServiceRequest[] = [];
  /** The agent's configuration. */
  pool = 0;
  serviceUrl = 0;
  configured = new Set<Loc>(['A', 'B']);
  /** What the agent persisted, and what it holds in memory. */
  private persisted: AgentMemory = { identity: null, cursor: null, latestClock: null, firstSeen: {}, pending: [], records: [] };
  private memory: AgentMemory = this.persisted;
  /** Real time at which the agent durably recorded each request (cache name and `before`), first. */
  private readonly receipts = new Map<string, number>();
  /** Real time at which a completed look of a location instance first judged each request: `${key}|${tag}`. */
  private readonly judgedAt = new Map<string, number>();
  /** The latest reading of the worker clock before each time it was set back. */
  private readonly backJumps: number[] = [];
  /** Real times at which the worker clock was set back. */
  private readonly backJumpTimes: number[] = [];
  private latestWorkerClock = this.real;
  purges = 0;
  readonly log: string[] = [];

  constructor() {
    this.restart();
  }

  workerNow(): number {
    return this.real + this.workerOffset;
  }
  serviceNow(): number {
    return this.real + this.serviceOffset;
  }

  apply(step: Step): void {
    this.log.push(JSON.stringify(step));
    // Every step takes time: no two of them happen in the same millisecond.
    this.real += 1;
    this.latestWorkerClock = Math.max(this.latestWorkerClock, this.workerNow());
    switch (step.t) {
      case 'wait':
        this.real += step.ms;
        this.service = this.service.filter((r) => r.expiresReal > this.real);
        return;
      case 'file': {
        // One entry per pool and name: a repeated POST moves `before` to the service's now.
        this.service = this.service.filter((r) => !(r.pool === step.pool && r.name === step.name));
        const id = this.nextId++;
        this.service.push({ pool: step.pool, name: step.name, before: this.serviceNow(), expiresReal: this.real + 25 * HOUR + ((id * 7) % 24) * HOUR });
        return;
      }
      case 'create': {
        const loc = this.locations.get(step.loc)!;
        if (!loc.mounted || !loc.readable || loc.disk.has(step.name)) return;
        const sane = Math.abs(this.workerOffset - this.serviceOffset) < MARGIN;
        loc.disk.set(step.name, {
          id: this.nextId++,
          name: step.name,
          birth: step.noBirth ? null : this.workerNow(),
          createdReal: this.real,
          held: false,
          sane,
        });
        return;
      }
      case 'remove': {
        const loc = this.locations.get(step.loc)!;
        if (loc.mounted && loc.readable && !loc.disk.get(step.name)?.held) loc.disk.delete(step.name);
        return;
      }
      case 'hold':
      case 'release': {
        const dir = this.visible(step.loc).get(step.name);
        if (dir) dir.held = step.t === 'hold';
        return;
      }
      case 'unreadable':
      case 'readable':
        this.locations.get(step.loc)!.readable = step.t === 'readable';
        return;
      case 'unmount':
      case 'mount':
        this.locations.get(step.loc)!.mounted = step.t === 'mount';
        return;
      case 'cycle':
        this.cycle(step);
        return;
      case 'recheck':
        this.look(null, step.crash === 'after-rename', false);
        return;
      case 'restart':
        this.restart();
        return;
      case 'switch-pool':
        this.pool = 1 - this.pool;
        this.restart();
        return;
      case 'switch-service':
        this.serviceUrl = 1 - this.serviceUrl;
        this.restart();
        return;
      case 'configure':
        if (step.on) this.configured.add(step.loc);
        else this.configured.delete(step.loc);
        this.restart();
        return;
      case 'jump':
        if (step.ms < 0) {
          this.backJumps.push(this.latestWorkerClock);
          this.backJumpTimes.push(this.real);
        }
        this.workerOffset += step.ms;
        return;
    }
  }

  private identity(): CursorIdentity {
    return { service: `https://tc${this.serviceUrl}.example`, workerPool: `p/pool${this.pool}`, locations: [...this.configured].sort() };
  }

  /** A process start: memory is what was persisted, bound to the configuration. */
  private restart(): void {
    this.memory = reconcileIdentity(this.persisted, this.identity()).state;
  }

  private persist(state: AgentMemory): void {
    this.persisted = state;
    this.memory = state;
  }

  private visible(loc: Loc): Map<string, Dir> {
    const l = this.locations.get(loc)!;
    return l.mounted ? l.disk : new Map();
  }

  private cycle(step: Extract<Step, { t: 'cycle' }>): void {
    const queryStart = this.workerNow();
    const since = sinceFor(this.memory.cursor, MARGIN, queryStart);
    // The cursor never opens a gap: every request the agent never durably received is returned. (One it received
    // may be skipped: its record did its work, even if a clock running fast pruned it while the service still held it.)
    const known = new Set([...this.memory.records.map(recordKey), ...this.receipts.keys()]);
    for (const r of this.service) {
      if (r.pool !== this.pool || known.has(recordKey({ cacheName: r.name, beforeMs: r.before }))) continue;
      if (since !== null && r.before < since)
        throw new Violation(`gap: since ${iso(since)} skips ${r.name} (before ${iso(r.before)}), which the agent never received`);
    }
    if (step.fail) return;
    const answer: ValidRequest[] = this.service
      .filter((r) => r.pool === this.pool && (since === null || r.before >= since))
      .map((r) => ({ cacheName: r.name, beforeMs: r.before }));
    const offset = clockOffsetMs(Math.floor(this.serviceNow() / 1000) * 1000, queryStart, this.workerNow());
    const received = receiveAnswer(this.memory, answer, this.workerNow());
    if (step.crash === 'after-answer') {
      this.restart();
      return;
    }
    if (received.added.length > 0) {
      this.persist(received.state);
      for (const r of received.added) if (!this.receipts.has(recordKey(r))) this.receipts.set(recordKey(r), this.real);
    }
    if (step.crash === 'after-record') {
      this.restart();
      return;
    }
    // Time passes between the answer and the look: a directory is never created at the instant of either.
    this.real += 1;
    this.look(queryMark(queryStart, offset, MARGIN), step.crash === 'after-rename', Boolean(step.renameFails));
  }

  private look(cursorMark: number | null, crash: boolean, renameFails: boolean): void {
    const locations: LocationRead[] = [];
    const caches: (ObservedCache & { dir: Dir; loc: Loc })[] = [];
    for (const loc of [...this.configured].sort()) {
      const l = this.locations.get(loc)!;
      if (!l.readable) {
        locations.push({ id: loc, instance: null, error: 'EIO' });
        continue;
      }
      // An empty mount point is a directory of its own: another instance than the disk mounted on it.
      locations.push({ id: loc, instance: l.mounted ? `disk:${loc}` : `mountpoint:${loc}` });
      for (const dir of this.visible(loc).values())
        caches.push({ name: dir.name, path: `${loc}/${dir.name}`, root: loc, key: `k:${dir.id}`, birthtimeMs: dir.birth, dir, loc });
    }
    const now = this.workerNow();
    const selection = selectCandidates({
      records: this.memory.records,
      caches,
      locations,
      firstSeen: this.memory.firstSeen,
      pending: this.memory.pending,
      skewMarginMs: MARGIN,
      nowMs: now,
    });
    const holders = new Map(caches.filter((c) => c.dir.held).map((c) => [c.path, [{ detail: 'held' }]]));
    const decision = decide(selection.candidates, holders);
    const outcomes: Outcome[] = decision.defer.map(({ candidate, holders: h }) => ({ kind: 'deferred', candidate, holders: h }));
    for (const candidate of decision.purge) {
      const cache = caches.find((c) => c.path === candidate.cache.path)!;
      if (renameFails) {
        outcomes.push({ kind: 'failed', candidate, error: 'EPERM' });
        continue;
      }
      this.checkPurge(cache.loc, cache.dir, candidate.beforeMs);
      this.locations.get(cache.loc)!.disk.delete(cache.dir.name);
      this.purges++;
      outcomes.push({ kind: 'purged', candidate });
    }
    if (crash) {
      this.restart();
      return;
    }
    const settled = settleLook(this.memory, { caches, locations, outcomes, keptPending: selection.keptPending, nowMs: now, skewMarginMs: MARGIN, cursorMark });
    this.persist(settled.state);
    for (const location of locations) {
      if (location.instance === null) continue;
      for (const r of this.memory.records) {
        const key = `${recordKey(r)}|${instanceTag(location)}`;
        if (!this.judgedAt.has(key)) this.judgedAt.set(key, this.real);
      }
    }
    if (cursorMark !== null && !renameFails) this.checkNothingMissed();
  }

  /** Nothing outside the configured locations or in use is touched, and a purge has a request that condemns the directory. */
  private checkPurge(loc: Loc, dir: Dir, beforeMs: number): void {
    if (!this.configured.has(loc)) throw new Violation(`purged ${loc}/${dir.name} outside the configured locations`);
    if (dir.held) throw new Violation(`purged ${loc}/${dir.name} while in use`);
    const tag = instanceTag({ id: loc, instance: this.locations.get(loc)!.mounted ? `disk:${loc}` : `mountpoint:${loc}` });
    const justified = [...this.receipts].some(([key, receivedReal]) => {
      const [before, ...rest] = key.split(' ');
      const name = rest.join(' ');
      if (name !== dir.name || Number(before) > beforeMs) return false;
      // A location judges a request once: a directory created there after that is not purged for it.
      const judged = this.judgedAt.get(`${key}|${tag}`);
      if (judged !== undefined && judged < dir.createdReal) return false;
      // Without a birth time, the agent errs towards purging a directory it has not judged yet.
      const birth = dir.birth;
      if (birth === null) return true;
      const condemned = birth < Number(before) + MARGIN;
      // Once the clock is set back, the worker's times no longer order events until it passes the latest
      // reading before the jump: the agent then errs towards purging what was born in that span.
      const clockWentBack = this.backJumps.some((latest) => birth <= latest);
      return condemned && (dir.createdReal <= receivedReal || clockWentBack);
    });
    if (!justified)
      throw new Violation(
        `purged ${loc}/${dir.name} (born ${dir.birth === null ? 'unknown' : iso(dir.birth)}, created after the agent received every request for it)`,
      );
  }

  /**
   * After a successful cycle with every configured location readable and
   * mounted and nothing in use: every directory that a request the service
   * still holds condemns is gone.
   */
  private checkNothingMissed(): void {
    for (const loc of this.configured) {
      const l = this.locations.get(loc)!;
      if (!l.readable || !l.mounted) return;
      for (const dir of l.disk.values()) if (dir.held) return;
    }
    for (const loc of this.configured) {
      for (const dir of this.locations.get(loc)!.disk.values()) {
        if (!dir.sane || dir.birth === null) continue;
        // A clock set back after a directory was born makes its birth look later than a receipt that came after
        // it; the agent's floor (the latest time it has seen) only covers readings it saw before the step.
        if (this.backJumpTimes.some((t) => t > dir.createdReal)) continue;
        for (const r of this.service) {
          if (r.pool !== this.pool || r.name !== dir.name) continue;
          const receivedReal = this.receipts.get(recordKey({ cacheName: r.name, beforeMs: r.before }));
          if (receivedReal === undefined || dir.createdReal > receivedReal) continue;
          if (dir.birth < r.before + MARGIN)
            throw new Violation(`missed: ${loc}/${dir.name} (born ${iso(dir.birth)}) survives the request before ${iso(r.before)}`);
        }
      }
    }
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
