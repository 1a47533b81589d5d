export {
  SignInService,
  profileFrom,
  type SignInDeps,
  type SignInInput,
  type SignInResult,
} from './signin.js';
