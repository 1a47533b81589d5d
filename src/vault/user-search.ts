/**
 * The admin console's user list: search by email prefix, filter by grant status, keyset pages.
 * Both backends order by the same key in byte order (SQLite's BINARY; COLLATE "C" on Postgres),
 * straight off an index, so a page costs the same at the millionth user as at the first:
 *
 * - by email (no filter, or an email prefix): the `users_by_email` index on
 *   (lower(coalesce(email, '')), sub), lower() folding ASCII letters only on both backends; a
 *   prefix is a range of it. A status filter is applied to the rows the range walks.
 * - by status alone: the `grants_by_status` index on (status, sub, client_id), in sub order, so a
 *   rare status (revoked, needs consent) is found without walking every user.
 *
 * A page's `next` is an opaque cursor naming the last row and the order it belongs to.
 */
import type { Database, PostgresDatabase, SqliteDatabase } from '../database/index.js';
import { BehalfError } from '../errors.js';
import { STATUSES, toUser, type UserRow } from './rows.js';
import type { GrantStatus, UserRecord } from './types.js';

export interface UserSearch {
  /** The OAuth client whose grant is shown and filtered on (the server's). */
  clientId: string;
  /** Users whose email starts with this, ignoring ASCII case. */
  emailPrefix?: string;
  status?: GrantStatus;
  /** A previous page's `next`, with the same emailPrefix and status. */
  after?: string;
  /** At most {@link MAX_USER_PAGE}. */
  limit: number;
}

export interface UserListEntry {
  user: UserRecord;
  /** The user's grant for the client; null when there is none. */
  grant: { status: GrantStatus; scopes: string[] } | null;
}

export interface UserSearchPage {
  users: UserListEntry[];
  /** Pass as `after` for the next page; null on the last. */
  next: string | null;
}

export const MAX_USER_PAGE = 500;
const MAX_PREFIX = 320;

type Cursor = { order: 'email'; key: string; sub: string } | { order: 'sub'; sub: string };

interface ListRow extends UserRow {
  grant_status: string | null;
  grant_scopes: string | string[] | null;
}

/** What a query needs, checked and worked out once for both backends. */
interface Plan {
  order: 'email' | 'sub';
  limit: number;
  status: GrantStatus | null;
  /** Email order: rows after (key, sub); sub order: rows after sub. */
  afterKey: string;
  afterSub: string;
  /** Email order with a prefix: keys below this (none when the prefix cannot be exceeded). */
  below: string | null;
}

/** ASCII letters folded, as SQLite's lower() and Postgres's lower() under COLLATE "C" do. */
function asciiLower(text: string): string {
  // Stryker disable next-line Regex: /[A-Z]/g folds the same letters, one at a time instead of by runs
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

/**
 * The least string above every string that starts with `prefix`, in code point order (= UTF-8
 * byte order): the last code point incremented (past the surrogates), or dropped when it is the
 * last there is. Null when no string is above them all.
 */
export function prefixUpperBound(prefix: string): string | null {
  const points = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (points.length > 0) {
    let last = points.pop()! + 1;
    if (last === 0xd800) last = 0xe000;
    if (last <= 0x10ffff) return String.fromCodePoint(...points, last);
  }
  return null;
}

function badCursor(): never {
  throw new BehalfError('INVALID_REQUEST', 'The page cursor is malformed, or belongs to another search.', {
    reason: 'bad_cursor',
  });
}

function encodeCursor(cursor: Cursor): string {
  const parts = cursor.order === 'email' ? ['e', cursor.key, cursor.sub] : ['s', cursor.sub];
  return Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');
}

function decodeCursor(text: string): Cursor {
  if (text.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(text)) badCursor();
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    // Stryker disable next-line BlockStatement: without it `parts` stays undefined and the check below refuses it with the same error
  } catch {
    badCursor();
  }
  if (!Array.isArray(parts) || !parts.every((p) => typeof p === 'string' && p.length <= MAX_PREFIX))
    badCursor();
  const [order, a, b] = parts as string[];
  if (order === 'e' && parts.length === 3 && a !== undefined && b !== undefined && b !== '')
    return { order: 'email', key: a, sub: b };
  if (order === 's' && parts.length === 2 && a !== undefined && a !== '') return { order: 'sub', sub: a };
  return badCursor();
}

function plan(search: UserSearch): Plan {
  if (!Number.isInteger(search.limit) || search.limit < 1) {
    throw new BehalfError('INVALID_REQUEST', 'searchUsers: limit must be a whole number of at least 1.');
  }
  if (search.status !== undefined && !STATUSES.has(search.status)) {
    throw new BehalfError(
      'INVALID_REQUEST',
      `searchUsers: unknown status; expected one of ${[...STATUSES].join(', ')}.`,
    );
  }
  const prefix = asciiLower(search.emailPrefix ?? '');
  if (prefix.length > MAX_PREFIX)
    throw new BehalfError('INVALID_REQUEST', `An email prefix is at most ${MAX_PREFIX} characters.`);
  const order = prefix === '' && search.status !== undefined ? 'sub' : 'email';
  const cursor = search.after === undefined ? undefined : decodeCursor(search.after);
  if (cursor !== undefined && cursor.order !== order) badCursor();
  // A cursor outside the prefix's range belongs to another search.
  if (cursor?.order === 'email' && !cursor.key.startsWith(prefix)) badCursor();
  return {
    order,
    limit: Math.min(search.limit, MAX_USER_PAGE),
    status: search.status ?? null,
    // The first page starts at the prefix: (prefix, '') is below every row whose key has it.
    afterKey: cursor?.order === 'email' ? cursor.key : prefix,
    afterSub: cursor?.sub ?? '',
    // Stryker disable next-line ConditionalExpression,StringLiteral: prefixUpperBound('') is null too; the test only skips the call
    below: prefix === '' ? null : prefixUpperBound(prefix),
  };
}

/** One row more than the page is read: it tells whether there is a next page. */
function toPage(rows: ListRow[], p: Plan): UserSearchPage {
  const users = rows.slice(0, p.limit).map((row) => ({
    user: toUser(row),
    grant:
      row.grant_status === null
        ? null
        : {
            status: row.grant_status as GrantStatus,
            scopes: Array.isArray(row.grant_scopes)
              ? row.grant_scopes
              : row.grant_scopes === '' || row.grant_scopes === null
                ? []
                : row.grant_scopes.split(' '),
          },
  }));
  const last = users.at(-1)?.user;
  const next =
    rows.length > p.limit && last !== undefined
      ? encodeCursor(
          p.order === 'email'
            ? { order: 'email', key: asciiLower(last.email ?? ''), sub: last.sub }
            : { order: 'sub', sub: last.sub },
        )
      : null;
  return { users, next };
}

const COLUMNS = 'u.*, g.status AS grant_status, g.scopes AS grant_scopes';
const SQLITE_KEY = "lower(coalesce(u.email, ''))";
const sqliteByEmail = (
  bounded: boolean,
) => `SELECT ${COLUMNS} FROM users u LEFT JOIN grants g ON g.sub = u.sub AND g.client_id = @client_id
  WHERE ${SQLITE_KEY} >= @after_key AND (${SQLITE_KEY}, u.sub) > (@after_key, @after_sub) ${bounded ? `AND ${SQLITE_KEY} < @below` : ''}
    AND (@status IS NULL OR g.status = @status)
  ORDER BY ${SQLITE_KEY}, u.sub LIMIT @limit`;

const PG_KEY = `lower((coalesce(u.email, '')) COLLATE "C")`;
const postgresByEmail = (
  bounded: boolean,
) => `SELECT ${COLUMNS} FROM users u LEFT JOIN grants g ON g.sub = u.sub AND g.client_id = $1
  WHERE (${PG_KEY}, u.sub) > ($2::text COLLATE "C", $3::text COLLATE "C") AND ($4::text IS NULL OR g.status = $4)
    ${bounded ? `AND ${PG_KEY} < ($6::text COLLATE "C")` : ''}
  ORDER BY ${PG_KEY}, u.sub LIMIT $5`;

/**
 * The statements, exported for the tests that check their plans. On SQLite the plain lower bound
 * stands beside the row value: SQLite seeks an expression index only with it.
 */
export const USER_SEARCH_SQL = {
  sqlite: {
    byEmail: sqliteByEmail(false),
    byEmailPrefix: sqliteByEmail(true),
    byStatus: `SELECT ${COLUMNS} FROM grants g JOIN users u ON u.sub = g.sub
      WHERE g.status = @status AND g.sub > @after_sub AND g.client_id = @client_id
      ORDER BY g.sub LIMIT @limit`,
  },
  postgres: {
    byEmail: postgresByEmail(false),
    byEmailPrefix: postgresByEmail(true),
    byStatus: `SELECT ${COLUMNS} FROM grants g JOIN users u ON u.sub = g.sub
      WHERE g.status = $2 AND g.sub > ($3::text COLLATE "C") AND g.client_id = $1
      ORDER BY g.sub LIMIT $4`,
  },
};

const prepared = new WeakMap<SqliteDatabase, ReturnType<typeof prepareSqlite>>();

function prepareSqlite(database: SqliteDatabase) {
  const db = database.connection;
  const { sqlite } = USER_SEARCH_SQL;
  return {
    byEmail: db.prepare(sqlite.byEmail),
    byEmailPrefix: db.prepare(sqlite.byEmailPrefix),
    byStatus: db.prepare(sqlite.byStatus),
  };
}

/** {@link UserSearch} on SQLite. */
export async function searchSqliteUsers(
  database: SqliteDatabase,
  search: UserSearch,
): Promise<UserSearchPage> {
  const p = plan(search);
  return database.run(() => {
    let sql = prepared.get(database);
    // Stryker disable next-line ConditionalExpression: preparing again gives the same statements (only slower)
    if (sql === undefined) prepared.set(database, (sql = prepareSqlite(database)));
    const statement = p.order === 'sub' ? sql.byStatus : p.below === null ? sql.byEmail : sql.byEmailPrefix;
    const rows = statement.all({
      client_id: search.clientId,
      status: p.status,
      after_sub: p.afterSub,
      limit: p.limit + 1,
      ...(p.order === 'email' ? { after_key: p.afterKey } : {}),
      ...(p.order === 'email' && p.below !== null ? { below: p.below } : {}),
    }) as ListRow[];
    return toPage(rows, p);
  });
}

/** {@link UserSearch} on Postgres. */
export async function searchPostgresUsers(
  database: PostgresDatabase,
  search: UserSearch,
): Promise<UserSearchPage> {
  const p = plan(search);
  const sql = USER_SEARCH_SQL.postgres;
  const { rows } =
    p.order === 'sub'
      ? await database.query<ListRow>(sql.byStatus, [search.clientId, p.status, p.afterSub, p.limit + 1])
      : p.below === null
        ? await database.query<ListRow>(sql.byEmail, [
            search.clientId,
            p.afterKey,
            p.afterSub,
            p.status,
            p.limit + 1,
          ])
        : await database.query<ListRow>(sql.byEmailPrefix, [
            search.clientId,
            p.afterKey,
            p.afterSub,
            p.status,
            p.limit + 1,
            p.below,
          ]);
  return toPage(rows, p);
}

/** What a listed user's page also shows beside the search's row (GET /v1/users). */
export interface UserState {
  /** The grant is active and holds a refresh token (as GET /v1/users/{sub} says). */
  offlineAccess: boolean;
  /** When Google said the grant's refresh token expires (Unix ms), or null. */
  refreshTokenExpiresAt: number | null;
  /** What Google last reported about the account (Cross-Account Protection), or null. */
  security: { state: string; at: number } | null;
}

interface StateRow {
  sub: string;
  offline: number | boolean | null;
  refresh_expires: number | string | null;
  security_state: string | null;
  security_at: number | string | null;
}

// One query for a whole page, by primary key: the refresh token is only tested for presence.
const STATE_COLUMNS = `u.sub, (g.status = 'active' AND g.refresh_token IS NOT NULL) AS offline,
  g.refresh_token_expires_at AS refresh_expires,
  s.state AS security_state, s.at AS security_at`;
const STATE_JOINS = `LEFT JOIN user_security s ON s.sub = u.sub`;

function toStates(rows: StateRow[]): Map<string, UserState> {
  return new Map(
    rows.map((row) => [
      row.sub,
      {
        offlineAccess: row.offline === true || row.offline === 1,
        refreshTokenExpiresAt: row.refresh_expires === null ? null : Number(row.refresh_expires),
        security:
          // Stryker disable next-line ConditionalExpression,EqualityOperator: state and at are both NOT NULL, so the LEFT JOIN makes them null together
          row.security_state === null || row.security_at === null
            ? null
            : { state: row.security_state, at: Number(row.security_at) },
      },
    ]),
  );
}

/** {@link UserState} of each of a page's users, by sub (users deleted since are left out). */
export function userStates(
  database: Database,
  clientId: string,
  subs: readonly string[],
): Promise<Map<string, UserState>> {
  return database.kind === 'sqlite'
    ? sqliteUserStates(database, clientId, subs)
    : postgresUserStates(database, clientId, subs);
}

async function sqliteUserStates(
  database: SqliteDatabase,
  clientId: string,
  subs: readonly string[],
): Promise<Map<string, UserState>> {
  return database.run(() => {
    const rows = database.connection
      .prepare(
        `SELECT ${STATE_COLUMNS} FROM users u
          LEFT JOIN grants g ON g.sub = u.sub AND g.client_id = ? ${STATE_JOINS}
          WHERE u.sub IN (SELECT value FROM json_each(?))`,
      )
      .all(clientId, JSON.stringify(subs)) as StateRow[];
    return toStates(rows);
  });
}

async function postgresUserStates(
  database: PostgresDatabase,
  clientId: string,
  subs: readonly string[],
): Promise<Map<string, UserState>> {
  const { rows } = await database.query<StateRow>(
    `SELECT ${STATE_COLUMNS} FROM users u
      LEFT JOIN grants g ON g.sub = u.sub AND g.client_id = $1 ${STATE_JOINS}
      WHERE u.sub = ANY($2::text[])`,
    [clientId, [...subs]],
  );
  return toStates(rows);
}
