export { GOOGLE_DISCOVERY_URL, GoogleDiscovery } from './discovery.js';
export type { FetchLike, GoogleObserver } from './http.js';
export { GoogleOAuthClient } from './oauth.js';
