/**
 * A cold behalf process: it opens the store the way `behalf serve` does (createRuntime) and asks
 * for access tokens of users it has never seen, so every call reads the store and decrypts, with
 * nothing in memory. Reports calls per second, latency and the process's memory.
 */
import { pino } from 'pino';
import { createRuntime } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { loopbackOnlyFetch } from './behalf-instance.js';
import { serveRequests } from './processes.js';
import { seededSub } from './seed.js';
import { summarize, type LatencySummary } from './stats.js';

export interface LookupRequest {
  env: Record<string, string>;
  /** Seeded users first…first+users-1 exist in the store (first defaults to 0). */
  first?: number;
  users: number;
  /** Stop after this long, or when every user has been asked for once. */
  durationMs: number;
}

export interface LookupResult {
  calls: number;
  seconds: number;
  callsPerSecond: number;
  /** Microseconds. */
  latency: LatencySummary;
  /**
   * Calls per second (from the summed call times) over the first 40,000 calls and over the calls
   * after the 60,000th: the token service's memory cache holds 50,000 users by default, so the
   * second figure shows the cost of evicting from it. Null when there were too few calls.
   */
  beforeCacheFullCallsPerSecond: number | null;
  afterCacheFullCallsPerSecond: number | null;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  heapUsedAfterMiB: number;
}

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

async function lookup(request: LookupRequest): Promise<LookupResult> {
  const config = await loadConfig({ mode: 'production', env: request.env });
  const runtime = await createRuntime(config, {
    fetch: loopbackOnlyFetch,
    logger: pino({ level: 'silent' }),
  });
  try {
    // A random order over all users, each asked for once: every call misses the memory cache.
    const first = request.first ?? 0;
    const order = new Int32Array(request.users);
    for (let i = 0; i < order.length; i++) order[i] = i;
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    // The first calls warm the JIT up; they are cold calls too, just not counted.
    const warmUp = Math.min(2_000, Math.floor(order.length / 5));
    for (let i = 0; i < warmUp; i++) await runtime.behalf.getAccessToken(seededSub(first + order[i]!));
    const rssBefore = process.memoryUsage().rss;
    const latencies: number[] = [];
    const started = performance.now();
    const end = started + request.durationMs;
    let calls = 0;
    while (warmUp + calls < order.length) {
      const t0 = performance.now();
      await runtime.behalf.getAccessToken(seededSub(first + order[warmUp + calls]!));
      const t1 = performance.now();
      latencies.push((t1 - t0) * 1000);
      calls++;
      if (t1 >= end) break;
    }
    const seconds = (performance.now() - started) / 1000;
    const memory = process.memoryUsage();
    const rate = (from: number, to: number) => {
      if (latencies.length <= from) return null;
      let micros = 0;
      const end = Math.min(to, latencies.length);
      for (let i = from; i < end; i++) micros += latencies[i]!;
      return ((end - from) / micros) * 1e6;
    };
    return {
      calls,
      beforeCacheFullCallsPerSecond: rate(0, 40_000),
      afterCacheFullCallsPerSecond: rate(60_000, Number.POSITIVE_INFINITY),
      seconds,
      callsPerSecond: calls / seconds,
      latency: summarize(latencies),
      rssBeforeMiB: mib(rssBefore),
      rssAfterMiB: mib(memory.rss),
      heapUsedAfterMiB: mib(memory.heapUsed),
    };
  } finally {
    await runtime.behalf.close();
  }
}

serveRequests(null, { lookup: (request: LookupRequest) => lookup(request) });
