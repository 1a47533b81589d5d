export {
  DEFAULT_DATA_DIR,
  loadConfig,
  loadDatabaseUrl,
  loadStorageConfig,
  loadWebhookConfig,
  type BehalfConfig,
  type ConfigInput,
  type FlagName,
  type FlagValue,
  type Mode,
  type StorageConfig,
  type WebhookConfig,
} from './config.js';
export { readClientSecretFile, type ClientSecret } from './client-secret.js';
export {
  checkOptionsObject,
  loadLibraryConfig,
  type BehalfSettings,
  type RefusedSettings,
} from './options.js';
