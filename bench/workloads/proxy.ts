/**
 * Workload 6: what behalf's proxy adds to a Google API call. A Drive metadata request through
 * /v1/users/{sub}/google/drive/v3/files/{id} (service API key in, the user's token added, the
 * answer streamed back), against the limit: a bare streaming proxy (bench/lib/bare-proxy.ts: a
 * node:http server piping to the emulator through undici, no auth, no token lookup) in the same
 * process, on the same cores. The same request made directly to the emulator with the token in
 * hand is shown too. autocannon in its own process drives all three with the same connections:
 * one connection (the overhead of a call with nothing queued) and ten (throughput).
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { startBareProxy } from '../lib/bare-proxy.js';
import { behalfEnv, newEncryptionKeys, startBehalf } from '../lib/behalf-instance.js';
import type { BenchContext } from '../lib/context.js';
import type { LoadOptions, LoadResult } from '../lib/load-process.js';
import { ChildRpc, forkTs } from '../lib/processes.js';
import { ratio, type WorkloadResult } from '../lib/report.js';
import { median, range, round } from '../lib/stats.js';

const CONTENDERS = ['behalf', 'bare proxy', 'direct'] as const;
type Contender = (typeof CONTENDERS)[number];
type Phase = 'light' | 'loaded';

/** Targets of issue 14, against the bare proxy. */
const TARGET = { throughput: 0.8, addedP50Ms: 0.15 };

/**
 * Where behalf's time above the bare proxy's goes when the throughput target is missed: a dated
 * note from a profile, naming the commit it was measured at (the run does not profile itself).
 */
const THROUGHPUT_GAP =
  'Note from a CPU profile of the bench process during a quick run at commit b971b85 (2026-12-03), not measured by this run (both servers in that process, so shares are of all of it): ' +
  "the upstream call and the streaming (undici request(), stream pipeline, socket writes) are the bare proxy's work too; what only behalf does is Fastify's routing and hook chain (~3.4%), " +
  'the request log and metrics hooks (~0.9%), the service API key check (~0.7%, a SHA-256 of the key against a cache) and the allow-list and header filtering (~0.5%). ' +
  "What would close it: serve the proxy path outside Fastify's hook chain (a node:http handler doing the same checks), which gives up Fastify's shared error handling and logging for that route.";

export async function runProxyWorkload(ctx: BenchContext): Promise<WorkloadResult[]> {
  const { emulator } = ctx;
  const connections: Record<Phase, number> = { light: 1, loaded: 10 };
  const seconds = ctx.quick ? 2 : 4;
  const rounds = 3;

  const behalf = await startBehalf(
    behalfEnv(emulator, `sqlite:${join(ctx.dir, 'proxy.db')}`, newEncryptionKeys()),
    { listen: true },
  );
  const load = new ChildRpc(forkTs(new URL('../lib/load-process.ts', import.meta.url)));
  const runs: Record<Phase, Record<Contender, LoadResult[]>> = {
    light: { behalf: [], 'bare proxy': [], direct: [] },
    loaded: { behalf: [], 'bare proxy': [], direct: [] },
  };
  let bare: Awaited<ReturnType<typeof startBareProxy>> | undefined;
  try {
    await load.ready;
    const sub = await emulator.createUser('proxy@example.com');
    await behalf.runtime.behalf.signIn({ code: await emulator.mintCode(sub) });
    const file = await emulator.control<{ id: string }>('POST', '/emulator/drive/files', {
      sub,
      name: 'photo.jpg',
      mime_type: 'image/jpeg',
      size: 2048,
    });
    // The token behalf holds for the user: the bare proxy and the direct call use the very same one.
    const { token } = await behalf.runtime.behalf.getAccessToken(sub);
    bare = await startBareProxy(emulator.url, `Bearer ${token}`);
    const path = `/drive/v3/files/${file.id}?fields=id,name,mimeType,size,modifiedTime`;
    const targets: Record<Contender, Pick<LoadOptions, 'url' | 'headers'>> = {
      behalf: {
        url: `${behalf.url}/v1/users/${sub}/google${path}`,
        headers: { authorization: `Bearer ${behalf.apiKey!}` },
      },
      'bare proxy': { url: `${bare.url}${path}` },
      direct: { url: `${emulator.url}${path}`, headers: { authorization: `Bearer ${token}` } },
    };
    const run = (who: Contender, phase: Phase, durationSeconds: number) =>
      load.call<LoadResult>('load', {
        ...targets[who],
        method: 'GET',
        connections: connections[phase],
        durationSeconds,
      } satisfies LoadOptions);

    for (const who of CONTENDERS) await run(who, 'loaded', 1); // warm-up
    for (let r = 0; r < rounds; r++) {
      ctx.log(
        `proxy: round ${r + 1}/${rounds}, ${seconds} s per contender on ${connections.light} connection, then on ${connections.loaded}`,
      );
      // Rotating order: no contender always runs first or last in a round.
      const order = CONTENDERS.map((_, i) => CONTENDERS[(i + r) % CONTENDERS.length]!);
      for (const phase of ['light', 'loaded'] as const)
        for (const who of order) runs[phase][who].push(await run(who, phase, seconds));
    }
  } finally {
    await load.close();
    await bare?.close();
    await behalf.close();
  }

  const pick = (phase: Phase, who: Contender, figure: (r: LoadResult) => number) =>
    runs[phase][who].map(figure);
  const med = (phase: Phase, who: Contender, figure: (r: LoadResult) => number) =>
    round(median(pick(phase, who, figure)), 4);
  const p50 = (r: LoadResult) => r.latency.p50;
  const p99 = (r: LoadResult) => r.latency.p99;
  const rps = (r: LoadResult) => r.rps;
  const figures = (phase: Phase, figure: (r: LoadResult) => number) =>
    Object.fromEntries(CONTENDERS.map((who) => [who, med(phase, who, figure)])) as Record<Contender, number>;
  const light = { p50: figures('light', p50), p99: figures('light', p99) };
  const loaded = { rps: figures('loaded', rps), p50: figures('loaded', p50), p99: figures('loaded', p99) };
  // Per round, behalf's added p50 over the bare proxy, and behalf/bare throughput: the two measured
  // seconds apart, a check on the difference and ratio of medians.
  const perRound = (
    phase: Phase,
    figure: (r: LoadResult) => number,
    combine: (a: number, b: number) => number,
  ) => runs[phase].behalf.map((run, i) => combine(figure(run), figure(runs[phase]['bare proxy'][i]!)));
  const addedP50 = round(light.p50.behalf - light.p50['bare proxy'], 3);
  const throughputRatio = ratio(loaded.rps.behalf, loaded.rps['bare proxy']);
  const failures = Object.values(runs)
    .flatMap((byWho) => Object.values(byWho).flat())
    .reduce((sum, r) => sum + r.non2xx + r.errors + r.timeouts, 0);
  const spreads = (phase: Phase, figure: (r: LoadResult) => number) =>
    CONTENDERS.map((who) => `${who} ${range(pick(phase, who, figure))}`).join(', ');
  const setup =
    `GET drive/v3/files/{id}?fields=… (metadata), one user, token warm in behalf's memory, no added Google latency (the overhead is as visible as it can be). ` +
    `Via behalf: service API key checked, token from memory, undici request() to the emulator, headers filtered, body streamed back. ` +
    `Bare proxy (the limit): node:http piping to the emulator through undici request() with the same token, in the same process as behalf. ` +
    `autocannon in its own process; ${rounds} rounds of ${seconds} s per contender after a 1 s warm-up each, contenders in rotating order, medians; ` +
    `behalf or the bare proxy, the emulator and autocannon share ${availableParallelism()} cores (direct: autocannon and the emulator only).` +
    (failures > 0 ? ` ${failures} requests FAILED.` : '');
  const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const throughputMet = throughputRatio !== null && throughputRatio >= TARGET.throughput;
  return [
    {
      name: 'proxy-overhead',
      unit: 'ms',
      results: {
        'behalf p50': light.p50.behalf,
        'behalf p99': light.p99.behalf,
        'bare proxy p50': light.p50['bare proxy'],
        'bare proxy p99': light.p99['bare proxy'],
        'direct p50': light.p50.direct,
        'direct p99': light.p99.direct,
        'added over bare proxy p50': addedP50,
        'added over bare proxy p99': round(light.p99.behalf - light.p99['bare proxy'], 3),
      },
      ratios: {
        'behalf/bare proxy p50': ratio(light.p50.behalf, light.p50['bare proxy']),
        'behalf/bare proxy p99': ratio(light.p99.behalf, light.p99['bare proxy']),
      },
      notes:
        `Target: ≤ ${TARGET.addedP50Ms} ms added at p50 over the bare proxy: ${met(addedP50 <= TARGET.addedP50Ms)} (${addedP50} ms; per round ${range(perRound('light', p50, (a, b) => a - b))} ms). ` +
        `${connections.light} connection: nothing queued, the overhead itself; added = difference of percentiles. p50 per round: ${spreads('light', p50)} ms. ${setup}`,
    },
    {
      name: 'proxy-throughput',
      unit: 'req/s',
      results: { ...loaded.rps },
      ratios: {
        'behalf/bare proxy': throughputRatio,
        'behalf/direct': ratio(loaded.rps.behalf, loaded.rps.direct),
      },
      notes:
        `Target: behalf ≥ ${TARGET.throughput} × the bare proxy: ${met(throughputMet)} (per round ${range(perRound('loaded', rps, (a, b) => a / b))}). ` +
        (throughputMet ? '' : `${THROUGHPUT_GAP} `) +
        `${connections.loaded} connections. req/s per round: ${spreads('loaded', rps)}. At that load, p50 / p99 ms: ` +
        CONTENDERS.map((who) => `${who} ${loaded.p50[who]} / ${loaded.p99[who]}`).join(', ') +
        `. ${setup}`,
    },
  ];
}
