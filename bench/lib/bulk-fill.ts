/**
 * Filling a scale database quickly. Vault.saveSignIn writes one user per transaction (one fsync
 * each): a million users take 13–17 minutes that way. These write the very rows saveSignIn writes
 * for a first sign-in — the same columns of `users` and `grants`, both tokens sealed by
 * encryptToken with the row binding the Vault uses, so they decrypt with the run's keys — many
 * users per transaction, into the schema behalf created. The triggers behalf installed on
 * `grants` stay on and fire per row as they do for saveSignIn (SQLite: a `grant_changes` row and
 * the `grant_counts` bump; Postgres: the change notification and the per-connection count), so
 * the database holds exactly what saveSignIn would have left. Nothing else is written by a first
 * sign-in: no webhook delivery (a new grant announces nothing), no security-log row.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { encryptToken, type Keyring } from '../../src/vault/index.js';
import { seededSignIn, type SeedTokens } from './seed.js';

interface FillRange {
  /** Seeded users first…first+count-1 are written. */
  first: number;
  count: number;
  /** Users per transaction. */
  batch?: number;
  onProgress?: (done: number) => void;
}

/** Rows written and how long it took. */
export interface FillResult {
  rows: number;
  seconds: number;
}

function sealed(keyring: Keyring, index: number, clientId: string, tokens: SeedTokens) {
  const signIn = seededSignIn(index, clientId, tokens);
  const sub = signIn.user.sub;
  return {
    signIn,
    refreshToken: encryptToken(keyring, { column: 'refresh_token', sub, clientId }, signIn.refreshToken!),
    accessToken: encryptToken(keyring, { column: 'access_token', sub, clientId }, signIn.accessToken),
  };
}

/**
 * Into a SQLite file behalf has created and migrated (open and close a store on it first), with
 * the store's pragmas. Synchronous: better-sqlite3 is.
 */
export function bulkFillSqlite(
  path: string,
  keyring: Keyring,
  clientId: string,
  tokens: SeedTokens,
  range: FillRange,
): FillResult {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('secure_delete = ON');
    // The column lists of SqliteStore's upsertUser and upsertGrant, for a user seen the first time.
    const insertUser = db.prepare(
      `INSERT INTO users (sub, email, email_verified, name, given_name, family_name, picture, locale, hd, created_at, updated_at, last_sign_in_at)
       VALUES (@sub, @email, @email_verified, @name, @given_name, @family_name, @picture, @locale, @hd, @now, @now, @now)`,
    );
    const insertGrant = db.prepare(
      `INSERT INTO grants (sub, client_id, refresh_token, refresh_token_issued_at, refresh_token_expires_at, access_token,
         access_token_expires_at, scopes, status, version, created_at, updated_at)
       VALUES (@sub, @client_id, @refresh_token, @now, NULL, @access_token, @access_token_expires_at, @scopes, 'active', 1, @now, @now)`,
    );
    const write = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const { signIn, refreshToken, accessToken } = sealed(keyring, i, clientId, tokens);
        const { user } = signIn;
        insertUser.run({
          sub: user.sub,
          email: user.email,
          email_verified: user.emailVerified ? 1 : 0,
          name: user.name,
          given_name: user.givenName,
          family_name: user.familyName,
          picture: user.picture,
          locale: user.locale,
          hd: user.hd,
          now: signIn.now,
        });
        insertGrant.run({
          sub: user.sub,
          client_id: clientId,
          refresh_token: refreshToken,
          access_token: accessToken,
          access_token_expires_at: signIn.accessTokenExpiresAt,
          scopes: signIn.scopes.join(' '),
          now: signIn.now,
        });
      }
    });
    const batch = range.batch ?? 10_000;
    const end = range.first + range.count;
    const started = performance.now();
    for (let from = range.first; from < end; from += batch) {
      const to = Math.min(end, from + batch);
      write.immediate(from, to);
      range.onProgress?.(to - range.first);
    }
    return { rows: range.count, seconds: (performance.now() - started) / 1000 };
  } finally {
    db.close();
  }
}

// The column lists of the Postgres store's upsertUser and upsertGrant (src/vault/postgres-sql.ts),
// for a user seen the first time, one row per element of the arrays; what every seeded user has
// alike (given name, locale, verified email, no picture or domain, the times) is one parameter.
const PG_INSERT_USERS = `INSERT INTO users (sub, email, email_verified, name, given_name, family_name, picture, locale, hd, created_at, updated_at, last_sign_in_at)
  SELECT u.sub, u.email, true, u.name, $5::text, u.family_name, NULL, $6::text, NULL, $7::bigint, $7::bigint, $7::bigint
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(sub, email, name, family_name)`;
const PG_INSERT_GRANTS = `INSERT INTO grants (sub, client_id, refresh_token, access_token, access_token_expires_at, scopes, status, version,
    refresh_token_issued_at, created_at, updated_at, refresh_token_expires_at)
  SELECT g.sub, $4::text, g.refresh_token, g.access_token, $5::bigint, $6::text[], 'active', 1, $7::bigint, $7::bigint, $7::bigint, NULL
  FROM unnest($1::text[], $2::bytea[], $3::bytea[]) AS g(sub, refresh_token, access_token)`;

/**
 * Into a Postgres database behalf has migrated: multi-row INSERT … SELECT FROM unnest(…), one
 * transaction per batch, on `connections` connections taking batches in turn (the triggers' work
 * runs in the server, so a second connection uses the second core). The next batch is sealed
 * while the previous one is being written.
 */
export async function bulkFillPostgres(
  url: string,
  keyring: Keyring,
  clientId: string,
  tokens: SeedTokens,
  range: FillRange & { connections?: number },
): Promise<FillResult> {
  const batch = range.batch ?? 5_000;
  const end = range.first + range.count;
  const clients = Array.from(
    { length: range.connections ?? 2 },
    () => new pg.Client({ connectionString: url }),
  );
  await Promise.all(clients.map((client) => client.connect()));
  const started = performance.now();
  let next = range.first;
  let done = 0;
  const prepare = (from: number) => {
    const to = Math.min(end, from + batch);
    const subs: string[] = [];
    const emails: Array<string | null> = [];
    const names: Array<string | null> = [];
    const familyNames: Array<string | null> = [];
    const refreshTokens: Buffer[] = [];
    const accessTokens: Buffer[] = [];
    let first: ReturnType<typeof seededSignIn> | undefined;
    for (let i = from; i < to; i++) {
      const { signIn, refreshToken, accessToken } = sealed(keyring, i, clientId, tokens);
      first ??= signIn;
      subs.push(signIn.user.sub);
      emails.push(signIn.user.email);
      names.push(signIn.user.name);
      familyNames.push(signIn.user.familyName);
      refreshTokens.push(refreshToken);
      accessTokens.push(accessToken);
    }
    const { user, now, accessTokenExpiresAt, scopes } = first!;
    return {
      rows: to - from,
      users: [subs, emails, names, familyNames, user.givenName, user.locale, now],
      grants: [subs, refreshTokens, accessTokens, clientId, accessTokenExpiresAt, scopes, now],
    };
  };
  const worker = async (client: pg.Client) => {
    while (next < end) {
      const work = prepare(next);
      next += work.rows;
      await client.query('BEGIN');
      try {
        await client.query(PG_INSERT_USERS, work.users);
        await client.query(PG_INSERT_GRANTS, work.grants);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
      done += work.rows;
      range.onProgress?.(done);
    }
  };
  try {
    await Promise.all(clients.map(worker));
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
  }
  return { rows: range.count, seconds: (performance.now() - started) / 1000 };
}
