import { setTimeout as sleep } from 'node:timers/promises';
import type Database from 'better-sqlite3';
import { better, defineQueue, defineWorker, JobStatus, type Queue, type Worker } from 'plainjob';
import type { Logger } from 'pino';
import type { SqliteDatabase } from '../database/index.js';
import type { JobBackend, JobRun, JobRunStatus } from './types.js';

/** Deliveries again after a failed one, and the pause before each (pg-boss's settings on Postgres). */
const REDELIVERIES = 3;
const REDELIVERY_DELAY_MS = 1_000;

/**
 * Job runs on SQLite, the embedded default. Delivery (pending/processing, delays, re-queueing the
 * jobs of a worker that died, clean-up) is plainjob's, a small SQLite queue for better-sqlite3;
 * behalf keeps one row per run beside it for the run's status, attempts and outcome, because
 * plainjob's own rows know only done/failed. Both live in the database file the vault uses, on
 * its connection; their tables come from its migrations.
 */
export class SqliteJobBackend implements JobBackend {
  readonly #database: SqliteDatabase;
  readonly #queue: Queue;
  readonly #sql: ReturnType<typeof prepare>;
  readonly #workers: Worker[] = [];
  readonly #running: Promise<void>[] = [];
  /** Aborted by stop(): no worker is started again after it. */
  readonly #stopping = new AbortController();

  constructor(
    database: SqliteDatabase,
    private readonly options: { logger: Logger; pollIntervalMs?: number; leaseMs?: number },
  ) {
    this.#database = database;
    this.#sql = prepare(database.connection);
    const log = options.logger.child({ component: 'jobs' });
    this.#queue = defineQueue({
      // The shared connection, with its settings left alone (plainjob would turn synchronous
      // down to NORMAL for the vault's writes too) and never closed by plainjob.
      connection: { ...better(database.connection), pragma: () => undefined, close: () => undefined },
      logger: quietLogger(log),
      // A run still "processing" after this long belonged to a worker that died: deliver it again.
      timeout: options.leaseMs ?? 10 * 60_000,
      maintenanceInterval: 30_000,
    });
  }

  async insertRun(run: JobRun, delayMs = 0): Promise<void> {
    await this.#database.transaction(() => {
      this.#sql.insert.run(toRow(run));
      this.#queue.add(run.name, { runId: run.id }, { delay: delayMs });
    });
  }

  async updateRun(id: string, patch: Partial<JobRun>): Promise<void> {
    const current = await this.getRun(id);
    // A run deleted meanwhile (its user was deleted) stays deleted.
    if (current === null) return;
    await this.#database.run(() => this.#sql.update.run(toRow({ ...current, ...patch })));
  }

  async requeue(run: JobRun, delayMs: number): Promise<void> {
    await this.#database.run(() =>
      this.#queue.add(run.name, { runId: run.id }, { delay: Math.max(0, Math.round(delayMs)) }),
    );
  }

  async getRun(id: string): Promise<JobRun | null> {
    return this.#database.run(() => {
      const row = this.#sql.get.get(id) as Row | undefined;
      return row === undefined ? null : fromRow(row);
    });
  }

  async listRuns(filter: {
    name?: string;
    status?: JobRunStatus;
    sub?: string;
    limit?: number;
  }): Promise<JobRun[]> {
    return this.#database.run(() =>
      (
        this.#sql.list.all({
          name: filter.name ?? null,
          status: filter.status ?? null,
          sub: filter.sub ?? null,
          limit: filter.limit ?? 1000,
        }) as Row[]
      ).map(fromRow),
    );
  }

  start(names: string[], concurrency: number, execute: (runId: string) => Promise<void>): void {
    const log = quietLogger(this.options.logger.child({ component: 'jobs' }));
    for (const name of names) {
      for (let i = 0; i < concurrency; i++) {
        const worker = defineWorker(
          name,
          async (job) => {
            const { runId, redelivery = 0 } = JSON.parse(job.data) as { runId: string; redelivery?: number };
            try {
              await execute(runId);
            } catch (error) {
              // A delivery whose handling failed (the database busy, say) is delivered again a
              // second later, three times at most, as pg-boss does on Postgres (retryLimit,
              // retryDelay). plainjob would only mark it failed: the run was left unfinished.
              if (redelivery >= REDELIVERIES) throw error;
              this.#queue.add(name, { runId, redelivery: redelivery + 1 }, { delay: REDELIVERY_DELAY_MS });
            }
          },
          { queue: this.#queue, logger: log, pollIntervall: this.options.pollIntervalMs ?? 500 },
        );
        this.#workers.push(worker);
        this.#running.push(this.#keepRunning(worker, log));
      }
    }
  }

  /**
   * plainjob's worker loop ends at the first database error it meets (the file locked by another
   * process past the busy timeout, say) and its promise rejects with nobody listening: the worker
   * was gone for good, and the unhandled rejection could end the process. Start it again, after a
   * pause, until stop().
   */
  async #keepRunning(worker: Worker, log: ReturnType<typeof quietLogger>): Promise<void> {
    const stopping = this.#stopping.signal;
    while (!stopping.aborted) {
      try {
        await worker.start();
        return;
      } catch {
        log.warn('job worker failed on the database; starting it again');
        await sleep(this.options.pollIntervalMs ?? 500, undefined, { signal: stopping }).catch(
          () => undefined,
        );
      }
    }
  }

  async outstanding(): Promise<number> {
    return this.#database.run(
      () =>
        this.#queue.countJobs({ status: JobStatus.Pending }) +
        this.#queue.countJobs({ status: JobStatus.Processing }),
    );
  }

  /** Stop the workers; the database stays open (it belongs to the runtime). */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await Promise.all(this.#workers.map((w) => w.stop()));
    await Promise.all(this.#running);
    this.#workers.length = 0;
    this.#running.length = 0;
    this.#queue.close();
  }
}

interface Row {
  id: string;
  name: string;
  sub: string;
  params: string;
  status: string;
  attempts: number;
  max_attempts: number;
  error_code: string | null;
  error_message: string | null;
  result: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

// SQL for job runs, in one place. The table comes from the database's migrations (src/database/migrations/sqlite.ts).
function prepare(db: Database.Database) {
  return {
    insert: db.prepare(
      `INSERT INTO job_runs (id, name, sub, params, status, attempts, max_attempts, error_code, error_message, result, created_at, updated_at, finished_at)
       VALUES (@id, @name, @sub, @params, @status, @attempts, @max_attempts, @error_code, @error_message, @result, @created_at, @updated_at, @finished_at)`,
    ),
    update: db.prepare(
      `UPDATE job_runs SET status = @status, attempts = @attempts, max_attempts = @max_attempts, error_code = @error_code,
         error_message = @error_message, result = @result, updated_at = @updated_at, finished_at = @finished_at
       WHERE id = @id`,
    ),
    get: db.prepare('SELECT * FROM job_runs WHERE id = ?'),
    list: db.prepare(
      `SELECT * FROM job_runs
       WHERE (@name IS NULL OR name = @name) AND (@status IS NULL OR status = @status) AND (@sub IS NULL OR sub = @sub)
       ORDER BY created_at, id LIMIT @limit`,
    ),
  };
}

function toRow(run: JobRun): Row {
  return {
    id: run.id,
    name: run.name,
    sub: run.sub,
    params: JSON.stringify(run.params ?? null),
    status: run.status,
    attempts: run.attempts,
    max_attempts: run.maxAttempts,
    error_code: run.errorCode,
    error_message: run.errorMessage,
    result: run.result === undefined ? null : JSON.stringify(run.result),
    created_at: run.createdAt,
    updated_at: run.updatedAt,
    finished_at: run.finishedAt,
  };
}

function fromRow(row: Row): JobRun {
  return {
    id: row.id,
    name: row.name,
    sub: row.sub,
    params: JSON.parse(row.params) as unknown,
    status: row.status as JobRunStatus,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}

/** plainjob logs every poll at debug; keep its warnings and errors only. */
function quietLogger(log: Logger) {
  return {
    error: (message: string) => log.error(message),
    warn: (message: string) => log.warn(message),
    info: () => undefined,
    debug: () => undefined,
  };
}
