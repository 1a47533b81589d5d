import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Behalf } from '../behalf.js';
import { BehalfError, ERROR_CODES, isBehalfError, type ErrorCode } from '../errors.js';
import { toBehalfError } from '../http/errors.js';
import { isLoopbackAddress } from '../http/net.js';
import type { JobRunSummary } from '../jobs/index.js';
import type { SecurityLog } from '../risc/index.js';
import type { TokenService } from '../tokens/index.js';
import type { Webhooks } from '../webhooks/index.js';
import { apiKeyId, type CreatedApiKey, type Store } from '../vault/index.js';
import { ADMIN_CSS } from './assets.js';
import { html, query, segment } from './html.js';
import { apiKeysPage } from './pages/api-keys.js';
import { errorPage } from './pages/error.js';
import type { Notice } from './pages/layout.js';
import { signInPage } from './pages/sign-in.js';
import { sweepPage } from './pages/sweep.js';
import { deleteUserPage, userPage } from './pages/user.js';
import { STATUS_FILTERS, usersPage } from './pages/users.js';
import { webhooksPage } from './pages/webhooks.js';
import {
  clearedSessionCookie,
  csrfMatches,
  readSessionCookie,
  sessionCookie,
  type AdminSession,
  type AdminSessions,
  type NoSession,
} from './sessions.js';
import type { SweepTracker } from './sweeps.js';

/** What the console works with, built by {@link createAdminConsole} (./index.ts). */
export interface AdminConsole {
  sessions: AdminSessions;
  sweeps: SweepTracker;
  behalf: Pick<Behalf, 'signOut' | 'deleteUser' | 'clientId'>;
  tokens: Pick<TokenService, 'getAccessToken'>;
  store: Pick<Store, 'searchUsers' | 'getUser' | 'getGrant' | 'getLastRefresh' | 'listApiKeys'>;
  createApiKey: (name: string) => Promise<CreatedApiKey>;
  /** NOT_FOUND when there is no such key. */
  revokeApiKey: (id: string) => Promise<void>;
  securityLog: Pick<SecurityLog, 'getState' | 'listEvents'>;
  jobRuns: (sub: string, limit: number) => Promise<JobRunSummary[]>;
  webhooks: Pick<Webhooks, 'addEndpoint' | 'listEndpoints' | 'removeEndpoint' | 'listDeliveries'>;
}

export interface AdminRouteOptions {
  console: AdminConsole;
  /** behalf serves TLS itself. */
  tls: boolean;
  /** A TLS-terminating proxy is in front (BEHALF_TRUST_PROXY). */
  trustProxy: boolean;
  /** Sign-in attempts per client address per minute (BEHALF_SIGNIN_RATE_LIMIT, as for apps). */
  rateLimit: number;
}

/**
 * Content-Security-Policy: `default-src 'self'` and nothing inline (the pages have no script and
 * no inline style); no framing, no foreign form targets, no <base>.
 */
const CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const SUB = /^[\x21-\x7e]{1,255}$/;
/** Where a sign-in may return to: a console path, no scheme, host, empty or dot segments. */
const NEXT =
  /^\/admin\/(?:users|sweep|api-keys|webhooks)(?:\/(?!\.\.?(?:[/?]|$))[A-Za-z0-9._~%!$&'()*+,;=:@-]+)*(?:\?[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?$/;
const FORM_LIMIT = 8 * 1024;

/** What a code means on the console, when an action on a user fails. */
const ACTION_ERRORS: Partial<Record<ErrorCode, string>> = {
  NEEDS_CONSENT:
    'Google no longer accepts this grant (revoked, expired or never offline): the user must sign in again with consent.',
  USER_NOT_FOUND: 'No grant is stored for this user.',
  GOOGLE_UNAVAILABLE:
    'Google could not be reached or is rate-limiting: nothing was changed. Try again shortly.',
  GOOGLE_ERROR: 'Google answered something unexpected: nothing was changed.',
  CLIENT_MISCONFIGURED: "Google refused this server's OAuth client: check the client secret file.",
  STORE_UNAVAILABLE: 'The database could not be reached: try again shortly.',
};

/**
 * The admin console under /admin: server-rendered pages, no script, every change a POST carrying
 * the session's CSRF token, from this origin only.
 */
export function registerAdminRoutes(app: FastifyInstance, options: AdminRouteOptions): void {
  const { console: admin } = options;
  const { idleTimeoutMs, lifetimeMs } = admin.sessions;
  const signedOutReasons: Record<string, Notice> = {
    expired: {
      kind: 'error',
      text: `Your session expired (${idleTimeoutMs / 60_000} minutes without activity, or ${lifetimeMs / 3_600_000} hours after sign-in). Sign in again.`,
    },
    invalid: {
      kind: 'error',
      text: 'Your session has ended: it was signed out, or its API key was revoked. Sign in again.',
    },
    signed_out: { kind: 'ok', text: 'You are signed out.' },
  };
  const secure = (request: FastifyRequest) =>
    options.tls || options.trustProxy || request.protocol === 'https';

  void app.register(
    async (scope) => {
      scope.addHook('onRequest', async (request) => {
        checkTransport(request, options.trustProxy);
      });
      // A sweep this instance runs stops with the server, recorded as stopped, before the database closes.
      scope.addHook('onClose', async () => {
        await admin.sweeps.close();
      });
      scope.addHook('onSend', async (_request, reply, payload) => {
        reply.header('content-security-policy', CSP);
        reply.header('x-frame-options', 'DENY');
        reply.header('x-content-type-options', 'nosniff');
        // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with a form post, and the
        // console's own forms would be refused as cross-site. Other sites still get no referrer.
        reply.header('referrer-policy', 'same-origin');
        reply.header('cross-origin-opener-policy', 'same-origin');
        if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
        return payload;
      });
      scope.setErrorHandler(async (error, request, reply) => {
        const failure = toBehalfError(error);
        if (failure.code === 'INTERNAL') {
          request.log.error(
            { err: { type: (error as Error | undefined)?.name ?? typeof error } },
            'unexpected error in the admin console',
          );
        }
        if (failure.retryAfter !== undefined)
          reply.header('retry-after', String(Math.ceil(failure.retryAfter)));
        if (failure.code === 'RATE_LIMITED' && request.url.startsWith('/admin/sign-in')) {
          const notice: Notice = {
            kind: 'error',
            text: `Too many sign-in attempts from this address. Wait ${failure.retryAfter ?? 60} seconds and try again.`,
          };
          return sendPage(reply.code(429), signInPage({ notice }));
        }
        return sendPage(
          reply.code(failure.status),
          errorPage({ title: titleFor(failure.code), code: failure.code, message: failure.message }),
        );
      });
      scope.setNotFoundHandler(async (_request, reply) =>
        sendPage(
          reply.code(404),
          errorPage({
            title: 'Not found',
            code: 'NOT_FOUND',
            message: 'There is no such page in the console.',
          }),
        ),
      );

      /** The request's session, or a redirect to the sign-in page (and null). */
      const sessionOf = async (
        request: FastifyRequest,
        reply: FastifyReply,
      ): Promise<AdminSession | null> => {
        const token = readSessionCookie(request.headers.cookie, secure(request));
        const found = await admin.sessions.resume(token);
        if (typeof found !== 'string') return found;
        toSignIn(request, reply, found);
        return null;
      };

      const toSignIn = (request: FastifyRequest, reply: FastifyReply, why: NoSession | 'signed_out') => {
        if (why !== 'missing') reply.header('set-cookie', clearedSessionCookie(secure(request)));
        const next = request.method === 'GET' && NEXT.test(request.url) ? request.url : undefined;
        void reply.redirect(
          `/admin/sign-in${query({ reason: why === 'missing' ? undefined : why, next })}`,
          303,
        );
      };

      /** A state-changing form post: from this origin, with a session, carrying its CSRF token. */
      const formOf = async (
        request: FastifyRequest,
        reply: FastifyReply,
      ): Promise<{ session: AdminSession; form: Form } | null> => {
        refuseCrossSite(request, secure(request));
        const form = readForm(request);
        const session = await sessionOf(request, reply);
        if (session === null) return null;
        if (!csrfMatches(session, form.get('csrf', 200))) {
          throw new BehalfError(
            'CSRF_TOKEN_INVALID',
            'This form is out of date or came from another page. Go back, reload the page and try again.',
          );
        }
        return { session, form };
      };

      const logAction = (
        request: FastifyRequest,
        session: AdminSession,
        action: string,
        fields: Record<string, string> = {},
      ) => request.log.info({ admin: session.apiKeyId, action, ...fields }, 'admin console action');

      scope.get('/assets/admin.css', async (_request, reply) =>
        reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(ADMIN_CSS),
      );

      scope.get('/', async (_request, reply) => reply.redirect('/admin/users', 303));

      scope.get('/sign-in', async (request, reply) => {
        const params = request.query as Record<string, unknown>;
        const reason = typeof params.reason === 'string' ? signedOutReasons[params.reason] : undefined;
        const next = typeof params.next === 'string' && NEXT.test(params.next) ? params.next : undefined;
        return sendPage(reply, signInPage({ notice: reason, next }));
      });

      scope.post(
        '/sign-in',
        { bodyLimit: FORM_LIMIT, config: { rateLimit: { max: options.rateLimit, timeWindow: 60_000 } } },
        async (request, reply) => {
          refuseCrossSite(request, secure(request));
          const form = readForm(request);
          const key = form.get('key', 512) ?? '';
          const next = form.get('next', 2048);
          const opened = key === '' ? null : await admin.sessions.open(key.trim());
          if (opened === null) {
            request.log.info({ keyId: apiKeyId(key.trim()) ?? null }, 'admin console sign-in refused');
            const notice: Notice = {
              kind: 'error',
              text: 'That is not a valid service API key (or it was revoked).',
            };
            return sendPage(
              reply.code(401),
              signInPage({ notice, next: next !== undefined && NEXT.test(next) ? next : undefined }),
            );
          }
          request.log.info({ keyId: apiKeyId(key.trim()) }, 'admin console sign-in');
          reply.header('set-cookie', sessionCookie(opened.token, secure(request)));
          return reply.redirect(next !== undefined && NEXT.test(next) ? next : '/admin/users', 303);
        },
      );

      scope.post('/sign-out', { bodyLimit: FORM_LIMIT }, async (request, reply) => {
        const posted = await formOf(request, reply);
        if (posted === null) return reply;
        await admin.sessions.close(posted.session.token);
        logAction(request, posted.session, 'sign_out');
        toSignIn(request, reply, 'signed_out');
        return reply;
      });

      scope.get('/users', async (request, reply) => {
        const session = await sessionOf(request, reply);
        if (session === null) return reply;
        const params = request.query as Record<string, unknown>;
        const q = typeof params.q === 'string' ? params.q.trim().slice(0, 320) : '';
        const status = STATUS_FILTERS.find((s) => s.value === params.status)?.value;
        const after = typeof params.after === 'string' && params.after !== '' ? params.after : undefined;
        const [page, exact] = await Promise.all([
          admin.store.searchUsers({
            clientId: admin.behalf.clientId,
            limit: 50,
            ...(q === '' ? {} : { emailPrefix: q }),
            ...(status === undefined ? {} : { status }),
            ...(after === undefined ? {} : { after }),
          }),
          q !== '' && SUB.test(q) && after === undefined ? admin.store.getUser(q) : null,
        ]);
        const done =
          params.done === 'deleted'
            ? { kind: 'ok' as const, text: 'The user was deleted, and their grant revoked at Google.' }
            : undefined;
        return sendPage(reply, usersPage({ session, q, status, after, page, exact, notice: done }));
      });

      const userOf = async (params: unknown) => {
        const sub = (params as { sub?: unknown }).sub;
        if (typeof sub !== 'string' || !SUB.test(sub))
          throw new BehalfError('INVALID_REQUEST', 'The user id in the address is malformed.');
        const user = await admin.store.getUser(sub);
        if (user === null)
          throw new BehalfError('USER_NOT_FOUND', 'No such user: they have not signed in, or were deleted.');
        return user;
      };

      scope.get('/users/:sub', async (request, reply) => {
        const session = await sessionOf(request, reply);
        if (session === null) return reply;
        const user = await userOf(request.params);
        const { clientId } = admin.behalf;
        const [grant, lastRefresh, security, securityEvents, jobRuns] = await Promise.all([
          admin.store.getGrant(user.sub, clientId),
          admin.store.getLastRefresh(user.sub, clientId),
          admin.securityLog.getState(user.sub),
          admin.securityLog.listEvents(user.sub, 20),
          admin.jobRuns(user.sub, 20),
        ]);
        const view = { session, user, grant, lastRefresh, security, securityEvents, jobRuns };
        return sendPage(
          reply,
          userPage({
            ...view,
            notice: userNotice(request.query as Record<string, unknown>, grant?.accessTokenExpiresAt ?? null),
          }),
        );
      });

      scope.post('/users/:sub/check', { bodyLimit: FORM_LIMIT }, async (request, reply) => {
        const posted = await formOf(request, reply);
        if (posted === null) return reply;
        const user = await userOf(request.params);
        logAction(request, posted.session, 'check', { sub: user.sub });
        // A forced refresh through the token service, as any caller's would be (the token itself is dropped here).
        const outcome = await admin.tokens.getAccessToken(user.sub, { forceRefresh: true }).then(
          () => 'ok',
          (error: unknown) => actionFailure(error),
        );
        return reply.redirect(`/admin/users/${segment(user.sub)}${query({ check: outcome })}`, 303);
      });

      scope.post('/users/:sub/sign-out', { bodyLimit: FORM_LIMIT }, async (request, reply) => {
        const posted = await formOf(request, reply);
        if (posted === null) return reply;
        const user = await userOf(request.params);
        logAction(request, posted.session, 'sign_out_user', { sub: user.sub });
        const outcome = await admin.behalf.signOut(user.sub).then(
          (result) => ({ done: result.revokedAtGoogle ? 'signed-out' : 'signed-out-local' }),
          (error: unknown) => ({ error: actionFailure(error) }),
        );
        return reply.redirect(`/admin/users/${segment(user.sub)}${query(outcome)}`, 303);
      });

      scope.get('/users/:sub/delete', async (request, reply) => {
        const session = await sessionOf(request, reply);
        if (session === null) return reply;
        return sendPage(reply, deleteUserPage({ session, user: await userOf(request.params) }));
      });

      scope.post('/users/:sub/delete', { bodyLimit: FORM_LIMIT }, async (request, reply) => {
        const posted = await formOf(request, reply);
        if (posted === null) return reply;
        const user = await userOf(request.params);
        if (posted.form.get('confirm', 10) !== 'yes') {
          const notice: Notice = { kind: 'error', text: 'Tick the box to confirm the deletion.' };
          return sendPage(reply.code(400), deleteUserPage({ session: posted.session, user, notice }));
        }
        logAction(request, posted.session, 'delete_user', { sub: user.sub });
        try {
          await admin.behalf.deleteUser(user.sub);
        } catch (error) {
          return reply.redirect(
            `/admin/users/${segment(user.sub)}${query({ error: actionFailure(error) })}`,
            303,
          );
        }
        return reply.redirect('/admin/users?done=deleted', 303);
      });

      scope.get('/sweep', async (request, reply) => {
        const session = await sessionOf(request, reply);
        if (session === null) return reply;
        const done = (request.query as Record<string, unknown>).done;
        const notice: Notice | undefined =
          done === 'started'
            ? { kind: 'ok', text: 'Sweep started.' }
            : done === 'running'
              ? { kind: 'info', text: 'A sweep is already running: here is its progress.' }
              : undefined;
        const runs = await admin.sweeps.recent(6);
        return sendPage(
          reply,
          sweepPage({ session, runs, isStalled: (run) => admin.sweeps.isStalled(run), notice }),
        );
      });

      scope.post('/sweep', { bodyLimit: FORM_LIMIT }, async (request, reply) => {
        const posted = await formOf(request, reply);
        if (posted === null) return reply;
        const force = posted.form.get('force', 10) === 'yes';
        const { started } = await admin.sweeps.start({ force, startedBy: posted.session.apiKeyId });
        if (started) logAction(request, posted.session, 'sweep', { force: String(force) });
        return reply.redirect(`/admin/sweep?done=${started ? 'started' : 'running'}`, 303);
      });

      scope.get('/api-keys', async (request, reply) => {
        const session = await sessionOf(request, reply);
        if (session === null) return reply;
        const notice: Notice | undefined =
          (request.query as Record<string, unknown>).done === 'revoked'
            ? { kind: 'ok', text: 'The key was revoked, and its console sessions ended.' }
            : undefined;
        return sendPage(reply, apiKeysPage({ session, keys: await admin.store.listApiKeys(), notice }));
      });

      scope.post('/api-keys', { bodyLimit: FORM_LIMIT }, async (request, reply) => {
        const posted = await formOf(request, reply);
        if (posted === null) return reply;
        const { session } = posted;
        let created: CreatedApiKey;
        try {
          created = await admin.createApiKey(posted.form.get('name', 200) ?? '');
        } catch (error) {
          if (!isBehalfError(error) || error.code !== 'INVALID_REQUEST') throw error;
          const notice: Notice = { kind: 'error', text: error.message };
          return sendPage(
            reply.code(400),
            apiKeysPage({ session, keys: await admin.store.listApiKeys(), notice }),
          );
        }
        logAction(request, session, 'create_api_key', { keyId: created.id });
        // Answered here, not redirected: the key must not travel in a URL, and is shown this once.
        return sendPage(reply, apiKeysPage({ session, keys: await admin.store.listApiKeys(), created }));
      });

      scope.post('/api-keys/:id/revoke', { bodyLimit: FORM_LIMIT }, async (request, reply) => {
        const posted = await formOf(request, reply);
        if (posted === null) return reply;
        const id = String((request.params as { id?: unknown }).id);
        await admin.revokeApiKey(id);
        logAction(request, posted.session, 'revoke_api_key', { keyId: id });
        // Revoking the key this session was opened with ends this session too.
        if (id === posted.session.apiKeyId) {
          toSignIn(request, reply, 'invalid');
          return reply;
        }
        return reply.redirect('/admin/api-keys?done=revoked', 303);
      });

      /** The webhooks page's endpoints and recent deliveries. */
      const webhookLists = async () => {
        const [endpoints, deliveries] = await Promise.all([
          admin.webhooks.listEndpoints(),
          admin.webhooks.listDeliveries({ limit: 50 }),
        ]);
        return { endpoints, deliveries };
      };

      scope.get('/webhooks', async (request, reply) => {
        const session = await sessionOf(request, reply);
        if (session === null) return reply;
        const notice: Notice | undefined =
          (request.query as Record<string, unknown>).done === 'removed'
            ? { kind: 'ok', text: 'The endpoint was removed; its pending deliveries will not be sent.' }
            : undefined;
        return sendPage(reply, webhooksPage({ session, ...(await webhookLists()), notice }));
      });

      scope.post('/webhooks', { bodyLimit: FORM_LIMIT }, async (request, reply) => {
        const posted = await formOf(request, reply);
        if (posted === null) return reply;
        const { session, form } = posted;
        const url = form.get('url', 2048) ?? '';
        const events = form.getAll('events', 64, 20);
        let created: Awaited<ReturnType<AdminConsole['webhooks']['addEndpoint']>>;
        try {
          // No box ticked: every event type, also those added later.
          created = await admin.webhooks.addEndpoint({ url, events: events.length === 0 ? null : events });
        } catch (error) {
          if (!isBehalfError(error) || error.code !== 'INVALID_REQUEST') throw error;
          const notice: Notice = { kind: 'error', text: error.message };
          return sendPage(
            reply.code(400),
            webhooksPage({ session, ...(await webhookLists()), form: { url, events }, notice }),
          );
        }
        logAction(request, session, 'add_webhook', { endpoint: created.endpoint.id });
        // Answered here, not redirected: the secret must not travel in a URL, and is shown this once.
        return sendPage(reply, webhooksPage({ session, ...(await webhookLists()), created }));
      });

      scope.post('/webhooks/:id/remove', { bodyLimit: FORM_LIMIT }, async (request, reply) => {
        const posted = await formOf(request, reply);
        if (posted === null) return reply;
        const id = String((request.params as { id?: unknown }).id);
        if (!(await admin.webhooks.removeEndpoint(id)))
          throw new BehalfError('NOT_FOUND', 'No such webhook endpoint: it may have been removed already.');
        logAction(request, posted.session, 'remove_webhook', { endpoint: id });
        return reply.redirect('/admin/webhooks?done=removed', 303);
      });
    },
    { prefix: '/admin' },
  );
}

function sendPage(reply: FastifyReply, page: string): FastifyReply {
  return reply.type('text/html; charset=utf-8').send(page);
}

/** A form body's fields, each read as one string of bounded length or not at all. */
interface Form {
  get(name: string, maxLength: number): string | undefined;
  /** A field sent several times (checkboxes): its strings of bounded length, at most `maxCount`. */
  getAll(name: string, maxLength: number, maxCount: number): string[];
}

function readForm(request: FastifyRequest): Form {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded')
    throw new BehalfError(
      'UNSUPPORTED_MEDIA_TYPE',
      'Console forms are sent as application/x-www-form-urlencoded.',
    );
  const body = (request.body ?? {}) as Record<string, unknown>;
  return {
    get: (name, maxLength) => {
      const value = body[name];
      return typeof value === 'string' && value.length <= maxLength ? value : undefined;
    },
    getAll: (name, maxLength, maxCount) => {
      const value = body[name];
      const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
      if (values.length > maxCount) throw new BehalfError('INVALID_REQUEST', 'The form has too many values.');
      return values.filter((v): v is string => typeof v === 'string' && v.length <= maxLength);
    },
  };
}

/**
 * Refuse a post another site made a browser send: Fetch Metadata where the browser sends it, and
 * the Origin header, which must name this server (its scheme too, when behalf is behind TLS). The
 * SameSite=Strict cookie already keeps the session out of such a request; this refuses it before
 * anything is read (sign-in included, so no other site can sign a browser in).
 */
function refuseCrossSite(request: FastifyRequest, secure: boolean): void {
  const site = request.headers['sec-fetch-site'];
  const refuse = () => {
    throw new BehalfError('ORIGIN_NOT_ALLOWED', 'The console accepts forms only from its own pages.');
  };
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') refuse();
  const origin = request.headers.origin;
  if (origin === undefined) return;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return refuse();
  }
  if (
    url.host !== request.host ||
    (secure ? url.protocol !== 'https:' : url.protocol !== 'http:' && url.protocol !== 'https:')
  )
    refuse();
}

/**
 * The console takes an API key and shows user data: over plain HTTP only from loopback (local
 * mode), else behind TLS or a trusted TLS proxy, as sign-in codes.
 */
function checkTransport(request: FastifyRequest, trustProxy: boolean): void {
  if (request.protocol === 'https') return;
  if (
    trustProxy
      ? request.headers['x-forwarded-proto'] === undefined
      : isLoopbackAddress(request.socket.remoteAddress)
  )
    return;
  throw new BehalfError(
    'INSECURE_TRANSPORT',
    'The console is served over HTTPS only (plain HTTP from this machine only). Give behalf a certificate, or set BEHALF_TRUST_PROXY behind a TLS-terminating proxy.',
  );
}

/** The stable code for a failed action, shown on the user's page. */
function actionFailure(error: unknown): ErrorCode {
  if (!isBehalfError(error)) throw error;
  return error.code;
}

function userNotice(
  params: Record<string, unknown>,
  accessTokenExpiresAt: number | null,
): Notice | undefined {
  if (params.check === 'ok') {
    const until =
      accessTokenExpiresAt === null
        ? ''
        : ` A new access token is stored, valid until ${new Date(accessTokenExpiresAt).toISOString().slice(0, 19).replace('T', ' ')} UTC.`;
    return { kind: 'ok', text: `Checked now: Google accepted the grant.${until}` };
  }
  if (params.done === 'signed-out')
    return { kind: 'ok', text: 'Signed out: the grant was revoked at Google and its tokens erased.' };
  if (params.done === 'signed-out-local')
    return { kind: 'ok', text: 'Signed out: the tokens were erased (Google had nothing left to revoke).' };
  const code =
    typeof params.check === 'string'
      ? params.check
      : typeof params.error === 'string'
        ? params.error
        : undefined;
  if (code === undefined || !(code in ERROR_CODES)) return undefined;
  const prefix = typeof params.check === 'string' ? 'Checked now: ' : '';
  return {
    kind: 'error',
    text: html`${prefix}${ACTION_ERRORS[code as ErrorCode] ?? 'The action failed.'} <span class="hint">(<code>${code}</code>)</span>`,
  };
}

function titleFor(code: ErrorCode): string {
  switch (code) {
    case 'USER_NOT_FOUND':
    case 'NOT_FOUND':
      return 'Not found';
    case 'CSRF_TOKEN_INVALID':
    case 'ORIGIN_NOT_ALLOWED':
      return 'Form refused';
    case 'INSECURE_TRANSPORT':
      return 'HTTPS required';
    default:
      return ERROR_CODES[code].status >= 500 ? 'Something went wrong' : 'Request refused';
  }
}
