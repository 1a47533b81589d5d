export {
  DEFAULT_DATA_DIR,
  loadConfig,
  loadStorageConfig,
  type BehalfConfig,
  type ConfigInput,
  type FlagName,
  type Mode,
  type StorageConfig,
} from './config.js';
export { readClientSecretFile, type ClientSecret } from './client-secret.js';
