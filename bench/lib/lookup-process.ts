/**
 * A cold behalf process: it opens the store the way `behalf serve` does (createRuntime) and asks
 * for access tokens of users it has never seen, so every call reads the store and decrypts, with
 * nothing in memory. Reports calls per second, latency and the process's memory.
 */
import { pino } from 'pino';
import { createRuntime } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { loopbackOnlyFetch } from './behalf-instance.js';
import { timeColdCalls } from './cold-calls.js';
import { serveRequests } from './processes.js';
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
    let rssBefore = 0;
    const { calls, seconds, latencies } = await timeColdCalls(
      request,
      (sub) => runtime.behalf.getAccessToken(sub),
      () => (rssBefore = process.memoryUsage().rss),
    );
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
