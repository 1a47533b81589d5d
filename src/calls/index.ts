export { GoogleHostAllowList, isGoogleApiHost } from './allow-list.js';
export { BehalfAuthClient } from './auth-client.js';
export {
  createUserFetch,
  createUserRequest,
  undiciRequest,
  type CallPolicy,
  type HttpRequestLike,
  type UserFetch,
  type UserRequest,
  type UserRequestAnswer,
  type UserRequestInit,
} from './user-fetch.js';
