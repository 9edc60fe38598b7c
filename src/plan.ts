/** The decision core now lives in src/core/; these names are kept for the modules that still import them from here. */
export { createdAt, isCondemned, requestCondemns, type ObservedCache } from './core/rule.js';
export { selectCandidates, decide, type Candidate, type PendingPurge, type SelectInput, type SkippedCache, type Selection, type HolderLike, type Decision, type Outcome } from './core/judge.js';
export type { ValidRequest } from './core/records.js';
export { nextPending, nextFirstSeen } from './core/pending.js';
export { sinceFor, queryMark, advanceCursor, gapExceeded, clockOffsetMs } from './core/cursor.js';
