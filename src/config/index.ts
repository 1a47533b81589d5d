export {
  loadConfig,
  loadDatabaseUrl,
  loadStorageConfig,
  loadWebhookConfig,
  type BehalfConfig,
  type ConfigInput,
  type StorageConfig,
} from './config.js';
export { readClientSecretFile } from './client-secret.js';
export {
  checkOptionsObject,
  loadLibraryConfig,
  type BehalfSettings,
  type RefusedSettings,
} from './options.js';
