import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BehalfError } from '../errors.js';
import type { ApiKeySummary, Store } from './types.js';

/**
 * Service API keys: `bhf_<id>_<secret>`, where id is 12 lowercase hex characters (public: it
 * finds the row and names the key in logs) and secret is 32 random bytes in base64url. Only
 * SHA-256 of the whole key is stored: the secret has 256 bits of entropy, so a fast hash is as
 * strong as a password hash here (there is nothing to guess). Hashes are compared with
 * `crypto.timingSafeEqual`. The `bhf_` prefix lets secret scanners recognise a leaked key.
 */
const KEY_FORMAT = /^bhf_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const API_KEY_ID = /^[0-9a-f]{12}$/;
const KEY_LENGTH = 'bhf_'.length + 12 + 1 + 43;
const ID_BYTES = 6;
const SECRET_BYTES = 32;
/** Compared against when the id is unknown, so that path does the same work as a wrong secret. */
const NO_SUCH_KEY = Buffer.alloc(32);

export interface CreatedApiKey {
  /** The public id (safe to log). */
  id: string;
  /** The whole key: shown once, never stored. */
  key: string;
  name: string;
  createdAt: number;
}

/** Create a service API key. The returned `key` is the only copy: the store keeps its SHA-256. */
export async function createApiKey(
  store: Store,
  name: string,
  now: number = Date.now(),
): Promise<CreatedApiKey> {
  const label = name.trim();
  // eslint-disable-next-line no-control-regex
  if (label.length === 0 || label.length > 100 || /[\u0000-\u001f\u007f]/.test(label)) {
    throw new BehalfError(
      'INVALID_REQUEST',
      'An API key name is 1-100 characters without control characters.',
    );
  }
  for (let attempt = 0; ; attempt++) {
    const id = randomBytes(ID_BYTES).toString('hex');
    const key = `bhf_${id}_${randomBytes(SECRET_BYTES).toString('base64url')}`;
    try {
      await store.createApiKey({ id, hash: sha256(key), name: label, createdAt: now });
      return { id, key, name: label, createdAt: now };
    } catch (error) {
      // 48 random bits: a clash is all but impossible, but cheap to survive.
      if (attempt < 2 && error instanceof BehalfError && error.reason === 'duplicate_id') continue;
      throw error;
    }
  }
}

/** A key's use is written at most this often per process: "last used" is to the minute. */
const USE_RECORD_INTERVAL_MS = 60_000;
/** Per store, when this process last wrote each key's use. One entry per valid key: bounded. */
const usesRecorded = new WeakMap<Store, Map<string, number>>();

/**
 * Check a presented key: the public id and name of the key when it is valid, else null. A
 * malformed, unknown or wrong key gives null, never an error with details; the store being
 * unreachable is still an error (STORE_UNAVAILABLE), so an outage is not reported as a bad key.
 * With `now`, a valid key's use is recorded (at most once a minute per process, best effort).
 */
export async function authenticateApiKey(
  store: Store,
  presented: string,
  options: { now?: number } = {},
): Promise<{ id: string; name: string } | null> {
  if (typeof presented !== 'string' || presented.length !== KEY_LENGTH) return null;
  const match = KEY_FORMAT.exec(presented);
  if (match === null) return null;
  const record = await store.findApiKey(match[1]!);
  const expected = record !== null && record.hash.length === NO_SUCH_KEY.length ? record.hash : NO_SUCH_KEY;
  const equal = timingSafeEqual(sha256(presented), expected);
  if (!equal || record === null) return null;
  if (options.now !== undefined) await recordUse(store, record.id, options.now);
  return { id: record.id, name: record.name };
}

/** True when the presented key is a valid service API key (see {@link authenticateApiKey}). */
export async function verifyApiKey(
  store: Store,
  presented: string,
  options: { now?: number } = {},
): Promise<boolean> {
  return (await authenticateApiKey(store, presented, options)) !== null;
}

async function recordUse(store: Store, id: string, now: number): Promise<void> {
  let recorded = usesRecorded.get(store);
  if (recorded === undefined) usesRecorded.set(store, (recorded = new Map()));
  const last = recorded.get(id);
  if (last !== undefined && now >= last && now - last < USE_RECORD_INTERVAL_MS) return;
  recorded.set(id, now);
  // A note for people, not a check: a store that cannot take it does not refuse the key.
  await store.recordApiKeyUse(id, now).catch(() => undefined);
}

/** Every service API key: id, name, when it was created. Never the key, nor its hash. */
export function listApiKeys(store: Store): Promise<ApiKeySummary[]> {
  return store.listApiKeys();
}

/** Per store, who hears of the keys this process revokes (the service routes' cache of verified keys). */
const revocationListeners = new WeakMap<Store, Set<(id: string) => void>>();

/**
 * Call `listener` with the id of every key revoked through `store` in this process, right after
 * the delete (whatever its outcome). Returns the unsubscribe.
 */
export function onApiKeyRevoked(store: Store, listener: (id: string) => void): () => void {
  let listeners = revocationListeners.get(store);
  if (listeners === undefined) revocationListeners.set(store, (listeners = new Set()));
  listeners.add(listener);
  return () => void listeners.delete(listener);
}

/**
 * Revoke a service API key by its public id: from the next request on it authenticates nothing
 * on this instance, and within the staleness bound on every other one (a server remembers a
 * verified key for less than that). NOT_FOUND when there is no such key.
 */
export async function revokeApiKey(store: Store, id: string): Promise<void> {
  if (!API_KEY_ID.test(id)) {
    throw new BehalfError(
      'INVALID_REQUEST',
      'An API key id is 12 lowercase hexadecimal characters (as `behalf keys list` shows).',
      {
        reason: 'bad_api_key_id',
      },
    );
  }
  let deleted: boolean;
  try {
    deleted = await store.deleteApiKey(id);
  } finally {
    // Even when nothing was deleted (another instance was first) or the answer was lost: a
    // forgotten key only costs its next request a database read.
    for (const listener of revocationListeners.get(store) ?? []) listener(id);
  }
  if (!deleted)
    throw new BehalfError('NOT_FOUND', `No service API key has the id ${id}.`, { reason: 'no_such_api_key' });
}

/** The public id of a well-formed key (for logs), or undefined. Does not check the key. */
export function apiKeyId(presented: string): string | undefined {
  return KEY_FORMAT.exec(presented)?.[1];
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
