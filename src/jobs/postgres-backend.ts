import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type { PostgresDatabase } from '../database/index.js';
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
  readonly #boss: PgBoss;
  #ready: Promise<void> | undefined;
  /** One creation per queue, shared by every caller: work() on a queue not yet created fails. */
  readonly #queues = new Map<string, Promise<void>>();
  readonly #log: Logger;

  constructor(
    database: PostgresDatabase,
    private readonly options: { logger: Logger; pollIntervalMs?: number; leaseMs?: number },
  ) {
    this.#database = database;
    this.#log = options.logger.child({ component: 'jobs' });
    this.#boss = new PgBoss({
      db: { executeSql: database.executeSql },
      schema: database.jobSchema,
      migrate: false,
      // No cron schedules: behalf does not use them, and they would need a queue of their own.
      schedule: false,
      // A delivery still active after this long belonged to a worker that died: it is retried.
      expireInSeconds: Math.ceil((options.leaseMs ?? 10 * 60_000) / 1000),
      retryLimit: 3,
      retryDelay: 1,
    });
    this.#boss.on('error', (error: Error) => this.#log.warn({ err: { type: error.name } }, 'job queue error'));
  }

  async insertRun(run: JobRun, delayMs = 0): Promise<void> {
    await this.#ensureReady(run.name);
    await this.#database.transaction(async (db) => {
      await db.query(
        `INSERT INTO job_runs (id, name, sub, params, status, attempts, max_attempts, error_code, error_message, result, created_at, updated_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
        rowValues(run),
      );
      await this.#boss.send(run.name, { runId: run.id }, {
        startAfter: new Date(Date.now() + delayMs),
        db: { executeSql: (text: string, values: unknown[]) => db.query(text, values) },
      });
    });
  }

  async updateRun(id: string, patch: Partial<JobRun>): Promise<void> {
    const current = await this.getRun(id);
    if (current === null) return;
    const run = { ...current, ...patch };
    await this.#database.query(
      `UPDATE job_runs SET status = $2, attempts = $3, max_attempts = $4, error_code = $5, error_message = $6, result = $7,
         updated_at = $8, finished_at = $9 WHERE id = $1`,
      [id, run.status, run.attempts, run.maxAttempts, run.errorCode, run.errorMessage, JSON.stringify(run.result ?? null), run.updatedAt, run.finishedAt],
    );
  }

  async requeue(run: JobRun, delayMs: number): Promise<void> {
    await this.#ensureReady(run.name);
    await this.#boss.send(run.name, { runId: run.id }, { startAfter: new Date(Date.now() + Math.max(0, Math.round(delayMs))) });
  }

  async getRun(id: string): Promise<JobRun | null> {
    const { rows } = await this.#database.query('SELECT * FROM job_runs WHERE id = $1', [id]);
    return rows[0] === undefined ? null : fromRow(rows[0] as Row);
  }

  async listRuns(filter: { name?: string; status?: JobRunStatus; sub?: string; limit?: number }): Promise<JobRun[]> {
    const { rows } = await this.#database.query(
      `SELECT * FROM job_runs WHERE ($1::text IS NULL OR name = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR sub = $3)
       ORDER BY created_at, id LIMIT $4`,
      [filter.name ?? null, filter.status ?? null, filter.sub ?? null, filter.limit ?? 1000],
    );
    return (rows as Row[]).map(fromRow);
  }

  start(names: string[], concurrency: number, execute: (runId: string) => Promise<void>): void {
    void (async () => {
      for (const name of names) {
        await this.#ensureReady(name);
        const pollingIntervalSeconds = Math.max(0.5, (this.options.pollIntervalMs ?? 1000) / 1000);
        // One worker per slot, each taking one job at a time.
        for (let i = 0; i < concurrency; i++) {
          await this.#boss.work<{ runId: string }>(name, { batchSize: 1, pollingIntervalSeconds }, async ([job]) => {
            if (job !== undefined) await execute(job.data.runId);
          });
        }
      }
    })().catch((error: unknown) => this.#log.error({ err: { type: (error as Error).name } }, 'job workers could not start'));
  }

  async outstanding(): Promise<number> {
    const { rows } = await this.#database.query(`SELECT count(*)::int AS n FROM job_runs WHERE status IN ('queued', 'running', 'retrying')`, []);
    return (rows[0] as { n: number }).n;
  }

  /** Stop the workers; the database stays open (it belongs to the runtime). */
  async stop(): Promise<void> {
    if (this.#ready !== undefined) await this.#boss.stop({ graceful: true, wait: true, close: false }).catch(() => undefined);
  }

  #ensureReady(queue: string): Promise<void> {
    this.#ready ??= this.#boss.start().then(() => undefined);
    let created = this.#queues.get(queue);
    if (created === undefined) {
      created = this.#ready.then(async () => {
        // createQueue is idempotent in effect: an existing queue (another instance made it) is fine.
        if ((await this.#boss.getQueue(queue)) === null) await this.#boss.createQueue(queue).catch(() => undefined);
      });
      this.#queues.set(queue, created);
    }
    return created;
  }
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
