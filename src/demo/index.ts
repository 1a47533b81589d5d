/**
 * Local mode's demo web app (`behalf serve --local`): a page on its own origin that signs in with
 * the emulator's Google Identity Services stand-in and POSTs the code to behalf through CORS, and
 * a backend for it that runs the photo job for the signed-in user.
 */
export { startDemo, type Demo } from './server.js';
export { enhancedName, enhancePhotosJob, type EnhanceResult } from './photos.js';
