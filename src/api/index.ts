/** The local control API: server (run), client (status, sync, purge, lease, exec). */
export { startApi, type ApiOptions, type RunningApi } from './server.js';
export { resolveApiServerConfig, serverSocketPath, clientSocketCandidates, loadApiToken, isLoopback, type ApiServerConfig } from './config.js';
export { ApiClient, connectToAgent, encodeSegment, type Endpoint } from './client.js';
export type * from './contract.js';
export { TaskStore, type Task, type TaskView } from './tasks.js';
