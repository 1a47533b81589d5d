import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createRuntime, createServer, type BehalfRuntime } from '../../src/app.js';
import { OffsetClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/index.js';
import { requestFetch } from '../../src/google/request-fetch.js';
import { createApiKey } from '../../src/vault/index.js';
import type { EmulatorHandle } from './emulator.js';
import { SIGNIN_SCOPES } from './emulator.js';

/**
 * The benchmark may reach loopback only: anything else is a bug in the benchmark and fails at once.
 * Behind the fence, the client behalf uses for Google's endpoints by default (no workload uses
 * `behalf.fetch`, whose default is the global fetch).
 */
export const loopbackOnlyFetch: typeof fetch = async (input, init) => {
  const url = new URL(input instanceof Request ? input.url : input.toString());
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new TypeError(`the benchmark tried to reach ${url.host}: only loopback is allowed`);
  }
  return requestFetch(input, init);
};

/** A fresh encryption key entry (BEHALF_ENCRYPTION_KEYS format). */
export function newEncryptionKeys(): string {
  return `k1:${randomBytes(32).toString('base64')}`;
}

/** The environment `behalf serve` would get, pointed at the emulator. */
export function behalfEnv(
  emulator: EmulatorHandle,
  databaseUrl: string,
  encryptionKeys: string,
): Record<string, string> {
  const { apps } = emulator.clients;
  return {
    BEHALF_PORT: '0',
    BEHALF_HOST: '127.0.0.1',
    BEHALF_DATABASE_URL: databaseUrl,
    BEHALF_CLIENT_SECRET_FILE: emulator.clientSecretFile,
    BEHALF_APP_CLIENT_IDS: [apps.ios, apps.android, apps.web].join(','),
    BEHALF_GOOGLE_DISCOVERY_URL: `${emulator.url}/.well-known/openid-configuration`,
    BEHALF_GOOGLE_API_URL: emulator.url,
    BEHALF_ENCRYPTION_KEYS: encryptionKeys,
    BEHALF_REQUIRED_SCOPES: SIGNIN_SCOPES,
    BEHALF_LOG_LEVEL: 'silent',
    // The sign-in workload sends thousands of sign-ins from one address on purpose.
    BEHALF_SIGNIN_RATE_LIMIT: '1000000',
  };
}

export interface BehalfInstance {
  runtime: BehalfRuntime;
  clock: OffsetClock;
  /** Set when started with `listen`. */
  server?: FastifyInstance;
  url?: string;
  apiKey?: string;
  close(): Promise<void>;
}

/** behalf wired exactly as `behalf serve` wires it (createRuntime/createServer), on a random port. */
export async function startBehalf(
  env: Record<string, string>,
  options: { listen?: boolean } = {},
): Promise<BehalfInstance> {
  const config = await loadConfig({ mode: 'production', env });
  const clock = new OffsetClock();
  const runtime = await createRuntime(config, {
    clock,
    fetch: loopbackOnlyFetch,
    logger: pino({ level: 'silent' }),
  });
  if (options.listen !== true) return { runtime, clock, close: () => runtime.behalf.close() };
  const server = createServer(config, runtime);
  await server.listen({ port: 0, host: '127.0.0.1' });
  const address = server.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  const { key: apiKey } = await createApiKey(runtime.store, 'bench');
  return {
    runtime,
    clock,
    server,
    url,
    apiKey,
    close: async () => {
      await server.close();
      await runtime.behalf.close();
    },
  };
}
