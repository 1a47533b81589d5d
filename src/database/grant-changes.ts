/**
 * Who hears that a grant changed. Every instance and process keeps access tokens in memory; a
 * change to a grant made anywhere (a deletion, a sign-out, a Google security event, a grant found
 * dead, a new sign-in, a key rotation) must reach all of them before they serve from memory again.
 *
 * - In the process that made the change: at once, through {@link GrantChanges.publish}, called by
 *   the store right after its commit.
 * - Elsewhere on Postgres: a trigger on `grants` notifies a channel named after the schema at
 *   commit (LISTEN/NOTIFY); each instance listens on a connection of its own and pings it every
 *   200 ms. Postgres sends a session the notifications it has received before the answer to its
 *   next query, so a ping answered means every change committed before the ping was sent has been
 *   heard. Memory is trusted only while the last answered ping was sent less than 800 ms ago;
 *   otherwise (listener lost, server slow) every read goes to the database, and when the listener
 *   is back the whole cache is dropped, since notifications sent while it was away are lost.
 * - Elsewhere on SQLite (several processes on one file): a trigger writes each change to
 *   `grant_changes`; `PRAGMA data_version`, which moves when another connection commits, is read
 *   before serving from memory (at most every 100 ms) and the users changed since are dropped.
 *
 * So a change is honoured everywhere within {@link STALENESS_BOUND_MS}. Timers here run on real
 * time, whatever clock the rest of behalf was given: they measure the liveness of a connection.
 */
import { performance } from 'node:perf_hooks';
import type Database from 'better-sqlite3';
import type pg from 'pg';
import { createListenerClient, type PostgresSettings } from './postgres-settings.js';

/** The longest a change made by another instance or process may go unnoticed. */
export const STALENESS_BOUND_MS = 1_000;

export interface GrantChangeListener {
  /** `sub`'s grant changed: forget what is remembered about it. */
  changed(sub: string): void;
  /** Changes may have been missed: forget everything. */
  reset(): void;
}

export interface GrantChanges {
  /** Call `listener` on every change to a grant, local or remote. Returns the unsubscribe. */
  subscribe(listener: GrantChangeListener): () => void;
  /**
   * Whether memory may be trusted now: every change committed more than the staleness bound ago
   * has been delivered to the listeners. Cheap: called on every cache hit.
   */
  isCurrent(): boolean;
  /** Tell this process's listeners at once about a change this process committed. */
  publish(sub: string): void;
  close(): Promise<void>;
}

/**
 * The monotonic clock for isCurrent(), read at most once per turn of the event loop and at least
 * every 64 calls. isCurrent() runs on every cache hit, and a clock read (~45 ns) was a fifth of a
 * cache hit's cost (measured in the access-token benchmark); nothing that could make memory stale
 * (a notification, a ping's answer) is processed within one turn, and the first call of each turn
 * reads the clock afresh.
 */
class TurnClock {
  #now = 0;
  #valid = false;
  #calls = 0;
  readonly #invalidate = () => {
    this.#valid = false;
  };

  now(): number {
    if (this.#valid && (++this.#calls & 63) !== 0) return this.#now;
    this.#now = performance.now();
    if (!this.#valid) {
      this.#valid = true;
      setImmediate(this.#invalidate).unref();
    }
    return this.#now;
  }
}

const turnClock = new TurnClock();

/** Listener bookkeeping shared by both backends. */
abstract class ChangeFanout {
  readonly #listeners = new Set<GrantChangeListener>();

  subscribe(listener: GrantChangeListener): () => void {
    this.#listeners.add(listener);
    if (this.#listeners.size === 1) this.start();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.stop();
    };
  }

  publish(sub: string): void {
    for (const listener of this.#listeners) listener.changed(sub);
  }

  protected resetAll(): void {
    for (const listener of this.#listeners) listener.reset();
  }

  protected abstract start(): void;
  protected abstract stop(): void;
}

const PING_MS = 200;
const TRUST_MS = 800;
const RECONNECT_MS = { min: 100, max: 2_000 };

/** LISTEN/NOTIFY with a liveness ping (see the top of this file). */
export class PostgresGrantChanges extends ChangeFanout implements GrantChanges {
  readonly #settings: PostgresSettings;
  readonly #channel: string;
  #client: pg.Client | null = null;
  /** performance.now() when the last answered ping was sent; -Infinity while not listening. */
  #confirmedAt = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #reconnectDelay = RECONNECT_MS.min;
  #wasListening = false;
  /**
   * Told when the listener comes up and when it is lost (once per change), for the server's log:
   * while it is lost every token request reads the database.
   */
  onListenerState: ((state: 'listening' | 'lost') => void) | undefined;

  constructor(settings: PostgresSettings, schema: string) {
    super();
    this.#settings = settings;
    this.#channel = `behalf_grants:${schema}`;
  }

  isCurrent(): boolean {
    return turnClock.now() - this.#confirmedAt < TRUST_MS;
  }

  /** Whether the listening connection is up (for diagnostics and tests). */
  get listening(): boolean {
    return this.#client !== null;
  }

  async close(): Promise<void> {
    this.stop();
  }

  protected start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#connect();
  }

  protected stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#drop();
  }

  async #connect(): Promise<void> {
    if (!this.#running) return;
    const client = await createListenerClient(this.#settings);
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    client.on('notification', (message) => {
      if (message.channel === this.#channel && message.payload !== undefined && client === this.#client)
        this.publish(message.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.#channel.replaceAll('"', '""')}"`);
    } catch {
      client.end().catch(() => undefined);
      this.#retryLater();
      return;
    }
    if (!this.#running) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    this.#reconnectDelay = RECONNECT_MS.min;
    this.#tell(true);
    // Whatever was sent while nobody listened is lost: forget everything, then trust again.
    this.resetAll();
    this.#schedulePing(0);
  }

  #schedulePing(delay: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#ping(), delay);
    this.#timer.unref();
  }

  async #ping(): Promise<void> {
    const client = this.#client;
    if (client === null || !this.#running) return;
    const sent = performance.now();
    try {
      await client.query('SELECT 1');
    } catch {
      this.#lost(client);
      return;
    }
    if (client !== this.#client) return;
    // A gap in the pings: notifications were only delayed, not lost, but dropping everything
    // costs little and keeps the rule simple.
    if (sent - this.#confirmedAt > TRUST_MS) this.resetAll();
    this.#confirmedAt = sent;
    this.#schedulePing(PING_MS);
  }

  #lost(client: pg.Client): void {
    if (client !== this.#client) return;
    this.#drop();
    this.#tell(false);
    this.#retryLater();
  }

  #tell(listening: boolean): void {
    if (listening === this.#wasListening) return;
    this.#wasListening = listening;
    this.onListenerState?.(listening ? 'listening' : 'lost');
  }

  #drop(): void {
    this.#confirmedAt = Number.NEGATIVE_INFINITY;
    const client = this.#client;
    this.#client = null;
    client?.end().catch(() => undefined);
  }

  #retryLater(): void {
    if (!this.#running) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#connect(), this.#reconnectDelay);
    this.#timer.unref();
    this.#reconnectDelay = Math.min(RECONNECT_MS.max, this.#reconnectDelay * 2);
  }
}

const SQLITE_POLL_MS = 100;
const SQLITE_KEEP_MS = 10 * 60_000;
const SQLITE_BATCH = 10_000;

/** `PRAGMA data_version` and the `grant_changes` log (see the top of this file). */
export class SqliteGrantChanges extends ChangeFanout implements GrantChanges {
  readonly #db: Database.Database;
  #statements:
    | {
        version: Database.Statement;
        since: Database.Statement;
        last: Database.Statement;
        prune: Database.Statement;
      }
    | undefined;
  #version = -1;
  #lastSeq = 0;
  #polledAt = Number.NEGATIVE_INFINITY;
  #pruner: NodeJS.Timeout | undefined;
  #running = false;

  constructor(db: Database.Database) {
    super();
    this.#db = db;
  }

  isCurrent(): boolean {
    if (!this.#running) return true; // nobody caches: nothing to be stale
    const now = turnClock.now();
    if (now - this.#polledAt < SQLITE_POLL_MS) return true;
    try {
      this.#poll();
      this.#polledAt = now;
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.stop();
  }

  protected start(): void {
    if (this.#running) return;
    this.#statements ??= {
      version: this.#db.prepare('PRAGMA data_version').pluck(),
      since: this.#db.prepare(
        `SELECT seq, sub FROM grant_changes WHERE seq > ? ORDER BY seq LIMIT ${SQLITE_BATCH}`,
      ),
      last: this.#db.prepare('SELECT COALESCE(MAX(seq), 0) FROM grant_changes').pluck(),
      prune: this.#db.prepare('DELETE FROM grant_changes WHERE at < ?'),
    };
    this.#version = this.#statements.version.get() as number;
    this.#lastSeq = this.#statements.last.get() as number;
    this.#polledAt = performance.now();
    this.#running = true;
    this.#pruner = setInterval(() => {
      try {
        this.#statements?.prune.run(Date.now() - SQLITE_KEEP_MS);
      } catch {
        // Busy or closed: the next round prunes.
      }
    }, 60_000);
    this.#pruner.unref();
  }

  protected stop(): void {
    this.#running = false;
    clearInterval(this.#pruner);
  }

  #poll(): void {
    const statements = this.#statements!;
    const version = statements.version.get() as number;
    if (version === this.#version) return;
    const rows = statements.since.all(this.#lastSeq) as Array<{ seq: number; sub: string }>;
    // A gap means rows were pruned before this process read them, and a full batch that more may
    // follow: either way, forget everything and start from the newest row.
    if ((rows[0] !== undefined && rows[0].seq !== this.#lastSeq + 1) || rows.length === SQLITE_BATCH) {
      this.#lastSeq = statements.last.get() as number;
      this.resetAll();
    } else {
      for (const row of rows) this.publish(row.sub);
      if (rows.length > 0) this.#lastSeq = rows.at(-1)!.seq;
    }
    this.#version = version;
  }
}
