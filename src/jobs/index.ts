export { JobRunner, type EnqueueOptions, type JobRunnerOptions } from './runner.js';
export { PostgresJobBackend } from './postgres-backend.js';
export { SqliteJobBackend } from './sqlite-backend.js';
export type {
  JobBackend,
  JobContext,
  JobDefinition,
  JobParamsByName,
  JobRun,
  JobRunStatus,
} from './types.js';
export { recentJobRunsOf, type JobRunSummary } from './run-history.js';
