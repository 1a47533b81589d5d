export { GoogleHostAllowList, isGoogleApiHost } from './allow-list.js';
export { BehalfAuthClient } from './auth-client.js';
export { createUserFetch, DEFAULT_CALL_POLICY, type CallPolicy, type UserFetch, type UserFetchDeps } from './user-fetch.js';
