import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { sendApiError } from './errors.js';
import { FaultInput, type Faults } from './faults.js';
import { idTokenClaims } from './oauth-routes.js';
import { applySecurityEvent, pushSecurityEvent, RiscEventInput } from './risc.js';
import type { SigningKeys } from './keys.js';
import { patternBytes, type DriveStore } from './drive-store.js';
import {
  ACCESS_TOKEN_LIFETIME_RANGE_S,
  emptyStats,
  isKnownScope,
  normalizeScopes,
  type EmulatorState,
  type EmulatorUser,
} from './state.js';
import type { EmulatorClients } from './types.js';

const MAX_SEED_BYTES = 256 * 1024 * 1024;

const UserKey = { sub: z.string().min(1).max(255).optional(), email: z.string().email().max(320).optional() };

const NewUser = z.object({
  email: z.string().email().max(320),
  sub: z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/)
    .optional(),
  email_verified: z.boolean().optional(),
  name: z.string().max(500).optional(),
  given_name: z.string().max(500).optional(),
  family_name: z.string().max(500).optional(),
  picture: z.string().url().max(2048).optional(),
  locale: z.string().max(35).optional(),
  hd: z.string().max(253).optional(),
});

const NewCode = z.object({
  ...UserKey,
  client_id: z.string().min(1).max(200),
  scope: z.string().min(1).max(4096),
  redirect_uri: z.string().max(2048).optional(),
  nonce: z.string().max(1024).optional(),
  prompt: z.string().max(100).optional(),
  /** The Sign-In SDKs ask for offline access (a server auth code is for that): default `offline`. */
  access_type: z.enum(['online', 'offline']).default('offline'),
  /** GIDSignIn and the GIS code client send `true`: earlier grants come along. */
  include_granted_scopes: z.boolean().default(true),
  /** The scopes the user left ticked on the consent screen (a subset of `scope`); default all. */
  granted_scopes: z.string().max(4096).optional(),
  /** Time-based access: the user grants access for this long (seconds), and the refresh token then dies. */
  refresh_token_lifetime_seconds: z
    .number()
    .int()
    .min(1)
    .max(366 * 86_400)
    .optional(),
  code_challenge: z
    .string()
    .regex(/^[A-Za-z0-9._~-]{43,128}$/)
    .optional(),
  code_challenge_method: z.enum(['S256', 'plain']).optional(),
});

const NewIdToken = z
  .object({
    ...UserKey,
    aud: z.string().max(200).optional(),
    azp: z.string().max(200).optional(),
    nonce: z.string().max(1024).optional(),
  })
  .catchall(z.unknown());

const SeedFile = z
  .object({
    ...UserKey,
    name: z.string().min(1).max(1024),
    mime_type: z.string().max(255).optional(),
    content_base64: z
      .string()
      .max(Math.ceil((MAX_SEED_BYTES * 4) / 3) + 4)
      .optional(),
    size: z.number().int().min(0).max(MAX_SEED_BYTES).optional(),
  })
  .refine(
    (v) => !(v.content_base64 !== undefined && v.size !== undefined),
    'give content_base64 or size, not both',
  );

const { min: MIN_LIFETIME_S, max: MAX_LIFETIME_S } = ACCESS_TOKEN_LIFETIME_RANGE_S;
const lifetimeError = `must be a whole number of seconds from ${MIN_LIFETIME_S} to ${MAX_LIFETIME_S}`;

/** Every key optional (omitted ones keep their value); an unknown key is refused, not ignored. */
const ConfigInput = z.strictObject({
  access_token_lifetime_seconds: z
    .number({ error: lifetimeError })
    .int({ error: lifetimeError })
    .min(MIN_LIFETIME_S, { error: lifetimeError })
    .max(MAX_LIFETIME_S, { error: lifetimeError })
    .optional(),
  /** The consent screen's publishing status: `testing` gives refresh tokens a 7-day life. */
  publishing_status: z.enum(['testing', 'production']).optional(),
  /** Rotate the signing keys every N seconds of the emulator's clock; null: only by hand. */
  key_rotation_seconds: z
    .number()
    .int()
    .min(60)
    .max(365 * 86_400)
    .nullable()
    .optional(),
});

export interface ControlContext {
  state: EmulatorState;
  keys: SigningKeys;
  faults: Faults;
  drive: DriveStore;
  clients: EmulatorClients;
  issuer: string;
}

/** The control API under /emulator/ (a contract for tests and demos; snake_case JSON). */
export function registerControlRoutes(app: FastifyInstance, ctx: ControlContext): void {
  const { state, clients } = ctx;
  const bad = (reply: FastifyReply, message: string, status = 400) =>
    sendApiError(reply, status, message, { message, reason: status === 404 ? 'notFound' : 'invalid' });
  const parse = <T>(schema: z.ZodType<T>, body: unknown, reply: FastifyReply): T | undefined => {
    const result = schema.safeParse(body ?? {});
    if (result.success) return result.data;
    const issue = result.error.issues[0];
    bad(reply, `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
    return undefined;
  };
  const user = (
    key: { sub?: string | undefined; email?: string | undefined },
    reply: FastifyReply,
  ): EmulatorUser | undefined => {
    if (key.sub === undefined && key.email === undefined) {
      bad(reply, 'give sub or email');
      return undefined;
    }
    const found = state.findUser(key);
    if (found === undefined) bad(reply, 'no such user; create it with POST /emulator/users', 404);
    return found;
  };
  // The Sign-In SDKs hand a disabled account no code: the sign-in fails on the device.
  const disabled = (reply: FastifyReply) => {
    const message =
      'the account is disabled (account-disabled was pushed); push account-enabled to let it sign in again';
    return sendApiError(reply, 403, message, { message, reason: 'accountDisabled' });
  };

  app.get('/emulator/clients', async () => ({
    server_client: {
      client_id: clients.server.clientId,
      client_secret: clients.server.clientSecret,
      redirect_uris: clients.server.redirectUris,
      javascript_origins: clients.server.javascriptOrigins,
    },
    app_clients: [
      { client_id: clients.apps.ios, platform: 'ios' },
      { client_id: clients.apps.android, platform: 'android' },
      { client_id: clients.apps.web, platform: 'web' },
    ],
  }));

  app.get('/emulator/users', async () => ({ users: [...state.users.values()] }));
  app.post('/emulator/users', async (request, reply) => {
    const input = parse(NewUser, request.body, reply);
    if (input === undefined) return reply;
    const { user: created, created: isNew } = state.addUser(input);
    return reply.code(isNew ? 201 : 200).send(created);
  });

  app.post('/emulator/codes', async (request, reply) => {
    const input = parse(NewCode, request.body, reply);
    if (input === undefined) return reply;
    const found = user(input, reply);
    if (found === undefined) return reply;
    if (state.isDisabled(found.sub)) return disabled(reply);
    const appIds: string[] = Object.values(clients.apps);
    if (input.client_id !== clients.server.clientId && !appIds.includes(input.client_id)) {
      return bad(reply, 'client_id is not a registered client (see GET /emulator/clients)');
    }
    const redirectUri = input.redirect_uri ?? '';
    if (
      redirectUri !== '' &&
      redirectUri !== 'postmessage' &&
      !clients.server.redirectUris.includes(redirectUri)
    ) {
      return bad(
        reply,
        "redirect_uri must be '' (mobile), 'postmessage' (web popup) or a registered redirect URI",
      );
    }
    const scopes = splitScopes(input.scope);
    const invalid = scopes.filter((s) => !isKnownScope(s));
    if (invalid.length > 0)
      return bad(reply, `scope: Some requested scopes were invalid. {invalid=[${invalid.join(', ')}]}`);
    const granted = input.granted_scopes === undefined ? undefined : splitScopes(input.granted_scopes);
    const requested = normalizeScopes(scopes);
    if (granted !== undefined && normalizeScopes(granted).some((s) => !requested.includes(s)))
      return bad(reply, 'granted_scopes: must be a subset of scope');
    const code = state.issueCode({
      sub: found.sub,
      clientId: clients.server.clientId,
      azp: input.client_id,
      scopes,
      grantedScopes: granted,
      accessType: input.access_type,
      includeGrantedScopes: input.include_granted_scopes,
      refreshTokenLifetimeSeconds: input.refresh_token_lifetime_seconds,
      redirectUri,
      nonce: input.nonce,
      prompt: input.prompt,
      codeChallenge: input.code_challenge,
      codeChallengeMethod: input.code_challenge_method,
    });
    return reply.code(201).send({ code });
  });

  app.post('/emulator/id-tokens', async (request, reply) => {
    const input = parse(NewIdToken, request.body, reply);
    if (input === undefined) return reply;
    const found = user(input, reply);
    if (found === undefined) return reply;
    const { sub: _sub, email: _email, aud, azp, nonce, ...overrides } = input;
    const claims = idTokenClaims(ctx, found, {
      aud: aud ?? clients.server.clientId,
      azp: azp ?? clients.apps.ios,
      scopes: ['openid', 'email', 'profile'],
      nonce,
    });
    const token = ctx.keys.signJwt({ ...claims, ...overrides });
    state.logIdToken(token, found.sub, aud ?? clients.server.clientId);
    return reply.code(201).send({ id_token: token });
  });

  app.post('/emulator/grants/revoke', async (request, reply) => {
    const input = parse(
      z.object({ ...UserKey, client_id: z.string().max(200).optional() }),
      request.body,
      reply,
    );
    if (input === undefined) return reply;
    const found = user(input, reply);
    if (found === undefined) return reply;
    return { revoked: state.revokeGrant(found.sub) };
  });

  // Every live access token of the user expires at once, as if its expires_in had run out (RFC 6749 §5.1);
  // resource servers then answer 401 invalid_token (RFC 6750 §3.1). Refresh tokens still work.
  app.post('/emulator/access-tokens/expire', async (request, reply) => {
    const input = parse(z.strictObject(UserKey), request.body, reply);
    if (input === undefined) return reply;
    const found = user(input, reply);
    if (found === undefined) return reply;
    return { expired: state.expireAccessTokens(found.sub) };
  });

  const settings = () => ({
    access_token_lifetime_seconds: state.accessTokenLifetimeSeconds,
    publishing_status: state.publishingStatus,
    key_rotation_seconds: ctx.keys.rotationSeconds ?? null,
  });
  app.get('/emulator/config', async () => settings());
  app.post('/emulator/config', async (request, reply) => {
    const input = parse(ConfigInput, request.body, reply);
    if (input === undefined) return reply;
    if (input.access_token_lifetime_seconds !== undefined)
      state.accessTokenLifetimeSeconds = input.access_token_lifetime_seconds;
    if (input.publishing_status !== undefined) state.publishingStatus = input.publishing_status;
    if (input.key_rotation_seconds !== undefined)
      ctx.keys.setRotation(input.key_rotation_seconds ?? undefined);
    return settings();
  });

  const now = () => ({ now: new Date(state.clock.now()).toISOString(), now_seconds: state.nowSeconds() });
  app.get('/emulator/clock', async () => now());
  app.post('/emulator/clock', async (request, reply) => {
    const input = parse(
      z.object({
        advance_seconds: z
          .number()
          .min(0)
          .max(10 * 365 * 86_400),
      }),
      request.body,
      reply,
    );
    if (input === undefined) return reply;
    state.clock.advance(input.advance_seconds);
    return now();
  });

  app.post('/emulator/keys/rotate', async () => ctx.keys.rotate());

  app.get('/emulator/faults', async () => ({ faults: ctx.faults.list() }));
  app.post('/emulator/faults', async (request, reply) => {
    const input = parse(FaultInput, request.body, reply);
    if (input === undefined) return reply;
    return reply.code(201).send(ctx.faults.add(input));
  });
  app.delete('/emulator/faults', async () => {
    ctx.faults.clear();
    return { cleared: true };
  });
  app.post('/emulator/faults/release', async () => ({ released: ctx.faults.release() }));

  app.get('/emulator/stats', async () => state.stats);
  app.post('/emulator/stats/reset', async () => {
    state.stats = emptyStats();
    return state.stats;
  });
  app.get('/emulator/tokens', async () => ({ tokens: state.issued }));

  // Google's RISC service pushing a security event token to a receiver
  // (https://developers.google.com/identity/protocols/risc).
  app.post('/emulator/risc/events', async (request, reply) => {
    const input = parse(RiscEventInput, request.body, reply);
    if (input === undefined) return reply;
    if (input.event !== 'verification' && input.event !== 'token-revoked') {
      const found = user(input, reply);
      if (found === undefined) return reply;
      // Google's own state changes first, whether or not the receiver then gets the event.
      applySecurityEvent(input.event, found.sub, state);
    }
    try {
      const result = await pushSecurityEvent(input, {
        state,
        keys: ctx.keys,
        issuer: ctx.issuer,
        audience: clients.server.clientId,
      });
      return { delivered: result.status === 202, receiver_status: result.status, jti: result.jti };
    } catch {
      return bad(reply, 'the receiver could not be reached', 400);
    }
  });

  app.post(
    '/emulator/drive/files',
    { bodyLimit: Math.ceil((MAX_SEED_BYTES * 4) / 3) + 4096 },
    async (request, reply) => {
      const input = parse(SeedFile, request.body, reply);
      if (input === undefined) return reply;
      const found = user(input, reply);
      if (found === undefined) return reply;
      const content =
        input.content_base64 !== undefined
          ? Buffer.from(input.content_base64, 'base64')
          : patternBytes(input.size ?? 0, `${found.sub}/${input.name}`);
      const file = ctx.drive.create({
        owner: found.sub,
        space: 'appDataFolder',
        name: input.name,
        mimeType: input.mime_type ?? 'application/octet-stream',
        content,
      });
      return reply.code(201).send(ctx.drive.resource(file));
    },
  );
}

function splitScopes(value: string): string[] {
  return value.split(' ').filter((s) => s.length > 0);
}
