/**
 * Every SQL statement of the Postgres vault, in one place; the security event log runs some of
 * them inside its own transactions. $n are bound parameters: values never enter the text.
 */
import type { NamedStatement } from '../database/index.js';

/**
 * A statement on the hot path (a token lookup, a refresh and its lease): prepared once per
 * connection under this name, then only bound and executed (see NamedStatement).
 */
function prepared(name: string, text: string): NamedStatement {
  return Object.freeze({ name: `behalf_${name}`, text });
}

const GRANT_COLUMNS = `sub, client_id, refresh_token, access_token, access_token_expires_at, scopes, status, version,
  refresh_token_issued_at, created_at, updated_at, refresh_token_expires_at`;

/**
 * Whether a sign-in's refresh token replaces the stored one, inside ON CONFLICT DO UPDATE where
 * `grants` is the stored row and `excluded` the new one. A refresh token older than the stored
 * one never replaces it (two sign-ins racing): the rule SqliteStore.saveSignIn applies too.
 */
const REPLACES_REFRESH = `(excluded.refresh_token IS NOT NULL AND (grants.refresh_token IS NULL
  OR grants.refresh_token_issued_at IS NULL OR excluded.updated_at >= grants.refresh_token_issued_at))`;

const SAVE_ACCESS_TOKEN_TEXT = `UPDATE grants SET access_token = $3, access_token_expires_at = $4, scopes = COALESCE($5::text[], scopes),
      version = version + 1, updated_at = $7
    WHERE sub = $1 AND client_id = $2 AND status = 'active' AND ($6::bigint IS NULL OR version = $6::bigint)`;

/** Record a refresh ($1 sub, $2 client id; the record's fields in the parameters named). */
const recordRefreshText = (
  at: string,
  outcome: string,
  reason: string,
) => `INSERT INTO grant_refreshes (sub, client_id, at, outcome, reason)
    SELECT sub, client_id, ${at}, ${outcome}, ${reason} FROM grants WHERE sub = $1 AND client_id = $2
    ON CONFLICT (sub, client_id) DO UPDATE SET at = excluded.at, outcome = excluded.outcome, reason = excluded.reason
      WHERE excluded.at >= grant_refreshes.at`;

export const SQL = {
  upsertUser: `INSERT INTO users (sub, email, email_verified, name, given_name, family_name, picture, locale, hd, created_at, updated_at, last_sign_in_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10)
    ON CONFLICT (sub) DO UPDATE SET email = excluded.email, email_verified = excluded.email_verified, name = excluded.name,
      given_name = excluded.given_name, family_name = excluded.family_name, picture = excluded.picture,
      locale = excluded.locale, hd = excluded.hd, updated_at = excluded.updated_at, last_sign_in_at = excluded.last_sign_in_at
    RETURNING *`,
  // A first sign-in without a refresh token needs consent. On a repeat sign-in, a new refresh
  // token brings the grant back to life; without one the stored token and status stand (a
  // repeat sign-in cannot revive a grant Google refused), and a grant with none needs consent.
  upsertGrant: `INSERT INTO grants (${GRANT_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3::bytea IS NULL THEN 'needs_consent' ELSE 'active' END, 1,
      CASE WHEN $3::bytea IS NULL THEN NULL ELSE $7::bigint END, $7, $7,
      CASE WHEN $3::bytea IS NULL THEN NULL ELSE $8::bigint END)
    ON CONFLICT (sub, client_id) DO UPDATE SET
      refresh_token = CASE WHEN ${REPLACES_REFRESH} THEN excluded.refresh_token ELSE grants.refresh_token END,
      refresh_token_issued_at = CASE WHEN ${REPLACES_REFRESH} THEN excluded.updated_at ELSE grants.refresh_token_issued_at END,
      refresh_token_expires_at = CASE WHEN ${REPLACES_REFRESH} THEN excluded.refresh_token_expires_at ELSE grants.refresh_token_expires_at END,
      status = CASE WHEN ${REPLACES_REFRESH} THEN 'active' WHEN grants.refresh_token IS NULL THEN 'needs_consent' ELSE grants.status END,
      access_token = excluded.access_token, access_token_expires_at = excluded.access_token_expires_at, scopes = excluded.scopes,
      version = grants.version + 1, updated_at = excluded.updated_at
    RETURNING *`,
  getUser: 'SELECT * FROM users WHERE sub = $1',
  getGrant: prepared('get_grant', `SELECT ${GRANT_COLUMNS} FROM grants WHERE sub = $1 AND client_id = $2`),
  // A range of grants_by_refresh_expiry (migration 9).
  countExpiring: `SELECT COUNT(*)::bigint AS n FROM grants WHERE refresh_token_expires_at IS NOT NULL
    AND refresh_token_expires_at < $2 AND client_id = $1 AND status = 'active'`,
  // A grant's status before a change, locked until the change commits: what the change's webhook
  // event compares with.
  lockGrantStatus: 'SELECT status FROM grants WHERE sub = $1 AND client_id = $2 FOR UPDATE',
  // Only an active grant takes a new access token: a revoked one must not get one back.
  saveAccessToken: prepared('save_access_token', SAVE_ACCESS_TOKEN_TEXT),
  // One statement, so one round trip and one transaction: the lease goes whatever the update does.
  saveAccessTokenReleasingLease: prepared(
    'save_access_token_releasing_lease',
    `WITH released AS (DELETE FROM refresh_leases WHERE sub = $1 AND client_id = $2 AND holder = $8)
    ${SAVE_ACCESS_TOKEN_TEXT}`,
  ),
  // The end of a refresh, in one statement: the token, the lease given back ($8, if any) and the
  // refresh's record (as recordRefresh writes it), whatever the update does.
  saveRefreshedAccessToken: prepared(
    'save_refreshed_access_token',
    `WITH released AS (DELETE FROM refresh_leases WHERE sub = $1 AND client_id = $2 AND holder = $8::text),
    recorded AS (${recordRefreshText('$9::bigint', '$10::text', '$11::text')})
    ${SAVE_ACCESS_TOKEN_TEXT}`,
  ),
  setStatus: `UPDATE grants SET status = $3, version = version + 1, updated_at = $4,
      access_token = CASE WHEN $3 = 'active' THEN access_token ELSE NULL END,
      access_token_expires_at = CASE WHEN $3 = 'active' THEN access_token_expires_at ELSE NULL END
    WHERE sub = $1 AND client_id = $2`,
  replaceCiphertexts: `UPDATE grants SET refresh_token = $3, access_token = $4,
      access_token_expires_at = CASE WHEN $4::bytea IS NULL THEN NULL ELSE access_token_expires_at END,
      version = version + 1, updated_at = $6
    WHERE sub = $1 AND client_id = $2 AND version = $5`,
  // One write: both tokens erased, the grant revoked; it comes back only with a new sign-in.
  revokeGrant: `UPDATE grants SET status = 'revoked', refresh_token = NULL, access_token = NULL, access_token_expires_at = NULL,
      version = version + 1, updated_at = $3
    WHERE sub = $1 AND client_id = $2`,
  // Keyset pagination in byte order (COLLATE "C", as SQLite's BINARY), straight off the primary key.
  listFirst: `SELECT ${GRANT_COLUMNS} FROM grants
    ORDER BY sub COLLATE "C", client_id COLLATE "C" LIMIT $1`,
  listFirstByStatus: `SELECT ${GRANT_COLUMNS} FROM grants WHERE status = $2
    ORDER BY sub COLLATE "C", client_id COLLATE "C" LIMIT $1`,
  listAfter: `SELECT ${GRANT_COLUMNS} FROM grants WHERE (sub COLLATE "C", client_id COLLATE "C") > ($2::text COLLATE "C", $3::text COLLATE "C")
    ORDER BY sub COLLATE "C", client_id COLLATE "C" LIMIT $1`,
  listAfterByStatus: `SELECT ${GRANT_COLUMNS} FROM grants WHERE (sub COLLATE "C", client_id COLLATE "C") > ($2::text COLLATE "C", $3::text COLLATE "C")
      AND status = $4
    ORDER BY sub COLLATE "C", client_id COLLATE "C" LIMIT $1`,
  insertApiKey: 'INSERT INTO api_keys (id, hash, name, created_at) VALUES ($1, $2, $3, $4)',
  findApiKey: prepared(
    'find_api_key',
    'SELECT id, hash, name, created_at, last_used_at FROM api_keys WHERE id = $1',
  ),
  listApiKeys: 'SELECT id, name, created_at, last_used_at FROM api_keys ORDER BY created_at, id',
  recordApiKeyUse:
    'UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)',
  // Only for a grant that exists (read, not locked: see the migration); a newer record stands.
  recordRefresh: prepared('record_refresh', recordRefreshText('$3', '$4', '$5')),
  // A record older than the grant belongs to a grant deleted meanwhile (and is not shown).
  getLastRefresh: `SELECT r.at, r.outcome, r.reason FROM grant_refreshes r JOIN grants g ON g.sub = r.sub AND g.client_id = r.client_id
    WHERE r.sub = $1 AND r.client_id = $2 AND r.at >= g.created_at`,
  deleteApiKey: 'DELETE FROM api_keys WHERE id = $1',
  // One statement: take a free lease, or take over one that has run out, on the database's
  // clock. Concurrent takers queue on the primary key and see the winner's row: exactly one
  // gets a row back. No grant, no row inserted: false.
  takeLease: prepared(
    'take_lease',
    `INSERT INTO refresh_leases (sub, client_id, holder, expires_at)
    SELECT sub, client_id, $3, now() + $4::double precision * interval '1 millisecond'
      FROM grants WHERE sub = $1 AND client_id = $2
    ON CONFLICT (sub, client_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
      WHERE refresh_leases.expires_at <= now()`,
  ),
  releaseLease: prepared(
    'release_lease',
    'DELETE FROM refresh_leases WHERE sub = $1 AND client_id = $2 AND holder = $3',
  ),
  renewLease: prepared(
    'renew_lease',
    `UPDATE refresh_leases SET expires_at = now() + $4::double precision * interval '1 millisecond'
    WHERE sub = $1 AND client_id = $2 AND holder = $3`,
  ),
  listKeyChecks: 'SELECT * FROM key_checks ORDER BY key_id',
  addKeyCheck:
    'INSERT INTO key_checks (key_id, check_value, created_at) VALUES ($1, $2, $3) ON CONFLICT (key_id) DO NOTHING',
} as const;

/**
 * Forgetting a user, as statements run in order in one transaction ($1 is the sub): their queued
 * jobs are cancelled (pg-boss rows not yet started; a started one finds its run gone and does
 * nothing), then job runs, security state, refresh leases (which have no foreign key, see the
 * migration) and the user, whose grants go by ON DELETE CASCADE. The last statement's row count
 * says whether there was such a user.
 */
export function eraseUserStatements(jobSchema: string): string[] {
  return [
    `DELETE FROM ${jobSchema}.job WHERE state < 'active' AND data->>'runId' IN (SELECT id FROM job_runs WHERE sub = $1)`,
    'DELETE FROM job_runs WHERE sub = $1',
    'DELETE FROM user_security WHERE sub = $1',
    'DELETE FROM refresh_leases WHERE sub = $1',
    'DELETE FROM users WHERE sub = $1',
  ];
}
