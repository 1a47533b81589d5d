import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Behalf } from './behalf.js';
import {
  createUserFetch,
  createUserRequest,
  GoogleHostAllowList,
  undiciRequest,
  type HttpRequestLike,
} from './calls/index.js';
import { systemClock, type Clock } from './clock.js';
import type { BehalfConfig } from './config/index.js';
import { BehalfError } from './errors.js';
import { GOOGLE_DISCOVERY_URL, GoogleDiscovery, GoogleOAuthClient, type FetchLike } from './google/index.js';
import { requestFetch } from './google/request-fetch.js';
import { createAdminConsole } from './admin/index.js';
import { ApiKeyCache } from './http/api-key-cache.js';
import { buildServer } from './http/server.js';
import { GoogleKeySet, IdTokenVerifier } from './idtoken/index.js';
import { JobRunner, PostgresJobBackend, SqliteJobBackend, type JobRunnerOptions } from './jobs/index.js';
import { createLogger } from './logging.js';
import { PostgresSecurityLog, SecurityEventReceiver, SqliteSecurityLog } from './risc/index.js';
import { SignInService } from './signin/index.js';
import { sweepGrants, TokenService } from './tokens/index.js';
import {
  authenticateApiKey,
  countGrantsByStatus,
  listApiKeys,
  loadKeyring,
  onApiKeyRevoked,
  PostgresStore,
  revokeApiKey,
  SqliteStore,
  userStates,
  Vault,
  verifyKeyring,
  type Store,
} from './vault/index.js';
import {
  openDatabase,
  POSTGRES_SCHEMA_VERSION,
  SQLITE_SCHEMA_VERSION,
  type Database,
} from './database/index.js';
import { Metrics, Readiness } from './observability/index.js';
import { Webhooks, webhookStoreFor, type WebhooksOptions } from './webhooks/index.js';

/** What the composition root may be handed instead of the real thing (tests, embedding apps). */
export interface Dependencies {
  /** Where behalf reads the time (token expiry, leases, ID token checks). Default: the system clock. */
  clock?: Clock;
  /**
   * The HTTP client for Google's OAuth and OpenID endpoints and for `behalf.fetch`. Default: for
   * `behalf.fetch` the global `fetch`; for Google's endpoints a `fetch` over undici's `request`.
   */
  fetch?: FetchLike;
  /** The HTTP client of `behalf.request` and the proxy (Node streams both ways). Default: undici's `request`. */
  request?: HttpRequestLike;
  /** A pino logger for behalf's own lines (no token, code, secret or key is ever logged). Default: a new one at `logLevel`. */
  logger?: Logger;
  /** Webhook delivery: DNS for the URL checks, timeout, poll interval, jitter. */
  webhooks?: Pick<WebhooksOptions, 'resolveHost' | 'delivery'>;
}

export interface BehalfRuntime {
  config: BehalfConfig;
  behalf: Behalf;
  /** The one database object: its pool (or connection) serves the vault, security log and jobs. */
  database: Database;
  store: Store;
  vault: Vault;
  tokens: TokenService;
  clock: Clock;
  logger: Logger;
  /** Prometheus metrics (GET /metrics). */
  metrics: Metrics;
  /** The checks behind GET /readyz. */
  readiness: Readiness;
  /** Set when local mode generated the encryption key file on this start. */
  createdKeyFile: boolean;
}

/**
 * The one place that builds the world: config, clock, HTTP client, store, keyring and logger are
 * wired into the pieces here, and every piece receives only what it uses.
 */
export async function createRuntime(config: BehalfConfig, deps: Dependencies = {}): Promise<BehalfRuntime> {
  const clock = deps.clock ?? systemClock;
  const fetchImpl = deps.fetch ?? globalThis.fetch;
  // Google's OAuth and OpenID endpoints answer small JSON: read whole, over undici's request.
  const googleFetch = deps.fetch ?? requestFetch;
  const logger = deps.logger ?? createLogger(config.logLevel);
  const metrics = new Metrics({ clock });

  const { keyring, createdKeyFile } = await loadKeyring(config);
  const database = await openDatabase(config.databaseUrl);
  // Whatever fails from here on (a wrong key, an unusable discovery URL) closes the database, so
  // a failed start leaves no pool or listener behind to keep an embedding process alive.
  try {
    const store: Store =
      database.kind === 'postgres'
        ? new PostgresStore(database, { clock })
        : new SqliteStore(database, { clock });
    if (database.kind === 'postgres') {
      database.changes.onListenerState = (state) => {
        if (state === 'lost')
          logger.warn('grant change listener lost: token requests read the database until it is back');
        else logger.info('grant change listener up: changes made by other instances are heard');
      };
    }
    // Before anything can be written: a key id whose bytes differ from the ones that wrote this
    // database stops start-up here, with one line naming the id.
    await verifyKeyring(store, keyring, clock.now());
    const vault = new Vault(store, keyring);

    const discovery = new GoogleDiscovery(
      config.google.discoveryUrl,
      googleFetch,
      clock,
      config.google.timeoutMs,
      metrics.google,
    );
    const oauth = new GoogleOAuthClient(
      { clientId: config.google.clientId, clientSecret: config.google.clientSecret },
      discovery,
      googleFetch,
      clock,
      config.google.timeoutMs,
      metrics.google,
    );
    const { jwksUri, issuer } = await startupEndpoints(config, discovery);
    const keys = new GoogleKeySet({
      jwksUri,
      fetch: googleFetch,
      clock,
      observe: (seconds) => metrics.google.request('jwks', seconds),
    });
    const verifier = new IdTokenVerifier({
      keys,
      clock,
      policy: {
        audience: config.google.clientId,
        allowedAuthorizedParties: config.google.appClientIds,
        issuers: uniqueIssuers(issuer),
        ...(config.google.hostedDomain === undefined ? {} : { hostedDomain: config.google.hostedDomain }),
      },
    });
    const signInService = new SignInService({
      oauth,
      verifier,
      vault,
      clock,
      requiredScopes: config.google.requiredScopes,
      redirectUris: config.google.redirectUris,
    });
    const tokens = new TokenService({ vault, oauth, clock, leaseMs: config.refreshLeaseMs });
    const securityLog =
      database.kind === 'sqlite' ? new SqliteSecurityLog(database) : new PostgresSecurityLog(database);
    const securityEvents = new SecurityEventReceiver({
      keys,
      clock,
      vault,
      log: securityLog,
      clientId: config.google.clientId,
      audiences: [config.google.clientId, ...config.google.appClientIds],
      // Google's SETs come from the same issuer as its ID tokens (its risc-configuration document says
      // so: https://developers.google.com/identity/protocols/risc#validate).
      issuer,
      logger,
      onEvent: metrics.securityEvent,
    });
    const webhooks = new Webhooks({
      store: webhookStoreFor(database),
      keyring,
      clock,
      logger,
      allowPrivate: config.webhooks.allowPrivate,
      ...deps.webhooks,
    });
    const allowList = new GoogleHostAllowList(config.google.apiUrl);
    const userFetch = createUserFetch({ tokens, fetch: fetchImpl, clock, allowList });
    const userRequest = createUserRequest({
      tokens,
      request: deps.request ?? undiciRequest,
      clock,
      allowList,
    });
    const behalf = new Behalf({
      clock,
      oauth,
      verifier,
      signInService,
      tokens,
      vault,
      userFetch,
      userRequest,
      allowList,
      googleApiUrl: config.google.apiUrl,
      securityEvents,
      securityLog,
      webhooks,
      createJobRunner: (options) => createJobRunner(runtime, options),
      sweep: (options) => sweepGrants({ vault, tokens, clock, clientId: config.google.clientId, ...options }),
      close: async () => {
        await webhooks.stop();
        tokens.close();
        await database.close();
      },
    });
    metrics.watch({ cacheStats: () => tokens.cacheStats, countGrants: () => countGrantsByStatus(database) });
    const readiness = new Readiness({
      clock,
      schemaVersion: () => database.schemaVersion(),
      expectedSchemaVersion: database.kind === 'sqlite' ? SQLITE_SCHEMA_VERSION : POSTGRES_SCHEMA_VERSION,
      loadDiscovery: () => discovery.endpoints(),
      loadKeys: () => keys.load(),
    });
    const runtime: BehalfRuntime = {
      config,
      behalf,
      database,
      store,
      vault,
      tokens,
      clock,
      logger,
      metrics,
      readiness,
      createdKeyFile,
    };
    return runtime;
  } catch (error) {
    await database.close().catch(() => undefined);
    throw error;
  }
}

export type JobRunnerSettings = Pick<JobRunnerOptions, 'concurrency' | 'maxStartsPerSecond' | 'backoff'> & {
  pollIntervalMs?: number;
};

/** A job runner over the runtime's database (define jobs, then `start()`). */
export function createJobRunner(runtime: BehalfRuntime, options: JobRunnerSettings = {}): JobRunner {
  const { database } = runtime;
  const backendOptions = {
    logger: runtime.logger,
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
  };
  const backend =
    database.kind === 'sqlite'
      ? new SqliteJobBackend(database, backendOptions)
      : new PostgresJobBackend(database, backendOptions);
  return new JobRunner({
    backend,
    behalf: runtime.behalf,
    vault: runtime.vault,
    clock: runtime.clock,
    logger: runtime.logger,
    onAttemptEnded: runtime.metrics.jobRun,
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    ...(options.maxStartsPerSecond === undefined ? {} : { maxStartsPerSecond: options.maxStartsPerSecond }),
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
  });
}

/** Build the HTTP server around a runtime (not yet listening). */
export function createServer(config: BehalfConfig, runtime: BehalfRuntime): FastifyInstance {
  // Keys verified lately are remembered (src/http/api-key-cache.ts): one revoked here is forgotten
  // at once, one revoked elsewhere within the staleness bound.
  const apiKeyCache = new ApiKeyCache({
    verify: (key) => authenticateApiKey(runtime.store, key, { now: runtime.clock.now() }),
  });
  const stopHearingRevocations = onApiKeyRevoked(runtime.store, (id) => apiKeyCache.forget(id));
  const server = buildServer({
    behalf: runtime.behalf,
    config,
    logger: runtime.logger,
    metrics: runtime.metrics,
    readiness: runtime.readiness,
    authenticate: (key) => apiKeyCache.authenticate(key),
    apiKeys: { list: () => listApiKeys(runtime.store), revoke: (id) => revokeApiKey(runtime.store, id) },
    users: {
      search: (search) => runtime.store.searchUsers({ ...search, clientId: runtime.behalf.clientId }),
      states: (subs) => userStates(runtime.database, runtime.behalf.clientId, subs),
    },
    admin: createAdminConsole(runtime),
  });
  server.addHook('onClose', async () => stopHearingRevocations());
  return server;
}

/**
 * The key set and issuer are needed from the start. Real Google's are well known, so a blip at
 * start-up falls back to them; a configured discovery URL (the emulator, a proxy) must answer.
 */
async function startupEndpoints(
  config: BehalfConfig,
  discovery: GoogleDiscovery,
): Promise<{ jwksUri: string; issuer: string }> {
  try {
    return await discovery.endpoints();
  } catch (error) {
    if (config.google.discoveryUrl === GOOGLE_DISCOVERY_URL) {
      return { jwksUri: 'https://www.googleapis.com/oauth2/v3/certs', issuer: 'https://accounts.google.com' };
    }
    throw new BehalfError(
      'CONFIG_INVALID',
      `BEHALF_GOOGLE_DISCOVERY_URL: ${config.google.discoveryUrl} could not be used (${(error as Error).message})`,
    );
  }
}

/**
 * Google's ID tokens carry either form of its issuer
 * (https://developers.google.com/identity/gsi/web/guides/verify-google-id-token); accept both, never others.
 */
function uniqueIssuers(issuer: string): string[] {
  const bare = issuer.replace(/^https:\/\//, '');
  return [...new Set([issuer, `https://${bare}`, bare])];
}
