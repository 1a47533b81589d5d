/**
 * What an operator watches: Prometheus metrics (./metrics.ts) and the readiness checks behind
 * /readyz (./readiness.ts). The HTTP routes are in src/http/ops-routes.ts.
 */
export {
  Metrics,
  type CacheStats,
  type JobRunOutcome,
  type MetricSources,
  type MetricsOptions,
} from './metrics.js';
export {
  Readiness,
  type ReadinessCheckName,
  type ReadinessOptions,
  type ReadinessReport,
} from './readiness.js';
