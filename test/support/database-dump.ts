/**
 * Everything a behalf database holds, as bytes, for leak scans: what a stolen copy would give.
 * SQLite: the database file and its companions (-wal, -shm, -journal), whole, so freed pages and
 * WAL frames count too. Postgres: every row of every table in every schema behalf uses (its own
 * and the job queue's), bytea columns as their raw bytes.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import pg from 'pg';

export async function dumpDatabase(databaseUrl: string): Promise<Buffer[]> {
  if (databaseUrl.startsWith('sqlite:')) {
    const path = databaseUrl.slice('sqlite:'.length);
    const dir = dirname(path);
    const files = (await readdir(dir)).filter((f) => f.startsWith(basename(path)));
    if (files.length === 0) throw new Error(`no database file at ${path}`);
    return Promise.all(files.map((f) => readFile(join(dir, f))));
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ table_schema: string; table_name: string }>(
      `SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`,
    );
    if (tables.length === 0) throw new Error('no tables to dump');
    const out: Buffer[] = [];
    for (const { table_schema: schema, table_name: table } of tables) {
      const { rows } = await client.query(`SELECT * FROM "${schema}"."${table}"`);
      for (const row of rows as Array<Record<string, unknown>>) {
        for (const value of Object.values(row))
          out.push(Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value) ?? ''));
      }
    }
    return out;
  } finally {
    await client.end().catch(() => undefined);
  }
}
