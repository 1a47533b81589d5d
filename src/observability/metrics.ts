import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import type { GoogleObserver } from '../google/index.js';
import type { GrantStatus } from '../vault/index.js';

/**
 * behalf's Prometheus metrics, on a registry of their own per runtime (never prom-client's global
 * one), so two runtimes in one process each count their own. Labels are closed sets or route
 * patterns: no metric ever carries a user id, an email address or a token.
 */

/** Where a job run's attempt ended. */
export type JobRunOutcome = 'done' | 'failed' | 'needs_consent' | 'retrying';

/** Calls for an access token answered from memory, and the others (a store read or a refresh). */
export interface CacheStats {
  hits: number;
  misses: number;
}

/** What a scrape reads from the rest of the runtime. */
export interface MetricSources {
  cacheStats(): CacheStats;
  /** Grants per status; called at most once per `grantCountTtlMs` (see {@link Metrics}). */
  countGrants(): Promise<Record<GrantStatus, number>>;
}

export interface MetricsOptions {
  clock: Clock;
  /**
   * How long the grant counts read at a scrape are reused (default 5 s): reading them is cheap at
   * any size (see src/vault/grant-counts.ts), but /metrics may be open to anyone who reaches the
   * port, and a flood of scrapes must not become a flood of database transactions.
   */
  grantCountTtlMs?: number;
}

/** Security event types Google sends (RISC and OAuth), as the `type` label; anything else is `other`. */
const SECURITY_EVENT_TYPES: ReadonlySet<string> = new Set([
  'sessions-revoked',
  'sessions-revoked-legacy',
  'tokens-revoked',
  'token-revoked',
  'account-disabled',
  'account-enabled',
  'account-purged',
  'account-credential-change-required',
  'verification',
]);

const GRANT_STATUSES: readonly GrantStatus[] = ['active', 'revoked', 'needs_consent'];

export class Metrics {
  readonly registry = new Registry();
  readonly #httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly #httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly #refreshes: Counter<'outcome'>;
  readonly #googleDuration: Histogram<'endpoint'>;
  readonly #securityEvents: Counter<'type'>;
  readonly #jobRuns: Counter<'job' | 'status'>;
  #sources: MetricSources | undefined;

  constructor(options: MetricsOptions) {
    const registers = [this.registry];
    // prom-client calls `collect` with the metric as `this`: the sources are reached through this arrow.
    const sources = () => this.#sources;
    this.#httpRequests = new Counter({
      name: 'behalf_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.#httpDuration = new Histogram({
      name: 'behalf_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#refreshes = new Counter({
      name: 'behalf_refreshes_total',
      help: "Calls to Google's token endpoint with a refresh token, by outcome: ok, invalid_grant (the grant is dead), transient (5xx, 429, timeout, network; retried), error.",
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['ok', 'invalid_grant', 'transient', 'error'] as const)
      this.#refreshes.inc({ outcome }, 0);
    this.#googleDuration = new Histogram({
      name: 'behalf_google_request_duration_seconds',
      help: 'Time Google took to answer, by endpoint: discovery, jwks, token, revocation (failures included).',
      labelNames: ['endpoint'],
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#securityEvents = new Counter({
      name: 'behalf_security_events_total',
      help: 'Security events from Google (Cross-Account Protection) acted on, by event type; redeliveries are not counted.',
      labelNames: ['type'],
      registers,
    });
    this.#jobRuns = new Counter({
      name: 'behalf_job_runs_total',
      help: 'Job run attempts ended, by job name and status: done, failed, needs_consent, retrying.',
      labelNames: ['job', 'status'],
      registers,
    });
    const cacheCounter = (name: string, help: string, pick: (stats: CacheStats) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const stats = sources()?.cacheStats();
          this.reset();
          if (stats !== undefined) this.inc(pick(stats));
        },
      });
    cacheCounter(
      'behalf_access_token_cache_hits_total',
      'Access tokens handed out from memory.',
      (s) => s.hits,
    );
    cacheCounter(
      'behalf_access_token_cache_misses_total',
      'Access tokens not in memory: read from the store or refreshed at Google.',
      (s) => s.misses,
    );

    const counts = new Reused(options.clock, options.grantCountTtlMs ?? 5_000, () =>
      sources()?.countGrants(),
    );
    new Gauge({
      name: 'behalf_grants',
      help: 'Stored grants by status (read at most every 5 s).',
      labelNames: ['status'],
      registers,
      async collect() {
        this.reset();
        // The database away: no samples (absent rather than stale), and the scrape still answers.
        const byStatus = await counts.get().catch(() => undefined);
        if (byStatus === undefined) return;
        for (const status of GRANT_STATUSES) this.set({ status }, byStatus[status]);
      },
    });
  }

  /** Where cache statistics and grant counts come from (the token service and the database). */
  watch(sources: MetricSources): void {
    this.#sources = sources;
  }

  /** One answered HTTP request; `route` is the route's pattern (`/v1/users/:sub`), never its path. */
  readonly httpRequest = (method: string, route: string, status: number, seconds: number): void => {
    const labels = { method, route, status: String(status) };
    this.#httpRequests.inc(labels);
    this.#httpDuration.observe(labels, seconds);
  };

  /** Calls to Google's endpoints and refresh outcomes (handed to the Google clients). */
  readonly google: GoogleObserver = {
    request: (endpoint, seconds) => this.#googleDuration.observe({ endpoint }, seconds),
    refresh: (outcome) => this.#refreshes.inc({ outcome }),
  };

  readonly securityEvent = (type: string): void => {
    this.#securityEvents.inc({ type: SECURITY_EVENT_TYPES.has(type) ? type : 'other' });
  };

  readonly jobRun = (job: string, status: JobRunOutcome): void => {
    this.#jobRuns.inc({ job, status });
  };

  /** The text exposition: behalf's metrics, then the process's (see {@link processRegistry}). */
  async exposition(): Promise<{ contentType: string; body: string }> {
    const [own, process] = await Promise.all([this.registry.metrics(), processRegistry().metrics()]);
    return { contentType: this.registry.contentType, body: `${own}\n${process}` };
  }
}

let processMetrics: Registry | undefined;

/**
 * Node's default metrics (CPU, memory, event loop lag, GC, handles) describe the process, not a
 * runtime: one registry per process, made on first use and shared by every runtime's scrape
 * (collecting them per runtime would add a GC observer and a lag monitor per runtime, never removed).
 */
function processRegistry(): Registry {
  if (processMetrics === undefined) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/** A value computed at most once per `ttlMs` (by the injected clock); callers meanwhile share it. */
class Reused<T> {
  #value: { at: number; value: T } | undefined;
  #inflight: Promise<T | undefined> | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs: number,
    private readonly compute: () => Promise<T> | undefined,
  ) {}

  async get(): Promise<T | undefined> {
    const cached = this.#value;
    if (cached !== undefined && this.clock.now() - cached.at < this.ttlMs) return cached.value;
    this.#inflight ??= this.#load().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #load(): Promise<T | undefined> {
    const at = this.clock.now();
    const value = await this.compute();
    if (value !== undefined) this.#value = { at, value };
    return value;
  }
}
