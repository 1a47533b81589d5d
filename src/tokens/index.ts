export { sweepGrants, type SweepOptions, type SweepReport } from './health-sweep.js';
export {
  TokenService,
  type AccessToken,
  type RetryPolicy,
  type TokenServiceOptions,
} from './token-service.js';
