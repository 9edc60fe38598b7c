/** The local control API: server (run), client (status, sync, purge, lease, exec). */
export { startApi, ApiSocketInUseError, type ApiOptions, type RunningApi } from './server.js';
export { resolveApiServerConfig, serverSocketPath, clientSocketCandidates, loadApiToken, isLoopback, type ApiServerConfig } from './config.js';
export { ApiClient, ApiRequestError, NoAgentError, connectToAgent, encodeSegment, type Endpoint, type LeaseView } from './client.js';
export { TaskStore, type Task, type TaskView } from './tasks.js';
