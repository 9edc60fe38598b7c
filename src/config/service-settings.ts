/** The settings that say which purge-cache service to reach, for which worker pool, and as whom. */
import * as p from './parse.js';
import { DAEMON, POOL, SERVICE, type SettingSpec } from './schema.js';

export const SERVICE_SETTINGS: SettingSpec[] = [
  {
    key: 'rootUrl',
    flag: '--root-url <url>',
    env: ['TASKCLUSTER_ROOT_URL'],
    describe: 'Taskcluster root URL of the purge-cache service',
    defaultText: 'required unless a proxy URL is set',
    commands: SERVICE,
    parse: p.parseUrl,
  },
  {
    key: 'proxyUrl',
    flag: '--proxy-url <url>',
    env: ['TASKCLUSTER_PROXY_URL'],
    describe: 'taskcluster-proxy URL; requests go through it unsigned',
    defaultText: 'none',
    commands: SERVICE,
    parse: p.parseUrl,
  },
  {
    key: 'workerPoolId',
    flag: '--worker-pool-id <id>',
    env: ['TASKCLUSTER_WORKER_POOL_ID'],
    describe: 'worker pool, <provisionerId>/<workerType>',
    defaultText: 'required',
    commands: POOL,
    parse: p.parseString,
  },
  {
    key: 'provisionerId',
    flag: '--provisioner-id <id>',
    env: ['TASKCLUSTER_PROVISIONER_ID'],
    describe: 'provisioner id (with --worker-type, instead of --worker-pool-id)',
    commands: POOL,
    parse: p.parseString,
  },
  {
    key: 'workerType',
    flag: '--worker-type <type>',
    env: ['TASKCLUSTER_WORKER_TYPE'],
    describe: 'worker type (with --provisioner-id)',
    commands: POOL,
    parse: p.parseString,
  },
  {
    key: 'workerId',
    flag: '--worker-id <id>',
    env: ['TASKCLUSTER_WORKER_ID'],
    describe: "this worker's id, shown in the purge_cache_agent_info metric (label worker_id) so a fleet's dashboards can tell workers apart",
    defaultText: 'none',
    commands: DAEMON,
    parse: p.parseString,
  },
  {
    key: 'credentials',
    env: [],
    secret: true,
    describe:
      'Taskcluster credentials: config file `credentials: {clientId, accessToken, certificate}`, or TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN, TASKCLUSTER_CERTIFICATE',
    defaultText: 'anonymous',
    commands: SERVICE,
    parse: p.credentials,
  },
];
