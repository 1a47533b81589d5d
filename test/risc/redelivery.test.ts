import { createServer, type Server } from 'node:http';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_BACKEND, type Harness } from '../support/harness.js';

/** One security event token as Google pushed it: the exact bytes and content type. */
interface CapturedEvent {
  body: string;
  contentType: string;
}

/**
 * Issue 11, point 3: exactly-once security events. Recording an event's id and acting on it are
 * one transaction: when acting fails, the receiver answers 5xx and records nothing, so Google's
 * redelivery of the same token acts; a delivery after that is a duplicate. Runs on SQLite, and
 * on Postgres with BEHALF_TEST_BACKEND=postgres.
 */
describe(`a security event whose handling fails is acted on when Google redelivers it (${TEST_BACKEND})`, () => {
  let h: Harness;
  let catcher: Server;
  let catcherUrl: string;
  const caught: CapturedEvent[] = [];

  beforeAll(async () => {
    h = await startHarness();
    // Stands in for behalf at the push, so the test holds the very token Google sent and can
    // deliver it again, byte for byte, as Google's retries do.
    catcher = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        caught.push({
          body: Buffer.concat(chunks).toString('utf8'),
          contentType: request.headers['content-type'] ?? '',
        });
        response.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => catcher.listen(0, '127.0.0.1', resolve));
    catcherUrl = `http://127.0.0.1:${(catcher.address() as { port: number }).port}/`;
  });
  afterAll(async () => {
    if (catcher !== undefined) await new Promise((resolve) => catcher.close(resolve));
    await h?.close();
  });

  /** Run SQL on behalf's database over a connection of the test's own, as an operator would. */
  async function sql<T = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<T[]> {
    const { database } = h.runtime;
    if (database.kind === 'postgres') {
      const client = new pg.Client({ connectionString: h.config.databaseUrl });
      await client.connect();
      try {
        return (await client.query(text, values)).rows as T[];
      } finally {
        await client.end();
      }
    }
    const db = new Database(database.path);
    try {
      const statement = db.prepare(text);
      return statement.reader ? (statement.all(...values) as T[]) : (statement.run(...values), []);
    } finally {
      db.close();
    }
  }

  /**
   * The database refuses every change to a grant until `allowGrantWrites` (a trigger that raises,
   * as a failing disk, a constraint or a privilege would): acting on a security event fails after
   * its id was written in the same transaction.
   */
  async function refuseGrantWrites(): Promise<void> {
    if (h.runtime.database.kind === 'postgres') {
      await sql(`CREATE FUNCTION test_refuse_grant_write() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'grant writes refused by the test'; END $$`);
      await sql(`CREATE TRIGGER test_refuse_grant_write BEFORE UPDATE ON grants
                 FOR EACH ROW EXECUTE FUNCTION test_refuse_grant_write()`);
    } else {
      await sql(`CREATE TRIGGER test_refuse_grant_write BEFORE UPDATE ON grants
                 BEGIN SELECT RAISE(ABORT, 'grant writes refused by the test'); END`);
    }
  }
  async function allowGrantWrites(): Promise<void> {
    if (h.runtime.database.kind === 'postgres') {
      await sql('DROP TRIGGER test_refuse_grant_write ON grants');
      await sql('DROP FUNCTION test_refuse_grant_write()');
    } else {
      await sql('DROP TRIGGER test_refuse_grant_write');
    }
  }

  const deliver = (event: CapturedEvent) =>
    fetch(`${h.url}/v1/google/risc`, {
      method: 'POST',
      headers: { 'content-type': event.contentType },
      body: event.body,
    });
  const user = async (sub: string) => (await (await h.service('GET', `/v1/users/${sub}`)).json()) as any;
  const recorded = async (jti: string) =>
    (
      await sql<{ n: number | string }>(
        `SELECT count(*) AS n FROM security_events WHERE jti = ${h.runtime.database.kind === 'postgres' ? '$1' : '?'}`,
        [jti],
      )
    ).map((row) => Number(row.n))[0];

  it('tokens-revoked: a failed handling answers 5xx and records nothing; the redelivery acts; a third delivery is a duplicate', async () => {
    const sub = await h.signedInUser();
    const pushed = await h.control<{ delivered: boolean; jti: string }>('POST', '/emulator/risc/events', {
      receiver_url: catcherUrl,
      event: 'tokens-revoked',
      sub,
    });
    expect(pushed.delivered).toBe(true);
    const event = caught.at(-1)!;
    expect(event.contentType).toMatch(/^application\/secevent\+jwt/);

    // First delivery: acting on it fails inside the transaction that recorded its id.
    await refuseGrantWrites();
    let first: Response;
    try {
      first = await deliver(event);
    } finally {
      await allowGrantWrites();
    }
    expect(first.status).toBeGreaterThanOrEqual(500);
    expect(await recorded(pushed.jti)).toBe(0);
    expect(await user(sub)).toMatchObject({
      grant: { status: 'active', offline_access: true },
      security: null,
    });

    // Google delivers the same token again: now it is acted on, not taken for a duplicate.
    const second = await deliver(event);
    expect(second.status).toBe(202);
    expect(await second.json()).toMatchObject({
      jti: pushed.jti,
      duplicate: false,
      events: [{ type: 'tokens-revoked', sub, action: 'grant_dropped' }],
    });
    expect(await recorded(pushed.jti)).toBe(1);
    expect(await user(sub)).toMatchObject({
      grant: { status: 'revoked', offline_access: false },
      security: { state: 'tokens_revoked' },
    });
    expect((await h.service('POST', `/v1/users/${sub}/access-token`)).status).toBe(409);

    // And once more: acted on already, so a duplicate that does nothing.
    const third = await deliver(event);
    expect(third.status).toBe(202);
    expect(await third.json()).toMatchObject({ jti: pushed.jti, duplicate: true, events: [] });
    expect(await recorded(pushed.jti)).toBe(1);
  });
});
