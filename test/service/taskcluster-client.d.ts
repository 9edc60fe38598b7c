/** The slice of taskcluster-client (a CommonJS package without types) that the tests use. */
declare module 'taskcluster-client' {
  interface TcCredentials {
    clientId: string;
    accessToken: string;
    certificate?: string | object;
  }
  interface ClientOptions {
    rootUrl: string;
    credentials?: TcCredentials | Record<string, never>;
    authorizedScopes?: string[];
    retries?: number;
    delayFactor?: number;
  }
  interface PurgeRequest {
    provisionerId: string;
    workerType: string;
    cacheName: string;
    before: string;
  }
  interface PurgeCache {
    ping(): Promise<{ alive: boolean; uptime: number }>;
    purgeCache(workerPoolId: string, payload: { cacheName: string }): Promise<void>;
    purgeRequests(workerPoolId: string, query?: { since?: string }): Promise<{ requests: PurgeRequest[] }>;
    allPurgeRequests(query?: { continuationToken?: string; limit?: number }): Promise<{ requests: PurgeRequest[]; continuationToken?: string }>;
    buildUrl(method: unknown, ...args: unknown[]): string;
  }
  type CreateTemporaryCredentials = (options: { clientId?: string; start?: Date; expiry: Date; scopes: string[]; credentials: TcCredentials }) => {
    clientId: string;
    accessToken: string;
    certificate: string;
  };
  const taskcluster: { PurgeCache: new (options: ClientOptions) => PurgeCache; createTemporaryCredentials: CreateTemporaryCredentials };
  export default taskcluster;
}
