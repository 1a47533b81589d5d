/**
 * Workload 5: sign-in through behalf's HTTP endpoint (POST /v1/google/signin) against the
 * emulator with Google-like latency on /token, driven by autocannon from its own process with a
 * fresh one-time code per request. The same codes' exchange made directly at the emulator, with
 * the same connections, gives the part of the latency that is Google's; the rest is behalf's.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { behalfEnv, newEncryptionKeys, startBehalf } from '../lib/behalf-instance.js';
import type { BenchContext } from '../lib/context.js';
import { mapLimit } from '../lib/emulator.js';
import type { LoadOptions, LoadResult } from '../lib/load-process.js';
import { ChildRpc, forkTs } from '../lib/processes.js';
import { ratio, type WorkloadResult } from '../lib/report.js';
import { median, round } from '../lib/stats.js';

export async function runSignInWorkload(ctx: BenchContext): Promise<WorkloadResult[]> {
  const { emulator } = ctx;
  const server = emulator.clients.server;
  const connections = 20;
  const perRound = ctx.quick ? 800 : 2_500;
  const rounds = ctx.quick ? 1 : 2;
  const warmUp = 100;
  const users = ctx.quick ? 200 : 500;
  const latencyMs = 100;

  const behalf = await startBehalf(behalfEnv(emulator, `sqlite:${join(ctx.dir, 'signin.db')}`, newEncryptionKeys()), { listen: true });
  const load = new ChildRpc(forkTs(new URL('../lib/load-process.ts', import.meta.url)));
  const viaBehalf: LoadResult[] = [];
  const direct: LoadResult[] = [];
  try {
    await load.ready;
    ctx.log(`signin: creating ${users} users and ${(2 * (warmUp + perRound * rounds)).toLocaleString('en-US')} one-time codes`);
    const subs = await mapLimit(
      Array.from({ length: users }, (_, i) => i),
      16,
      (i) => emulator.createUser(`signin${i}@example.com`),
    );
    let minted = 0;
    const mintCodes = (count: number) => mapLimit(Array.from({ length: count }, () => subs[minted++ % users]!), 16, (sub) => emulator.mintCode(sub));

    const behalfRun = async (codes: string[]) =>
      load.call<LoadResult>('load', {
        url: `${behalf.url}/v1/google/signin`,
        method: 'POST',
        connections,
        headers: { 'content-type': 'application/json', 'x-requested-with': 'XMLHttpRequest' },
        bodies: codes.map((code) => JSON.stringify({ code })),
      } satisfies LoadOptions);
    const directRun = async (codes: string[]) =>
      load.call<LoadResult>('load', {
        url: `${emulator.url}/token`,
        method: 'POST',
        connections,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        bodies: codes.map((code) =>
          new URLSearchParams({ grant_type: 'authorization_code', code, client_id: server.clientId, client_secret: server.clientSecret, redirect_uri: '' }).toString(),
        ),
      } satisfies LoadOptions);

    await emulator.addLatency('/token', latencyMs);
    await behalfRun(await mintCodes(warmUp));
    await directRun(await mintCodes(warmUp));
    for (let r = 0; r < rounds; r++) {
      const behalfCodes = await mintCodes(perRound);
      const directCodes = await mintCodes(perRound);
      ctx.log(`signin: round ${r + 1}/${rounds}, ${perRound.toLocaleString('en-US')} sign-ins via behalf and ${perRound.toLocaleString('en-US')} code exchanges direct, ${connections} connections`);
      if (r % 2 === 0) {
        direct.push(await directRun(directCodes));
        viaBehalf.push(await behalfRun(behalfCodes));
      } else {
        viaBehalf.push(await behalfRun(behalfCodes));
        direct.push(await directRun(directCodes));
      }
    }
  } finally {
    await emulator.clearFaults();
    await load.close();
    await behalf.close();
  }

  const m = (runs: LoadResult[], pick: (r: LoadResult) => number) => round(median(runs.map(pick)), 4);
  const behalfP50 = m(viaBehalf, (r) => r.latency.p50);
  const behalfP99 = m(viaBehalf, (r) => r.latency.p99);
  const directP50 = m(direct, (r) => r.latency.p50);
  const directP99 = m(direct, (r) => r.latency.p99);
  const failures = [...viaBehalf, ...direct].reduce((sum, r) => sum + r.non2xx + r.errors + r.timeouts, 0);
  const codes = (runs: LoadResult[]) =>
    Object.entries(runs.reduce<Record<string, number>>((acc, r) => {
      for (const [code, n] of Object.entries(r.statusCodes)) acc[code] = (acc[code] ?? 0) + n;
      return acc;
    }, {}))
      .map(([code, n]) => `${code}×${n}`)
      .join(' ');
  const setup =
    `autocannon in its own process, ${connections} connections, each request a fresh one-time server auth code (round-robin over ${users} emulator users: a user's first sign-in answers 201 with a refresh token, later ones 200 without, as Google does); ` +
    `${latencyMs} ms added to every /token call; behalf (createServer, SQLite) in the bench's main process, emulator in a third process, on ${availableParallelism()} cores shared by all three. ` +
    `Direct: the same kind of code redeemed at the emulator's /token by autocannon with the same connections. ${rounds} round(s) of ${perRound.toLocaleString('en-US')} requests each way, medians. ` +
    `Statuses via behalf: ${codes(viaBehalf)}; direct: ${codes(direct)}.${failures > 0 ? ` ${failures} requests FAILED (non-2xx, errors or timeouts).` : ''}`;
  return [
    {
      name: 'signin-http-throughput',
      unit: 'req/s',
      results: { 'behalf sign-in': m(viaBehalf, (r) => r.rps), 'emulator code exchange (direct)': m(direct, (r) => r.rps) },
      ratios: { 'behalf/direct': ratio(m(viaBehalf, (r) => r.rps), m(direct, (r) => r.rps)) },
      notes: setup,
    },
    {
      name: 'signin-http-latency',
      unit: 'ms',
      results: {
        'behalf p50': behalfP50,
        'behalf p99': behalfP99,
        'direct p50': directP50,
        'direct p99': directP99,
        'behalf overhead p50': round(behalfP50 - directP50, 3),
        'behalf overhead p99': round(behalfP99 - directP99, 3),
      },
      ratios: { 'behalf/direct p50': ratio(behalfP50, directP50), 'behalf/direct p99': ratio(behalfP99, directP99) },
      notes:
        `behalf's overhead = behalf's percentile minus the direct exchange's percentile (a difference of percentiles, not a percentile of differences): ` +
        `request parsing, the ID token check (signature, claims, at_hash), encrypting both tokens, and the SQLite transaction with its fsync (synchronous=FULL), plus the extra hop.`,
    },
  ];
}
