/** The metrics the agent promises to export; the API tests and the dashboard/alert checks both hold the agent to them. */
export const REQUIRED_METRICS = [
  'purge_cache_agent_cycles_total',
  'purge_cache_agent_cycle_duration_seconds',
  'purge_cache_agent_requests_seen_total',
  'purge_cache_agent_caches_purged_total',
  'purge_cache_agent_bytes_reclaimed_total',
  'purge_cache_agent_purge_failures_total',
  'purge_cache_agent_deferred_purges',
  'purge_cache_agent_last_success_timestamp_seconds',
  'purge_cache_agent_clock_offset_seconds',
  'purge_cache_agent_trash_bytes',
] as const;
