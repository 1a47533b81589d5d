import { readFile } from 'node:fs/promises';
import { JWTAccess } from 'google-auth-library';
import type { Logger } from 'pino';
import { BehalfError } from '../errors.js';

/** The `aud` of a RISC management call's self-signed JWT (https://developers.google.com/identity/protocols/risc). */
const RISC_MANAGEMENT_AUDIENCE =
  'https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService';
const PUSH = 'https://schemas.openid.net/secevent/risc/delivery-method/push';

/** Every event type behalf's receiver acts on (src/risc/receiver.ts). */
export const RISC_EVENTS_REQUESTED = [
  'https://schemas.openid.net/secevent/risc/event-type/sessions-revoked',
  'https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked',
  'https://schemas.openid.net/secevent/oauth/event-type/token-revoked',
  'https://schemas.openid.net/secevent/risc/event-type/account-disabled',
  'https://schemas.openid.net/secevent/risc/event-type/account-enabled',
  'https://schemas.openid.net/secevent/risc/event-type/account-purged',
  'https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required',
] as const;

/** The fields of a service account key file (the JSON the Cloud console lets you download) used here. */
export interface ServiceAccountKey {
  client_email: string;
  private_key: string;
  private_key_id: string;
}

export interface RiscRegistration {
  /** behalf's receiver as Google must reach it: `https://…/v1/google/risc`. */
  receiverUrl: string;
  /** Google's OpenID discovery URL; risc-configuration sits beside it (`/.well-known/risc-configuration`). */
  discoveryUrl: string;
  /** A service account of the project with the RISC Configuration Admin role. */
  serviceAccount: ServiceAccountKey;
  fetch: typeof globalThis.fetch;
  timeoutMs?: number;
}

/** Reads a service account key file (e.g. the one GOOGLE_APPLICATION_CREDENTIALS names). */
export async function readServiceAccountKey(path: string): Promise<ServiceAccountKey> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    throw new BehalfError('CONFIG_INVALID', `${path} is not a readable JSON service account key file.`);
  }
  const key = parsed as Partial<Record<keyof ServiceAccountKey | 'type', unknown>>;
  if (
    key.type !== 'service_account' ||
    typeof key.client_email !== 'string' ||
    typeof key.private_key !== 'string' ||
    typeof key.private_key_id !== 'string'
  ) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `${path} is not a service account key file (type service_account).`,
    );
  }
  return { client_email: key.client_email, private_key: key.private_key, private_key_id: key.private_key_id };
}

/**
 * Registers behalf's receiver with Google's RISC API, as Google's guide does it
 * (https://developers.google.com/identity/protocols/risc, "Register your receiver"): the
 * stream-management endpoint comes from risc-configuration, the call is authorized with the service
 * account's self-signed JWT (google-auth-library's JWTAccess), and `stream:update` names the push
 * delivery URL and every event type behalf acts on. Answers the stream configuration Google returned.
 */
export async function registerRiscReceiver(options: RiscRegistration): Promise<Record<string, unknown>> {
  const timeout = options.timeoutMs ?? 10_000;
  const configurationUrl = options.discoveryUrl.replace(/openid-configuration$/, 'risc-configuration');
  const configuration = await getJson(options.fetch, configurationUrl, {
    signal: AbortSignal.timeout(timeout),
  });
  const endpoint = configuration.update_configuration_endpoint;
  if (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint)) {
    throw new BehalfError('GOOGLE_UNAVAILABLE', 'risc-configuration names no update_configuration_endpoint.');
  }
  const { client_email: email, private_key: key, private_key_id: keyId } = options.serviceAccount;
  const authorization = new JWTAccess(email, key, keyId)
    .getRequestHeaders(RISC_MANAGEMENT_AUDIENCE)
    .get('authorization');
  if (authorization === null) throw new BehalfError('INTERNAL', 'could not sign the RISC management JWT.');
  return getJson(options.fetch, endpoint, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json' },
    body: JSON.stringify({
      delivery: { delivery_method: PUSH, url: options.receiverUrl },
      events_requested: RISC_EVENTS_REQUESTED,
    }),
    signal: AbortSignal.timeout(timeout),
  });
}

async function getJson(
  fetchImpl: typeof globalThis.fetch,
  url: string,
  init: RequestInit,
): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetchImpl(url, {
      ...init,
      headers: { accept: 'application/json', ...(init.headers as Record<string, string>) },
    });
  } catch (error) {
    throw new BehalfError(
      'GOOGLE_UNAVAILABLE',
      `Google's RISC API could not be reached (${new URL(url).host}).`,
      {
        cause: error,
      },
    );
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok || typeof body !== 'object' || body === null) {
    // Google's management errors carry a message (the error table of the RISC guide); never a token.
    const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
    throw new BehalfError(
      response.status >= 500 ? 'GOOGLE_UNAVAILABLE' : 'GOOGLE_ERROR',
      `Google's RISC API answered ${response.status}${typeof message === 'string' ? `: ${message.slice(0, 200)}` : ''}.`,
    );
  }
  return body as Record<string, unknown>;
}

/**
 * `behalf serve`'s start-up step: with BEHALF_RISC_RECEIVER_URL set, registers that receiver with
 * the key file GOOGLE_APPLICATION_CREDENTIALS names (Google's usual variable for a service account
 * key). A failure is logged, not fatal: the server still serves, and events Google cannot deliver
 * are what the RISC guide's redelivery covers.
 */
export async function registerReceiverAtStartup(options: {
  receiverUrl: string | undefined;
  discoveryUrl: string;
  credentialsFile: string | undefined;
  fetch: typeof globalThis.fetch;
  logger: Pick<Logger, 'info' | 'warn'>;
}): Promise<boolean> {
  if (options.receiverUrl === undefined) return false;
  try {
    if (options.credentialsFile === undefined) {
      throw new BehalfError(
        'CONFIG_INVALID',
        'GOOGLE_APPLICATION_CREDENTIALS must name the service account key file to register with.',
      );
    }
    await registerRiscReceiver({
      receiverUrl: options.receiverUrl,
      discoveryUrl: options.discoveryUrl,
      serviceAccount: await readServiceAccountKey(options.credentialsFile),
      fetch: options.fetch,
    });
    options.logger.info({ receiver: options.receiverUrl }, 'RISC receiver registered with Google');
    return true;
  } catch (error) {
    options.logger.warn(
      { receiver: options.receiverUrl, error: (error as Error).message },
      'RISC receiver not registered (BEHALF_RISC_RECEIVER_URL)',
    );
    return false;
  }
}
