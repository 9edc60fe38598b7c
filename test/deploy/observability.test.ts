/**
 * The dashboard and the alert rules, checked where no Grafana or Prometheus is
 * at hand: they name only metrics the agent exports.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { makeTempDir } from '../helpers/tmp.js';
import { AGENT_METRICS, exportedMetricNames, hasCommand, metricsInExpr, readRepoFile, repoFile } from './helpers.js';

describe('dashboard and alerts', () => {
  const dashboard = JSON.parse(readRepoFile('deploy/grafana/purge-cache-agent.json'));
  const rules = YAML.parse(readRepoFile('deploy/prometheus/alerts.yaml'));
  const dashboardExprs: string[] = dashboard.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr));
  const alertRules: any[] = rules.groups.flatMap((g: any) => g.rules);

  it('the agent exports every metric the dashboards and alerts use', async () => {
    const exported = await exportedMetricNames();
    expect(AGENT_METRICS.filter((m) => !exported.has(m))).toEqual([]);
  });

  it('every metric the dashboard and the alerts name is one the agent exports', async () => {
    const exported = await exportedMetricNames();
    const named = new Set([...dashboardExprs, ...alertRules.map((r) => r.expr)].flatMap((e) => metricsInExpr(e, exported)));
    expect(named.size).toBeGreaterThan(5);
    expect([...named].filter((m) => !exported.has(m))).toEqual([]);
  });

  it('the dashboard covers syncs by outcome, time since the last success, purges and bytes, deferred purges, trash and clock offset', async () => {
    const exported = await exportedMetricNames();
    const used = new Set(dashboardExprs.flatMap((e) => metricsInExpr(e, exported)));
    for (const m of AGENT_METRICS) expect(used, m).toContain(m);
    expect(dashboardExprs.some((e) => /by \(outcome\)/.test(e))).toBe(true);
    expect(dashboardExprs.some((e) => /time\(\) - purge_cache_agent_last_success_timestamp_seconds/.test(e))).toBe(true);
    const ids = dashboard.panels.map((p: any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.templating.list.map((v: any) => v.name)).toEqual(expect.arrayContaining(['datasource', 'instance']));
  });

  it('alerts on an agent that has not synced for too long and on purge failures', () => {
    for (const rule of alertRules) {
      expect(rule.alert).toMatch(/^PurgeCacheAgent/);
      expect(rule.labels?.severity).toBeTruthy();
      expect(rule.annotations?.summary).toBeTruthy();
    }
    expect(alertRules.some((r) => r.expr.includes('purge_cache_agent_last_success_timestamp_seconds') && r.expr.includes('time()'))).toBe(true);
    expect(alertRules.some((r) => r.expr.includes('purge_cache_agent_purge_failures_total'))).toBe(true);
  });

  it('no alert selects by scrape job, so they work however the agents are scraped (annotated pods, static targets)', () => {
    for (const rule of alertRules) expect(rule.expr, rule.alert).not.toMatch(/\bjob\s*(=~|!~|!=|=)/);
    const down = alertRules.find((r) => r.alert === 'PurgeCacheAgentDown');
    expect(down.expr).toContain('purge_cache_agent_info');
    expect(alertRules.some((r) => /absent\(purge_cache_agent_info\)/.test(r.expr))).toBe(true);
  });

  it('the dashboard shows evictions by reason, in caches and in bytes', () => {
    const evictionExprs = dashboardExprs.filter((e) => /purge_cache_agent_evict(ions|ed_bytes)_total/.test(e));
    expect(evictionExprs.some((e) => e.includes('purge_cache_agent_evictions_total') && /by \(reason\)/.test(e))).toBe(true);
    expect(evictionExprs.some((e) => e.includes('purge_cache_agent_evicted_bytes_total') && /by \(reason\)/.test(e))).toBe(true);
  });

  // promtool checks PromQL for real. CI fetches it (.ci/run); elsewhere set PROMTOOL or put it on PATH.
  const promtool = process.env.PROMTOOL || (hasCommand('promtool') ? 'promtool' : '');
  it.skipIf(!promtool)('promtool accepts the alert rules and every dashboard query (skipped without promtool)', async () => {
    const run = promisify(execFile);
    await run(promtool, ['check', 'rules', repoFile('deploy/prometheus/alerts.yaml')]);
    // The dashboard's queries, with Grafana's variables filled in, as recording rules promtool can parse.
    const tmp = await makeTempDir('pca-promtool-');
    try {
      const filled = dashboardExprs.map((e) =>
        e.replaceAll('$__rate_interval', '5m').replaceAll('$__range', '6h').replaceAll('$job', '.*').replaceAll('$instance', '.*'),
      );
      const file = path.join(tmp.path, 'dashboard-rules.yaml');
      await writeFile(file, YAML.stringify({ groups: [{ name: 'dashboard', rules: filled.map((expr, i) => ({ record: `dashboard:query${i}`, expr })) }] }));
      await run(promtool, ['check', 'rules', file]);
    } finally {
      await tmp.cleanup();
    }
  });

  // The alerts evaluated by promtool on made-up scrapes: agents under a job
  // named by annotation-based pod discovery, and a target that is no agent.
  it.skipIf(!promtool)('promtool: an agent that stops answering alerts under any job name; a retired one and other targets do not', async () => {
    const rule = (name: string) => alertRules.find((r) => r.alert === name);
    const rendered = (name: string, labels: Record<string, string>) => {
      const annotations: Record<string, string> = {};
      for (const [k, v] of Object.entries<string>(rule(name).annotations))
        annotations[k] = v.trim().replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l] ?? '');
      return { exp_labels: { ...labels, ...rule(name).labels }, exp_annotations: annotations };
    };
    const agent = (job: string, instance: string, up: string, info: string) => [
      { series: `up{job="${job}", instance="${instance}"}`, values: up },
      { series: `purge_cache_agent_info{job="${job}", instance="${instance}", version="0.1.0", worker_pool_id="proj-builds/linux"}`, values: info },
    ];
    const tests = {
      rule_files: [repoFile('deploy/prometheus/alerts.yaml')],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            ...agent('kubernetes-pods', '10.0.0.1:9464', '1 1 1 0x40', '1 1 1 stale'), // stops answering
            ...agent('workers', 'worker-2:9464', '1x43', '1x43'), // healthy
            ...agent('kubernetes-pods', '10.0.0.3:9464', '1 1 1 stale', '1 1 1 stale'), // pod deleted
            { series: 'up{job="node", instance="10.0.0.4:9100"}', values: '0x43' }, // not an agent
          ],
          alert_rule_test: [
            {
              eval_time: '20m',
              alertname: 'PurgeCacheAgentDown',
              exp_alerts: [rendered('PurgeCacheAgentDown', { job: 'kubernetes-pods', instance: '10.0.0.1:9464' })],
            },
            { eval_time: '20m', alertname: 'PurgeCacheAgentMetricsAbsent', exp_alerts: [] },
          ],
        },
        {
          interval: '1m',
          input_series: [{ series: 'up{job="node", instance="10.0.0.4:9100"}', values: '1x60' }],
          alert_rule_test: [
            { eval_time: '45m', alertname: 'PurgeCacheAgentMetricsAbsent', exp_alerts: [rendered('PurgeCacheAgentMetricsAbsent', {})] },
            { eval_time: '45m', alertname: 'PurgeCacheAgentDown', exp_alerts: [] },
          ],
        },
      ],
    };
    const tmp = await makeTempDir('pca-promtool-');
    try {
      const file = path.join(tmp.path, 'alerts.test.yaml');
      await writeFile(file, YAML.stringify(tests));
      const result = await promisify(execFile)(promtool, ['test', 'rules', file]).catch((err: unknown) => {
        const failed = err as { stdout?: string; stderr?: string };
        throw new Error(`promtool test rules failed:\n${failed.stdout ?? ''}${failed.stderr ?? ''}`);
      });
      expect(result.stdout).toContain('SUCCESS');
    } finally {
      await tmp.cleanup();
    }
  });
});
