import { seededSub } from './seed.js';

export interface ColdCallTimes {
  calls: number;
  seconds: number;
  /** Microseconds per counted call, in order. */
  latencies: number[];
}

/**
 * The cold-path loop behalf's lookup process and the bare database limits share, so both are timed
 * alike: seeded users first…first+users-1 in a random order, each asked for once (every call misses
 * any memory cache); the first calls warm the JIT up (cold calls too, not counted), then `afterWarmUp`
 * runs and calls are timed one at a time until every user was asked for or `durationMs` has passed.
 */
export async function timeColdCalls(
  request: { first?: number; users: number; durationMs: number },
  call: (sub: string) => Promise<unknown>,
  afterWarmUp: () => void = () => undefined,
): Promise<ColdCallTimes> {
  const first = request.first ?? 0;
  const order = new Int32Array(request.users);
  for (let i = 0; i < order.length; i++) order[i] = i;
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const warmUp = Math.min(2_000, Math.floor(order.length / 5));
  for (let i = 0; i < warmUp; i++) await call(seededSub(first + order[i]!));
  afterWarmUp();
  const latencies: number[] = [];
  const started = performance.now();
  const end = started + request.durationMs;
  let calls = 0;
  while (warmUp + calls < order.length) {
    const t0 = performance.now();
    await call(seededSub(first + order[warmUp + calls]!));
    const t1 = performance.now();
    latencies.push((t1 - t0) * 1000);
    calls++;
    if (t1 >= end) break;
  }
  return { calls, seconds: (performance.now() - started) / 1000, latencies };
}
