/** The purge-cache API client: see client.ts. */
export { PurgeCacheClient, type UpstreamOptions, type PurgeRequestsResult, type Credentials } from './client.js';
export type { InvalidEntry } from './response.js';
export { requiredScope } from './refusal.js';
