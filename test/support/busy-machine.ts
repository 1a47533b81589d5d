import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Keep every core busy while `body` runs: one worker thread per core spinning in a loop, so that
 * the processes under test get only a share of the CPU, as on a loaded machine (issue 11: "the
 * four-instance test must hold while the machine is busy"). The workers are stopped, and waited
 * for, however `body` ends.
 */
export async function whileMachineIsBusy<T>(body: () => Promise<T>): Promise<T> {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const spin = `
    const { workerData, parentPort } = require('node:worker_threads');
    const stop = new Int32Array(workerData);
    parentPort.postMessage('spinning');
    let x = 0;
    while (Atomics.load(stop, 0) === 0) {
      for (let i = 0; i < 100000; i++) x = (x * 31 + i) | 0;
    }
  `;
  const workers = Array.from(
    { length: availableParallelism() },
    () => new Worker(spin, { eval: true, workerData: stop.buffer }),
  );
  try {
    // Every loop is running before the body starts.
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) =>
            worker.once('message', () => resolve()).once('error', reject),
          ),
      ),
    );
    return await body();
  } finally {
    Atomics.store(stop, 0, 1);
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve) =>
            worker.threadId === -1 ? resolve() : worker.once('exit', () => resolve()),
          ),
      ),
    );
  }
}
