export { TokenService, type AccessToken, type RetryPolicy, type TokenServiceOptions } from './token-service.js';
