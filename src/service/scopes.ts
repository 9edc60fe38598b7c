/** Taskcluster scope matching, the part `serve` needs: exact match, or a `*` suffix matching a prefix. */

export function satisfies(have: readonly string[], need: string): boolean {
  return have.some((scope) => scope === need || (scope.endsWith('*') && need.startsWith(scope.slice(0, -1))));
}

export function satisfiesAll(have: readonly string[], needs: readonly string[]): boolean {
  return needs.every((need) => satisfies(have, need));
}

/** Taskcluster's scope syntax: printable ASCII only. */
export function isValidScope(scope: unknown): scope is string {
  return typeof scope === 'string' && /^[\x20-\x7e]*$/.test(scope);
}
