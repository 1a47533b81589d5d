import { join } from 'node:path';
import type { EmulatorClients } from '../../src/emulator/index.js';
import { ChildRpc, forkTs } from './processes.js';

/** The emulator running in its own process, and its control API (docs/emulator.md). */
export interface EmulatorHandle {
  url: string;
  clients: EmulatorClients;
  /** Google's client_secret_*.json for the server client, written by the emulator. */
  clientSecretFile: string;
  control<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T>;
  /** Creates a user and returns their sub. */
  createUser(email: string): Promise<string>;
  /** A fresh server auth code, as the iOS app would get it from Google Sign-In. */
  mintCode(sub: string, options?: { scope?: string; prompt?: string }): Promise<string>;
  /** Delay every call to `path` (exact, or a prefix ending in `*`) by `latencyMs`, until cleared. */
  addLatency(path: string, latencyMs: number): Promise<void>;
  clearFaults(): Promise<void>;
  /** Refresh-token grants served since the last reset. */
  refreshCount(): Promise<number>;
  resetStats(): Promise<void>;
  close(): Promise<void>;
}

export const DRIVE_APPDATA = 'https://www.googleapis.com/auth/drive.appdata';
export const SIGNIN_SCOPES = `openid email profile ${DRIVE_APPDATA}`;

export async function startEmulatorProcess(dir: string): Promise<EmulatorHandle> {
  const clientSecretFile = join(dir, 'client_secret.json');
  const rpc = new ChildRpc(forkTs(new URL('./emulator-process.ts', import.meta.url), [clientSecretFile]));
  const { url, clients } = (await rpc.ready) as { url: string; clients: EmulatorClients };

  return connectEmulator({ url, clients, clientSecretFile }, () => rpc.close());
}

/** Where a running emulator is, as another process of the benchmark is told it. */
export interface EmulatorAddress {
  url: string;
  clients: EmulatorClients;
  clientSecretFile: string;
}

/** A handle on an emulator running elsewhere: its control API is HTTP, so any process can drive it. */
export function connectEmulator(
  { url, clients, clientSecretFile }: EmulatorAddress,
  close: () => Promise<void>,
): EmulatorHandle {
  const control = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${url}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`emulator ${method} ${path} answered ${response.status}: ${text}`);
    return (text === '' ? {} : JSON.parse(text)) as T;
  };

  return {
    url,
    clients,
    clientSecretFile,
    control,
    createUser: async (email) =>
      (
        await control<{ sub: string }>('POST', '/emulator/users', {
          email,
          name: 'Bench User',
          given_name: 'Bench',
          family_name: 'User',
        })
      ).sub,
    mintCode: async (sub, options = {}) =>
      (
        await control<{ code: string }>('POST', '/emulator/codes', {
          sub,
          client_id: clients.apps.ios,
          scope: options.scope ?? SIGNIN_SCOPES,
          ...(options.prompt === undefined ? {} : { prompt: options.prompt }),
        })
      ).code,
    // `rate: 1` makes the fault permanent (a count would use it up).
    addLatency: async (path, latencyMs) =>
      void (await control('POST', '/emulator/faults', { path, latency_ms: latencyMs, rate: 1 })),
    clearFaults: async () => void (await control('DELETE', '/emulator/faults')),
    refreshCount: async () =>
      (await control<{ token_requests: { refresh_token: number } }>('GET', '/emulator/stats')).token_requests
        .refresh_token,
    resetStats: async () => void (await control('POST', '/emulator/stats/reset')),
    close,
  };
}

/** Run `task` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!, index);
    }
  });
  await Promise.all(lanes);
  return results;
}
