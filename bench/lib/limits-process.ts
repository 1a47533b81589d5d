/**
 * What the database itself allows for a cold lookup: the same grant row read by primary key with
 * nothing of behalf around it (no runtime, no change checks, no decryption), one awaited call at a
 * time over the same users in the same kind of random order as lookup-process.ts. It runs in a
 * process of its own so that it pays what behalf's cold process pays (its own event loop, its own
 * connection, its own JIT warm-up) and nothing more: the comparison is process against process.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { parsePostgresSettings } from '../../src/database/index.js';
import { SQL } from '../../src/vault/postgres-sql.js';
import { timeColdCalls } from './cold-calls.js';
import { serveRequests } from './processes.js';
import { summarize, type LatencySummary } from './stats.js';

export type LimitRequest = {
  clientId: string;
  /** Seeded users 0…users-1 exist in the store. */
  users: number;
  /** Stop after this long, or when every user has been asked for once. */
  durationMs: number;
} & ({ backend: 'sqlite'; path: string } | { backend: 'postgres'; url: string });

export interface LimitResult {
  calls: number;
  seconds: number;
  callsPerSecond: number;
  /** Microseconds. */
  latency: LatencySummary;
}

/** SqliteStore's statement for a grant (src/vault/sqlite-store.ts), word for word. */
const SQLITE_GET_GRANT = 'SELECT * FROM grants WHERE sub = ? AND client_id = ?';

type Select = (sub: string) => Promise<unknown>;

async function sqliteLimit(request: LimitRequest & { backend: 'sqlite' }): Promise<LimitResult> {
  const db = new Database(request.path);
  try {
    // The pragmas SqliteDatabase sets (src/database/sqlite.ts): only WAL changes a read, the
    // others are here so that nothing differs but behalf's own code.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    db.pragma('secure_delete = ON');
    const statement = db.prepare(SQLITE_GET_GRANT);
    // Awaited like behalf's store call, which is async although better-sqlite3 is not.
    return await measure(request, async (sub) => {
      const row = statement.get(sub, request.clientId);
      if (row === undefined) throw new Error('seeded grant missing');
      return row;
    });
  } finally {
    db.close();
  }
}

async function postgresLimit(request: LimitRequest & { backend: 'postgres' }): Promise<LimitResult> {
  // behalf's pool size for this URL (pool_max, default 10); at one call at a time one connection
  // is busy, as in behalf's cold process.
  const settings = parsePostgresSettings(request.url);
  const pool = new pg.Pool({ connectionString: settings.connectionString, max: settings.poolMax });
  pool.on('error', () => undefined);
  try {
    // A named statement: parsed and planned once per connection, then only bound and executed.
    const query = { name: 'bench_get_grant', text: SQL.getGrant.text };
    return await measure(request, async (sub) => {
      const { rows } = await pool.query({ ...query, values: [sub, request.clientId] });
      if (rows[0] === undefined) throw new Error('seeded grant missing');
      return rows[0];
    });
  } finally {
    await pool.end();
  }
}

/** lookup-process.ts's loop (timeColdCalls), with `select` in place of getAccessToken. */
async function measure(request: LimitRequest, select: Select): Promise<LimitResult> {
  const { calls, seconds, latencies } = await timeColdCalls(request, select);
  return { calls, seconds, callsPerSecond: calls / seconds, latency: summarize(latencies) };
}

serveRequests(null, {
  limit: (request: LimitRequest) =>
    request.backend === 'sqlite' ? sqliteLimit(request) : postgresLimit(request),
});
