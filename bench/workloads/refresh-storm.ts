/**
 * Workload 4: a refresh storm. N concurrent requests for the access tokens of M users whose
 * tokens have all expired, against the emulator with Google-like latency on /token. Counts the
 * refresh calls Google received and the time until every request was served: behalf (one
 * refresh per user: in-process single-flight plus a database lease) against google-auth-library
 * with a new OAuth2Client per request, and with one shared OAuth2Client per user.
 */
import { join } from 'node:path';
import { OAuth2Client } from 'google-auth-library';
import { behalfEnv, newEncryptionKeys, startBehalf } from '../lib/behalf-instance.js';
import type { BenchContext } from '../lib/context.js';
import { connectEmulator, mapLimit, type EmulatorAddress } from '../lib/emulator.js';
import { ChildRpc, forkTs } from '../lib/processes.js';
import { ratio, type WorkloadResult } from '../lib/report.js';
import { median, round } from '../lib/stats.js';

/** Issue 14's target: behalf's storm takes at most this × google-auth-library's with one client per user. */
const TARGET = 1.1;
const CONTENDERS = [
  'behalf',
  'google-auth-library per request',
  'google-auth-library shared per user',
] as const;
type Contender = (typeof CONTENDERS)[number];

interface Storm {
  ms: number;
  refreshes: number;
  failed: number;
}

/** What storm-process.ts is asked to measure. */
export interface StormRequest {
  emulator: EmulatorAddress;
  /** A scratch directory for behalf's SQLite file. */
  dir: string;
  users: number;
  requests: number;
  rounds: number;
  latencyMs: number;
}

export type StormResults = Record<Contender, Storm[]>;

/**
 * The storms, run by storm-process.ts in a process started for them alone: in the bench's own
 * process, after the access token workload, behalf's storms took ~15% longer (1.17-1.26 × against
 * 0.99-1.09 × run alone, measured 2026-12-03 at b6135de; google-auth-library's times did not
 * move): that process's history, not the storm, since nothing was left running or held (the same
 * active handles, 26 MiB of heap after a forced collection).
 */
export async function measureStorms(request: StormRequest): Promise<StormResults> {
  const { users, requests, rounds, latencyMs } = request;
  const emulator = connectEmulator(request.emulator, async () => undefined);
  const server = emulator.clients.server;

  const behalf = await startBehalf(
    behalfEnv(emulator, `sqlite:${join(request.dir, 'refresh-storm.db')}`, newEncryptionKeys()),
  );
  const storms = new Map<Contender, Storm[]>(CONTENDERS.map((c) => [c, []]));
  try {
    const subs = await mapLimit(
      Array.from({ length: users }, (_, i) => i),
      8,
      async (i) => {
        const sub = await emulator.createUser(`storm${i}@example.com`);
        await behalf.runtime.behalf.signIn({ code: await emulator.mintCode(sub) });
        return sub;
      },
    );
    const refreshTokens = await Promise.all(
      subs.map(async (sub) => {
        const grant = await behalf.runtime.vault.getGrant(sub, server.clientId);
        if (grant?.refreshToken == null) throw new Error('sign-in stored no refresh token');
        return grant.refreshToken;
      }),
    );

    const galClient = (i: number) => {
      const client = new OAuth2Client({
        clientId: server.clientId,
        clientSecret: server.clientSecret,
        endpoints: { oauth2TokenUrl: `${emulator.url}/token` },
      });
      client.setCredentials({
        refresh_token: refreshTokens[i % users]!,
        access_token: 'ya29.expired',
        expiry_date: Date.now() - 60_000,
        token_type: 'Bearer',
      });
      return client;
    };

    const storm = async (contender: Contender): Promise<Storm> => {
      let request: (i: number) => Promise<string | null | undefined>;
      if (contender === 'behalf') {
        // Every stored and cached access token is now past its expiry, as after a quiet hour.
        behalf.clock.advance(2 * 3600);
        request = async (i) => (await behalf.runtime.behalf.getAccessToken(subs[i % users]!)).token;
      } else if (contender === 'google-auth-library per request') {
        request = async (i) => (await galClient(i).getAccessToken()).token;
      } else {
        const shared = subs.map((_, i) => galClient(i));
        request = async (i) => (await shared[i % users]!.getAccessToken()).token;
      }
      await emulator.resetStats();
      const started = performance.now();
      const outcomes = await Promise.allSettled(Array.from({ length: requests }, (_, i) => request(i)));
      const ms = performance.now() - started;
      const failed = outcomes.filter(
        (o) => o.status === 'rejected' || typeof o.value !== 'string' || o.value === '',
      ).length;
      return { ms, refreshes: await emulator.refreshCount(), failed };
    };

    await emulator.addLatency('/token', latencyMs);
    // One storm each first, not counted: the first storm of a contender runs its code cold (JIT,
    // first connections), and its time was up to a third longer than its later ones.
    for (const contender of CONTENDERS) await storm(contender);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < CONTENDERS.length; i++) {
        const contender = CONTENDERS[(i + r) % CONTENDERS.length]!;
        storms.get(contender)!.push(await storm(contender));
      }
    }
  } finally {
    await emulator.clearFaults();
    await behalf.close();
  }
  return Object.fromEntries(storms) as StormResults;
}

export async function runRefreshStormWorkload(ctx: BenchContext): Promise<WorkloadResult[]> {
  const users = ctx.quick ? 50 : 200;
  const requests = ctx.quick ? 1_000 : 2_000;
  const rounds = 3;
  const latencyMs = 100;
  const { emulator } = ctx;
  ctx.log(
    `refresh-storm: in a process of its own, ${users} users signed in through the emulator, then ${requests.toLocaleString('en-US')} concurrent requests over them once expired, ${latencyMs} ms on /token, ${rounds} rounds`,
  );
  const child = new ChildRpc(forkTs(new URL('../lib/storm-process.ts', import.meta.url)));
  let results: StormResults;
  try {
    await child.ready;
    const request: StormRequest = {
      emulator: { url: emulator.url, clients: emulator.clients, clientSecretFile: emulator.clientSecretFile },
      dir: ctx.dir,
      users,
      requests,
      rounds,
      latencyMs,
    };
    results = await child.call<StormResults>('storm', request);
  } finally {
    await child.close();
  }
  const storms = new Map(Object.entries(results) as Array<[Contender, Storm[]]>);

  const ms = (c: Contender) => round(median(storms.get(c)!.map((s) => s.ms)), 4);
  const refreshes = (c: Contender) => median(storms.get(c)!.map((s) => s.refreshes));
  const failures = CONTENDERS.map(
    (c) => [c, storms.get(c)!.reduce((sum, s) => sum + s.failed, 0)] as const,
  ).filter(([, n]) => n > 0);
  const failureNote =
    failures.length === 0
      ? 'Every request got a token.'
      : `FAILED requests (all rounds): ${failures.map(([c, n]) => `${c} ${n}`).join(', ')}.`;
  const setup =
    `${requests.toLocaleString('en-US')} concurrent in-process requests over ${users} users whose access tokens had all expired; ${latencyMs} ms added to every /token call (emulator fault), emulator in its own process. ` +
    "Both contenders run in one process started for this workload alone (bench/lib/storm-process.ts), not in the bench process, whose history slowed behalf's storms. " +
    `behalf: Behalf.getAccessToken on SQLite (one refresh per user: in-process promise map, then a database lease, then the new token stored). ` +
    `google-auth-library: OAuth2Client.getAccessToken() with expired credentials, a new client per request, or one client per user shared by its requests. One warm-up storm per contender, then the median of ${rounds} rounds, contenders interleaved. ${failureNote}`;
  const lostTo =
    ms('behalf') > ms('google-auth-library shared per user')
      ? ms('behalf') / ms('google-auth-library shared per user')
      : null;
  const timeRatio = ratio(ms('behalf'), ms('google-auth-library shared per user'));
  const target = `Target: behalf ≤ ${TARGET} × google-auth-library shared per user: ${timeRatio !== null && timeRatio <= TARGET ? 'met' : 'NOT met'} (${timeRatio ?? 'n/a'}).`;
  const verdict =
    lostTo === null
      ? 'behalf served every request soonest.'
      : `behalf LOSES on time to google-auth-library with a client shared per user (${lostTo.toFixed(2)}× slower), though both make one refresh per user. ` +
        'Why: for each user refreshed behalf reads the grant (decrypting only the access token), takes the refresh lease (a SQLite write), reads the grant again under the lease (decrypting the refresh token), calls Google, encrypts the new token and stores it with the lease given back and the refresh recorded in one write; google-auth-library keeps nothing durable and coordinates nothing across processes. ' +
        "Measured at commit 9ad808d (2026-12-03, not by this run): the writes asked for in one tick (the storm's two hundred leases, the tokens stored as Google's answers come in) now commit together in one SQLite transaction, each in a savepoint; in a profile of ten storms the store's writes went from ~26% to ~8.5% of behalf's process time (alone, ~40 µs a lease and ~90 µs a token write, against ~8 and ~35 µs in batches of five). Run alone (`npm run bench -- --only refresh-storm`) the ratio was 1.049, 1.094 and 0.985 in three runs, against 1.14 and 1.38 just before. " +
        "A call to Google over undici's request is ~140 µs of CPU (eb91ad8). In a process of its own (since c3d4fc6) the same code measured 1.06, 0.95 and 1.09 in three runs before this one: the emulator shares the two cores with behalf, and its answers bound the storm. " +
        'What would cut the rest: read the grant once under the lease instead of twice.';
  return [
    {
      name: 'refresh-storm-time',
      unit: 'ms until all served',
      results: Object.fromEntries(CONTENDERS.map((c) => [c, ms(c)])),
      ratios: {
        'behalf/google-auth-library per request': ratio(ms('behalf'), ms('google-auth-library per request')),
        'behalf/google-auth-library shared per user': timeRatio,
      },
      notes: `Lower is better. ${target} ${verdict} ${setup}`,
    },
    {
      name: 'refresh-storm-refresh-calls',
      unit: 'refresh calls at Google',
      results: {
        ...Object.fromEntries(CONTENDERS.map((c) => [c, refreshes(c)])),
        'ideal (one per user)': users,
      },
      ratios: {
        'behalf/ideal': ratio(refreshes('behalf'), users),
        'google-auth-library per request/ideal': ratio(refreshes('google-auth-library per request'), users),
        'google-auth-library shared per user/ideal': ratio(
          refreshes('google-auth-library shared per user'),
          users,
        ),
      },
      notes: `refresh_token grants counted by the emulator (GET /emulator/stats) per storm; lower is better, ${users} is one per user. Same storms as refresh-storm-time.`,
    },
  ];
}
