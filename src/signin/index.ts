export { SignInService, type SignInInput, type SignInResult } from './signin.js';
