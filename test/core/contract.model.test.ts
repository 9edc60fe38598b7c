/**
 * The purge contract against random histories (src/core/*, driven by the
 * simulated world in ./world.ts). After every step the world checks that
 * nothing is missed, nothing created after the agent received a request is
 * purged for it, nothing outside the locations or in use is touched, and the
 * cursor never skips a request the agent has no record of. A failing history
 * shrinks to a short list of steps, printed with the violation.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { World, Violation, NAMES, LOCATIONS, MIN, HOUR, MARGIN, type Step } from './world.js';

const name = fc.constantFrom(...NAMES);
const loc = fc.constantFrom(...LOCATIONS);

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 10 * MIN }) }, { weight: 1, arbitrary: fc.integer({ min: 10 * MIN, max: 30 * HOUR }) })
      .map((ms): Step => ({ t: 'wait', ms })),
  },
  { weight: 5, arbitrary: fc.record({ pool: fc.constantFrom(0 as const, 1 as const), name }).map((s): Step => ({ t: 'file', ...s })) },
  { weight: 6, arbitrary: fc.record({ loc, name }).map((s): Step => ({ t: 'create', ...s })) },
  { weight: 1, arbitrary: fc.record({ loc, name, noBirth: fc.constant(true) }).map((s): Step => ({ t: 'create', ...s })) },
  { weight: 2, arbitrary: fc.record({ loc, name }).map((s): Step => ({ t: 'remove', ...s })) },
  { weight: 2, arbitrary: fc.record({ loc, name }).map((s): Step => ({ t: 'hold', ...s })) },
  { weight: 3, arbitrary: fc.record({ loc, name }).map((s): Step => ({ t: 'release', ...s })) },
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constantFrom('unreadable' as const, 'readable' as const, 'unmount' as const, 'mount' as const), loc }),
  },
  {
    weight: 10,
    arbitrary: fc
      .record({
        fail: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
        renameFails: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
        crash: fc.constantFrom(undefined, undefined, undefined, 'after-answer' as const, 'after-record' as const, 'after-rename' as const),
      })
      .map(({ fail, renameFails, crash }): Step => ({
        t: 'cycle',
        ...(fail ? { fail } : {}),
        ...(renameFails ? { renameFails } : {}),
        ...(crash ? { crash } : {}),
      })),
  },
  { weight: 3, arbitrary: fc.constantFrom<Step>({ t: 'recheck' }, { t: 'recheck', crash: 'after-rename' }, { t: 'restart' }) },
  { weight: 1, arbitrary: fc.constantFrom<Step>({ t: 'switch-pool' }, { t: 'switch-service' }) },
  { weight: 1, arbitrary: fc.record({ loc, on: fc.boolean() }).map((s): Step => ({ t: 'configure', ...s })) },
  {
    weight: 1,
    arbitrary: fc.oneof(fc.integer({ min: -3 * HOUR, max: 3 * HOUR }), fc.integer({ min: -MARGIN, max: MARGIN })).map((ms): Step => ({ t: 'jump', ms })),
  },
);

function run(steps: readonly Step[]): World {
  const world = new World();
  for (const s of steps) {
    try {
      world.apply(s);
    } catch (err) {
      if (err instanceof Violation) throw new Error(`${err.message}\nhistory:\n  ${world.log.join('\n  ')}`);
      throw err;
    }
  }
  return world;
}

describe('the purge contract over random histories', () => {
  it('never misses a purge, never repeats one, never touches what it must not, never skips a request', () => {
    let purges = 0;
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 80, size: 'medium' }), (steps) => {
        purges += run(steps).purges;
      }),
      { numRuns: 1500 },
    );
    // The histories do purge: the properties are not vacuously true.
    expect(purges).toBeGreaterThan(500);
  });

  // The four ways a purge was missed or repeated before the contract was a state machine, as short histories.
  const scenarios: Record<string, Step[]> = {
    'a location unreadable during a cycle keeps the requests it owes': [
      { t: 'create', loc: 'A', name: 'a' },
      { t: 'unreadable', loc: 'A' },
      { t: 'file', pool: 0, name: 'a' },
      { t: 'cycle' },
      { t: 'wait', ms: HOUR },
      { t: 'cycle' },
      { t: 'readable', loc: 'A' },
      { t: 'cycle' },
    ],
    'a disk mounted late is judged, not its empty mount point': [
      { t: 'create', loc: 'A', name: 'a' },
      { t: 'unmount', loc: 'A' },
      { t: 'file', pool: 0, name: 'a' },
      { t: 'cycle' },
      { t: 'wait', ms: HOUR },
      { t: 'mount', loc: 'A' },
      { t: 'cycle' },
    ],
    'a change of worker pool asks for everything the new pool holds': [
      { t: 'create', loc: 'A', name: 'a' },
      { t: 'file', pool: 1, name: 'a' },
      { t: 'wait', ms: HOUR },
      { t: 'cycle' },
      { t: 'switch-pool' },
      { t: 'cycle' },
    ],
    'a location added later is judged against earlier requests': [
      { t: 'create', loc: 'C', name: 'a' },
      { t: 'file', pool: 0, name: 'a' },
      { t: 'cycle' },
      { t: 'wait', ms: HOUR },
      { t: 'configure', loc: 'C', on: true },
      { t: 'cycle' },
    ],
    'a cache re-created right after its purge is not purged again': [
      { t: 'create', loc: 'A', name: 'a', noBirth: true },
      { t: 'create', loc: 'B', name: 'a' },
      { t: 'file', pool: 0, name: 'a' },
      { t: 'cycle' },
      { t: 'create', loc: 'A', name: 'a', noBirth: true },
      { t: 'create', loc: 'B', name: 'a' },
      { t: 'cycle' },
      { t: 'recheck' },
      { t: 'cycle' },
    ],
  };
  const expectedPurges: Record<string, number> = {
    'a location unreadable during a cycle keeps the requests it owes': 1,
    'a disk mounted late is judged, not its empty mount point': 1,
    'a change of worker pool asks for everything the new pool holds': 1,
    'a location added later is judged against earlier requests': 1,
    'a cache re-created right after its purge is not purged again': 2,
  };
  for (const [title, steps] of Object.entries(scenarios)) {
    it(title, () => {
      expect(run(steps).purges).toBe(expectedPurges[title]);
    });
  }
});
