import { randomUUID } from 'node:crypto';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Behalf } from '../behalf.js';
import type { Clock } from '../clock.js';
import { BehalfError, isBehalfError } from '../errors.js';
import { normalizeScope } from '../google/scopes.js';
import type { Vault } from '../vault/index.js';
import type { JobBackend, JobDefinition, JobParamsByName, JobRun, JobRunStatus } from './types.js';

/** Where a run is delayed before it may start. */
export interface EnqueueOptions {
  /** Milliseconds before the run may start (default 0). */
  delayMs?: number;
}

/**
 * `define`'s result: the runner, now knowing job `N`'s parameters when `N` is a literal name. The
 * first such job turns an untyped runner (any name) into one that knows exactly its jobs.
 */
type WithJob<Jobs extends JobParamsByName, N extends string, P> = string extends N
  ? JobRunner<Jobs>
  : JobRunner<(string extends keyof Jobs ? unknown : Jobs) & { [K in N]: P }>;

/** The arguments after `sub`: the params may be left out when the job takes none (`{}` fits). */
type EnqueueArgs<P> = object extends P
  ? [params?: P, options?: EnqueueOptions]
  : [params: P, options?: EnqueueOptions];

export interface JobRunnerOptions {
  backend: JobBackend;
  behalf: Behalf;
  vault: Vault;
  clock: Clock;
  logger: Logger;
  /** Runs in progress at once in this process (default 4). */
  concurrency?: number;
  /**
   * Most runs started per second in this process, to keep a run over many users under the Google
   * project's quota instead of collecting 429s (default: no limit).
   */
  maxStartsPerSecond?: number;
  /** Retry backoff: base × 2^(attempt-1) with full jitter, capped (defaults 2 s and 5 min). */
  backoff?: { baseMs: number; maxMs: number };
  random?: () => number;
  /** Told how each attempt of a run ended (metrics): done, failed, needs_consent, or retrying. */
  onAttemptEnded?: (job: string, status: 'done' | 'failed' | 'needs_consent' | 'retrying') => void;
}

/**
 * Runs work for users who are not there. Each run is for one user and is isolated: one user's
 * revoked grant or failing data fails only that user's run, with a clear status. Retryable
 * failures (Google unavailable or rate-limiting) are retried with backoff; a dead grant is not.
 *
 * Typed by its jobs: `define` returns the runner knowing the job's name and parameter type, so
 * `runner.define(job).enqueue(job.name, sub, params)` checks `params` against the job's; the type
 * argument `Jobs` (`createJobRunner<{ resize: { width: number } }>()`) declares them up front.
 */
export class JobRunner<Jobs extends JobParamsByName = JobParamsByName> {
  readonly #definitions = new Map<string, JobDefinition<any>>(); // eslint-disable-line @typescript-eslint/no-explicit-any
  readonly #limiter: PQueue;
  readonly #backoff: { baseMs: number; maxMs: number };
  #started = false;

  constructor(private readonly options: JobRunnerOptions) {
    const concurrency = options.concurrency ?? 4;
    this.#limiter = new PQueue({
      concurrency,
      ...(options.maxStartsPerSecond === undefined
        ? {}
        : { intervalCap: options.maxStartsPerSecond, interval: 1000 }),
    });
    this.#backoff = options.backoff ?? { baseMs: 2_000, maxMs: 5 * 60_000 };
  }

  /** Add a job (before `start()`); returns this runner, typed to know the job. */
  define<P, N extends string>(definition: JobDefinition<P, N>): WithJob<Jobs, N, P> {
    if (this.#started) throw new Error('Define jobs before starting the runner.');
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(definition.name)) {
      throw new BehalfError(
        'INVALID_REQUEST',
        'A job name is 1-64 characters of a-z, 0-9, ".", "_" and "-".',
      );
    }
    this.#definitions.set(definition.name, definition);
    return this as unknown as WithJob<Jobs, N, P>;
  }

  /** Enqueue a run of `name` for one user, with the job's parameters (`{}` when left out). */
  enqueue<N extends keyof Jobs & string>(
    name: N,
    sub: string,
    ...args: EnqueueArgs<Jobs[N]>
  ): Promise<JobRun> {
    const [params = {}, options = {}] = args as [unknown?, EnqueueOptions?];
    return this.#insert(name, sub, params, options);
  }

  /** Enqueue a run of `name` for every user with an active grant that includes `scope`. */
  async enqueueForScope<N extends keyof Jobs & string>(
    name: N,
    scope: string,
    ...args: EnqueueArgs<Jobs[N]>
  ): Promise<{ enqueued: number; runs: string[] }> {
    const [params = {}] = args as [unknown?];
    this.#definition(name);
    const wanted = normalizeScope(scope);
    const runs: string[] = [];
    for await (const grant of this.options.vault.eachGrant({ status: 'active' })) {
      if (grant.clientId === this.options.behalf.clientId && grant.scopes.includes(wanted)) {
        runs.push((await this.#insert(name, grant.sub, params, {})).id);
      }
    }
    return { enqueued: runs.length, runs };
  }

  async #insert(name: string, sub: string, params: unknown, options: EnqueueOptions): Promise<JobRun> {
    const definition = this.#definition(name);
    const parsed = definition.parseParams === undefined ? params : definition.parseParams(params);
    checkStorable(parsed);
    const now = this.options.clock.now();
    const run: JobRun = {
      id: randomUUID(),
      name,
      sub,
      params: parsed,
      status: 'queued',
      attempts: 0,
      maxAttempts: definition.maxAttempts ?? 5,
      errorCode: null,
      errorMessage: null,
      result: null,
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
    };
    await this.options.backend.insertRun(run, options.delayMs);
    return run;
  }

  getRun(id: string): Promise<JobRun | null> {
    return this.options.backend.getRun(id);
  }

  listRuns(
    filter: { name?: string; status?: JobRunStatus; sub?: string; limit?: number } = {},
  ): Promise<JobRun[]> {
    return this.options.backend.listRuns(filter);
  }

  /** Start working: deliveries of every defined job are executed here. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.options.backend.start([...this.#definitions.keys()], this.options.concurrency ?? 4, (runId) =>
      this.#limiter.add(() => this.#execute(runId)),
    );
  }

  /** Resolves once nothing is waiting or running (delayed retries included), or after `timeoutMs`. */
  async whenIdle(timeoutMs = 60_000, pollMs = 50): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (
        (await this.options.backend.outstanding()) === 0 &&
        this.#limiter.size === 0 &&
        this.#limiter.pending === 0
      )
        return true;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    return false;
  }

  async stop(): Promise<void> {
    await this.options.backend.stop();
    await this.#limiter.onIdle();
  }

  #definition(name: string): JobDefinition<unknown> {
    const definition = this.#definitions.get(name);
    if (definition === undefined) throw new BehalfError('NOT_FOUND', `No job named "${name}" is defined.`);
    return definition;
  }

  async #execute(runId: string): Promise<void> {
    const { backend, behalf, clock } = this.options;
    const run = await backend.getRun(runId);
    // Finished runs are not run again (a delivery repeated after a worker crash).
    if (run === null || run.status === 'done' || run.status === 'failed' || run.status === 'needs_consent')
      return;
    const definition = this.#definitions.get(run.name);
    if (definition === undefined) return;
    const attempt = run.attempts + 1;
    const log = this.options.logger.child({ job: run.name, run: run.id, sub: run.sub, attempt });
    await backend.updateRun(run.id, { status: 'running', attempts: attempt, updatedAt: clock.now() });

    try {
      // A grant known to be dead is not worth a call to Google.
      const { grant } = await behalf.getUser(run.sub);
      if (grant === null || !grant.offlineAccess) {
        throw new BehalfError(
          'NEEDS_CONSENT',
          'The user has no usable grant; they must sign in again with consent.',
          {
            reason: grant?.status ?? 'no_grant',
          },
        );
      }
      const result = await definition.run({
        sub: run.sub,
        params: run.params as never,
        fetch: (url, init) => behalf.fetch(run.sub, url, init),
        auth: behalf.authFor(run.sub),
        attempt,
        log,
      });
      await this.#finish(run.id, 'done', { result: result ?? null });
      log.info('job run done');
      this.options.onAttemptEnded?.(run.name, 'done');
    } catch (error) {
      const outcome = classify(error);
      if (outcome.status === 'retry' && attempt < run.maxAttempts) {
        const backoff =
          Math.min(this.#backoff.maxMs, this.#backoff.baseMs * 2 ** (attempt - 1)) *
          (this.options.random ?? Math.random)();
        const delay = Math.max(backoff, (outcome.retryAfter ?? 0) * 1000);
        await backend.updateRun(run.id, {
          status: 'retrying',
          errorCode: outcome.code,
          errorMessage: outcome.message,
          updatedAt: clock.now(),
        });
        await backend.requeue(run, delay);
        log.warn({ code: outcome.code, delayMs: Math.round(delay) }, 'job run will be retried');
        this.options.onAttemptEnded?.(run.name, 'retrying');
        return;
      }
      const status = outcome.status === 'needs_consent' ? 'needs_consent' : 'failed';
      await this.#finish(run.id, status, { errorCode: outcome.code, errorMessage: outcome.message });
      log.warn({ code: outcome.code, status }, 'job run ended without success');
      this.options.onAttemptEnded?.(run.name, status);
    }
  }

  async #finish(id: string, status: JobRunStatus, patch: Partial<JobRun>): Promise<void> {
    const now = this.options.clock.now();
    await this.options.backend.updateRun(id, { ...patch, status, updatedAt: now, finishedAt: now });
  }
}

/**
 * Params are stored as JSON on both backends: they must be JSON, and without NUL characters,
 * which Postgres's JSONB refuses (SQLite would store them: the same call must work on both).
 */
function checkStorable(params: unknown): void {
  let json: string | undefined;
  let nul = false;
  try {
    json = JSON.stringify(params, (key, value: unknown) => {
      if (key.includes('\0') || (typeof value === 'string' && value.includes('\0'))) nul = true;
      return value;
    });
  } catch {
    json = undefined;
  }
  if (json === undefined)
    throw new BehalfError(
      'INVALID_REQUEST',
      'Job params must be JSON (an object, array, string, number, boolean or null).',
    );
  if (nul) throw new BehalfError('INVALID_REQUEST', 'Job params must not contain NUL characters.');
}

interface Outcome {
  status: 'retry' | 'needs_consent' | 'failed';
  code: string;
  message: string;
  retryAfter?: number;
}

/** What a failure means for the run: retry later, ask the user for consent, or give up. */
function classify(error: unknown): Outcome {
  if (isBehalfError(error)) {
    if (error.code === 'NEEDS_CONSENT' || error.code === 'USER_NOT_FOUND') {
      return { status: 'needs_consent', code: error.code, message: error.message };
    }
    return {
      status: error.retryable ? 'retry' : 'failed',
      code: error.code,
      message: error.message,
      ...(error.retryAfter === undefined ? {} : { retryAfter: error.retryAfter }),
    };
  }
  // Errors from the handler's own calls (googleapis' GaxiosError carries the HTTP status).
  const status =
    (error as { response?: { status?: unknown }; status?: unknown } | null)?.response?.status ??
    (error as { status?: unknown } | null)?.status;
  const name = error instanceof Error ? error.name : 'Error';
  const message = scrub(error instanceof Error ? error.message : String(error));
  // 401: the token died mid-run (a streamed upload cannot be replayed at once); the next attempt
  // gets a fresh token, or finds the grant dead and ends as needs_consent.
  if (typeof status === 'number' && (status === 401 || status === 429 || status >= 500)) {
    return { status: 'retry', code: `HTTP_${status}`, message };
  }
  return { status: 'failed', code: typeof status === 'number' ? `HTTP_${status}` : name, message };
}

/** Handler errors are stored and logged: never with a token in them. */
function scrub(message: string): string {
  return message
    .replace(/ya29\.[\w.-]+/g, '[token]')
    .replace(/1\/\/[\w.-]+/g, '[token]')
    .replace(/Bearer\s+\S+/gi, 'Bearer [token]')
    .slice(0, 500);
}
