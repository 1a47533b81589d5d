/**
 * Workload 3: an access token for a user whose token is still valid — the hot path in front of
 * every Google call. From memory (behalf's TokenService cache, against google-auth-library's
 * OAuth2Client holding valid credentials), and from a cold process that must read the store and
 * decrypt (SQLite; and Postgres when a server answers).
 */
import { join } from 'node:path';
import { OAuth2Client } from 'google-auth-library';
import { TokenService } from '../../src/tokens/index.js';
import { openStore, parseKeyring, Vault, type Store } from '../../src/vault/index.js';
import { behalfEnv, newEncryptionKeys, startBehalf } from '../lib/behalf-instance.js';
import type { BenchContext } from '../lib/context.js';
import type { LimitRequest, LimitResult } from '../lib/limits-process.ts';
import type { LookupRequest, LookupResult } from '../lib/lookup-process.ts';
import { createBenchDatabase } from '../lib/postgres.js';
import { ChildRpc, forkTs } from '../lib/processes.js';
import { ratio, type WorkloadResult } from '../lib/report.js';
import { median, range, round, summarize } from '../lib/stats.js';
import { seedGrants, seededSub } from '../lib/seed.js';

type Call = (index: number) => Promise<unknown>;

/** Issue 14's target: an access token from a cold cache on Postgres at ≥ 0.8 × the bare SELECT. */
const COLD_POSTGRES_TARGET = 0.8;

/**
 * Where the cold Postgres time goes when the target is missed: a dated note from a profile, naming
 * the commit it was measured at (the run does not profile itself).
 */
const COLD_POSTGRES_GAP =
  'Note from CPU profiles of cold lookups and of the bare SELECT in one process (30,000 users, Postgres on the same machine, one call at a time, 8,000 calls each) at commit 9ad808d (2026-12-03), not measured by this run: ' +
  'busy time ~170 µs a lookup against ~129 µs a bare SELECT (profiled; ~126 against ~100 µs unprofiled); pg itself is most of both: writing the query to the socket ~42 µs, its RowDescription handling (Result.addFields, rebuilt for every query although the statement is named) ~17-22 µs, row parsing ~8-9 µs. ' +
  "behalf's own ~41 µs: decrypting the access token ~18 µs (createDecipheriv and its key set-up most of it), the rest of Vault.getAccessGrant ~4 µs, the token service ~11 µs, copying the named statement's config ~1 µs more than the bare one. " +
  "The ratio follows the speed of Postgres: the same code measured 0.949 when this machine answered 1,730 bare SELECTs/s (at 48026c6), against this run's figure above. " +
  'Already done: the hot statements are named (prepared once per connection: 0.55 to about 0.75 × the limit then), and a lookup decrypts only the access token (the refresh token stays sealed until a refresh). ' +
  'What would close the rest: a cheaper decryption set-up per token (AES-GCM with a cipher context kept per key, which node:crypto does not offer), or a Postgres driver with less work per query than pg (both sides would gain its part).';

/** Calls per second of `call` awaited one after another for `durationMs`. */
async function throughput(call: Call, users: number, durationMs: number): Promise<number> {
  let calls = 0;
  const started = performance.now();
  const end = started + durationMs;
  for (;;) {
    await call(calls % users);
    calls++;
    if ((calls & 255) === 0 && performance.now() >= end) break;
  }
  return (calls / (performance.now() - started)) * 1000;
}

/** Per-call latencies in microseconds (the timer's own ~0.05 µs included). */
async function latencies(call: Call, users: number, durationMs: number): Promise<number[]> {
  const samples: number[] = [];
  const end = performance.now() + durationMs;
  for (let i = 0; ; i++) {
    const t0 = performance.now();
    await call(i % users);
    const t1 = performance.now();
    samples.push((t1 - t0) * 1000);
    if (t1 >= end) break;
  }
  return samples;
}

export async function runAccessTokenWorkload(ctx: BenchContext): Promise<WorkloadResult[]> {
  const users = ctx.quick ? 5_000 : 10_000;
  const hotUsers = 1_000;
  const rounds = ctx.quick ? 3 : 5;
  const roundMs = ctx.quick ? 300 : 500;
  const coldMs = ctx.quick ? 2_000 : 5_000;
  const encryptionKeys = newEncryptionKeys();
  const sqlitePath = join(ctx.dir, 'access-token.db');
  const sqliteEnv = behalfEnv(ctx.emulator, `sqlite:${sqlitePath}`, encryptionKeys);

  const behalf = await startBehalf(sqliteEnv);
  const clientId = behalf.runtime.behalf.clientId;
  const memory: Record<string, { rates: number[]; samples: number[] }> = {};
  try {
    ctx.log(`access-token: storing ${users.toLocaleString('en-US')} users in SQLite`);
    await seedGrants(behalf.runtime.vault, clientId, { count: users });

    // behalf: warm the memory cache for the hot users, as a running server would have it.
    const subs = Array.from({ length: hotUsers }, (_, i) => seededSub(i));
    for (const sub of subs) await behalf.runtime.behalf.getAccessToken(sub);

    // google-auth-library: one OAuth2Client per user holding valid credentials (what an app keeps in memory).
    const expiry = Date.now() + 2 * 3_600_000;
    const galClients = subs.map((_, i) => {
      const client = new OAuth2Client({
        clientId,
        clientSecret: 'unused',
        endpoints: { oauth2TokenUrl: `${ctx.emulator.url}/token` },
      });
      client.setCredentials({
        access_token: `ya29.bench-${i}`,
        refresh_token: `1//0bench-${i}`,
        expiry_date: expiry,
        token_type: 'Bearer',
      });
      return client;
    });

    // The floor: an awaited lookup in a Map, nothing else.
    const plain = new Map(subs.map((sub, i) => [sub, { token: `ya29.bench-${i}`, expiresAt: expiry }]));
    const limitLookup = async (sub: string) => {
      const entry = plain.get(sub);
      if (entry === undefined || entry.expiresAt < Date.now()) throw new Error('missing');
      return entry;
    };

    // behalf as it was before its token cache listened for other instances' changes: the same
    // TokenService over the same store, told that memory is always current. What coherence costs.
    const incoherent = new TokenService({
      vault: new Vault(withoutChangeChecks(behalf.runtime.store), parseKeyring(encryptionKeys)),
      oauth: { clientId } as ConstructorParameters<typeof TokenService>[0]['oauth'],
      clock: behalf.runtime.clock,
    });
    // Called through the same one-line wrapper as Behalf.getAccessToken, so only the checks differ.
    const incoherentBehalf = { getAccessToken: (sub: string) => incoherent.getAccessToken(sub) };
    for (const sub of subs) await incoherentBehalf.getAccessToken(sub);

    const contenders: Record<string, Call> = {
      behalf: (i) => behalf.runtime.behalf.getAccessToken(subs[i]!),
      'behalf without change checks': (i) => incoherentBehalf.getAccessToken(subs[i]!),
      'google-auth-library': (i) => galClients[i]!.getAccessToken(),
      limit: (i) => limitLookup(subs[i]!),
    };
    const names = Object.keys(contenders);
    for (const name of names) {
      memory[name] = { rates: [], samples: [] };
      await throughput(contenders[name]!, hotUsers, roundMs / 2); // warm-up
    }
    ctx.log(`access-token: memory, ${rounds} rounds × ${roundMs} ms per contender`);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + round) % names.length]!;
        memory[name]!.rates.push(await throughput(contenders[name]!, hotUsers, roundMs));
        for (const sample of await latencies(contenders[name]!, hotUsers, roundMs / 2))
          memory[name]!.samples.push(sample);
      }
    }
  } finally {
    await behalf.close();
  }

  // Cold lookups, each against what its database allows: behalf's cold process (lookup-process.ts)
  // and the bare SELECT (limits-process.ts), each in a process of its own started once, take turns
  // in rotating order. Every lookup call builds a fresh runtime, so behalf's memory cache is empty
  // in every round, as the bare SELECT has none; both make the same warm-up calls first.
  const coldRounds = async (
    label: string,
    lookup: LookupRequest,
    limit: LimitRequest,
  ): Promise<{ behalf: LookupResult[]; limit: LimitResult[] }> => {
    const processes = {
      behalf: new ChildRpc(forkTs(new URL('../lib/lookup-process.ts', import.meta.url))),
      limit: new ChildRpc(forkTs(new URL('../lib/limits-process.ts', import.meta.url))),
    };
    const measured: { behalf: LookupResult[]; limit: LimitResult[] } = { behalf: [], limit: [] };
    try {
      await Promise.all([processes.behalf.ready, processes.limit.ready]);
      for (let round = 0; round < rounds; round++) {
        ctx.log(`access-token: cold ${label}, round ${round + 1} of ${rounds}`);
        for (const who of round % 2 === 0 ? (['behalf', 'limit'] as const) : (['limit', 'behalf'] as const)) {
          if (who === 'behalf')
            measured.behalf.push(await processes.behalf.call<LookupResult>('lookup', lookup));
          else measured.limit.push(await processes.limit.call<LimitResult>('limit', limit));
        }
      }
    } finally {
      await Promise.all([processes.behalf.close(), processes.limit.close()]);
    }
    return measured;
  };

  const coldSqlite = await coldRounds(
    `SQLite (${users.toLocaleString('en-US')} users, each asked for once per round)`,
    { env: sqliteEnv, users, durationMs: coldMs },
    { backend: 'sqlite', path: sqlitePath, clientId, users, durationMs: coldMs },
  );

  const postgres = await createBenchDatabase(ctx.postgresUrl, 'access');
  let coldPostgres: { behalf: LookupResult[]; limit: LimitResult[] } | undefined;
  if (!('unavailable' in postgres)) {
    try {
      ctx.log(`access-token: storing ${users.toLocaleString('en-US')} users in Postgres`);
      const store = await openStore(postgres.url);
      try {
        await seedGrants(new Vault(store, parseKeyring(encryptionKeys)), clientId, { count: users });
      } finally {
        await store.close();
      }
      coldPostgres = await coldRounds(
        'Postgres',
        { env: { ...sqliteEnv, BEHALF_DATABASE_URL: postgres.url }, users, durationMs: coldMs },
        { backend: 'postgres', url: postgres.url, clientId, users, durationMs: coldMs },
      );
    } finally {
      await postgres.drop();
    }
  }
  const counted = (results: Array<{ calls: number; seconds: number }>) =>
    `${results.reduce((sum, r) => sum + r.calls, 0).toLocaleString('en-US')} calls in ${results.reduce((sum, r) => sum + r.seconds, 0).toFixed(1)} s`;
  const postgresNote =
    coldPostgres === undefined
      ? ` Postgres: ${'unavailable' in postgres ? postgres.unavailable : 'not measured'}.`
      : ` Postgres: a scratch database on the Postgres server; behalf ${counted(coldPostgres.behalf)}, the bare SELECT ${counted(coldPostgres.limit)}.`;

  const rate = (name: string) => round(median(memory[name]!.rates), 4);
  const p = (name: string, q: 'p50' | 'p99') => round(summarize(memory[name]!.samples)[q], 3);
  type Cold = { behalf: LookupResult[]; limit: LimitResult[] } | undefined;
  type Who = 'behalf' | 'limit';
  // Medians over the rounds: of the rates, and of each round's percentiles.
  const coldRate = (cold: Cold, who: Who) =>
    cold === undefined ? null : round(median(cold[who].map((r) => r.callsPerSecond)), 4);
  const coldP = (cold: Cold, who: Who, q: 'p50' | 'p99') =>
    cold === undefined ? null : round(median(cold[who].map((r) => r.latency[q])), 3);
  // behalf/limit within each round (measured seconds apart), a check on the ratio of medians.
  const perRound = (cold: Cold) =>
    cold === undefined
      ? 'n/a'
      : range(cold.behalf.map((r, i) => r.callsPerSecond / cold.limit[i]!.callsPerSecond));
  const spread = (cold: Cold, who: Who) =>
    cold === undefined ? 'n/a' : range(cold[who].map((r) => r.callsPerSecond));

  const throughputResults = {
    'behalf memory': rate('behalf'),
    'behalf memory without change checks': rate('behalf without change checks'),
    'google-auth-library memory': rate('google-auth-library'),
    'limit memory (awaited Map lookup)': rate('limit'),
    'behalf cold SQLite': coldRate(coldSqlite, 'behalf'),
    'bare SELECT cold SQLite': coldRate(coldSqlite, 'limit'),
    'behalf cold Postgres': coldRate(coldPostgres, 'behalf'),
    'bare SELECT cold Postgres': coldRate(coldPostgres, 'limit'),
  };
  const sqliteRatio = ratio(
    throughputResults['behalf cold SQLite'],
    throughputResults['bare SELECT cold SQLite'],
  );
  const postgresRatio = ratio(
    throughputResults['behalf cold Postgres'],
    throughputResults['bare SELECT cold Postgres'],
  );
  const target =
    `Target: behalf cold Postgres ≥ ${COLD_POSTGRES_TARGET} × the bare SELECT: ` +
    (postgresRatio === null
      ? 'not measured (no Postgres). '
      : `${postgresRatio >= COLD_POSTGRES_TARGET ? 'met' : 'NOT met'} (${postgresRatio}; per round ${perRound(coldPostgres)}). `) +
    `SQLite: behalf/bare SELECT ${sqliteRatio ?? 'n/a'} (per round ${perRound(coldSqlite)}). ` +
    (postgresRatio !== null && postgresRatio < COLD_POSTGRES_TARGET && COLD_POSTGRES_GAP !== ''
      ? `${COLD_POSTGRES_GAP} `
      : '');
  const setup =
    `In-process library calls, awaited one at a time on one thread. Memory: ${hotUsers.toLocaleString('en-US')} users whose tokens are cached (behalf: Behalf.getAccessToken → TokenService memory cache; ` +
    `google-auth-library: one OAuth2Client per user with valid credentials, getAccessToken(); behalf without change checks: the same cache told memory is always current, ` +
    `as before the cache heard other instances' changes, so the ratio between the two is what coherence costs); median of ${rounds} interleaved rounds of ${roundMs} ms. ` +
    `Cold: a behalf process (createRuntime, fresh for each round) asks once for each of ${users.toLocaleString('en-US')} stored users in random order, at most ${coldMs / 1000} s, so every call reads the store and decrypts (AES-256-GCM) the access token (the refresh token stays sealed: only a refresh reads it). ` +
    `The limit, in a process of its own: the same grant row by primary key, one awaited call at a time over the same users, nothing else ` +
    `(SQLite: a bare better-sqlite3 prepared SELECT on the same file with SqliteDatabase's pragmas; Postgres: a bare pg Pool of behalf's size for that URL running a named prepared statement, the text of behalf's getGrant). ` +
    `Median of ${rounds} rounds, behalf and limit in alternating order; calls/s per round: SQLite behalf ${spread(coldSqlite, 'behalf')}, bare ${spread(coldSqlite, 'limit')}; ` +
    `Postgres behalf ${spread(coldPostgres, 'behalf')}, bare ${spread(coldPostgres, 'limit')}. SQLite (WAL): behalf ${counted(coldSqlite.behalf)}, the bare SELECT ${counted(coldSqlite.limit)}.${postgresNote}`;
  return [
    {
      name: 'access-token-valid',
      unit: 'calls/s',
      results: throughputResults,
      ratios: {
        'behalf/google-auth-library (memory)': ratio(
          throughputResults['behalf memory'],
          throughputResults['google-auth-library memory'],
        ),
        'behalf/behalf without change checks (memory: what coherence costs)': ratio(
          throughputResults['behalf memory'],
          throughputResults['behalf memory without change checks'],
        ),
        'behalf/limit (memory)': ratio(
          throughputResults['behalf memory'],
          throughputResults['limit memory (awaited Map lookup)'],
        ),
        'behalf/bare SELECT (cold SQLite)': sqliteRatio,
        'behalf/bare SELECT (cold Postgres)': postgresRatio,
        'cold SQLite/memory': ratio(
          throughputResults['behalf cold SQLite'],
          throughputResults['behalf memory'],
        ),
      },
      notes: `${target}${setup}`,
    },
    {
      name: 'access-token-valid-latency',
      unit: 'µs',
      results: {
        'behalf memory p50': p('behalf', 'p50'),
        'behalf memory p99': p('behalf', 'p99'),
        'behalf without change checks memory p50': p('behalf without change checks', 'p50'),
        'behalf without change checks memory p99': p('behalf without change checks', 'p99'),
        'google-auth-library memory p50': p('google-auth-library', 'p50'),
        'google-auth-library memory p99': p('google-auth-library', 'p99'),
        'behalf cold SQLite p50': coldP(coldSqlite, 'behalf', 'p50'),
        'behalf cold SQLite p99': coldP(coldSqlite, 'behalf', 'p99'),
        'bare SELECT cold SQLite p50': coldP(coldSqlite, 'limit', 'p50'),
        'bare SELECT cold SQLite p99': coldP(coldSqlite, 'limit', 'p99'),
        'behalf cold Postgres p50': coldP(coldPostgres, 'behalf', 'p50'),
        'behalf cold Postgres p99': coldP(coldPostgres, 'behalf', 'p99'),
        'bare SELECT cold Postgres p50': coldP(coldPostgres, 'limit', 'p50'),
        'bare SELECT cold Postgres p99': coldP(coldPostgres, 'limit', 'p99'),
      },
      ratios: {
        'behalf/google-auth-library p99 (memory)': ratio(p('behalf', 'p99'), p('google-auth-library', 'p99')),
        'behalf/bare SELECT p50 (cold SQLite)': ratio(
          coldP(coldSqlite, 'behalf', 'p50'),
          coldP(coldSqlite, 'limit', 'p50'),
        ),
        'behalf/bare SELECT p50 (cold Postgres)': ratio(
          coldP(coldPostgres, 'behalf', 'p50'),
          coldP(coldPostgres, 'limit', 'p50'),
        ),
      },
      notes: `Per-call latency of the same calls, timed one by one with performance.now() (its own cost, well under 0.1 µs, included); cold: medians over the rounds of each round's percentiles.${postgresNote}`,
    },
  ];
}

/** The store, with a change feed that says memory is always current and never calls anyone. */
function withoutChangeChecks(store: Store): Store {
  const changes: Store['changes'] = {
    subscribe: () => () => undefined,
    isCurrent: () => true,
    publish: () => undefined,
    close: async () => undefined,
  };
  return new Proxy(store, {
    get: (target, property) => {
      if (property === 'changes') return changes;
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
