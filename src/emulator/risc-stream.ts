import { generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { sendApiError } from './errors.js';
import type { SigningKeys } from './keys.js';
import { applySecurityEvent, pushSecurityEvent, RISC_EVENT_TYPES } from './risc.js';
import type { EmulatorState } from './state.js';

/** The `aud` of a management call's self-signed JWT (https://developers.google.com/identity/protocols/risc). */
export const RISC_MANAGEMENT_AUDIENCE =
  'https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService';
const PUSH = 'https://schemas.openid.net/secevent/risc/delivery-method/push';
/** The risc-configuration Google serves names the push method with the old http:// scheme. */
const PUSH_HTTP = 'http://schemas.openid.net/secevent/risc/delivery-method/push';

interface StreamConfig {
  url: string;
  eventsRequested: string[];
  enabled: boolean;
}

const StreamUpdate = z.object({
  delivery: z.object({
    delivery_method: z.string().max(200).optional(),
    url: z.string().max(2048).optional(),
  }),
  events_requested: z.array(z.string().max(200)).max(20).optional(),
});

export interface RiscStreamContext {
  state: EmulatorState;
  keys: SigningKeys;
  issuer: string;
  audience: string;
  baseUrl: () => string;
}

/**
 * Google's RISC stream-management API (https://developers.google.com/identity/protocols/risc,
 * "Register your receiver"): `POST stream:update`, `GET stream`, `POST stream:verify`,
 * `GET stream/status`, `POST stream/status:update`, under `/risc/v1beta` (where the emulator's
 * risc-configuration points) and `/v1beta` (risc.googleapis.com's own paths). Calls are authorized
 * with a service account's self-signed JWT; the emulator's one service account key comes from
 * `GET /emulator/service-account`, in the shape of the key file Google lets you download.
 *
 * Once a receiver is registered, the control calls that change a user's account at Google push
 * the matching event to it (only the event types the stream requested, only while it is enabled):
 * `POST /emulator/users/{sub}/revoke-app-access` (the user removes the app's access:
 * `tokens-revoked`), `…/revoke-sessions` (`sessions-revoked`), `…/disable` (`account-disabled`),
 * `…/enable` (`account-enabled`), `…/credential-change-required`.
 */
export class RiscStream {
  #config: StreamConfig | undefined;
  #account: { email: string; keyId: string; privateKey: string; publicKey: KeyObject } | undefined;

  constructor(private readonly ctx: RiscStreamContext) {}

  register(app: FastifyInstance): void {
    for (const prefix of ['/risc/v1beta', '/v1beta']) {
      // find-my-way reads `::` as a literal colon.
      app.post(`${prefix}/stream::update`, (request, reply) => this.#update(request, reply));
      app.get(`${prefix}/stream`, (request, reply) => this.#get(request, reply));
      app.post(`${prefix}/stream::verify`, (request, reply) => this.#verify(request, reply));
      app.get(`${prefix}/stream/status`, (request, reply) => this.#status(request, reply));
      app.post(`${prefix}/stream/status::update`, (request, reply) => this.#statusUpdate(request, reply));
    }
    app.get('/emulator/service-account', async () => this.#serviceAccountKeyFile());
    app.get('/emulator/risc/stream', async () =>
      this.#config === undefined
        ? { registered: false }
        : {
            registered: true,
            url: this.#config.url,
            events_requested: this.#config.eventsRequested,
            status: this.#config.enabled ? 'enabled' : 'disabled',
          },
    );
    const userEvents: Array<[string, keyof typeof RISC_EVENT_TYPES]> = [
      ['revoke-app-access', 'tokens-revoked'],
      ['revoke-sessions', 'sessions-revoked'],
      ['disable', 'account-disabled'],
      ['enable', 'account-enabled'],
      ['credential-change-required', 'account-credential-change-required'],
    ];
    for (const [action, event] of userEvents) {
      app.post(`/emulator/users/:sub/${action}`, async (request, reply) => {
        const { sub } = request.params as { sub: string };
        const user = this.ctx.state.users.get(sub);
        if (user === undefined)
          return controlError(reply, 404, 'no such user; create it with POST /emulator/users');
        const body = (request.body ?? {}) as Record<string, unknown>;
        const reason =
          event === 'account-disabled' && typeof body.reason === 'string' ? body.reason : undefined;
        if (reason !== undefined && reason !== 'hijacking' && reason !== 'bulk-account') {
          return controlError(reply, 400, "reason must be 'hijacking' or 'bulk-account' (or absent)");
        }
        // Google's own state changes first, whether or not a receiver is told.
        const revoked = event === 'tokens-revoked' ? this.ctx.state.revokeGrant(sub) : undefined;
        if (event !== 'tokens-revoked') applySecurityEvent(event, sub, this.ctx.state);
        const pushed = await this.notify(event, { sub, ...(reason === undefined ? {} : { reason }) });
        return { ...(revoked === undefined ? {} : { revoked }), ...pushed };
      });
    }
  }

  /** Pushes an event to the registered receiver if the stream asked for its type and is enabled. */
  async notify(
    event: keyof typeof RISC_EVENT_TYPES,
    fields: { sub?: string; reason?: string; state?: string },
  ): Promise<{ pushed: boolean; receiver_status?: number; jti?: string }> {
    const config = this.#config;
    const type = RISC_EVENT_TYPES[event];
    const wanted = event === 'verification' || config?.eventsRequested.includes(type) === true;
    if (config === undefined || !config.enabled || !wanted) return { pushed: false };
    try {
      const result = await pushSecurityEvent(
        { receiver_url: config.url, event, ...fields },
        { state: this.ctx.state, keys: this.ctx.keys, issuer: this.ctx.issuer, audience: this.ctx.audience },
      );
      return { pushed: true, receiver_status: result.status, jti: result.jti };
    } catch {
      return { pushed: true, receiver_status: 0 };
    }
  }

  async #update(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!this.#authorized(request, reply)) return reply;
    const parsed = StreamUpdate.safeParse(request.body ?? {});
    if (!parsed.success)
      return managementError(reply, 400, 'Stream configuration must contain delivery field.');
    const { delivery, events_requested: requested } = parsed.data;
    if (delivery.delivery_method === undefined)
      return managementError(reply, 400, 'Stream configuration must contain delivery_method field.');
    if (delivery.url === undefined)
      return managementError(reply, 400, 'Stream configuration must contain url field.');
    if (delivery.delivery_method !== PUSH && delivery.delivery_method !== PUSH_HTTP)
      return managementError(reply, 400, 'Unsupported delivery method.');
    if (!isReceiverUrl(delivery.url))
      return managementError(reply, 403, 'Delivery URL must be HTTPS (or http on a loopback address here).');
    const supported: string[] = Object.values(RISC_EVENT_TYPES);
    const unknown = (requested ?? []).find((type) => !supported.includes(type));
    if (unknown !== undefined) return managementError(reply, 400, `Unsupported event type: ${unknown}`);
    this.#config = {
      url: delivery.url,
      eventsRequested: requested ?? [],
      enabled: this.#config?.enabled ?? true,
    };
    return reply.send(this.#configuration(this.#config));
  }

  async #get(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!this.#authorized(request, reply)) return reply;
    if (this.#config === undefined) return managementError(reply, 404, 'Project has no RISC configuration.');
    return reply.send(this.#configuration(this.#config));
  }

  async #verify(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!this.#authorized(request, reply)) return reply;
    if (this.#config === undefined) return managementError(reply, 404, 'Project has no RISC configuration.');
    const body = (request.body ?? {}) as Record<string, unknown>;
    const state = typeof body.state === 'string' ? body.state.slice(0, 1024) : undefined;
    await this.notify('verification', state === undefined ? {} : { state });
    return reply.send({});
  }

  async #status(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!this.#authorized(request, reply)) return reply;
    if (this.#config === undefined) return managementError(reply, 404, 'Project has no RISC configuration.');
    return reply.send({ status: this.#config.enabled ? 'enabled' : 'disabled' });
  }

  async #statusUpdate(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!this.#authorized(request, reply)) return reply;
    if (this.#config === undefined) return managementError(reply, 404, 'Project has no RISC configuration.');
    const status = ((request.body ?? {}) as Record<string, unknown>).status;
    if (status !== 'enabled' && status !== 'disabled') return managementError(reply, 403, 'Invalid status.');
    // While disabled nothing is sent or kept for later.
    this.#config.enabled = status === 'enabled';
    return reply.send({ status });
  }

  #configuration(config: StreamConfig): Record<string, unknown> {
    return {
      iss: this.ctx.issuer,
      aud: [this.ctx.audience],
      jwks_uri: `${this.ctx.baseUrl()}/oauth2/v3/certs`,
      delivery: { delivery_method: PUSH, url: config.url },
      events_supported: Object.values(RISC_EVENT_TYPES),
      events_requested: config.eventsRequested,
      events_delivered: config.eventsRequested,
    };
  }

  /**
   * A self-signed JWT of the project's service account: RS256 with its key id, `iss` = `sub` = its
   * email, `aud` the management service, `iat` not in the future and `exp` at most an hour later.
   */
  #authorized(request: FastifyRequest, reply: FastifyReply): boolean {
    const token = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
    const account = this.#account;
    const claims =
      token === undefined || account === undefined ? undefined : verifySelfSigned(token, account);
    const now = this.ctx.state.nowSeconds();
    const ok =
      claims !== undefined &&
      claims.iss === account!.email &&
      claims.sub === account!.email &&
      claims.aud === RISC_MANAGEMENT_AUDIENCE &&
      typeof claims.iat === 'number' &&
      typeof claims.exp === 'number' &&
      claims.iat <= now + 60 &&
      claims.exp > now &&
      claims.exp - claims.iat <= 3600;
    if (!ok) managementError(reply, 401, 'Unauthorized.');
    return ok;
  }

  #serviceAccountKeyFile(): Record<string, string> {
    if (this.#account === undefined) {
      // Made on first use: an RSA key costs CPU every emulator start would otherwise pay.
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      this.#account = {
        email: 'risc-admin@behalf-emulator.iam.gserviceaccount.com',
        keyId: randomBytes(20).toString('hex'),
        privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        publicKey,
      };
    }
    const base = this.ctx.baseUrl();
    return {
      type: 'service_account',
      project_id: 'behalf-emulator',
      private_key_id: this.#account.keyId,
      private_key: this.#account.privateKey,
      client_email: this.#account.email,
      client_id: '100000000000000000001',
      auth_uri: `${base}/o/oauth2/auth`,
      token_uri: `${base}/token`,
    };
  }
}

function verifySelfSigned(
  token: string,
  account: { keyId: string; publicKey: KeyObject },
): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    if (header.alg !== 'RS256' || header.kid !== account.keyId) return undefined;
    const ok = verify(
      'RSA-SHA256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      account.publicKey,
      Buffer.from(parts[2]!, 'base64url'),
    );
    if (!ok) return undefined;
    const claims: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function isReceiverUrl(value: string): boolean {
  try {
    const url = new URL(value);
    if (url.protocol === 'https:') return true;
    return url.protocol === 'http:' && /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(url.hostname);
  } catch {
    return false;
  }
}

/** The management API's error table (https://developers.google.com/identity/protocols/risc). */
function managementError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return sendApiError(reply, status, message, {
    message,
    reason:
      status === 401
        ? 'unauthorized'
        : status === 404
          ? 'notFound'
          : status === 403
            ? 'forbidden'
            : 'badRequest',
  });
}

function controlError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return sendApiError(reply, status, message, { message, reason: status === 404 ? 'notFound' : 'invalid' });
}
