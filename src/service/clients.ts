/** The `--clients` file of `serve`: `{clientId: {accessToken, scopes}}`. */
import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import { ConfigError, errorMessage } from '../errors.js';
import { registerSecret } from '../secrets.js';
import type { Clients } from './auth.js';
import { isValidScope } from './scopes.js';

const clientsSchema = z.record(
  z.string().min(1),
  z.strictObject({
    accessToken: z.string().min(1),
    scopes: z.array(z.string().refine(isValidScope, { error: 'scopes are printable ASCII' })),
  }),
);

/** Checks a clients map (from the file or from code), registering every access token as a secret. */
export function parseClients(value: unknown, source: string): Clients {
  // Register before validating, so no later message or log can carry a token.
  if (typeof value === 'object' && value !== null) {
    for (const entry of Object.values(value as Record<string, unknown>)) {
      if (typeof entry === 'object' && entry !== null && 'accessToken' in entry && typeof entry.accessToken === 'string') registerSecret(entry.accessToken);
    }
  }
  const result = clientsSchema.safeParse(value);
  if (!result.success) {
    // zod's messages name paths and expected types, never the values themselves.
    const issues = result.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ConfigError(`${source} must be {"<clientId>": {"accessToken": "...", "scopes": ["..."]}}: ${issues.join('; ')}`, 'clients');
  }
  return result.data;
}

export async function loadClientsFile(file: string): Promise<Clients> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--clients: cannot read ${file}: ${errorMessage(err)}`, 'clients');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // No parser message: it would quote the file's text, access tokens included.
    throw new ConfigError(`--clients: ${file} is not valid JSON`, 'clients');
  }
  return parseClients(value, `--clients file ${file}`);
}
