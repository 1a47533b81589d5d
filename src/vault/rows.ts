/**
 * Rows as the two backends return them, and the one mapping from a row to the store's types.
 * SQLite stores booleans as 0/1 and scopes as one space-separated string; Postgres as BOOLEAN
 * and TEXT[].
 */
import { BehalfError } from '../errors.js';
import type {
  ApiKeyRecord,
  ApiKeySummary,
  GrantStatus,
  KeyCheckRecord,
  RefreshRecord,
  StoredGrant,
  UserRecord,
} from './types.js';

export const STATUSES: ReadonlySet<string> = new Set<GrantStatus>(['active', 'revoked', 'needs_consent']);
/** The most grants one page holds, whatever the caller asks. */
export const MAX_PAGE = 10_000;

export interface UserRow {
  sub: string;
  email: string | null;
  email_verified: boolean | number;
  name: string | null;
  given_name: string | null;
  family_name: string | null;
  picture: string | null;
  locale: string | null;
  hd: string | null;
  created_at: number;
  updated_at: number;
  last_sign_in_at: number;
}

export interface GrantRow {
  sub: string;
  client_id: string;
  refresh_token: Buffer | null;
  access_token: Buffer | null;
  access_token_expires_at: number | null;
  scopes: string | string[];
  status: string;
  version: number;
  refresh_token_issued_at: number | null;
  refresh_token_expires_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface ApiKeyRow {
  id: string;
  hash: Buffer;
  name: string;
  created_at: number;
  last_used_at: number | null;
}

export interface KeyCheckRow {
  key_id: string;
  check_value: Buffer;
  created_at: number;
}

export function toUser(row: UserRow): UserRecord {
  return {
    sub: row.sub,
    email: row.email,
    emailVerified: row.email_verified === true || row.email_verified === 1,
    name: row.name,
    givenName: row.given_name,
    familyName: row.family_name,
    picture: row.picture,
    locale: row.locale,
    hd: row.hd,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastSignInAt: row.last_sign_in_at,
  };
}

export function toGrant(row: GrantRow): StoredGrant {
  return {
    sub: row.sub,
    clientId: row.client_id,
    refreshTokenCiphertext: row.refresh_token,
    accessTokenCiphertext: row.access_token,
    accessTokenExpiresAt: row.access_token_expires_at,
    scopes: Array.isArray(row.scopes) ? row.scopes : row.scopes === '' ? [] : row.scopes.split(' '),
    status: row.status as GrantStatus,
    version: row.version,
    refreshTokenIssuedAt: row.refresh_token_issued_at,
    refreshTokenExpiresAt: row.refresh_token_expires_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toApiKey(row: ApiKeyRow): ApiKeyRecord {
  return { id: row.id, hash: row.hash, name: row.name, createdAt: row.created_at };
}

export function toApiKeySummary(row: Omit<ApiKeyRow, 'hash'>): ApiKeySummary {
  return { id: row.id, name: row.name, createdAt: row.created_at, lastUsedAt: row.last_used_at };
}

export interface RefreshRow {
  at: number;
  outcome: string;
  reason: string | null;
}

export function toRefreshRecord(row: RefreshRow): RefreshRecord {
  return { at: row.at, outcome: row.outcome, reason: row.reason };
}

export function toKeyCheck(row: KeyCheckRow): KeyCheckRecord {
  return { keyId: row.key_id, checkValue: row.check_value, createdAt: row.created_at };
}

/** The page of grants from `limit + 1` rows: one row more than asked tells whether there is a next page. */
export function toGrantPage(
  rows: GrantRow[],
  limit: number,
): { grants: StoredGrant[]; next: { sub: string; clientId: string } | null } {
  const grants = rows.slice(0, limit).map(toGrant);
  const last = grants.at(-1);
  return {
    grants,
    next: rows.length > limit && last !== undefined ? { sub: last.sub, clientId: last.clientId } : null,
  };
}

/** The page size to read, after checking the options both backends accept. */
export function checkListOptions(options: { limit: number; status?: GrantStatus }): number {
  if (!Number.isInteger(options.limit) || options.limit < 1) {
    throw new BehalfError('INVALID_REQUEST', 'listGrants: limit must be a whole number of at least 1.');
  }
  if (options.status !== undefined && !STATUSES.has(options.status)) {
    throw new BehalfError(
      'INVALID_REQUEST',
      `listGrants: unknown status; expected one of ${[...STATUSES].join(', ')}.`,
    );
  }
  return Math.min(options.limit, MAX_PAGE);
}

export function checkStatus(status: GrantStatus): void {
  if (!STATUSES.has(status))
    throw new BehalfError(
      'INVALID_REQUEST',
      `Unknown grant status; expected one of ${[...STATUSES].join(', ')}.`,
    );
}

export function checkTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 1)
    throw new BehalfError(
      'INVALID_REQUEST',
      'A refresh lease needs a whole number of milliseconds of at least 1.',
    );
}

export function duplicateApiKey(cause: unknown): BehalfError {
  return new BehalfError('INVALID_REQUEST', 'An API key with this id already exists.', {
    reason: 'duplicate_id',
    cause,
  });
}
