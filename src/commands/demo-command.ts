/**
 * `npm start`: the whole loop on one machine. An embedded purge-cache service
 * on 127.0.0.1, demo caches under ./.demo, and the daemon syncing every five
 * seconds. It files one purge request itself so the purge is seen to happen,
 * and prints how to file more.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent } from '../engine/agent.js';
import { loadSettings } from '../config/index.js';
import { runDaemon } from '../engine/daemon.js';
import { createLogger } from '../log.js';
import { startService, type RunningService } from '../service/index.js';
import { encodeCacheName } from '../core/names.js';
import { PurgeCacheClient } from '../edges/upstream/client.js';

const POOL = 'demo-provisioner/demo-worker';
const DEMO_CACHES = ['npm-cache', 'cargo registry', 'gradle/wrapper'];

export async function demoCommand(): Promise<number> {
  const logger = createLogger({ level: (process.env.LOG_LEVEL as 'info' | undefined) ?? 'info' });
  const base = path.resolve('.demo');
  const root = path.join(base, 'caches');
  for (const name of DEMO_CACHES) {
    const encoded = encodeCacheName(name);
    if (encoded === null) throw new Error(`the demo cache name ${JSON.stringify(name)} cannot be a directory name; choose another`);
    const dir = path.join(root, encoded);
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    await writeFile(path.join(dir, 'sub', 'artifact.bin'), `contents of ${name}\n`);
  }
  const service = await listenPreferring(8765, logger);
  const settings = await loadSettings({
    flags: {
      rootUrl: service.url,
      workerPoolId: POOL,
      cacheRoot: [root],
      stateDir: path.join(base, 'state'),
      schedule: '*/5 * * * * *',
      jitter: '1s',
      skewMargin: '10s',
    },
    env: {},
    cwd: process.cwd(),
  });
  const agent = await Agent.start(settings, { logger });
  const cli = await hintCommand();
  const say = (text: string): void => void process.stdout.write(`${text}\n`);
  say(`\npurge-cache-agent demo
  service:   ${service.url}  (embedded purge-cache service, open access)
  pool:      ${POOL}
  caches in: ${root}
The agent syncs every 5 seconds. File a purge request from another terminal:
  ${cli} request 'cargo registry' --root-url ${service.url} --worker-pool-id ${POOL}
then watch the cache disappear:
  ${cli} caches --cache-root ${root} --state-dir ${path.join(base, 'state')}
In a few seconds this demo files one for "npm-cache" itself. Ctrl-C stops it.\n`);

  agent.onCycle((report) => {
    for (const purged of report.purged) say(`>>> purged ${JSON.stringify(purged.name)}: ${purged.path} is gone`);
  });
  const client = new PurgeCacheClient({ rootUrl: service.url, logger });
  const timer = setTimeout(() => {
    say('>>> filing a purge request for "npm-cache"');
    client.purgeCache({ provisionerId: 'demo-provisioner', workerType: 'demo-worker' }, 'npm-cache').catch((err: unknown) => {
      logger.error({ err: String(err) }, 'demo request failed');
    });
  }, 3000);
  const code = await runDaemon(agent, logger, {
    onStop: async () => {
      clearTimeout(timer);
      await service.close();
    },
  });
  return code;
}

/**
 * How the printed hints run this CLI. Never a bare `npx purge-cache-agent`:
 * where the package is not installed, npx would fetch a package of that name
 * from the registry and run it. In the checkout (`npm start`), `npx
 * --no-install` finds the package's own bin; anywhere else, this very file.
 */
async function hintCommand(): Promise<string> {
  const inCheckout = await readFile(path.resolve('package.json'), 'utf8')
    .then((text) => (JSON.parse(text) as { name?: string }).name === 'purge-cache-agent')
    .catch(() => false);
  if (inCheckout) return 'npx --no-install purge-cache-agent';
  const script = process.argv[1] ?? 'purge-cache-agent';
  return `node ${/\s/.test(script) ? JSON.stringify(script) : script}`;
}

async function listenPreferring(port: number, logger: ReturnType<typeof createLogger>): Promise<RunningService> {
  try {
    return await startService({ host: '127.0.0.1', port, logger });
  } catch {
    return startService({ host: '127.0.0.1', port: 0, logger });
  }
}
