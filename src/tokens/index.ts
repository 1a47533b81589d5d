export { warnAboutExpiringGrants } from './grant-expiry.js';
export { sweepGrants, type SweepOptions, type SweepReport } from './health-sweep.js';
export { TokenService, type AccessToken, type TokenServiceOptions } from './token-service.js';
