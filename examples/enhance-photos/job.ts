/**
 * The seed's example job, "enhance-photos": the same job local mode's demo page runs for the user
 * who signed in there (src/demo/photos.ts), so there is one implementation to keep right.
 */
export {
  ENHANCED_SUFFIX,
  enhance,
  enhancedName,
  enhancePhotosJob,
  type EnhanceResult,
} from '../../src/demo/index.js';
