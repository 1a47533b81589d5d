export { GoogleKeySet, parseJwks } from './key-set.js';
export {
  IdTokenVerifier,
  reject as rejectToken,
  verifyGoogleJwt,
  type IdTokenPolicy,
  type VerifiedIdToken,
  type VerifyOptions,
} from './verifier.js';
