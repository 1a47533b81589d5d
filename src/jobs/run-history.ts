import type { Database } from '../database/index.js';
import type { JobRunStatus } from './types.js';

/**
 * What the admin console shows of a job run: its outcome, never its params, result or error
 * message (written by the app's job code, they could hold anything).
 */
export interface JobRunSummary {
  id: string;
  name: string;
  status: JobRunStatus;
  attempts: number;
  maxAttempts: number;
  errorCode: string | null;
  createdAt: number;
  finishedAt: number | null;
}

interface SummaryRow {
  id: string;
  name: string;
  status: string;
  attempts: number;
  max_attempts: number;
  error_code: string | null;
  created_at: number;
  finished_at: number | null;
}

const RECENT = `SELECT id, name, status, attempts, max_attempts, error_code, created_at, finished_at FROM job_runs
  WHERE sub = $1 ORDER BY created_at DESC, id DESC LIMIT $2`;

/** A user's latest job runs, newest first, whichever backend runs them (the job_runs_by_sub index serves it). */
export async function recentJobRunsOf(
  database: Database,
  sub: string,
  limit: number,
): Promise<JobRunSummary[]> {
  const rows =
    database.kind === 'sqlite'
      ? await database.run(
          () =>
            database.connection
              .prepare(RECENT.replace('$1', '?').replace('$2', '?'))
              .all(sub, limit) as SummaryRow[],
        )
      : (await database.query<SummaryRow>(RECENT, [sub, limit])).rows;
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    status: row.status as JobRunStatus,
    attempts: Number(row.attempts),
    maxAttempts: Number(row.max_attempts),
    errorCode: row.error_code,
    createdAt: Number(row.created_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
  }));
}
