export {
  GOOGLE_API_URL,
  GOOGLE_DISCOVERY_URL,
  GoogleDiscovery,
  isAcceptableEndpoint,
  isLoopbackHost,
  maxAgeSeconds,
  type GoogleEndpoints,
} from './discovery.js';
export {
  parseOAuthErrorBody,
  parseRetryAfter,
  sendToGoogle,
  type FetchLike,
  type GoogleEndpointName,
  type GoogleObserver,
  type RefreshOutcome,
} from './http.js';
export { GoogleOAuthClient, type OAuthClientCredentials, type TokenSet } from './oauth.js';
export { normalizeScope, normalizeScopes, SCOPES } from './scopes.js';
