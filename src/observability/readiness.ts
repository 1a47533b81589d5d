import type { Clock } from '../clock.js';

/**
 * Readiness: whether this instance can serve, checked afresh on every probe. Each check answers
 * "ok" or a short fixed message: a probe is unauthenticated, so nothing here names a host, a URL,
 * a database or an error's own text.
 */
export interface ReadinessReport {
  ready: boolean;
  checks: Record<ReadinessCheckName, string>;
}

export type ReadinessCheckName = 'database' | 'schema' | 'google_discovery' | 'google_keys';

export interface ReadinessOptions {
  clock: Clock;
  /** The schema version the database records now (throws when the database does not answer). */
  schemaVersion(): Promise<number>;
  /** The schema version this build needs. */
  expectedSchemaVersion: number;
  /** Resolves once Google's discovery document is loaded (fetching it if it never was). */
  loadDiscovery(): Promise<unknown>;
  /** Whether Google's signing keys are loaded (fetching them if none are). */
  loadKeys(): Promise<boolean>;
  /** Longest a check may take before it counts as failed (default 2 s: probes time out soon). */
  timeoutMs?: number;
}

/**
 * After a failed attempt to load from Google, probes report that failure without asking Google
 * again for this long: an unauthenticated endpoint must not become a way to make behalf call Google.
 */
const GOOGLE_RETRY_MS = 5_000;

export class Readiness {
  readonly #timeoutMs: number;
  readonly #discovery: GoogleLoad;
  readonly #keys: GoogleLoad;

  constructor(private readonly options: ReadinessOptions) {
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#discovery = new GoogleLoad(options.clock, async () => {
      await options.loadDiscovery();
      return 'ok';
    });
    this.#keys = new GoogleLoad(options.clock, async () =>
      (await options.loadKeys()) ? 'ok' : 'no usable signing keys',
    );
  }

  async check(): Promise<ReadinessReport> {
    const [schema, discovery, keys] = await Promise.all([
      this.#bounded(this.options.schemaVersion()),
      this.#bounded(this.#discovery.get()),
      this.#bounded(this.#keys.get()),
    ]);
    const expected = this.options.expectedSchemaVersion;
    const checks: ReadinessReport['checks'] = {
      database: schema.ok
        ? 'ok'
        : schema.timedOut
          ? `did not answer within ${this.#timeoutMs} ms`
          : 'not answering',
      schema: !schema.ok
        ? 'unknown: the database is not answering'
        : schema.value === expected
          ? 'ok'
          : `at version ${schema.value}; this behalf needs ${expected}${schema.value < expected ? ' (run behalf migrate)' : ''}`,
      google_discovery: discovery.ok
        ? discovery.value
        : discovery.timedOut
          ? 'loading'
          : 'not loaded: Google did not answer',
      google_keys: keys.ok ? keys.value : keys.timedOut ? 'loading' : 'not loaded: Google did not answer',
    };
    return { ready: Object.values(checks).every((value) => value === 'ok'), checks };
  }

  /** The promise's value, or how it failed: rejected, or still pending after the timeout. */
  async #bounded<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; timedOut: boolean }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<{ ok: false; timedOut: true }>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, timedOut: true }), this.#timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([
        promise.then(
          (value) => ({ ok: true as const, value }),
          () => ({ ok: false as const, timedOut: false }),
        ),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** One thing loaded from Google: a load shared by concurrent probes, and not retried for a while after it failed. */
class GoogleLoad {
  #inflight: Promise<string> | undefined;
  #failedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly clock: Clock,
    private readonly load: () => Promise<string>,
  ) {}

  get(): Promise<string> {
    if (this.#inflight !== undefined) return this.#inflight;
    if (this.clock.now() - this.#failedAt < GOOGLE_RETRY_MS)
      return Promise.reject(new Error('failed recently'));
    const attempt = this.load().catch((error: unknown) => {
      this.#failedAt = this.clock.now();
      throw error;
    });
    this.#inflight = attempt.finally(() => {
      this.#inflight = undefined;
    });
    // The shared promise may settle with nobody awaiting it (a probe that timed out).
    this.#inflight.catch(() => undefined);
    return this.#inflight;
  }
}
