/**
 * behalf's SQLite database, the embedded default: one object owns the connection, the one ordered
 * migration list (applied on open), the error mapping and transactions. The vault, the security
 * event log and job runs are repositories over it, in the same file.
 */
import { closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock, type Clock } from '../clock.js';
import { BehalfError } from '../errors.js';
import { SqliteGrantChanges } from './grant-changes.js';
import { SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION } from './migrations/sqlite.js';
import { openWalSync, type WalSync } from './wal-sync.js';

export { SQLITE_SCHEMA_VERSION };

const SETTING = 'BEHALF_DATABASE_URL';
/** The page cache of the connection, in KiB (see the constructor). */
const PAGE_CACHE_KIB = 2000;

export interface SqliteDatabaseOptions {
  /** Time for the migrations' records. */
  clock?: Clock;
  /** How long a write waits for another process's lock before failing with STORE_UNAVAILABLE. Default 5000. */
  busyTimeoutMs?: number;
}

/** A write waiting for the next commit: synced ones resolve after the WAL sync that follows it. */
interface QueuedWrite {
  body: () => unknown;
  synced: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Open (creating on first run) the SQLite database at `path`, or `:memory:`. A new file is created
 * with mode 0600 and a missing parent folder with 0700. The database runs in WAL mode, and a
 * {@link transaction} is on disk before it resolves (a sign-in's tokens are on disk before the
 * sign-in is answered): its commit is synced by a group commit off the event loop (WalSync), other
 * writes with `synchronous=FULL`. Migrations are applied; a database whose schema is newer than
 * this build knows is refused.
 */
export class SqliteDatabase {
  readonly kind = 'sqlite' as const;
  /** The absolute file path, or `:memory:`. */
  readonly path: string;
  /** The connection, for repositories to prepare their statements on. Run them through {@link run}. */
  readonly connection: Database.Database;
  /** Changes to grants made by this or any other process on this file. */
  readonly changes: SqliteGrantChanges;
  /** What opening did to the schema: the version found and the migrations applied (for `behalf migrate`). */
  readonly migrations: { from: number; applied: Array<{ version: number; name: string }> };
  /** Syncs transactions' commits; none for `:memory:`. */
  readonly #wal: { wal: WalSync; close: () => void } | null;
  /** Writes waiting for the next commit (see {@link runUnsynced}). */
  #queued: QueuedWrite[] = [];

  /** Throws BehalfError when the database cannot be opened. */
  constructor(path: string, options: SqliteDatabaseOptions = {}) {
    this.path = path === ':memory:' ? path : resolve(path);
    let db: Database.Database | undefined;
    try {
      if (this.path !== ':memory:') createPrivateFile(this.path);
      db = new Database(this.path);
      // WAL: readers do not block the writer. FULL: the WAL is fsynced at every commit, so a
      // committed sign-in survives a power cut (NORMAL would only survive a process crash).
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      db.pragma('foreign_keys = ON');
      // Deleted rows (a deleted user's profile) are overwritten with zeros, not left in free pages.
      db.pragma('secure_delete = ON');
      // SQLite's own default page cache, 2 MB (better-sqlite3 builds with 16 MB a connection). On a
      // million-user file, one lookup at a time: ~36,000 grant reads/s against ~38,000 with 16 MB
      // (~1.5 µs a read, the operating system caching the file either way), while the 16 MB fill
      // within a minute of cold lookups and stay resident, ~14 MiB more of the server's RSS.
      db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
      this.migrations = migrate(db, (options.clock ?? systemClock).now());
      // Last: nothing after it can fail and leave its descriptor open.
      this.#wal = this.path === ':memory:' ? null : openWalSync(this.path);
      this.connection = db;
    } catch (error) {
      if (db?.open === true) db.close();
      throw openError(this.path, error);
    }
    this.changes = new SqliteGrantChanges(this.connection);
  }

  get open(): boolean {
    return this.connection.open;
  }

  /** The connection's settings, for diagnostics and tests. */
  settings(): {
    journalMode: string;
    synchronous: number;
    busyTimeoutMs: number;
    foreignKeys: boolean;
    schemaVersion: number;
  } {
    const db = this.connection;
    return {
      journalMode: String(db.pragma('journal_mode', { simple: true })),
      synchronous: Number(db.pragma('synchronous', { simple: true })),
      busyTimeoutMs: Number(db.pragma('busy_timeout', { simple: true })),
      foreignKeys: Number(db.pragma('foreign_keys', { simple: true })) === 1,
      schemaVersion: (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number }).v,
    };
  }

  /** The schema version recorded in the file now (readiness: has a newer behalf migrated it since?). */
  schemaVersion(): Promise<number> {
    return this.run(
      () =>
        (
          this.connection.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations').get() as {
            v: number;
          }
        ).v,
    );
  }

  /** Run statements, turning SQLite's failures into BehalfErrors (busy or I/O: retryable). */
  async run<T>(body: () => T): Promise<T> {
    return this.#runNow(body);
  }

  /**
   * Run `body` in an IMMEDIATE transaction: the write lock is taken up front, so two processes
   * writing the same rows cannot both read the old ones and then fail to upgrade
   * (SQLITE_BUSY_SNAPSHOT). Resolves once the commit is on disk, as `synchronous=FULL` would have
   * it, but without holding the event loop for the fsync: the commit itself is not synced
   * (`synchronous=NORMAL`) and then waits for the next WAL sync on the thread pool, which the
   * transactions committed meanwhile share. Measured in the sign-in benchmark: the fsync on the
   * event loop was ~1.7 ms per sign-in, a fifth of behalf's busy time, and every other request
   * waited behind it. What other requests may see a moment before it is on disk is only ever
   * lost in a power cut or an OS crash within that moment, never by a process crash.
   *
   * `body` runs after the current tick, in one commit with the other writes of that tick (see
   * {@link runUnsynced}); inside a transaction already open, at once, as a savepoint: the outer
   * commit and its sync decide.
   */
  transaction<T>(body: () => T): Promise<T> {
    return this.#write(body, true);
  }

  /** WAL syncs finished so far (diagnostics and tests). */
  get walSyncs(): number {
    return this.#wal?.wal.count ?? 0;
  }

  /**
   * For writes that are cheap to lose in a power cut, and only there: an access token (lost, it is
   * refreshed again) and refresh leases (lost, they are free for the taking). They resolve once
   * committed, without waiting for the disk (`synchronous=NORMAL`: still atomic, and durable
   * across a process crash), so a refresh costs no fsync; the next synced commit carries them to
   * disk. Measured in the refresh-storm benchmark: the lease and token fsyncs were most of behalf's
   * own time per refresh. Grants, refresh tokens and statuses are always written by
   * {@link transaction}.
   *
   * Group commit: the writes of both kinds asked for until the event loop next checks for I/O
   * (setImmediate) commit together, in one IMMEDIATE transaction, each in a savepoint of its own,
   * so a write that fails is rolled back and rejected alone. A commit is most of a small write's
   * cost: ~40 µs a lease and ~90 µs a token alone against ~8 and ~35 µs in batches of five
   * (measured on the refresh storm's file), and a storm takes two hundred leases in one tick.
   * Inside a transaction already open, `body` runs at once, in it.
   */
  runUnsynced<T>(body: () => T): Promise<T> {
    return this.#write(body, false);
  }

  #write<T>(body: () => T, synced: boolean): Promise<T> {
    if (this.connection.inTransaction) {
      return this.run(() => this.connection.transaction(body)());
    }
    return new Promise<T>((resolve, reject) => {
      const write = { body, synced, resolve: resolve as (value: unknown) => void, reject };
      if (this.#queued.push(write) === 1) setImmediate(() => this.#commitQueued());
    });
  }

  /**
   * Commit the queued writes in one transaction; answer the unsynced ones at once and the synced
   * ones after the WAL sync. The sync is asked for in the same tick as the commit, so that close()
   * waits for it.
   */
  #commitQueued(): void {
    const batch = this.#queued;
    if (batch.length === 0) return; // close() committed them already
    this.#queued = [];
    const committed: Array<{ write: QueuedWrite; value: unknown }> = [];
    const failed: Array<{ write: QueuedWrite; error: BehalfError }> = [];
    const commit = this.connection.transaction(() => {
      for (const write of batch) {
        try {
          committed.push({ write, value: this.connection.transaction(write.body)() });
        } catch (error) {
          // Some failures (a full disk, an I/O error) end the whole transaction.
          if (!this.connection.inTransaction) throw error;
          failed.push({ write, error: runtimeError(error) });
        }
      }
    });
    try {
      this.#runNow(() => {
        // Not synced by SQLite (the synced writes wait for the WAL sync below). exec, not a
        // statement prepared once: SQLite applies this pragma when the statement is prepared, so a
        // prepared one's first run changed nothing; exec prepares it each time, ~0.4 µs.
        this.connection.exec('PRAGMA synchronous = NORMAL');
        try {
          commit.immediate();
        } finally {
          this.connection.exec('PRAGMA synchronous = FULL');
        }
      });
    } catch (error) {
      // Nothing of the batch was committed: every write fails with the reason.
      for (const write of batch) write.reject(error);
      return;
    }
    for (const { write, error } of failed) write.reject(error);
    for (const { write, value } of committed) if (!write.synced) write.resolve(value);
    const synced = committed.filter(({ write }) => write.synced);
    if (synced.length === 0) return;
    (this.#wal === null ? Promise.resolve() : this.#wal.wal.flush()).then(
      () => {
        for (const { write, value } of synced) write.resolve(value);
      },
      (error: unknown) => {
        // Committed, but perhaps not on disk: the caller is not told it is.
        const unsynced = new BehalfError(
          'STORE_UNAVAILABLE',
          `The SQLite database's write-ahead log could not be synced to disk (${(error as NodeJS.ErrnoException).code ?? 'unknown'}); retry.`,
          { cause: error, reason: 'sync_failed', retryAfter: 1 },
        );
        for (const { write } of synced) write.reject(unsynced);
      },
    );
  }

  #runNow<T>(body: () => T): T {
    if (!this.connection.open) throw new BehalfError('STORE_UNAVAILABLE', 'The SQLite database is closed.');
    try {
      return body();
    } catch (error) {
      throw runtimeError(error);
    }
  }

  async close(): Promise<void> {
    if (this.connection.open) this.#commitQueued();
    await this.changes.close();
    if (this.#wal !== null) {
      await this.#wal.wal.settle();
      this.#wal.close();
    }
    if (this.connection.open) this.connection.close();
  }
}

/** Create the database file (0600) and its folder (0700) if missing, before SQLite opens it. */
function createPrivateFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if (statSync(path).isDirectory()) {
      throw new BehalfError(
        'CONFIG_INVALID',
        `${SETTING}: ${path} is a folder; name a file such as ${resolve(path, 'behalf.db')}.`,
      );
    }
  }
}

function migrate(db: Database.Database, now: number): SqliteDatabase['migrations'] {
  // IMMEDIATE: two processes starting together apply each migration once.
  return db
    .transaction(() => {
      db.exec(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
      );
      const current =
        (
          db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get() as {
            version: number | null;
          }
        ).version ?? 0;
      if (current > SQLITE_SCHEMA_VERSION) {
        throw new BehalfError(
          'CONFIG_INVALID',
          `${SETTING}: the database schema is at version ${current}, newer than this behalf knows (${SQLITE_SCHEMA_VERSION}). ` +
            'A newer behalf has migrated it: run that version, or point the setting at another database.',
          { reason: 'schema_too_new' },
        );
      }
      const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
      const applied: Array<{ version: number; name: string }> = [];
      for (const migration of SQLITE_MIGRATIONS) {
        if (migration.version <= current) continue;
        db.exec(typeof migration.sql === 'string' ? migration.sql : migration.sql({ jobSchema: '' }));
        record.run(migration.version, migration.name, now);
        applied.push({ version: migration.version, name: migration.name });
      }
      return { from: current, applied };
    })
    .immediate();
}

export function sqliteCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** A failure while opening: a bad path is CONFIG_INVALID, anything else STORE_UNAVAILABLE. */
function openError(path: string, error: unknown): BehalfError {
  if (error instanceof BehalfError) return error;
  const code = sqliteCode(error) ?? (error as NodeJS.ErrnoException).code ?? 'error';
  const where = `${SETTING}: cannot open the SQLite database at ${path}`;
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new BehalfError('CONFIG_INVALID', `${where}: the file is not a SQLite database (${code}).`, {
      cause: error,
    });
  }
  if (
    [
      'ENOTDIR',
      'EISDIR',
      'EACCES',
      'EPERM',
      'EROFS',
      'ENAMETOOLONG',
      'SQLITE_CANTOPEN',
      'SQLITE_READONLY',
    ].includes(code)
  ) {
    return new BehalfError(
      'CONFIG_INVALID',
      `${where} (${code}): check that the path is a file this process can write.`,
      { cause: error },
    );
  }
  return new BehalfError('STORE_UNAVAILABLE', `${where} (${code}).`, { cause: error });
}

/** A failure during a query. SQLite's own messages name tables and columns, never values. */
export function runtimeError(error: unknown): BehalfError {
  if (error instanceof BehalfError) return error;
  const code = sqliteCode(error);
  if (code !== undefined && /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|PROTOCOL|READONLY)/.test(code)) {
    return new BehalfError('STORE_UNAVAILABLE', `The SQLite store is busy or unavailable (${code}); retry.`, {
      cause: error,
      retryAfter: 1,
    });
  }
  return new BehalfError('INTERNAL', `The SQLite store failed (${code ?? (error as Error).name}).`, {
    cause: error,
  });
}
