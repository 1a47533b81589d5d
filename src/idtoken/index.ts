export { GoogleKeySet, parseJwks, type GoogleKeySetOptions } from './key-set.js';
export { parseJsonObjectStrict } from './strict-json.js';
export {
  accessTokenHash,
  IdTokenVerifier,
  reject as rejectToken,
  verifyGoogleJwt,
  type IdTokenPolicy,
  type IdTokenRejection,
  type VerifiedIdToken,
  type VerifyOptions,
} from './verifier.js';
