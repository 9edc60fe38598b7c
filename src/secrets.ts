/**
 * Every credential the process learns is registered here, and every line the
 * process writes to a log or as an error passes through `scrub`, so a secret
 * cannot leak even from a message that quoted it by accident. Redacting by key
 * (see log.ts) catches structured fields; scrubbing catches everything else.
 */
const secrets = new Set<string>();

/** Register a secret value (and its JSON-escaped form) for scrubbing. Short values are ignored: they would match everywhere. */
export function registerSecret(value: string | undefined | null): void {
  if (!value || value.length < 8) return;
  secrets.add(value);
  const escaped = JSON.stringify(value).slice(1, -1);
  if (escaped !== value) secrets.add(escaped);
}

export function scrub(text: string): string {
  if (secrets.size === 0) return text;
  let out = text;
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join('[REDACTED]');
  }
  return out;
}

/** For tests: forget every registered secret. */
export function clearSecrets(): void {
  secrets.clear();
}
