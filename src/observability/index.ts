/**
 * What an operator watches: Prometheus metrics (./metrics.ts) and the readiness checks behind
 * /readyz (./readiness.ts). The HTTP routes are in src/http/ops-routes.ts.
 */
export { Metrics } from './metrics.js';
export { Readiness } from './readiness.js';
