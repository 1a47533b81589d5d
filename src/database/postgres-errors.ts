/**
 * What a Postgres failure means for behalf, in one place for every repository over the database:
 * "cannot reach or use the database now" is a retryable STORE_UNAVAILABLE, a wrong setting at
 * start-up is CONFIG_INVALID naming BEHALF_DATABASE_URL, anything else INTERNAL. Messages carry an
 * errno or a SQLSTATE, never pg's own message (which can quote values) nor the URL.
 */
import { BehalfError } from '../errors.js';
import type { PostgresSettings } from './postgres-settings.js';

const SETTING = 'BEHALF_DATABASE_URL';
export const MIGRATE_HINT = 'run `behalf migrate` with the same BEHALF_DATABASE_URL';

export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A Node network error code (ECONNREFUSED …), also from inside an AggregateError (several addresses tried). */
function networkCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return code;
  const inner = (error as { errors?: unknown } | null | undefined)?.errors;
  return Array.isArray(inner) ? inner.map(networkCode).find((c) => c !== undefined) : undefined;
}

/**
 * pg's own connection failures carry no code, only a message: a connection or pool timeout, a
 * connection that ended under a query, a client that is no longer queryable.
 */
function isConnectionFailure(error: unknown): boolean {
  const message = (error as Error | undefined)?.message ?? '';
  return /connection terminated|connection timeout|timeout exceeded when trying to connect|not queryable|query read timeout|connection error/i.test(
    message,
  );
}

/**
 * SQLSTATEs after which the same call may succeed later: connection exceptions (08), too many
 * connections and other resource limits (53), shutdown and restart (57P01-57P05), a statement
 * cancelled by statement_timeout (57014), serialization and deadlock (40), a lock not available
 * (55P03), a database that refuses connections for now (55000: `ALLOW_CONNECTIONS false`, or in
 * recovery) or is in use (55006), system and I/O errors (58), an idle transaction ended by the
 * server (25P03). Every "cannot reach or use the database now" state is a retryable 503.
 */
function retryableState(state: string): boolean {
  return (
    /^(08|53|58|40)/.test(state) ||
    /^57P0[1-5]$/.test(state) ||
    ['57014', '55P03', '55000', '55006', '25P03'].includes(state)
  );
}

/** Short, secret-free words for why: an errno, a SQLSTATE, or pg's kind of failure. */
function why(error: unknown): string {
  return (
    sqlState(error) ??
    networkCode(error) ??
    (isConnectionFailure(error)
      ? 'connection lost or timed out'
      : ((error as Error | undefined)?.name ?? 'error'))
  );
}

/**
 * A failure during a call. Messages carry an errno or SQLSTATE and never pg's own message (which
 * can quote values, e.g. a duplicate key) nor the URL; the original is kept as `cause`.
 */
export function runtimeError(error: unknown): BehalfError {
  if (error instanceof BehalfError) return error;
  const state = sqlState(error);
  if (
    (state !== undefined && retryableState(state)) ||
    networkCode(error) !== undefined ||
    isConnectionFailure(error)
  ) {
    return new BehalfError('STORE_UNAVAILABLE', `The Postgres store is unavailable (${why(error)}); retry.`, {
      cause: error,
      retryAfter: 1,
    });
  }
  if (state !== undefined && /^(28|3D|3F|42501)/.test(state)) {
    // Credentials, database or schema gone or changed under a running server: retryable once fixed.
    return new BehalfError(
      'STORE_UNAVAILABLE',
      `The Postgres store refused behalf (${state}); check ${SETTING}.`,
      { cause: error, retryAfter: 5 },
    );
  }
  return new BehalfError('INTERNAL', `The Postgres store failed (${why(error)}).`, { cause: error });
}

/** A failure while opening or migrating: one message naming the setting and where, without a password. */
export function openError(settings: PostgresSettings, error: unknown): BehalfError {
  if (error instanceof BehalfError) return error;
  const where = `${SETTING}: Postgres at ${settings.target}`;
  const state = sqlState(error);
  if (state === '28P01' || state === '28000') {
    return new BehalfError(
      'CONFIG_INVALID',
      `${where} refused the credentials (${state}): check the user and password.`,
      { cause: error },
    );
  }
  if (state === '3D000') {
    return new BehalfError(
      'CONFIG_INVALID',
      `${where}: the database does not exist (${state}): create it, then ${MIGRATE_HINT}.`,
      { cause: error },
    );
  }
  if (state === '3F000') {
    return new BehalfError(
      'CONFIG_INVALID',
      `${where}: the schema on the search_path does not exist (${state}): create it, then ${MIGRATE_HINT}.`,
      { cause: error },
    );
  }
  if (state === '42501') {
    return new BehalfError(
      'CONFIG_INVALID',
      `${where}: permission denied (${state}): the user needs to own behalf's schema, or at least use it.`,
      { cause: error },
    );
  }
  if (
    (state !== undefined && retryableState(state)) ||
    networkCode(error) !== undefined ||
    isConnectionFailure(error)
  ) {
    return new BehalfError(
      'STORE_UNAVAILABLE',
      `${where} cannot be reached (${why(error)}): check that the server is running and that the URL names it.`,
      { cause: error, retryAfter: 5 },
    );
  }
  return new BehalfError('INTERNAL', `${where} failed (${why(error)}).`, { cause: error });
}
