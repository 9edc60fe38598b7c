/**
 * Connection limits for the TCP listener, so that slow or idle clients cannot
 * keep /healthz and /readyz from answering.
 *
 * node:http's own maxConnections refuses the newest connection once the limit
 * is reached — which is the probe, when hundreds of stalled connections came
 * first. Instead, a new connection over a limit (in all, or from one remote
 * address) pushes out the oldest connection that has no request in progress:
 * a client that has not sent a whole request yet, or an idle keep-alive one.
 * Connections with a request in progress (a long poll, a purge task) are never
 * pushed out; when every connection is busy, the new one is closed instead.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  /** Connections open at once, in all. */
  total: number;
  /** Connections open at once from one remote address. */
  perRemote: number;
}

export const TCP_CONNECTION_LIMITS: ConnectionLimits = { total: 128, perRemote: 64 };

interface Tracked {
  remote: string;
  /** Requests received on this connection whose answer is not finished. */
  inFlight: number;
}

export function limitConnections(server: Server, limits: ConnectionLimits): void {
  // Insertion order is age order: the first idle entry is the oldest idle connection.
  const open = new Map<Socket, Tracked>();
  const perRemote = new Map<string, number>();

  const oldestIdle = (remote?: string): Socket | undefined => {
    for (const [socket, t] of open) if (t.inFlight === 0 && (remote === undefined || t.remote === remote)) return socket;
    return undefined;
  };
  const forget = (socket: Socket): void => {
    const t = open.get(socket);
    if (!t) return;
    open.delete(socket);
    const n = (perRemote.get(t.remote) ?? 1) - 1;
    if (n <= 0) perRemote.delete(t.remote);
    else perRemote.set(t.remote, n);
  };
  const makeRoom = (remote: string): boolean => {
    while ((perRemote.get(remote) ?? 0) >= limits.perRemote || open.size >= limits.total) {
      const victim = (perRemote.get(remote) ?? 0) >= limits.perRemote ? oldestIdle(remote) : oldestIdle();
      if (!victim) return false;
      forget(victim);
      victim.destroy();
    }
    return true;
  };

  server.on('connection', (socket: Socket) => {
    const remote = socket.remoteAddress ?? 'unknown';
    if (!makeRoom(remote)) {
      socket.destroy();
      return;
    }
    open.set(socket, { remote, inFlight: 0 });
    perRemote.set(remote, (perRemote.get(remote) ?? 0) + 1);
    socket.once('close', () => {
      forget(socket);
    });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const t = open.get(req.socket);
    if (!t) return;
    t.inFlight++;
    res.once('close', () => {
      t.inFlight = Math.max(0, t.inFlight - 1);
    });
  });
}
