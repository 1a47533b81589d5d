import type { OffsetClock } from '../clock.js';

export interface EmulatorOptions {
  /** Default 0 (a random port); the CLI defaults to 8089. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Shared with the code under test: `POST /emulator/clock` advances this very object. */
  clock?: OffsetClock;
  /** Default `https://accounts.google.com`, so unchanged Google libraries accept the ID tokens. */
  issuer?: string;
  /** Default: random per start. */
  serverClientSecret?: string;
  /** Log requests (default false). */
  logger?: boolean;
  /**
   * More Authorized JavaScript origins of the server client (a web app's origin, such as
   * `http://localhost:5173`), beside `http://localhost:3000` and `http://localhost:8080`: pages
   * there may run the Google Identity Services popup flow (`/gsi/client`).
   */
  javascriptOrigins?: string[];
}

export interface EmulatorClients {
  /** The server's "Web application" client: it redeems codes with its secret. */
  server: { clientId: string; clientSecret: string; redirectUris: string[]; javascriptOrigins: string[] };
  /** App clients whose codes and ID tokens the server accepts (they become `azp`). */
  apps: { ios: string; android: string; web: string };
}

export interface RunningEmulator {
  /** Base URL, no trailing slash, e.g. http://127.0.0.1:40123. */
  url: string;
  clients: EmulatorClients;
  clock: OffsetClock;
  /** Google's downloaded client secret file ("web" shape) for the server client. */
  clientSecretJson(): unknown;
  /** Writes it with mode 0600. */
  writeClientSecret(file: string): Promise<void>;
  close(): Promise<void>;
}
