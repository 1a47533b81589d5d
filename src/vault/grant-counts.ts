import type { Database } from '../database/index.js';
import type { GrantStatus } from './types.js';

/**
 * Grants per status, for the `behalf_grants` gauge, from `grant_counts`: counts that triggers
 * keep in the transaction of every change to a grant (schema version 8).
 *
 * Why not count the grants: a GROUP BY over the `grants_by_status` index, measured at a million
 * grants on the 2-core project machine, took 0.26-0.66 s on SQLite (a covering index scan, run on
 * the event loop, so every request waits) and 0.9-1.9 s on Postgres (a parallel index-only scan),
 * every time; the counts read here take well under a millisecond at any number of grants. A status
 * change pays one more row update in its transaction; refreshing a token, which is most writes,
 * changes no status and pays nothing.
 */
export async function countGrantsByStatus(database: Database): Promise<Record<GrantStatus, number>> {
  const rows =
    database.kind === 'sqlite'
      ? await database.run(
          () => database.connection.prepare('SELECT status, n FROM grant_counts').all() as CountRow[],
        )
      : await database.transaction(async (db) => {
          await db.query(FOLD_ENDED_CONNECTIONS);
          return (
            await db.query<CountRow>('SELECT status, SUM(n)::bigint AS n FROM grant_counts GROUP BY status')
          ).rows;
        });
  const counts: Record<GrantStatus, number> = { active: 0, revoked: 0, needs_consent: 0 };
  for (const row of rows) if (row.status in counts) counts[row.status as GrantStatus] = Number(row.n);
  return counts;
}

interface CountRow {
  status: string;
  n: number;
}

/**
 * On Postgres each connection counts in rows of its own (its backend pid); the rows of
 * connections that have ended are folded into slot 0, so the table stays a few rows per live
 * connection. SKIP LOCKED: rows some transaction is writing are left for the next fold (a new
 * connection may have been given an ended one's pid), so folding never waits on a sign-in, and
 * two instances folding at once take slot 0's rows in the same order.
 */
const FOLD_ENDED_CONNECTIONS = `
  WITH ended AS (
    DELETE FROM grant_counts WHERE (status, slot) IN (
      SELECT status, slot FROM grant_counts
      WHERE slot <> 0 AND slot NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
      FOR UPDATE SKIP LOCKED)
    RETURNING status, n)
  INSERT INTO grant_counts (status, slot, n)
    SELECT status, 0, SUM(n) FROM ended GROUP BY status ORDER BY status
  ON CONFLICT (status, slot) DO UPDATE SET n = grant_counts.n + excluded.n`;
