import type { Database } from '../database/index.js';
import type { GrantStatus } from './types.js';

const COUNT_BY_STATUS = 'SELECT status, COUNT(*) AS n FROM grants GROUP BY status';

/**
 * Grants per status, for the `behalf_grants` gauge. One GROUP BY that both backends answer from
 * the `grants_by_status (status, sub, client_id)` index without reading the rows (SQLite: a
 * covering index scan; Postgres: an index-only scan once autovacuum has set the visibility map).
 * Measured at a million grants on the 2-core project machine: about 0.1 s on SQLite and on
 * Postgres, so the metrics reuse a count for 30 s. Counts kept by triggers would be O(1) to read,
 * but every sign-in, refresh and revocation of every instance would then update the same row, a
 * lock they would all queue on.
 */
export async function countGrantsByStatus(database: Database): Promise<Record<GrantStatus, number>> {
  const rows =
    database.kind === 'sqlite'
      ? await database.run(() => database.connection.prepare(COUNT_BY_STATUS).all() as Array<{ status: string; n: number }>)
      : (await database.query<{ status: string; n: number }>(COUNT_BY_STATUS)).rows;
  const counts: Record<GrantStatus, number> = { active: 0, revoked: 0, needs_consent: 0 };
  for (const row of rows) if (row.status in counts) counts[row.status as GrantStatus] = Number(row.n);
  return counts;
}
