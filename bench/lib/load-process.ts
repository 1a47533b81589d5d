/**
 * The load generator: autocannon in a process of its own, so that it never competes with the
 * server under test for an event loop. Latencies are taken from autocannon's per-response
 * event (float milliseconds) rather than its histogram, which keeps whole milliseconds only.
 */
import autocannon from 'autocannon';
import { summarize, type LatencySummary } from './stats.js';
import { serveRequests } from './processes.js';

export interface LoadOptions {
  url: string;
  method: 'GET' | 'POST';
  connections: number;
  headers?: Record<string, string>;
  /** Stop after this long (seconds)… */
  durationSeconds?: number;
  /** …or after exactly one request per body (each body used once, e.g. one-time codes). */
  bodies?: string[];
}

export interface LoadResult {
  /** 2xx responses. */
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  seconds: number;
  /** 2xx responses per second. */
  rps: number;
  /** Milliseconds, 2xx responses only. */
  latency: LatencySummary;
}

async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  const bodies = options.bodies;
  let nextBody = 0;
  const started = performance.now();
  // autocannon reports its end only at its next sample tick (once a second), so with a fixed
  // amount of requests its own end time rounds the run up to whole seconds: the run ends at its
  // last response.
  let lastResponse = started;
  let instance: autocannon.Instance;
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        pipelining: 1,
        timeout: 30,
        ...(bodies === undefined ? { duration: options.durationSeconds ?? 5 } : { amount: bodies.length }),
        requests: [
          {
            method: options.method,
            ...(options.headers === undefined ? {} : { headers: options.headers }),
            ...(bodies === undefined
              ? {}
              : { setupRequest: (request) => ({ ...request, body: bodies[nextBody++ % bodies.length] }) }),
          },
        ],
      },
      (error, result) =>
        error === null || error === undefined
          ? resolve(result)
          : reject(error instanceof Error ? error : new Error(String(error))),
    );
  });
  instance!.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1;
    lastResponse = performance.now();
    if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
  });
  const result = await finished;
  const seconds = (lastResponse - started) / 1000;
  return {
    ok: latencies.length,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    seconds,
    rps: latencies.length / seconds,
    latency: summarize(latencies),
  };
}

serveRequests(null, { load: (options: LoadOptions) => runLoad(options) });
