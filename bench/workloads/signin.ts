/**
 * Workload 5: sign-in through behalf's HTTP endpoint (POST /v1/google/signin) against the
 * emulator with Google-like latency on /token, driven by autocannon from its own process with a
 * fresh one-time code per request. The same kind of code redeemed directly at the emulator, with
 * the same connections and load, gives the part of the latency that is Google's; the rest is
 * behalf's. Latency is compared at a light load (few connections, so little queueing), and
 * throughput with many connections busy. (autocannon's rate limit sends each second's requests in
 * a burst, so a fixed offered rate would measure its bursts rather than the servers.)
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { behalfEnv, newEncryptionKeys, startBehalf } from '../lib/behalf-instance.js';
import type { BenchContext } from '../lib/context.js';
import { mapLimit } from '../lib/emulator.js';
import type { LoadOptions, LoadResult } from '../lib/load-process.js';
import { ChildRpc, forkTs } from '../lib/processes.js';
import { ratio, type WorkloadResult } from '../lib/report.js';
import { median, range, round } from '../lib/stats.js';

/** Issue 14's targets at 100 connections: throughput against the direct exchange, and behalf's p99 minus the direct exchange's. */
const TARGET = { throughput: 0.9, p99OverheadMs: 5 };

type Side = 'behalf' | 'direct';
type Phase = 'latency' | 'throughput';

export async function runSignInWorkload(ctx: BenchContext): Promise<WorkloadResult[]> {
  const { emulator } = ctx;
  const server = emulator.clients.server;
  const connections: Record<Phase, number> = { latency: 10, throughput: 100 };
  const perPhase: Record<Phase, number> = {
    latency: ctx.quick ? 300 : 500,
    throughput: ctx.quick ? 600 : 1_500,
  };
  // At least three rounds, so that a median is a median and the spread means something.
  const rounds = 3;
  const warmUp = 100;
  const users = ctx.quick ? 200 : 500;
  const latencyMs = 100;

  const behalf = await startBehalf(
    behalfEnv(emulator, `sqlite:${join(ctx.dir, 'signin.db')}`, newEncryptionKeys()),
    { listen: true },
  );
  const load = new ChildRpc(forkTs(new URL('../lib/load-process.ts', import.meta.url)));
  const runs: Record<Phase, Record<Side, LoadResult[]>> = {
    latency: { behalf: [], direct: [] },
    throughput: { behalf: [], direct: [] },
  };
  try {
    await load.ready;
    const codesNeeded = 2 * (warmUp + rounds * (perPhase.latency + perPhase.throughput));
    ctx.log(`signin: creating ${users} users and ${codesNeeded.toLocaleString('en-US')} one-time codes`);
    const subs = await mapLimit(
      Array.from({ length: users }, (_, i) => i),
      16,
      (i) => emulator.createUser(`signin${i}@example.com`),
    );
    let minted = 0;
    const mintCodes = (count: number) =>
      mapLimit(
        Array.from({ length: count }, () => subs[minted++ % users]!),
        16,
        (sub) => emulator.mintCode(sub),
      );

    const run = async (side: Side, codes: string[], phase: Phase): Promise<LoadResult> => {
      const options: LoadOptions =
        side === 'behalf'
          ? {
              url: `${behalf.url}/v1/google/signin`,
              method: 'POST',
              connections: connections[phase],
              headers: { 'content-type': 'application/json', 'x-requested-with': 'XMLHttpRequest' },
              bodies: codes.map((code) => JSON.stringify({ code })),
            }
          : {
              url: `${emulator.url}/token`,
              method: 'POST',
              connections: connections[phase],
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
              bodies: codes.map((code) =>
                new URLSearchParams({
                  grant_type: 'authorization_code',
                  code,
                  client_id: server.clientId,
                  client_secret: server.clientSecret,
                  redirect_uri: '',
                }).toString(),
              ),
            };
      return load.call<LoadResult>('load', options);
    };

    await emulator.addLatency('/token', latencyMs);
    await run('behalf', await mintCodes(warmUp), 'throughput');
    await run('direct', await mintCodes(warmUp), 'throughput');
    for (let r = 0; r < rounds; r++) {
      for (const phase of ['latency', 'throughput'] as const) {
        const codes = { behalf: await mintCodes(perPhase[phase]), direct: await mintCodes(perPhase[phase]) };
        ctx.log(
          `signin: round ${r + 1}/${rounds}, ${phase}: ${perPhase[phase].toLocaleString('en-US')} sign-ins via behalf and as many exchanges direct, ${connections[phase]} connections`,
        );
        const order: Side[] = r % 2 === 0 ? ['direct', 'behalf'] : ['behalf', 'direct'];
        for (const side of order) runs[phase][side].push(await run(side, codes[side], phase));
      }
    }
  } finally {
    await emulator.clearFaults();
    await load.close();
    await behalf.close();
  }

  const m = (list: LoadResult[], pick: (r: LoadResult) => number) => round(median(list.map(pick)), 4);
  const lat = {
    behalfP50: m(runs.latency.behalf, (r) => r.latency.p50),
    behalfP99: m(runs.latency.behalf, (r) => r.latency.p99),
    directP50: m(runs.latency.direct, (r) => r.latency.p50),
    directP99: m(runs.latency.direct, (r) => r.latency.p99),
  };
  const sat = {
    behalfRps: m(runs.throughput.behalf, (r) => r.rps),
    directRps: m(runs.throughput.direct, (r) => r.rps),
    behalfP50: m(runs.throughput.behalf, (r) => r.latency.p50),
    behalfP99: m(runs.throughput.behalf, (r) => r.latency.p99),
    directP50: m(runs.throughput.direct, (r) => r.latency.p50),
    directP99: m(runs.throughput.direct, (r) => r.latency.p99),
  };
  const all = [
    ...runs.latency.behalf,
    ...runs.latency.direct,
    ...runs.throughput.behalf,
    ...runs.throughput.direct,
  ];
  const failures = all.reduce((sum, r) => sum + r.non2xx + r.errors + r.timeouts, 0);
  const statuses = (list: LoadResult[]) =>
    Object.entries(
      list.reduce<Record<string, number>>((acc, r) => {
        for (const [code, n] of Object.entries(r.statusCodes)) acc[code] = (acc[code] ?? 0) + n;
        return acc;
      }, {}),
    )
      .map(([code, n]) => `${code}×${n}`)
      .join(' ');
  const setup =
    `autocannon in its own process, each request a fresh one-time server auth code (round-robin over ${users} emulator users: a user's first sign-in answers 201 with a refresh token, later ones 200 without, as Google does); ` +
    `${latencyMs} ms added to every /token call. behalf (createServer, SQLite) runs in the bench's main process and the emulator in another: with autocannon, three busy processes on ${availableParallelism()} cores, while the direct runs have two. ` +
    `Direct: the same kind of code redeemed at the emulator's /token by autocannon with the same connections. ${rounds} rounds, sides in alternating order, medians; req/s per round at ${connections.throughput} connections: behalf ${range(runs.throughput.behalf.map((r) => r.rps))}, direct ${range(runs.throughput.direct.map((r) => r.rps))}. ` +
    `Statuses via behalf: ${statuses([...runs.latency.behalf, ...runs.throughput.behalf])}; direct: ${statuses([...runs.latency.direct, ...runs.throughput.direct])}.` +
    (failures > 0 ? ` ${failures} requests FAILED (non-2xx, errors or timeouts).` : '');
  const throughputRatio = ratio(sat.behalfRps, sat.directRps);
  const loadedP99Overhead = round(sat.behalfP99 - sat.directP99, 3);
  const targets =
    `Target: behalf ≥ ${TARGET.throughput} × the direct exchange at ${connections.throughput} connections: ${throughputRatio !== null && throughputRatio >= TARGET.throughput ? 'met' : 'NOT met'} (${throughputRatio ?? 'n/a'}). ` +
    `Target: p99 overhead at ${connections.throughput} connections ≤ ${TARGET.p99OverheadMs} ms: ${loadedP99Overhead <= TARGET.p99OverheadMs ? 'met' : 'NOT met'} (${loadedP99Overhead} ms). `;
  const cause =
    "Note from a CPU profile of the bench process during a quick run at commit eb91ad8 (2026-12-03), not measured by this run, per sign-in on behalf's event loop: the SQLite transaction ~0.28 ms (its statements and the commit's WAL writes; its fsync runs on the thread pool since bce2b34, shared by the sign-ins committed meanwhile: it held the loop ~1.7 ms per sign-in before), " +
    'the two socket writes (the code to Google, the answer to the app) ~0.16 ms together (~75 µs a write on this VM), the ID token signature ~0.07 ms, garbage collection ~8% of the busy time. ' +
    "The rest is sharing two cores: behalf, the emulator and autocannon are three busy processes, the direct runs have two, and the emulator's time per exchange (an RS256 signature for each ID token) grows with what behalf takes from it. " +
    'What would close it: fewer pages per sign-in transaction (the grant-change trigger and counters write their own pages), or the store on a worker thread; on a machine with a core per process the gap is the per-sign-in time above.';
  const missed =
    throughputRatio === null ||
    throughputRatio < TARGET.throughput ||
    loadedP99Overhead > TARGET.p99OverheadMs;
  const throughputVerdict = missed ? `Where behalf's time goes: ${cause} ` : '';
  return [
    {
      name: 'signin-http-throughput',
      unit: 'req/s',
      results: {
        'behalf sign-in': sat.behalfRps,
        'emulator code exchange (direct)': sat.directRps,
        'behalf p99 (ms)': sat.behalfP99,
        'direct p99 (ms)': sat.directP99,
        'behalf p99 overhead (ms)': loadedP99Overhead,
      },
      ratios: {
        'behalf/direct': ratio(sat.behalfRps, sat.directRps),
        'behalf/direct p99': ratio(sat.behalfP99, sat.directP99),
      },
      notes:
        targets +
        throughputVerdict +
        `${connections.throughput} connections, ${perPhase.throughput.toLocaleString('en-US')} requests per run. At that load: behalf p50 ${sat.behalfP50} ms, p99 ${sat.behalfP99} ms; direct p50 ${sat.directP50} ms, p99 ${sat.directP99} ms. ` +
        setup,
    },
    {
      name: 'signin-http-latency',
      unit: 'ms',
      results: {
        'behalf p50': lat.behalfP50,
        'behalf p99': lat.behalfP99,
        'direct p50': lat.directP50,
        'direct p99': lat.directP99,
        'behalf overhead p50': round(lat.behalfP50 - lat.directP50, 3),
        'behalf overhead p99': round(lat.behalfP99 - lat.directP99, 3),
      },
      ratios: {
        'behalf/direct p50': ratio(lat.behalfP50, lat.directP50),
        'behalf/direct p99': ratio(lat.behalfP99, lat.directP99),
      },
      notes:
        `At a light load: ${connections.latency} connections (${perPhase.latency.toLocaleString('en-US')} requests per run). behalf's overhead = behalf's percentile minus the direct exchange's (a difference of percentiles, not a percentile of differences): ` +
        `request parsing, the ID token check (signature, claims, at_hash), encrypting both tokens and the SQLite transaction (its fsync on the thread pool, shared with the sign-ins committed meanwhile), plus the extra hop. ` +
        `${lat.behalfP99 - lat.directP99 > 5 ? `The p99 overhead is the part that grows: ${cause} ` : ''}${setup}`,
    },
  ];
}
