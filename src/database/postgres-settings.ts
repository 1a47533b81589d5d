/**
 * Postgres connection settings: behalf's pool and timeout parameters read out of the URL, the
 * redacted target for messages, and the one place a pool is made.
 */
import type pg from 'pg';
import { BehalfError } from '../errors.js';
import { redactDatabaseUrl } from '../vault/database-url.js';

const SETTING = 'BEHALF_DATABASE_URL';

/**
 * Pool and timeout settings. Each can also be given in the URL's query string (the name in
 * brackets), which wins: the URL is what the operator controls. behalf removes these from the URL
 * before handing it to `pg`; every other parameter (sslmode, application_name, options,
 * lock_timeout, idle_in_transaction_session_timeout …) passes through untouched.
 */
export interface PostgresPoolOptions {
  /** Connections this process may open (`pool_max`). Default 10. */
  poolMax?: number;
  /** How long to wait for a connection, new or from a full pool (`connect_timeout`, in seconds as in libpq). Default 10 s. */
  connectTimeoutMs?: number;
  /** Server-side limit on one statement, lock waits included (`statement_timeout`, milliseconds as in Postgres; 0: none). Default 10000. */
  statementTimeoutMs?: number;
  /** How long an idle connection is kept open (`pool_idle_timeout_ms`; 0: forever). Default 30000. */
  poolIdleTimeoutMs?: number;
}

/** The settings behalf derives from a postgres:// URL (see {@link PostgresPoolOptions}). */
export interface PostgresSettings {
  /** The URL for `pg`, behalf's own parameters removed. Holds the password: never print it. */
  connectionString: string;
  /** The URL without password or query: safe for messages. */
  target: string;
  poolMax: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  poolIdleTimeoutMs: number;
}

const DEFAULTS = {
  poolMax: 10,
  connectTimeoutMs: 10_000,
  statementTimeoutMs: 10_000,
  poolIdleTimeoutMs: 30_000,
} as const;

/**
 * Read behalf's pool and timeout parameters out of a postgres:// URL. Problems are CONFIG_INVALID
 * naming BEHALF_DATABASE_URL and the parameter, never echoing the URL or a value.
 */
export function parsePostgresSettings(url: string, options: PostgresPoolOptions = {}): PostgresSettings {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new BehalfError(
      'CONFIG_INVALID',
      `${SETTING}: the postgres:// URL is malformed (expected postgres://USER:PASSWORD@HOST:PORT/DB).`,
    );
  }
  const query = parsed.searchParams;
  const take = (
    name: string,
    parse: (raw: string) => number | undefined,
    problem: string,
  ): number | undefined => {
    const raw = query.get(name);
    if (raw === null) return undefined;
    query.delete(name);
    const value = parse(raw.trim());
    if (value === undefined)
      throw new BehalfError('CONFIG_INVALID', `${SETTING}: the ${name} parameter ${problem}`);
    return value;
  };
  const whole = (min: number, max: number) => (raw: string) => {
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
  };
  const seconds = (raw: string) => {
    const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
    return Number.isFinite(n) && n <= 3600 ? Math.round(n * 1000) : undefined;
  };
  const poolMax = take('pool_max', whole(1, 1000), 'must be a whole number of connections from 1 to 1000.');
  const connectTimeoutMs = take(
    'connect_timeout',
    seconds,
    'must be a number of seconds from 0 to 3600 (0: wait forever).',
  );
  const statementTimeoutMs = take(
    'statement_timeout',
    whole(0, 86_400_000),
    'must be a whole number of milliseconds (0: no limit).',
  );
  const poolIdleTimeoutMs = take(
    'pool_idle_timeout_ms',
    whole(0, 86_400_000),
    'must be a whole number of milliseconds (0: keep idle connections).',
  );
  const target = redactPostgresUrl(parsed.href);
  return {
    connectionString: parsed.href,
    target,
    poolMax: poolMax ?? options.poolMax ?? DEFAULTS.poolMax,
    connectTimeoutMs: connectTimeoutMs ?? options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    statementTimeoutMs: statementTimeoutMs ?? options.statementTimeoutMs ?? DEFAULTS.statementTimeoutMs,
    poolIdleTimeoutMs: poolIdleTimeoutMs ?? options.poolIdleTimeoutMs ?? DEFAULTS.poolIdleTimeoutMs,
  };
}

/** A postgres:// URL fit for a message: see {@link redactDatabaseUrl}, the one redactor for database URLs. */
export function redactPostgresUrl(url: string): string {
  return redactDatabaseUrl(url);
}

// BIGINT (int8) arrives as a string by default, since it may exceed 2^53. behalf's BIGINTs are
// Unix milliseconds and version counters, far below that: read them as numbers. Per pool, not
// pg.types.setTypeParser, which would change every other pg user in the process.
const INT8_OID = 20;

/**
 * pg, loaded on first use: a server on SQLite never loads it (~6 MiB of resident memory measured
 * in the built server's process).
 */
let loaded: { pg: typeof pg; types: pg.CustomTypesConfig } | undefined;

async function loadPg(): Promise<NonNullable<typeof loaded>> {
  if (loaded !== undefined) return loaded;
  const { default: pgModule } = await import('pg');
  const types: pg.CustomTypesConfig = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      oid === INT8_OID && format !== 'binary'
        ? (value: string) => Number(value)
        : pgModule.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
  };
  loaded = { pg: pgModule, types };
  return loaded;
}

export async function createPool(settings: PostgresSettings, purpose: 'store' | 'migrate'): Promise<pg.Pool> {
  const { pg, types } = await loadPg();
  const statementTimeout = purpose === 'migrate' ? 0 : settings.statementTimeoutMs;
  const pool = new pg.Pool({
    connectionString: settings.connectionString,
    max: purpose === 'migrate' ? 1 : settings.poolMax,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    idleTimeoutMillis: settings.poolIdleTimeoutMs,
    fallback_application_name: 'behalf',
    ...(statementTimeout > 0
      ? {
          statement_timeout: statementTimeout,
          // A connection that silently vanished (no reset ever arrives) would otherwise hang a
          // call until TCP gives up: fail on our side a little after the server's own limit.
          query_timeout: statementTimeout + 2_000,
        }
      : {}),
    // Notice a dead peer on an idle connection without waiting hours for the OS default.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    types,
  });
  // An idle connection that dies (Postgres restarted, a proxy cut it) is reported here and
  // dropped by the pool, which opens a new one on the next call: nothing else to do. Without a
  // listener, the event would crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * A connection of its own, outside the pool, for LISTEN: a listening session must stay open and
 * never be handed to another caller. Short timeouts: it pings every few hundred milliseconds.
 */
export async function createListenerClient(settings: PostgresSettings): Promise<pg.Client> {
  const { pg, types } = await loadPg();
  return new pg.Client({
    connectionString: settings.connectionString,
    connectionTimeoutMillis: Math.min(settings.connectTimeoutMs || 5_000, 5_000),
    fallback_application_name: 'behalf-listener',
    query_timeout: 5_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 5_000,
    types,
  });
}
