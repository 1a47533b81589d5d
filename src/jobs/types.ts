import type { Logger } from 'pino';
import type { BehalfAuthClient } from '../calls/index.js';

/** Where a job run stands. `needs_consent`: the user's grant is gone; retrying cannot help. */
export type JobRunStatus = 'queued' | 'running' | 'retrying' | 'done' | 'failed' | 'needs_consent';

export interface JobRun {
  id: string;
  name: string;
  sub: string;
  params: unknown;
  status: JobRunStatus;
  attempts: number;
  maxAttempts: number;
  /** A behalf error code (e.g. NEEDS_CONSENT) or the error's class name for handler errors. */
  errorCode: string | null;
  errorMessage: string | null;
  /** What the handler returned, as JSON. */
  result: unknown;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

/** What a job handler gets: everything it needs to act for one user who is not there. */
export interface JobContext<P = unknown> {
  sub: string;
  params: P;
  /** `fetch` a Google API as this user (token added, refresh and retry rules applied). */
  fetch: (url: string | URL, init?: RequestInit) => Promise<Response>;
  /** An auth client for `googleapis`: `google.drive({ version: 'v3', auth: ctx.auth })`. */
  auth: BehalfAuthClient;
  /** 1 on the first attempt. */
  attempt: number;
  log: Logger;
}

/**
 * A job: its name, and what a run does for one user. `P` is the type of its parameters (what
 * `enqueue` takes and `run` gets); a literal `N` lets `enqueue` check them by the job's name.
 */
export interface JobDefinition<P = unknown, N extends string = string> {
  /** 1-64 characters of a-z, 0-9, ".", "_" and "-". */
  name: N;
  run: (context: JobContext<P>) => Promise<unknown>;
  /** Attempts in all before the run is failed (default 5). */
  maxAttempts?: number;
  /** Validates params when the job is enqueued (from JavaScript, or stored runs, types prove nothing). */
  parseParams?: (params: unknown) => P;
}

/** The parameter type of each job a runner knows, by name. The default knows none: any name, any params. */
export type JobParamsByName = Record<string, unknown>;

/**
 * Durable storage and delivery of job runs, implemented per database on a queue library for it
 * (SQLite: plainjob; Postgres: pg-boss), over that database's one connection or pool.
 */
export interface JobBackend {
  insertRun(run: JobRun, delayMs?: number): Promise<void>;
  updateRun(
    id: string,
    patch: Partial<Omit<JobRun, 'id' | 'name' | 'sub' | 'params' | 'createdAt'>>,
  ): Promise<void>;
  /** Deliver the run again after a delay (a retry). */
  requeue(run: JobRun, delayMs: number): Promise<void>;
  getRun(id: string): Promise<JobRun | null>;
  listRuns(filter: { name?: string; status?: JobRunStatus; sub?: string; limit?: number }): Promise<JobRun[]>;
  /** Start delivering runs of these job names; `execute` is called once per delivery. */
  start(names: string[], concurrency: number, execute: (runId: string) => Promise<void>): void;
  /** Deliveries waiting (including delayed retries) or in progress. */
  outstanding(): Promise<number>;
  stop(): Promise<void>;
}
