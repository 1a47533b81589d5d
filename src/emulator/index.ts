/**
 * A faithful local emulator of Google's OAuth 2.0 / OpenID Connect endpoints and Drive v3's
 * appDataFolder, for development, demos and tests with no Google Cloud project and no network.
 * A separate entry point: it shares no code path with behalf's production request handling.
 */
export { emulatorClients, startEmulator } from './server.js';
export type { EmulatorClients, EmulatorOptions, RunningEmulator } from './types.js';
