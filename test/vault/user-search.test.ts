import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratePostgres, SqliteDatabase } from '../../src/database/index.js';
import { prefixUpperBound, USER_SEARCH_SQL } from '../../src/vault/user-search.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';

const server = await postgresForTests('user search plans on Postgres');

/** The end of an email-prefix range (issue 13): every string with the prefix sorts below it, in byte order. */
describe('prefixUpperBound', () => {
  it('increments the last code point, skipping the surrogates, and drops a last one that cannot grow', () => {
    expect(prefixUpperBound('alice')).toBe('alicf');
    expect(prefixUpperBound('a@')).toBe('aA');
    expect(prefixUpperBound('a\ud7ff')).toBe('a\ue000');
    // The last code point there is (U+10FFFF) is still reached by incrementing.
    expect(prefixUpperBound('a\u{10fffe}')).toBe('a\u{10ffff}');
    expect(prefixUpperBound('a\u{10ffff}')).toBe('b');
    expect(prefixUpperBound('\u{10ffff}\u{10ffff}')).toBeNull();
    expect(prefixUpperBound('')).toBeNull();
  });

  it('is above every string that starts with the prefix, and not above the next one, in UTF-8 byte order', () => {
    const bytes = (s: string) => Buffer.from(s, 'utf8');
    for (const prefix of ['ali', 'é', 'z', 'a\u{1f600}']) {
      const bound = bytes(prefixUpperBound(prefix)!);
      for (const tail of ['', 'a', '\u{10ffff}', '\uffff', 'zzzz'])
        expect(Buffer.compare(bytes(prefix + tail), bound)).toBe(-1);
      expect(Buffer.compare(bound, bytes(prefix))).toBe(1);
    }
  });
});

/**
 * The admin console's user list at a million users (issue 13) rests on these plans: each page is
 * a range of an index, read in the index's order, never a scan of every user and a sort.
 */
describe('user search plans', () => {
  it('SQLite seeks users_by_email (both bounds of a prefix) or grants_by_status, and sorts nothing', async () => {
    const database = new SqliteDatabase(':memory:');
    try {
      const plan = (sql: string) =>
        (
          database.connection.prepare(`EXPLAIN QUERY PLAN ${sql}`).all({
            client_id: 'c',
            status: null,
            after_key: '',
            after_sub: '',
            below: 'b',
            limit: 51,
          }) as Array<{ detail: string }>
        )
          .map((row) => row.detail)
          .join('\n');
      const { sqlite } = USER_SEARCH_SQL;
      expect(plan(sqlite.byEmail)).toContain('SEARCH u USING INDEX users_by_email (<expr>>?)');
      expect(plan(sqlite.byEmailPrefix)).toContain(
        'SEARCH u USING INDEX users_by_email (<expr>>? AND <expr><?)',
      );
      expect(plan(sqlite.byStatus)).toMatch(
        /SEARCH g USING (COVERING )?INDEX grants_by_status \(status=\? AND sub>\?\)/,
      );
      for (const sql of Object.values(sqlite)) expect(plan(sql)).not.toMatch(/SCAN|TEMP B-TREE/);
    } finally {
      await database.close();
    }
  });

  describe.runIf(server !== undefined)('Postgres', () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await createTestDatabase(server!, 'user_search_plans');
      await migratePostgres(db.url);
    });
    afterAll(async () => {
      await db?.drop();
    });

    it('uses users_by_email or grants_by_status in their order, with no sort', async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        // Empty tables: rule out scans and sorts for the planner (a sort it cannot avoid still shows, at a
        // prohibitive cost), so the plan shows what the indexes allow, as with a million rows.
        await client.query('SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off');
        const plan = async (sql: string, values: unknown[]) =>
          (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, values)).rows
            .map((r) => r['QUERY PLAN'])
            .join('\n');
        const { postgres } = USER_SEARCH_SQL;
        const byEmail = await plan(postgres.byEmail, ['c', '', '', null, 51]);
        const byPrefix = await plan(postgres.byEmailPrefix, ['c', 'ali', '', null, 51, 'alj']);
        const byStatus = await plan(postgres.byStatus, ['c', 'revoked', '', 51]);
        expect(byEmail).toMatch(/Index Scan using users_by_email/);
        // Both ends of the prefix's range are index conditions.
        expect(byPrefix).toMatch(
          /Index Scan using users_by_email on users u[^\n]*\n\s*Index Cond: \(\(ROW\(lower[^\n]*< 'alj'/,
        );
        expect(byStatus).toMatch(/Index (Only )?Scan using grants_by_status/);
        for (const text of [byEmail, byPrefix, byStatus]) expect(text).not.toMatch(/Sort|Seq Scan/);
      } finally {
        await client.end();
      }
    });
  });
});
