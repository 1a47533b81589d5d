import { OffsetClock } from '../../src/clock.js';
import { startEmulator, type RunningEmulator } from '../../src/emulator/index.js';

export const DRIVE_APPDATA = 'https://www.googleapis.com/auth/drive.appdata';

export interface EmulatorFixture {
  emulator: RunningEmulator;
  clock: OffsetClock;
  control<T = any>(method: string, path: string, body?: unknown): Promise<T>;
  /** POST form parameters to a Google path; answers status and parsed JSON (or text). */
  form(
    path: string,
    params: Record<string, string>,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; headers: Headers }>;
  user(email?: string): Promise<{ sub: string; email: string }>;
  code(
    sub: string,
    options?: {
      client?: 'ios' | 'android' | 'web' | 'server';
      scope?: string;
      redirect_uri?: string;
      prompt?: string;
      code_challenge?: string;
      code_challenge_method?: string;
      nonce?: string;
      access_type?: 'online' | 'offline';
      include_granted_scopes?: boolean;
      granted_scopes?: string;
      refresh_token_lifetime_seconds?: number;
    },
  ): Promise<string>;
  /** Redeem a code as the server client, with '' as redirect URI unless given. */
  exchange(
    code: string,
    extra?: Record<string, string>,
  ): Promise<{ status: number; body: any; headers: Headers }>;
  refresh(refreshToken: string): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

let counter = 0;

export async function startFixture(): Promise<EmulatorFixture> {
  const clock = new OffsetClock();
  const emulator = await startEmulator({ clock });
  const { server, apps } = emulator.clients;
  const control = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${emulator.url}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${text}`);
    return text === '' ? {} : JSON.parse(text);
  };
  const form = async (path: string, params: Record<string, string>, headers: Record<string, string> = {}) => {
    const response = await fetch(`${emulator.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(params).toString(),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: response.status, body, headers: response.headers };
  };
  const clientIds = { ...apps, server: server.clientId };
  return {
    emulator,
    clock,
    control,
    form,
    user: async (email = `user${++counter}@example.com`) =>
      control('POST', '/emulator/users', {
        email,
        name: 'Test User',
        given_name: 'Test',
        family_name: 'User',
      }),
    code: async (sub, o = {}) => {
      const { code } = await control('POST', '/emulator/codes', {
        sub,
        client_id: clientIds[o.client ?? 'ios'],
        scope: o.scope ?? `openid email profile ${DRIVE_APPDATA}`,
        ...Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'client' && k !== 'scope')),
      });
      return code as string;
    },
    exchange: (code, extra = {}) =>
      form('/token', {
        grant_type: 'authorization_code',
        code,
        client_id: server.clientId,
        client_secret: server.clientSecret,
        redirect_uri: '',
        ...extra,
      }),
    refresh: (refreshToken) =>
      form('/token', {
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        client_id: server.clientId,
        client_secret: server.clientSecret,
      }),
    close: () => emulator.close(),
  };
}

export function decodeJwt(token: string): { header: any; payload: any } {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h!, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p!, 'base64url').toString()),
  };
}
