import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { SigningKeys } from './keys.js';
import type { EmulatorState } from './state.js';

/**
 * Cross-Account Protection event types (https://developers.google.com/identity/protocols/risc,
 * "Supported event types"): two in the oauth namespace, the rest in risc.
 */
export const RISC_EVENT_TYPES = {
  'sessions-revoked': 'https://schemas.openid.net/secevent/risc/event-type/sessions-revoked',
  'tokens-revoked': 'https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked',
  'token-revoked': 'https://schemas.openid.net/secevent/oauth/event-type/token-revoked',
  'account-disabled': 'https://schemas.openid.net/secevent/risc/event-type/account-disabled',
  'account-enabled': 'https://schemas.openid.net/secevent/risc/event-type/account-enabled',
  'account-purged': 'https://schemas.openid.net/secevent/risc/event-type/account-purged',
  'account-credential-change-required':
    'https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required',
  verification: 'https://schemas.openid.net/secevent/risc/event-type/verification',
} as const;

export const RiscEventInput = z.object({
  /** Where Google would push: the receiver registered with stream:update. */
  receiver_url: z.string().url().max(2048),
  event: z.enum(
    Object.keys(RISC_EVENT_TYPES) as [keyof typeof RISC_EVENT_TYPES, ...Array<keyof typeof RISC_EVENT_TYPES>],
  ),
  sub: z.string().max(255).optional(),
  email: z.string().max(320).optional(),
  /** account-disabled: `hijacking` | `bulk-account`. */
  reason: z.string().max(100).optional(),
  /** token-revoked: the refresh token to name, and how (`prefix` or `hash_base64_sha512_sha512`). */
  token: z.string().max(4096).optional(),
  token_identifier_alg: z.enum(['prefix', 'hash_base64_sha512_sha512']).optional(),
  /** verification: the state to echo. */
  state: z.string().max(1024).optional(),
  /** Send the same jti twice (Google redelivers; receivers must de-duplicate). */
  jti: z.string().max(200).optional(),
});

/**
 * What Google itself does about the event, before telling the receiver: an event reports a change
 * that has already happened at Google (https://developers.google.com/identity/protocols/risc).
 * `tokens-revoked`: the user's tokens for the project are revoked. `account-disabled`: so are they,
 * and the account cannot sign in until `account-enabled`. Other events change nothing here.
 */
export function applySecurityEvent(
  event: z.infer<typeof RiscEventInput>['event'],
  sub: string,
  state: EmulatorState,
): void {
  if (event === 'tokens-revoked') state.revokeGrant(sub);
  else if (event === 'account-disabled') state.disableUser(sub);
  else if (event === 'account-enabled') state.enableUser(sub);
}

/**
 * Builds and pushes a security event token as Google's RISC service would: one signed SET per HTTPS
 * POST, signed with the same keys as ID tokens (https://developers.google.com/identity/protocols/risc).
 * Google does not document these details; chosen here (see docs/emulator.md):
 * `Content-Type: application/secevent+jwt` (RFC 8935), header `typ: secevent+jwt`, no `exp`, and
 * `iss` equal to the risc-configuration issuer (no trailing slash).
 */
export async function pushSecurityEvent(
  input: z.infer<typeof RiscEventInput>,
  ctx: { state: EmulatorState; keys: SigningKeys; issuer: string; audience: string },
): Promise<{ status: number; jti: string }> {
  const type = RISC_EVENT_TYPES[input.event];
  const subject =
    input.event === 'token-revoked'
      ? {
          subject_type: 'oauth_token',
          token_type: 'refresh_token',
          token_identifier_alg: input.token_identifier_alg ?? 'hash_base64_sha512_sha512',
          token:
            (input.token_identifier_alg ?? 'hash_base64_sha512_sha512') === 'prefix'
              ? (input.token ?? '').slice(0, 16)
              : doubleSha512(input.token ?? ''),
        }
      : input.event === 'verification'
        ? undefined
        : input.email !== undefined && input.sub === undefined
          ? { subject_type: 'id_token_claims', email: input.email }
          : { subject_type: 'iss-sub', iss: ctx.issuer, sub: input.sub };
  const jti = input.jti ?? randomBytes(16).toString('hex');
  const payload = {
    iss: ctx.issuer,
    aud: ctx.audience,
    iat: ctx.state.nowSeconds(),
    jti,
    events: {
      [type]: {
        ...(subject === undefined ? {} : { subject }),
        ...(input.reason === undefined ? {} : { reason: input.reason }),
        ...(input.state === undefined ? {} : { state: input.state }),
      },
    },
  };
  const token = ctx.keys.signJwt(payload, undefined, 'secevent+jwt');
  const response = await fetch(input.receiver_url, {
    method: 'POST',
    headers: { 'content-type': 'application/secevent+jwt', accept: 'application/json' },
    body: token,
    signal: AbortSignal.timeout(10_000),
  });
  await response.body?.cancel();
  return { status: response.status, jti };
}

/** base64 (padded) of SHA-512 applied twice: the `hash_base64_sha512_sha512` identifier. */
export function doubleSha512(token: string): string {
  const once = createHash('sha512').update(token, 'utf8').digest();
  return createHash('sha512').update(once).digest('base64');
}
