import { setTimeout as sleep } from 'node:timers/promises';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type { PostgresDatabase } from '../database/index.js';
import { BehalfError } from '../errors.js';
import type { JobBackend, JobRun, JobRunStatus } from './types.js';

/**
 * Job runs on Postgres: delivery is pg-boss's (SKIP LOCKED fetching, so a job is picked up once;
 * expiry and retry, so a job whose worker crashed is delivered again), and behalf keeps one row
 * per run beside it with the run's status and outcome, as on SQLite. A run row and its pg-boss job
 * are written in one transaction. pg-boss runs its SQL on the database's pool (the URL's pool and
 * timeout settings apply) and never migrates: `behalf migrate` installs its schema.
 */
export class PostgresJobBackend implements JobBackend {
  readonly #database: PostgresDatabase;
  #boss: PgBoss;
  #ready: Promise<void> | undefined;
  /** One creation per queue, shared by every caller: sending to a queue not yet created fails. */
  readonly #queues = new Map<string, Promise<void>>();
  readonly #log: Logger;
  /** The delivery loops started by start(), one per slot; stop() waits for them. */
  readonly #workers: Promise<void>[] = [];
  /** Aborted by stop(): wakes the loops that are waiting to poll again. */
  readonly #stopping = new AbortController();

  constructor(
    database: PostgresDatabase,
    private readonly options: { logger: Logger; pollIntervalMs?: number; leaseMs?: number },
  ) {
    this.#database = database;
    this.#log = options.logger.child({ component: 'jobs' });
    this.#boss = this.#createBoss();
  }

  #createBoss(): PgBoss {
    const boss = new PgBoss({
      db: { executeSql: this.#database.executeSql },
      schema: this.#database.jobSchema,
      migrate: false,
      // No cron schedules: behalf does not use them, and they would need a queue of their own.
      schedule: false,
      // A delivery still active after this long belonged to a worker that died: it is retried.
      expireInSeconds: Math.ceil((this.options.leaseMs ?? 10 * 60_000) / 1000),
      // A failed delivery is delivered again a second later, three times at most (as on SQLite).
      retryLimit: 3,
      retryDelay: 1,
    });
    boss.on('error', (error: Error) => this.#log.warn({ err: { type: error.name } }, 'job queue error'));
    return boss;
  }

  async insertRun(run: JobRun, delayMs = 0): Promise<void> {
    await this.#ensureReady(run.name);
    await this.#database.transaction(async (db) => {
      await db.query(
        `INSERT INTO job_runs (id, name, sub, params, status, attempts, max_attempts, error_code, error_message, result, created_at, updated_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
        rowValues(run),
      );
      await this.#boss.send(
        run.name,
        { runId: run.id },
        {
          startAfter: startAfter(delayMs),
          db: { executeSql: (text: string, values: unknown[]) => db.query(text, values) },
        },
      );
    });
  }

  async updateRun(id: string, patch: Partial<JobRun>): Promise<void> {
    const current = await this.getRun(id);
    if (current === null) return;
    const run = { ...current, ...patch };
    await this.#database.query(
      `UPDATE job_runs SET status = $2, attempts = $3, max_attempts = $4, error_code = $5, error_message = $6, result = $7,
         updated_at = $8, finished_at = $9 WHERE id = $1`,
      [
        id,
        run.status,
        run.attempts,
        run.maxAttempts,
        run.errorCode,
        run.errorMessage,
        JSON.stringify(run.result ?? null),
        run.updatedAt,
        run.finishedAt,
      ],
    );
  }

  async requeue(run: JobRun, delayMs: number): Promise<void> {
    await this.#ensureReady(run.name);
    await this.#boss.send(run.name, { runId: run.id }, { startAfter: startAfter(delayMs) });
  }

  async getRun(id: string): Promise<JobRun | null> {
    const { rows } = await this.#database.query('SELECT * FROM job_runs WHERE id = $1', [id]);
    return rows[0] === undefined ? null : fromRow(rows[0] as Row);
  }

  async listRuns(filter: {
    name?: string;
    status?: JobRunStatus;
    sub?: string;
    limit?: number;
  }): Promise<JobRun[]> {
    const { rows } = await this.#database.query(
      `SELECT * FROM job_runs WHERE ($1::text IS NULL OR name = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR sub = $3)
       ORDER BY created_at, id COLLATE "C" LIMIT $4`,
      [filter.name ?? null, filter.status ?? null, filter.sub ?? null, filter.limit ?? 1000],
    );
    return (rows as Row[]).map(fromRow);
  }

  /**
   * One loop per slot, each fetching one job at a time with pg-boss's fetch (SKIP LOCKED: a job
   * goes to one worker) and completing or failing it. pg-boss's own work() is not used: its stop()
   * neither waits for a fetch in flight, so a job fetched then was executed after stop() had
   * resolved (and completed on a database its owner may have closed), nor for the completions it
   * sends without awaiting them.
   */
  start(names: string[], concurrency: number, execute: (runId: string) => Promise<void>): void {
    // Each poll is a query on the shared pool: not more often than every 500 ms per loop.
    const pollMs = Math.max(500, this.options.pollIntervalMs ?? 1000);
    for (const name of names) {
      for (let i = 0; i < concurrency; i++) this.#workers.push(this.#work(name, pollMs, execute));
    }
  }

  async #work(name: string, pollMs: number, execute: (runId: string) => Promise<void>): Promise<void> {
    try {
      await this.#ensureReady(name);
    } catch (error) {
      this.#log.error({ err: { type: (error as Error).name } }, 'job workers could not start');
      return;
    }
    const stopping = this.#stopping.signal;
    while (!stopping.aborted) {
      // pg-boss's fetch answers [] when the database cannot be reached: then this waits and polls again.
      const [job] = await this.#boss.fetch<{ runId: string }>(name, { batchSize: 1 });
      if (job === undefined) {
        await sleep(pollMs, undefined, { signal: stopping }).catch(() => undefined);
        continue;
      }
      // A job fetched is executed even when stop() was called meanwhile: stop() waits for it.
      let failure: unknown;
      try {
        await execute(job.data.runId);
      } catch (error) {
        failure = error;
      }
      try {
        // A failed delivery is retried by pg-boss (retryLimit); one left active expires and is retried.
        if (failure === undefined) await this.#boss.complete(name, job.id);
        else await this.#boss.fail(name, job.id, { error: (failure as Error | undefined)?.name ?? 'Error' });
      } catch (error) {
        this.#log.warn(
          { err: { type: (error as Error).name } },
          'job delivery could not be completed; it will be delivered again',
        );
      }
    }
  }

  /** Deliveries waiting (delayed and retried ones included) or in progress: pg-boss's jobs not yet finished. */
  async outstanding(): Promise<number> {
    const { rows } = await this.#database.query(
      `SELECT count(*)::int AS n FROM ${this.#database.jobSchema}.job WHERE state < 'completed'`,
      [],
    );
    return (rows[0] as { n: number }).n;
  }

  /**
   * Stop the workers, after each has finished the delivery in its hands; nothing is delivered once
   * this has resolved. The database stays open (it belongs to the runtime).
   */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await Promise.all(this.#workers);
    this.#workers.length = 0;
    if (this.#ready === undefined) return;
    // A pg-boss start still in progress would start its timers after a stop: let it finish first.
    await this.#ready.catch(() => undefined);
    await this.#boss.stop({ graceful: true, wait: true, close: false }).catch(() => undefined);
  }

  /**
   * pg-boss started and the queue created, once; a failure (the database away for a moment) is
   * not remembered: the next call tries again. A pg-boss whose start failed stays half-started
   * (its own flags say "starting"), so a new one takes its place.
   */
  #ensureReady(queue: string): Promise<void> {
    this.#ready ??= this.#boss.start().then(
      () => undefined,
      (error: unknown) => {
        this.#ready = undefined;
        this.#boss = this.#createBoss();
        throw unavailable(error);
      },
    );
    let created = this.#queues.get(queue);
    if (created === undefined) {
      created = this.#ready
        .then(async () => {
          // createQueue is idempotent in effect: an existing queue (another instance made it) is fine.
          if ((await this.#boss.getQueue(queue)) === null)
            await this.#boss.createQueue(queue).catch(() => undefined);
        })
        .catch((error: unknown) => {
          this.#queues.delete(queue);
          throw unavailable(error);
        });
      this.#queues.set(queue, created);
    }
    return created;
  }
}

/**
 * A delay as pg-boss's startAfter in seconds, which it adds to the database's now(): the delay is
 * measured on the clock every instance shares. A Date from this process's clock was off by however
 * far this machine's clock is from the database's (an instance running fast held back every job).
 */
function startAfter(delayMs: number): number {
  return Math.max(0, Math.round(delayMs)) / 1000;
}

interface Row {
  id: string;
  name: string;
  sub: string;
  params: unknown;
  status: string;
  attempts: number;
  max_attempts: number;
  error_code: string | null;
  error_message: string | null;
  result: unknown;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

function rowValues(run: JobRun): unknown[] {
  return [
    run.id,
    run.name,
    run.sub,
    JSON.stringify(run.params ?? null),
    run.status,
    run.attempts,
    run.maxAttempts,
    run.errorCode,
    run.errorMessage,
    JSON.stringify(run.result ?? null),
    run.createdAt,
    run.updatedAt,
    run.finishedAt,
  ];
}

function fromRow(row: Row): JobRun {
  return {
    id: row.id,
    name: row.name,
    sub: row.sub,
    params: row.params,
    status: row.status as JobRunStatus,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    result: row.result ?? null,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
  };
}

/** The job queue could not be used now: retryable, without pg's own message (it can quote values). */
function unavailable(error: unknown): BehalfError {
  if (error instanceof BehalfError) return error;
  return new BehalfError('STORE_UNAVAILABLE', 'The job queue could not be reached; retry.', {
    cause: error,
    retryAfter: 1,
  });
}
