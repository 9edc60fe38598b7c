/** One line of `doctor`: what was checked, how it went, and for a failure, the fix. */

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export const ok = (check: string, detail: string): CheckResult => ({ check, status: 'ok', detail });
export const warn = (check: string, detail: string, fix?: string): CheckResult => ({ check, status: 'warn', detail, ...(fix ? { fix } : {}) });
export const fail = (check: string, detail: string, fix: string): CheckResult => ({ check, status: 'fail', detail, fix });
export const skip = (check: string, detail: string): CheckResult => ({ check, status: 'skip', detail });

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

/** `FAIL  state directory: /var/lib/x: … — fix: …`, one line per check. */
export function formatCheck(result: CheckResult): string {
  return `${MARK[result.status]}  ${result.check}: ${result.detail}${result.fix ? ` — fix: ${result.fix}` : ''}`;
}

export function summarize(results: readonly CheckResult[]): { passed: boolean; line: string } {
  const failed = results.filter((r) => r.status === 'fail').length;
  const warned = results.filter((r) => r.status === 'warn').length;
  const checked = results.filter((r) => r.status !== 'skip').length;
  if (failed === 0) return { passed: true, line: `all ${checked} checks passed${warned ? ` (${warned} warning${warned > 1 ? 's' : ''})` : ''}` };
  return { passed: false, line: `${failed} of ${checked} checks failed${warned ? `, ${warned} warning${warned > 1 ? 's' : ''}` : ''}` };
}
