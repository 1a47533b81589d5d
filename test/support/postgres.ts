/**
 * Postgres for tests. The server comes from BEHALF_TEST_DATABASE_URL (default: the project
 * machines' trust-auth server, postgres://postgres@127.0.0.1:5432/postgres); each test file gets
 * a database of its own, created here and dropped when the file is done, and each test a fresh
 * schema in it when it needs an empty store.
 *
 * No silent skips (issue 16, point 4): when the server cannot be reached, a file that needs it
 * fails with one test that says why, in CI and on a laptop alike. A run that means to go without
 * Postgres says so with BEHALF_TEST_SKIP_POSTGRES=1: then the Postgres tests are skipped (never
 * even probed) and Vitest's summary counts them as skipped.
 */
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { it } from 'vitest';
import { redactDatabaseUrl } from '../../src/vault/index.js';

export const POSTGRES_TEST_URL =
  process.env.BEHALF_TEST_DATABASE_URL?.trim() || 'postgres://postgres@127.0.0.1:5432/postgres';

/** The run opted out of every test that needs Postgres (BEHALF_TEST_SKIP_POSTGRES=1). */
export const SKIP_POSTGRES = process.env.BEHALF_TEST_SKIP_POSTGRES === '1';

const UNREACHABLE_HINT =
  'Start one (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), set BEHALF_TEST_DATABASE_URL to a server whose user may CREATE DATABASE, or run with BEHALF_TEST_SKIP_POSTGRES=1 to skip the Postgres tests (Vitest counts them as skipped).';

/** Why Postgres at `url` cannot be used, or undefined when it answers. Never contains a password. */
export async function probePostgres(url: string = POSTGRES_TEST_URL): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).name;
    return `Postgres at ${redactDatabaseUrl(url)} cannot be used (${code})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The server URL for a Postgres test file, or undefined when its Postgres tests must not run:
 * with BEHALF_TEST_SKIP_POSTGRES=1, or when the server cannot be reached, and then this
 * registers a test that fails with the reason. Call at the top level of the file
 * (`const server = await postgresForTests('…')`) and guard the suites with
 * `describe.runIf(server !== undefined)`, never a plain `if`: a suite that is not registered is
 * not counted as skipped.
 */
export async function postgresForTests(what: string): Promise<string | undefined> {
  if (SKIP_POSTGRES) return undefined;
  const problem = await probePostgres();
  if (problem === undefined) return POSTGRES_TEST_URL;
  it(`${what}: Postgres is reachable`, () => {
    throw new Error(`${problem}. ${UNREACHABLE_HINT}`);
  });
  return undefined;
}

/**
 * For code that needs Postgres and cannot register a test of its own (the harness on the
 * Postgres backend): throws the reason when the server cannot be reached.
 */
export async function requirePostgres(): Promise<string> {
  const problem = await probePostgres();
  if (problem !== undefined) throw new Error(`${problem}. ${UNREACHABLE_HINT}`);
  return POSTGRES_TEST_URL;
}

export interface TestDatabase {
  /** The database's name (behalf_test_…). */
  name: string;
  /** A URL for it, same credentials as the server URL. */
  url: string;
  /** A URL for a fresh, empty schema in it (created now), via search_path. */
  freshSchema(): Promise<string>;
  /** Run SQL as the server URL's user, in this database. */
  query(text: string, values?: unknown[]): Promise<pg.QueryResult>;
  /** Drop the database, whoever is still connected. */
  drop(): Promise<void>;
}

/**
 * A new database named after `label`, on the server at `serverUrl`. Where the server has ICU, the
 * database sorts text in a human locale (en-US: `a A ä B`), not byte order, so a query that
 * forgets COLLATE "C" pages differently from SQLite and the contract suite says so.
 */
export async function createTestDatabase(serverUrl: string, label: string): Promise<TestDatabase> {
  const name = `behalf_test_${label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 20)}_${process.pid}_${randomBytes(4).toString('hex')}`;
  await adminQuery(
    serverUrl,
    `CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`,
  ).catch(() => adminQuery(serverUrl, `CREATE DATABASE ${name}`));
  const url = databaseUrl(serverUrl, name);
  const admin = new pg.Pool({ connectionString: url, max: 2 });
  admin.on('error', () => undefined);
  let schemas = 0;
  return {
    name,
    url,
    async freshSchema() {
      const schema = `s${++schemas}_${randomBytes(3).toString('hex')}`;
      await admin.query(`CREATE SCHEMA ${schema}`);
      return withSearchPath(url, schema);
    },
    query: (text, values) => admin.query(text, values),
    async drop() {
      await admin.end().catch(() => undefined);
      await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** `url` with its database replaced by `database`. */
export function databaseUrl(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.href;
}

/** `url` with the connection's search_path set to `schema` (libpq's options parameter). */
export function withSearchPath(url: string, schema: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('options', `-c search_path=${schema}`);
  return parsed.href;
}

async function adminQuery(serverUrl: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A TCP proxy in front of Postgres that a test can cut (every connection dropped, as when the
 * server restarts or a network path dies), take down (connections refused), close to new
 * connections only, stall (some connections go silent) and bring back on the same port, without
 * touching the real server other tests share.
 */
export interface TcpProxy {
  port: number;
  /** postgres:// URL through the proxy, same user and database as `url`. */
  via(url: string): string;
  /** Drop every open connection. */
  cut(): void;
  /** Stop listening (new connections are refused) and drop every open connection. */
  down(): Promise<void>;
  /** Stop listening (new connections are refused) but keep the open connections working. */
  refuseNew(): void;
  /**
   * Stop passing bytes, both ways, on the open connections whose startup packet contains
   * `marker` (e.g. an application_name), as a network path that silently drops packets would: no
   * reset, no error, just silence. Bytes sent meanwhile are held, and passed on by resume().
   */
  stall(marker: string): number;
  resume(): void;
  /** Listen again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  const sockets = new Set<Socket>();
  const links = new Set<{ inbound: Socket; outbound: Socket; startup: string; stalled: boolean }>();
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    const next = createServer((inbound) => {
      const outbound = connect(targetPort, target.hostname);
      for (const socket of [inbound, outbound]) {
        sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          sockets.delete(socket);
          inbound.destroy();
          outbound.destroy();
        });
      }
      const link = { inbound, outbound, startup: '', stalled: false };
      links.add(link);
      inbound.once('data', (chunk: Buffer) => (link.startup = chunk.toString('latin1')));
      inbound.once('close', () => links.delete(link));
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => resolve());
    });
    port = (next.address() as { port: number }).port;
    server = next;
  };
  const cut = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  const down = async () => {
    const current = server;
    server = undefined;
    cut();
    if (current !== undefined) await new Promise<void>((resolve) => current.close(() => resolve()));
  };
  const refuseNew = () => {
    const current = server;
    server = undefined;
    // close() stops accepting at once; its callback would wait for the open connections to end.
    current?.close();
  };
  const stall = (marker: string) => {
    let stalled = 0;
    for (const link of links) {
      if (link.stalled || !link.startup.includes(marker)) continue;
      link.stalled = true;
      stalled++;
      link.inbound.unpipe(link.outbound);
      link.outbound.unpipe(link.inbound);
      link.inbound.pause();
      link.outbound.pause();
    }
    return stalled;
  };
  const resume = () => {
    for (const link of links) {
      if (!link.stalled) continue;
      link.stalled = false;
      link.inbound.pipe(link.outbound).pipe(link.inbound);
    }
  };
  await listen();
  return {
    get port() {
      return port;
    },
    via(url: string) {
      const parsed = new URL(url);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.href;
    },
    cut,
    down,
    refuseNew,
    stall,
    resume,
    up: listen,
    close: down,
  };
}

/** A port on 127.0.0.1 that nothing listens on (connections are refused). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
