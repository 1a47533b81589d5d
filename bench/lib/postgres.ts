import { randomBytes } from 'node:crypto';
import pg from 'pg';
import * as vault from '../../src/vault/index.js';

/** A scratch database on the Postgres server the bench measures on, migrated by behalf. */
export interface BenchDatabase {
  url: string;
  /** Its size on disk (pg_database_size), in bytes. */
  size(): Promise<number>;
  drop(): Promise<void>;
}

/**
 * A fresh database on the server at `serverUrl` (so the benchmark never writes into the named
 * database itself), with behalf's schema (migrateStore, as `behalf migrate` does). When behalf
 * has no Postgres store yet, or no server is named, or it cannot be used, says why instead: the
 * workloads then report "not available" rather than a made-up figure.
 */
export async function createBenchDatabase(
  serverUrl: string | undefined,
  label: string,
): Promise<BenchDatabase | { unavailable: string }> {
  if (!('PostgresStore' in vault)) return { unavailable: 'not available: no Postgres store yet' };
  if (serverUrl === undefined) return { unavailable: 'not available: no Postgres server named' };
  const name = `behalf_bench_${label}_${randomBytes(4).toString('hex')}`;
  const admin = async <T>(work: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  try {
    await admin((client) => client.query(`CREATE DATABASE ${name}`));
  } catch (error) {
    const reason = (error as { code?: string }).code ?? (error instanceof Error ? error.name : 'error');
    return {
      unavailable: `not available: could not create a scratch database on the Postgres server (${reason})`,
    };
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const database: BenchDatabase = {
    url: url.toString(),
    size: async () => {
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      try {
        const result = await client.query<{ bytes: string }>(
          'SELECT pg_database_size(current_database()) AS bytes',
        );
        return Number(result.rows[0]!.bytes);
      } finally {
        await client.end();
      }
    },
    drop: async () =>
      void (await admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
  };
  try {
    await vault.migrateStore(database.url);
  } catch (error) {
    await database.drop().catch(() => undefined);
    return {
      unavailable: `not available: behalf could not migrate a scratch database (${error instanceof Error ? error.message : String(error)})`,
    };
  }
  return database;
}
