/**
 * Starting the benchmark's other threads and processes. Everything runs from TypeScript sources
 * through tsx, so the figures are for the code in src/ as it is now, not a stale dist/ build.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * A worker thread running a .ts module. tsx's loader is not inherited by worker threads on
 * Node 20, so a tiny CommonJS bootstrap registers it before importing the module.
 */
export function startTsWorker(module: URL, workerData?: unknown): Worker {
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(module.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/** A child process running a .ts module, with an IPC channel. */
export function forkTs(module: URL, args: string[] = []): ChildProcess {
  return fork(fileURLToPath(module), args, {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/** Request/reply over a child process's IPC channel; the child side is {@link serveRequests}. */
export class ChildRpc {
  #next = 1;
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  readonly ready: Promise<unknown>;

  constructor(readonly child: ChildProcess) {
    this.ready = new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`child process exited (${code}) before it was ready`)));
      child.on('message', (message: { type?: string; value?: unknown } & Partial<Reply>) => {
        if (message.type === 'ready') {
          resolve(message.value);
          return;
        }
        const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
        if (pending === undefined) return;
        this.#pending.delete(message.id!);
        if (message.ok === true) pending.resolve(message.value);
        else pending.reject(new Error(message.error ?? 'child failed'));
      });
    });
    child.on('exit', (code) => {
      for (const pending of this.#pending.values())
        pending.reject(new Error(`child process exited (${code})`));
      this.#pending.clear();
    });
  }

  call<T>(type: string, payload: unknown = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, type, payload });
    });
  }

  /** Ask the child to stop and wait for it; kill it if it does not within 5 s. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The child side of {@link ChildRpc}: announces readiness, answers requests, exits on disconnect. */
export function serveRequests(
  ready: unknown,
  handlers: Record<string, (payload: never) => Promise<unknown>>,
  onClose: () => Promise<void> = async () => undefined,
): void {
  const send = (message: unknown) => process.send?.(message);
  process.on('message', (message: { id: number; type: string; payload: unknown }) => {
    const handler = handlers[message.type];
    if (handler === undefined) {
      send({ id: message.id, ok: false, error: `no handler for ${message.type}` });
      return;
    }
    handler(message.payload as never).then(
      (value) => send({ id: message.id, ok: true, value }),
      (error: unknown) =>
        send({
          id: message.id,
          ok: false,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        }),
    );
  });
  process.on('disconnect', () => {
    onClose().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
  send({ type: 'ready', value: ready });
}
