import { closeSync, fdatasync, fsyncSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Group commit for SQLite's write-ahead log, off the event loop. better-sqlite3 runs every
 * statement on the event loop, so with `synchronous=FULL` each commit's fsync (~1-2 ms on a
 * cloud disk) stalls every other request. Transactions that must be durable commit with
 * `synchronous=NORMAL` instead (written to the WAL, atomic, durable across a process crash) and
 * then wait here for an fdatasync of the WAL file on libuv's thread pool: once it returns, every
 * frame written before it started is on disk, as FULL would have made it at commit
 * (https://www.sqlite.org/pragma.html#pragma_synchronous, https://www.sqlite.org/wal.html).
 *
 * One sync runs at a time; commits that land while it runs share the next one, so a burst of N
 * sign-ins costs two syncs, not N. SQLite itself offers no such hook (no async API, no
 * commit-time callback for the sync), which is why this is ours.
 *
 * The WAL file keeps its inode while any connection is open (SQLite rewinds it after a
 * checkpoint, it does not recreate it), and SQLite takes no POSIX locks on it (WAL-mode locks
 * live in the -shm file), so holding a second descriptor to it is safe.
 */
export class WalSync {
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;
  #count = 0;

  /** `sync` is the fdatasync, replaceable in tests. */
  constructor(private readonly sync: () => Promise<void>) {}

  /** Syncs finished, successful or not (diagnostics and tests). */
  get count(): number {
    return this.#count;
  }

  /**
   * Resolves when a sync that started after this call has finished: everything written to the
   * WAL before the call is on disk. Rejects with that sync's error.
   */
  flush(): Promise<void> {
    if (this.#running === null) return this.#start();
    // The running sync may have started before the caller's commit: wait for the next one,
    // shared by every caller that comes while this one runs.
    this.#next ??= this.#running.then(
      () => this.#startNext(),
      () => this.#startNext(),
    );
    return this.#next;
  }

  /** Waits for the syncs in flight (for close), ignoring their outcome. */
  async settle(): Promise<void> {
    while (this.#running !== null || this.#next !== null) {
      await (this.#next ?? this.#running)?.catch(() => undefined);
    }
  }

  #startNext(): Promise<void> {
    this.#next = null;
    return this.#start();
  }

  #start(): Promise<void> {
    const sync = this.sync().finally(() => {
      this.#count += 1;
      if (this.#running === sync) this.#running = null;
    });
    this.#running = sync;
    return sync;
  }
}

/**
 * A WalSync over the WAL file of the open database at `databasePath`, and how to close its
 * descriptor (once; later calls do nothing). The folder is synced once first, so that a new
 * database's and WAL's names are on disk too (SQLite does the same on a new WAL's first sync, and
 * ignores a failure as this does).
 */
export function openWalSync(databasePath: string): { wal: WalSync; close: () => void } {
  try {
    const folder = openSync(dirname(databasePath), 'r');
    try {
      fsyncSync(folder);
    } finally {
      closeSync(folder);
    }
  } catch {
    // Some file systems cannot sync a folder; the files' own syncs still hold.
  }
  // 'r': the descriptor only ever syncs; fdatasync works on a read-only descriptor on Linux and macOS.
  const fd = openSync(`${databasePath}-wal`, 'r');
  const wal = new WalSync(
    () =>
      new Promise<void>((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve()))),
  );
  let open = true;
  const close = () => {
    if (open) closeSync(fd);
    open = false;
  };
  return { wal, close };
}
