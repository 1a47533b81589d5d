/**
 * The admin console, served by the behalf server under /admin (see ./routes.ts): users, one
 * user's state and actions, the health sweep, API keys and webhooks, behind a session opened with
 * a service API key (./sessions.ts).
 */
import type { BehalfRuntime } from '../app.js';
import { recentJobRunsOf } from '../jobs/index.js';
import { PostgresSecurityLog, SqliteSecurityLog } from '../risc/index.js';
import { authenticateApiKey, createApiKey, revokeApiKey } from '../vault/index.js';
import type { AdminConsole } from './routes.js';
import { PostgresAdminSessionStore, SqliteAdminSessionStore } from './session-store.js';
import { AdminSessions } from './sessions.js';
import { PostgresSweepRunStore, SqliteSweepRunStore, SweepTracker } from './sweeps.js';

export { registerAdminRoutes, type AdminConsole } from './routes.js';
export {
  PostgresAdminSessionStore,
  SqliteAdminSessionStore,
  type AdminSessionStore,
} from './session-store.js';
export { PostgresSweepRunStore, SqliteSweepRunStore, type SweepRun, type SweepRunStore } from './sweeps.js';

/** The console's parts over a runtime's database, clock and services. */
export function createAdminConsole(runtime: BehalfRuntime): AdminConsole {
  const { database, store, clock, behalf, tokens, logger } = runtime;
  const sqlite = database.kind === 'sqlite';
  const sessions = new AdminSessions({
    store: sqlite ? new SqliteAdminSessionStore(database) : new PostgresAdminSessionStore(database),
    clock,
    authenticate: (key) => authenticateApiKey(store, key, { now: clock.now() }),
  });
  const sweeps = new SweepTracker({
    store: sqlite ? new SqliteSweepRunStore(database) : new PostgresSweepRunStore(database),
    clock,
    sweep: (sweepOptions) => behalf.sweep(sweepOptions),
    clientId: behalf.clientId,
    logger,
  });
  return {
    sessions,
    sweeps,
    behalf,
    tokens,
    store,
    createApiKey: (name) => createApiKey(store, name, clock.now()),
    revokeApiKey: (id) => revokeApiKey(store, id),
    securityLog: sqlite ? new SqliteSecurityLog(database) : new PostgresSecurityLog(database),
    jobRuns: (sub, limit) => recentJobRunsOf(database, sub, limit),
    webhooks: behalf.webhooks,
  };
}
