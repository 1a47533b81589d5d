/**
 * Service API keys verified a moment ago, so that a request does not read the database to check
 * its key (that read and a hash were ~8% of the proxy's CPU time in a profile under load).
 *
 * - What is kept: per key id (public: it names the key in logs and listings), the SHA-256 of the
 *   whole key as the database has it, and until when it may be trusted. Never the key itself, so
 *   a heap dump shows no more than the database does. A presented key is hashed and compared in
 *   constant time (`timingSafeEqual`), as the vault does; what a timing difference could tell (that
 *   an id was used lately) is public anyway.
 * - Only keys the database confirmed are kept, and at most {@link MAX_KEYS} of them: a flood of
 *   garbage keys never adds an entry (each still costs a database read, as before), and a wrong
 *   secret for a remembered id is refused without one.
 * - Revocation: a key revoked in this process is forgotten at once (`forget`, wired to the vault's
 *   revocation hook). One revoked elsewhere (another instance, `behalf keys revoke`) is refused
 *   once its entry expires: an entry is trusted for {@link TRUST_MS} from the moment its database
 *   read was sent: half the staleness bound every instance promises for grant changes. The
 *   grant change channel (src/database/grant-changes.ts) is not used: its triggers are on the
 *   grants table, and a key's expiry costs one primary-key read per key and half-second anyway.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { STALENESS_BOUND_MS } from '../database/index.js';

/** How long a verified key is trusted without asking the database again (real time, ms). */
export const TRUST_MS = STALENESS_BOUND_MS / 2;
/** More keys than any deployment has; beyond it the oldest entry goes. */
export const MAX_KEYS = 1_024;

/** The full check of a key (the database read and the comparison): its id when valid, else null. */
export type VerifyApiKey = (presented: string) => Promise<{ id: string } | null>;

export interface ApiKeyCacheOptions {
  verify: VerifyApiKey;
  trustMs?: number;
  maxKeys?: number;
  /** A monotonic clock in ms. Real time by default, whatever clock behalf was given: the bound is a promise in real time. */
  now?: () => number;
}

interface Entry {
  hash: Buffer;
  trustedUntil: number;
}

/** `bhf_<12 hex id>_<43 base64url>`: see src/vault/api-keys.ts. Anything else is never remembered. */
const KEY_LENGTH = 'bhf_'.length + 12 + 1 + 43;
const ID_START = 4;
const ID_END = 16;

export class ApiKeyCache {
  readonly #verify: VerifyApiKey;
  readonly #trustMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  /** Moves on every revocation: a database answer older than one is not remembered. */
  #revocations = 0;

  constructor(options: ApiKeyCacheOptions) {
    this.#verify = options.verify;
    this.#trustMs = options.trustMs ?? TRUST_MS;
    this.#maxKeys = options.maxKeys ?? MAX_KEYS;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Whether `presented` is a valid service API key, from memory when it was verified lately. */
  async authenticate(presented: string): Promise<boolean> {
    if (presented.length !== KEY_LENGTH) return false;
    const id = presented.slice(ID_START, ID_END);
    const hash = sha256(presented);
    const entry = this.#entries.get(id);
    if (entry !== undefined) {
      // The id names one row, whose hash is this one: any other key with this id is wrong.
      if (this.#now() < entry.trustedUntil) return timingSafeEqual(hash, entry.hash);
      this.#entries.delete(id);
    }
    const revocations = this.#revocations;
    const sent = this.#now();
    const verified = await this.#verify(presented);
    if (verified === null || verified.id !== id) return false;
    // A revocation while the read was out: this request was checked before it and goes on, but
    // the answer may predate the delete, so it is not remembered.
    if (revocations === this.#revocations) this.#remember(id, hash, sent + this.#trustMs);
    return true;
  }

  /** Forget the key `id` (it was revoked in this process). */
  forget(id: string): void {
    this.#revocations++;
    this.#entries.delete(id);
  }

  /** How many keys are remembered (for tests). */
  get size(): number {
    return this.#entries.size;
  }

  #remember(id: string, hash: Buffer, trustedUntil: number): void {
    this.#entries.delete(id); // re-inserted last: the oldest entry is the first one
    if (this.#entries.size >= this.#maxKeys) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(id, { hash, trustedUntil });
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
