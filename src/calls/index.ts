export { GoogleHostAllowList, isGoogleApiHost } from './allow-list.js';
export { BehalfAuthClient } from './auth-client.js';
export {
  createUserFetch,
  createUserRequest,
  DEFAULT_CALL_POLICY,
  undiciRequest,
  type CallPolicy,
  type HttpRequestLike,
  type UserFetch,
  type UserFetchDeps,
  type UserRequest,
  type UserRequestAnswer,
  type UserRequestInit,
} from './user-fetch.js';
