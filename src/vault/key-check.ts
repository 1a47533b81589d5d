import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { BehalfError } from '../errors.js';
import { decryptToken, envelopeKeyId, type TokenColumn } from './envelope.js';
import type { Keyring } from './keyring.js';
import type { Store } from './types.js';

/**
 * Key checks: one value per encryption key id, kept in the database (`key_checks`), that
 * authenticates only under the very bytes that wrote it. At start-up every configured key id is
 * checked against it, so a key whose id is known but whose bytes differ (a typo, the wrong
 * environment's secret, a regenerated local key file) stops start-up with one line naming the id,
 * instead of starting and then failing every user with "ciphertext altered or moved".
 *
 * The check value is an AES-256-GCM encryption of a fixed plaintext under that key, rather than
 * an HMAC of a label: the key is then used only the way behalf already uses it (AES-256-GCM, a
 * fresh 96-bit nonce), with no second primitive on the same key, and what is stored is one more
 * ciphertext of the kind every grant row already holds. It reveals nothing from which the key can
 * be found short of breaking AES. (GCM is not key-committing, so someone who holds two keys could
 * craft a value that passes under both; this check is against mistakes, not against whoever can
 * write to the database, who could as well delete the row.)
 *
 * Layout, version 1 (lengths in bytes):
 *
 *     offset 0    1   version = 0x01
 *     offset 1    12  nonce
 *     offset 13   16  ciphertext of the ASCII plaintext `behalf key check` (16 bytes)
 *     offset 29   16  GCM authentication tag
 *
 * Associated data (authenticated, not stored): lp("behalf/key-check/v1") ‖ lp(keyId) ‖ lp(version
 * byte), each field a 4-byte big-endian length and then the bytes. The domain differs from token
 * envelopes' (`behalf/v1`, ./envelope.ts), so a check value never opens as a token nor a token as
 * a check value, and the key id is bound in, so a check value copied to another id does not verify.
 */
const CHECK_VERSION = 1;
const CHECK_PLAINTEXT = Buffer.from('behalf key check', 'ascii');
const AAD_DOMAIN = 'behalf/key-check/v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const CHECK_BYTES = 1 + NONCE_BYTES + CHECK_PLAINTEXT.length + TAG_BYTES;

/** Rows read per page when an upgraded database's existing tokens are sampled (see verifyKeyring). */
const SAMPLE_PAGE = 500;
/** Stored tokens tried per key id before its bytes are judged wrong: one bad row is not a wrong key. */
const SAMPLES_PER_KEY = 3;
/** Times a key id's check is recorded or read back before giving up (a row deleted in between). */
const RECORD_ATTEMPTS = 3;

/** What a stored check value says about a configured key. */
export type KeyCheckResult = 'match' | 'mismatch' | 'unreadable';

/** A new check value for a configured key id. Never contains the key. */
export function createKeyCheckValue(keyring: Keyring, keyId: string): Buffer {
  const key = keyring.keyFor(keyId);
  if (key === undefined) throw new BehalfError('INTERNAL', `No key with id '${keyId}' is configured.`);
  const nonce = randomBytes(NONCE_BYTES);
  // Stryker disable next-line ObjectLiteral: GCM's tag is 16 bytes by default; named anyway so the length never rests on a default
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData(keyId));
  const body = Buffer.concat([cipher.update(CHECK_PLAINTEXT), cipher.final()]);
  return Buffer.concat([Buffer.from([CHECK_VERSION]), nonce, body, cipher.getAuthTag()]);
}

/**
 * Whether a stored check value was made by the configured key under `keyId`: `unreadable` when it
 * is not a version-1 check value (truncated, or written by a newer behalf).
 */
export function verifyKeyCheckValue(keyring: Keyring, keyId: string, value: Buffer): KeyCheckResult {
  const key = keyring.keyFor(keyId);
  if (key === undefined) throw new BehalfError('INTERNAL', `No key with id '${keyId}' is configured.`);
  if (value.length !== CHECK_BYTES || value[0] !== CHECK_VERSION) return 'unreadable';
  const nonce = value.subarray(1, 1 + NONCE_BYTES);
  const body = value.subarray(1 + NONCE_BYTES, value.length - TAG_BYTES);
  // Stryker disable next-line ObjectLiteral: the tag is always the value's last TAG_BYTES bytes (its length is checked first); named as defence in depth
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(associatedData(keyId));
  decipher.setAuthTag(value.subarray(value.length - TAG_BYTES));
  try {
    const plaintext = Buffer.concat([decipher.update(body), decipher.final()]);
    return plaintext.equals(CHECK_PLAINTEXT) ? 'match' : 'mismatch';
  } catch {
    return 'mismatch';
  }
}

/** What {@link verifyKeyring} did. */
export interface KeyringVerification {
  /** Configured key ids whose stored check value this key matched. */
  verified: string[];
  /** Configured key ids that had no check value and got one now (or matched one a concurrent start recorded). */
  recorded: string[];
}

/**
 * Check the configured keys against the database before anything is written with them.
 *
 * 1. Every configured key id that has a check value in the store must match it. Any that does not
 *    is one BehalfError('CONFIG_INVALID', reason `key_mismatch`) whose message is a single line
 *    naming the key id(s), never key material; nothing has been written at that point.
 * 2. When the store has no check value at all (a database from before key checks, or a new one),
 *    a few stored tokens under each configured key id, if there are any, must decrypt with it:
 *    otherwise the first start after the upgrade would record the wrong key as the right one.
 *    This walks the grants until every key id has been sampled (a full walk, once, when some key
 *    id wrote nothing). Later, every new key id gets its check value here before anything is
 *    written with it, so there is nothing to sample.
 * 3. Configured key ids without a check value get one. When another process recorded one first,
 *    that one is read back and checked, not trusted.
 *
 * Check values of key ids that are not configured (old keys retired after a rotation) are left alone.
 */
export async function verifyKeyring(
  store: Store,
  keyring: Keyring,
  now: number,
): Promise<KeyringVerification> {
  const stored = new Map((await store.listKeyChecks()).map((check) => [check.keyId, check.checkValue]));
  const verified: string[] = [];
  const unchecked: string[] = [];
  const mismatched: string[] = [];
  const unreadable: string[] = [];
  for (const keyId of keyring.ids) {
    const value = stored.get(keyId);
    if (value === undefined) {
      unchecked.push(keyId);
      continue;
    }
    const result = verifyKeyCheckValue(keyring, keyId, value);
    if (result === 'match') verified.push(keyId);
    else (result === 'mismatch' ? mismatched : unreadable).push(keyId);
  }
  refuse(mismatched, unreadable);

  if (stored.size === 0 && unchecked.length > 0)
    refuse(await keysFailingOnStoredTokens(store, keyring, unchecked), []);

  const recorded: string[] = [];
  for (const keyId of unchecked) {
    const result = await recordKeyCheck(store, keyring, keyId, now);
    if (result === 'match') recorded.push(keyId);
    else (result === 'mismatch' ? mismatched : unreadable).push(keyId);
  }
  refuse(mismatched, unreadable);
  return { verified, recorded };
}

/** Record a check value for `keyId`, or check the one a concurrent start recorded first. */
async function recordKeyCheck(
  store: Store,
  keyring: Keyring,
  keyId: string,
  now: number,
): Promise<KeyCheckResult> {
  for (let attempt = 0; attempt < RECORD_ATTEMPTS; attempt++) {
    if (await store.addKeyCheck({ keyId, checkValue: createKeyCheckValue(keyring, keyId), createdAt: now }))
      return 'match';
    const raced = (await store.listKeyChecks()).find((check) => check.keyId === keyId);
    if (raced !== undefined) return verifyKeyCheckValue(keyring, keyId, raced.checkValue);
  }
  throw new BehalfError(
    'INTERNAL',
    `The key check for key id '${keyId}' could not be recorded: it kept being added and removed.`,
  );
}

/**
 * Key ids among `keyIds` whose stored tokens (up to SAMPLES_PER_KEY of them) all fail to decrypt.
 * One row that does not authenticate may be a damaged row; none of several is a wrong key.
 */
async function keysFailingOnStoredTokens(
  store: Store,
  keyring: Keyring,
  keyIds: readonly string[],
): Promise<string[]> {
  const pending = new Map(keyIds.map((id) => [id, 0]));
  const failing = new Set<string>();
  let after: { sub: string; clientId: string } | undefined;
  while (pending.size > 0) {
    const page = await store.listGrants({ limit: SAMPLE_PAGE, ...(after === undefined ? {} : { after }) });
    for (const grant of page.grants) {
      const columns: Array<[TokenColumn, Buffer | null]> = [
        ['refresh_token', grant.refreshTokenCiphertext],
        ['access_token', grant.accessTokenCiphertext],
      ];
      for (const [column, ciphertext] of columns) {
        const keyId = ciphertext === null ? undefined : envelopeKeyId(ciphertext);
        const tried = keyId === undefined ? undefined : pending.get(keyId);
        if (keyId === undefined || tried === undefined) continue;
        try {
          decryptToken(keyring, { column, sub: grant.sub, clientId: grant.clientId }, ciphertext!);
          pending.delete(keyId);
          failing.delete(keyId);
        } catch {
          failing.add(keyId);
          if (tried + 1 >= SAMPLES_PER_KEY) pending.delete(keyId);
          else pending.set(keyId, tried + 1);
        }
      }
    }
    if (page.next === null) break;
    after = page.next;
  }
  return keyIds.filter((id) => failing.has(id));
}

/** Throw the one start-up line for key ids that do not match, if there are any. */
function refuse(mismatched: readonly string[], unreadable: readonly string[]): void {
  if (mismatched.length > 0) {
    const one = mismatched.length === 1;
    const ids = mismatched.map((id) => `'${id}'`).join(', ');
    throw new BehalfError(
      'CONFIG_INVALID',
      `Encryption key id${one ? '' : 's'} ${ids} ${one ? 'has' : 'have'} different bytes from the key${one ? '' : 's'} ` +
        `this database was written with under ${one ? 'that id' : 'those ids'}; nothing was written. ` +
        `Restore the original key${one ? '' : 's'} under ${ids}, or give a new key a new id ` +
        '(first in BEHALF_ENCRYPTION_KEYS, the old entries after it until `behalf keys rotate` has finished).',
      { reason: 'key_mismatch', details: { keyIds: [...mismatched] } },
    );
  }
  if (unreadable.length > 0) {
    const ids = unreadable.map((id) => `'${id}'`).join(', ');
    throw new BehalfError(
      'CONFIG_INVALID',
      `The key check stored for encryption key id${unreadable.length === 1 ? '' : 's'} ${ids} is not one this behalf can read ` +
        '(truncated, or written by a newer behalf); nothing was written. Run the behalf version that wrote it.',
      { reason: 'key_check_unreadable', details: { keyIds: [...unreadable] } },
    );
  }
}

function associatedData(keyId: string): Buffer {
  const fields = [Buffer.from(AAD_DOMAIN, 'utf8'), Buffer.from(keyId, 'ascii'), Buffer.from([CHECK_VERSION])];
  return Buffer.concat(fields.flatMap((field) => [uint32(field.length), field]));
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
