import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { BehalfSweepOptions } from '../behalf.js';
import type { Clock } from '../clock.js';
import type { PostgresDatabase, SqliteDatabase } from '../database/index.js';
import type { SweepReport } from '../tokens/index.js';

export type SweepStatus = 'running' | 'done' | 'stopped' | 'failed';

/** A health sweep started from the console, as every instance sees it. */
export interface SweepRun {
  id: string;
  forced: boolean;
  /** The API key id of the session that started it. */
  startedBy: string;
  /** Grants of this server's client when it started. */
  total: number;
  /** Grants whose check has finished (healthy + needsConsent + unavailable). */
  checked: number;
  healthy: number;
  refreshed: number;
  needsConsent: number;
  unavailable: number;
  status: SweepStatus;
  startedAt: number;
  /** Written every few seconds while it runs: a running sweep not updated for long has lost its instance. */
  updatedAt: number;
  finishedAt: number | null;
}

/** Sweep runs in behalf's database (`sweep_runs`), so that any instance can show one's progress. */
export interface SweepRunStore {
  insert(run: SweepRun): Promise<void>;
  update(run: SweepRun): Promise<void>;
  /** Newest first. */
  recent(limit: number): Promise<SweepRun[]>;
  /** How many grants a sweep of this client will walk. */
  countGrants(clientId: string): Promise<number>;
}

export interface SweepTrackerOptions {
  store: SweepRunStore;
  clock: Clock;
  sweep: (options: BehalfSweepOptions) => Promise<SweepReport>;
  clientId: string;
  logger: Logger;
  /** How often a running sweep writes its counts (default 2 s). */
  heartbeatMs?: number;
  /** A running sweep not written for this long is shown as stalled, and another may start (default 30 s). */
  staleMs?: number;
}

/**
 * Starts health sweeps in the background of this instance and records their progress, one sweep
 * at a time across instances (a sweep whose instance stopped writing is taken as abandoned).
 * The server's close stops a sweep in progress and records it as stopped.
 */
export class SweepTracker {
  #running: { controller: AbortController; done: Promise<void> } | undefined;
  readonly #heartbeatMs: number;
  readonly staleMs: number;

  constructor(private readonly options: SweepTrackerOptions) {
    this.#heartbeatMs = options.heartbeatMs ?? 2_000;
    this.staleMs = options.staleMs ?? 30_000;
  }

  /** Start a sweep, unless one is running: then that one is answered, with `started: false`. */
  async start(input: { force: boolean; startedBy: string }): Promise<{ run: SweepRun; started: boolean }> {
    const { store, clock } = this.options;
    const [latest] = await this.recent(1);
    if (latest !== undefined && latest.status === 'running' && !this.isStalled(latest))
      return { run: latest, started: false };
    const now = clock.now();
    const run: SweepRun = {
      id: randomUUID(),
      forced: input.force,
      startedBy: input.startedBy,
      total: await store.countGrants(this.options.clientId),
      checked: 0,
      healthy: 0,
      refreshed: 0,
      needsConsent: 0,
      unavailable: 0,
      status: 'running',
      startedAt: now,
      updatedAt: now,
      finishedAt: null,
    };
    await store.insert(run);
    const controller = new AbortController();
    const done = this.#run(run, controller.signal).finally(() => {
      if (this.#running?.done === done) this.#running = undefined;
    });
    this.#running = { controller, done };
    return { run, started: true };
  }

  /** The latest sweeps, newest first. */
  recent(limit: number): Promise<SweepRun[]> {
    return this.options.store.recent(limit);
  }

  /** A running sweep whose instance has not written for a while (it stopped or crashed). */
  isStalled(run: SweepRun): boolean {
    return run.status === 'running' && this.options.clock.now() - run.updatedAt > this.staleMs;
  }

  /** Stop this instance's sweep, if any, and wait until it is recorded as stopped. */
  async close(): Promise<void> {
    const running = this.#running;
    if (running === undefined) return;
    running.controller.abort();
    await running.done;
  }

  async #run(run: SweepRun, signal: AbortSignal): Promise<void> {
    const { store, clock, logger } = this.options;
    const counts = (report: Readonly<SweepReport>) => {
      run.healthy = report.healthy;
      run.refreshed = report.refreshed;
      run.needsConsent = report.needsConsent.length;
      run.unavailable = report.unavailable.length;
      run.checked = run.healthy + run.needsConsent + run.unavailable;
    };
    let writing = Promise.resolve();
    const write = () => {
      run.updatedAt = clock.now();
      const snapshot = { ...run };
      writing = writing
        .then(() => store.update(snapshot))
        .catch((error: unknown) => {
          logger.warn(
            { err: { type: (error as Error).name }, sweep: run.id },
            'could not record sweep progress',
          );
        });
      return writing;
    };
    const heartbeat = setInterval(() => void write(), this.#heartbeatMs);
    heartbeat.unref();
    try {
      const report = await this.options.sweep({ force: run.forced, onProgress: counts, signal });
      counts(report);
      run.status = signal.aborted ? 'stopped' : 'done';
    } catch (error) {
      logger.warn({ err: { type: (error as Error).name }, sweep: run.id }, 'sweep failed');
      run.status = 'failed';
    } finally {
      clearInterval(heartbeat);
    }
    run.finishedAt = clock.now();
    await write();
  }
}

interface SweepRow {
  id: string;
  forced: number | boolean;
  started_by: string;
  total: number;
  checked: number;
  healthy: number;
  refreshed: number;
  needs_consent: number;
  unavailable: number;
  status: SweepStatus;
  started_at: number;
  updated_at: number;
  finished_at: number | null;
}

function toRun(row: SweepRow): SweepRun {
  return {
    id: row.id,
    forced: row.forced === true || row.forced === 1,
    startedBy: row.started_by,
    total: Number(row.total),
    checked: Number(row.checked),
    healthy: Number(row.healthy),
    refreshed: Number(row.refreshed),
    needsConsent: Number(row.needs_consent),
    unavailable: Number(row.unavailable),
    status: row.status,
    startedAt: Number(row.started_at),
    updatedAt: Number(row.updated_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
  };
}

const COLUMNS =
  'id, forced, started_by, total, checked, healthy, refreshed, needs_consent, unavailable, status, started_at, updated_at, finished_at';
const RECENT = `SELECT ${COLUMNS} FROM sweep_runs ORDER BY started_at DESC, id DESC LIMIT `;

export class SqliteSweepRunStore implements SweepRunStore {
  readonly #database: SqliteDatabase;
  readonly #sql;

  constructor(database: SqliteDatabase) {
    this.#database = database;
    const db = database.connection;
    this.#sql = {
      insert: db.prepare(
        `INSERT INTO sweep_runs (${COLUMNS}) VALUES (@id, @forced, @started_by, @total, @checked, @healthy, @refreshed,
           @needs_consent, @unavailable, @status, @started_at, @updated_at, @finished_at)`,
      ),
      update: db.prepare(
        `UPDATE sweep_runs SET checked = @checked, healthy = @healthy, refreshed = @refreshed, needs_consent = @needs_consent,
           unavailable = @unavailable, status = @status, updated_at = @updated_at, finished_at = @finished_at WHERE id = @id`,
      ),
      recent: db.prepare(`${RECENT}?`),
      countGrants: db.prepare('SELECT count(*) AS n FROM grants WHERE client_id = ?'),
    };
  }

  async insert(run: SweepRun): Promise<void> {
    await this.#database.run(() => this.#sql.insert.run(sqliteRow(run)));
  }

  async update(run: SweepRun): Promise<void> {
    // Progress is cheap to lose in a power cut: no fsync for it.
    await this.#database.runUnsynced(() => this.#sql.update.run(sqliteRow(run)));
  }

  recent(limit: number): Promise<SweepRun[]> {
    return this.#database.run(() => (this.#sql.recent.all(limit) as SweepRow[]).map(toRun));
  }

  countGrants(clientId: string): Promise<number> {
    return this.#database.run(() => (this.#sql.countGrants.get(clientId) as { n: number }).n);
  }
}

function sqliteRow(run: SweepRun): SweepRow {
  return {
    id: run.id,
    forced: run.forced ? 1 : 0,
    started_by: run.startedBy,
    total: run.total,
    checked: run.checked,
    healthy: run.healthy,
    refreshed: run.refreshed,
    needs_consent: run.needsConsent,
    unavailable: run.unavailable,
    status: run.status,
    started_at: run.startedAt,
    updated_at: run.updatedAt,
    finished_at: run.finishedAt,
  };
}

export class PostgresSweepRunStore implements SweepRunStore {
  readonly #database: PostgresDatabase;

  constructor(database: PostgresDatabase) {
    this.#database = database;
  }

  async insert(run: SweepRun): Promise<void> {
    await this.#database.query(
      `INSERT INTO sweep_runs (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [
        run.id,
        run.forced,
        run.startedBy,
        run.total,
        run.checked,
        run.healthy,
        run.refreshed,
        run.needsConsent,
        run.unavailable,
        run.status,
        run.startedAt,
        run.updatedAt,
        run.finishedAt,
      ],
    );
  }

  async update(run: SweepRun): Promise<void> {
    await this.#database.query(
      `UPDATE sweep_runs SET checked = $2, healthy = $3, refreshed = $4, needs_consent = $5, unavailable = $6, status = $7,
         updated_at = $8, finished_at = $9 WHERE id = $1`,
      [
        run.id,
        run.checked,
        run.healthy,
        run.refreshed,
        run.needsConsent,
        run.unavailable,
        run.status,
        run.updatedAt,
        run.finishedAt,
      ],
    );
  }

  async recent(limit: number): Promise<SweepRun[]> {
    const { rows } = await this.#database.query<SweepRow>(`${RECENT}$1`, [limit]);
    return rows.map(toRun);
  }

  async countGrants(clientId: string): Promise<number> {
    const { rows } = await this.#database.query<{ n: number }>(
      'SELECT count(*) AS n FROM grants WHERE client_id = $1',
      [clientId],
    );
    return Number(rows[0]?.n ?? 0);
  }
}
