/**
 * Where the local API lives and who may use it, from the settings:
 * - the unix socket: --api-socket, else $RUNTIME_DIRECTORY/api.sock (systemd's
 *   RuntimeDirectory=), else <state dir>/api.sock;
 * - TCP with --listen HOST:PORT, whose /v1 routes need the bearer token from
 *   --api-token-file or PURGE_CACHE_AGENT_API_TOKEN. Listening on a
 *   non-loopback address without a token is refused: the API can purge caches.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { DEFAULTS, type Settings } from '../config/index.js';
import { ConfigError, errnoCode, errorMessage } from '../errors.js';
import { registerSecret } from '../secrets.js';

export const SOCKET_NAME = 'api.sock';
/** Where the systemd unit (RuntimeDirectory=purge-cache-agent) puts the socket: clients look there too. */
export const SYSTEMD_SOCKET = `/run/purge-cache-agent/${SOCKET_NAME}`;
/** sun_path holds 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
export const MIN_TOKEN_CHARS = 16;
/** The example Secret's placeholders (deploy/kubernetes/secret.yaml): tokens anyone can read in the repository. */
const PLACEHOLDER_TOKEN = /^replace-with-/i;

export interface ApiServerConfig {
  socketPath: string;
  listen?: { host: string; port: number };
  token?: string;
}

/** The socket `run` listens on. */
export function serverSocketPath(settings: Settings, env: NodeJS.ProcessEnv = process.env): string {
  if (settings.apiSocket) return path.resolve(settings.apiSocket);
  const runtime = runtimeDirectory(env);
  return runtime ? path.join(runtime, SOCKET_NAME) : path.join(settings.stateDir, SOCKET_NAME);
}

/**
 * The sockets a client tries, in order. An operator's shell has no
 * RUNTIME_DIRECTORY, so with the default state directory the systemd
 * location is tried as well.
 */
export function clientSocketCandidates(settings: Settings, env: NodeJS.ProcessEnv = process.env): string[] {
  if (settings.apiSocket) return [path.resolve(settings.apiSocket)];
  const candidates: string[] = [];
  const runtime = runtimeDirectory(env);
  if (runtime) candidates.push(path.join(runtime, SOCKET_NAME));
  candidates.push(path.join(settings.stateDir, SOCKET_NAME));
  if (path.resolve(settings.stateDir) === path.resolve(DEFAULTS.stateDir)) candidates.push(SYSTEMD_SOCKET);
  return [...new Set(candidates)];
}

function runtimeDirectory(env: NodeJS.ProcessEnv): string | undefined {
  // systemd lists every RuntimeDirectory=, ':'-separated; ours is the first.
  const first = env.RUNTIME_DIRECTORY?.split(':')[0];
  return first ? path.resolve(first) : undefined;
}

/** The API token, from --api-token-file (which wins) or PURGE_CACHE_AGENT_API_TOKEN; registered as a secret. */
export async function loadApiToken(settings: Settings): Promise<string | undefined> {
  let token: string | undefined;
  let source: string;
  if (settings.apiTokenFile) {
    const file = path.resolve(settings.apiTokenFile);
    source = `--api-token-file ${file}`;
    try {
      token = (await readFile(file, 'utf8')).trim();
    } catch (err) {
      const why = errnoCode(err) === 'ENOENT' ? 'it does not exist' : errorMessage(err);
      throw new ConfigError(`cannot read the API token file ${file} (--api-token-file): ${why}`, 'apiTokenFile');
    }
  } else if (settings.apiToken !== undefined) {
    source = 'PURGE_CACHE_AGENT_API_TOKEN';
    token = settings.apiToken.trim();
  } else {
    return undefined;
  }
  registerSecret(token);
  if (token.length < MIN_TOKEN_CHARS || /\s/.test(token)) {
    throw new ConfigError(
      `the API token (${source}) must be at least ${MIN_TOKEN_CHARS} characters without whitespace; generate one with \`openssl rand -hex 32\``,
      settings.apiTokenFile ? 'apiTokenFile' : 'apiToken',
    );
  }
  if (PLACEHOLDER_TOKEN.test(token)) {
    throw new ConfigError(
      `the API token (${source}) is still the placeholder of the example Secret, which anyone can read; set a random one, such as the output of \`openssl rand -hex 32\``,
      settings.apiTokenFile ? 'apiTokenFile' : 'apiToken',
    );
  }
  return token;
}

/** True for addresses only this machine can reach. A host name other than localhost counts as remote. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  const version = isIP(h);
  if (version === 4) return h.startsWith('127.');
  if (version === 6) return h === '::1' || /^(0{0,4}:){7}0{0,3}1$/.test(h) || /^::ffff:127\./.test(h);
  return false;
}

/** Everything `run` needs to serve the API, checked before the agent starts (a bad setting exits 2 at once). */
export async function resolveApiServerConfig(settings: Settings, env: NodeJS.ProcessEnv = process.env): Promise<ApiServerConfig> {
  const socketPath = serverSocketPath(settings, env);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError(
      `the API socket path ${socketPath} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a unix socket path may have; set a shorter --api-socket`,
      'apiSocket',
    );
  }
  const token = await loadApiToken(settings);
  const listen = settings.listen;
  if (listen && !token && !isLoopback(listen.host)) {
    throw new ConfigError(
      `refusing to serve the local API on ${listen.host}:${listen.port} without a token: it is not a loopback address, and the API can purge caches. ` +
        'Set --api-token-file (or PURGE_CACHE_AGENT_API_TOKEN), or listen on 127.0.0.1',
      'listen',
    );
  }
  return { socketPath, ...(listen ? { listen } : {}), ...(token ? { token } : {}) };
}
