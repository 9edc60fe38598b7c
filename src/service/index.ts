/** The embedded purge-cache service (`serve`): see server.ts. */
export { startService, type ServiceOptions, type RunningService } from './server.js';
export { loadClientsFile, parseClients } from './clients.js';
export type { Clients, ClientEntry } from './auth.js';
export { createTemporaryCredentials, type TemporaryCredentials, type TemporaryCredentialsOptions, type Certificate } from './tempcreds.js';
export { API_PREFIX, ALL_PURGE_REQUESTS_SCOPE } from './routes.js';
