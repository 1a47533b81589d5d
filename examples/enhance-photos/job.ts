/**
 * The seed's example job, "enhance-photos": the same job local mode's demo page runs for the user
 * who signed in there, so there is one implementation to keep right. It is part of behalf's public
 * API (the package's front door, src/index.ts), which is all this example imports.
 */
export { enhancedName, enhancePhotosJob, type EnhanceResult } from '../../src/index.js';
