/**
 * The built server, as an operator runs it: `node dist/cli/main.js serve` (package.json's bin) in
 * a process of its own, configured by environment variables only, and driven over HTTP. Its memory
 * is read from /proc/<pid>/status, so figures are the server's own, with no tsx loader in them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { seededAccessToken, seededSub, type SeedTokens } from './seed.js';
import { summarize, type LatencySummary } from './stats.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const main = join(root, 'dist/cli/main.js');

/**
 * Why dist/ may not stand for src/ as it is, or null: missing, or older than some file in src/
 * (then the figures are for older code; `npm run build` rebuilds it).
 */
export function staleBuild(): string | null {
  if (!existsSync(main)) return 'dist/cli/main.js is missing';
  const built = statSync(main).mtimeMs;
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((latest, entry) => {
      const path = join(dir, entry.name);
      return Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
    }, 0);
  return newest(join(root, 'src')) > built ? 'dist/ is older than the newest file in src/' : null;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

const MiB = 2 ** 20;

/** A field of /proc/<pid>/status in MiB (VmRSS: resident now; VmHWM: the peak). */
function procStatusMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((candidate) => candidate.startsWith(`${field}:`));
  const kib = Number(line?.match(/(\d+)\s*kB/)?.[1]);
  if (!Number.isFinite(kib)) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Math.round(((kib * 1024) / MiB) * 10) / 10;
}

interface ServeProcess {
  url: string;
  pid: number;
  rssMiB(): number;
  peakRssMiB(): number;
  close(): Promise<void>;
}

/**
 * Start `behalf serve` on `env` (behalfEnv's variables; the port is chosen here) and wait until
 * /healthz answers. Nothing of this process's environment reaches it but PATH and HOME: no
 * BEHALF_* set outside the run, no NODE_OPTIONS (which could carry tsx's loader).
 */
export async function startServe(env: Record<string, string>): Promise<ServeProcess> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [main, 'serve'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ...env,
      BEHALF_PORT: String(port),
      BEHALF_HOST: '127.0.0.1',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = performance.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`behalf serve exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`);
    const ok = await fetch(`${url}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) break;
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`behalf serve did not answer /healthz within 60 s: ${stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const pid = child.pid!;
  return {
    url,
    pid,
    rssMiB: () => procStatusMiB(pid, 'VmRSS'),
    peakRssMiB: () => procStatusMiB(pid, 'VmHWM'),
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface ColdLookups {
  calls: number;
  seconds: number;
  callsPerSecond: number;
  /** Microseconds, each request from send to the whole body read. */
  latency: LatencySummary;
}

/**
 * `POST /v1/users/{sub}/access-token` once for each seeded user of `users`, in that order, on
 * `connections` keep-alive connections each with one request in flight. Every answer must be 200
 * with the very access token that user was seeded with: that proves each row, however written,
 * decrypts with the run's keys. The first `warmUp` users are asked for first and not counted
 * (cold calls too, while the JIT warms up).
 */
export async function driveColdLookups(
  server: ServeProcess,
  apiKey: string,
  users: ArrayLike<number>,
  tokens: SeedTokens,
  options: { connections: number; warmUp: number },
): Promise<ColdLookups> {
  const pool = new Pool(server.url, { connections: options.connections, pipelining: 1 });
  const headers = { authorization: `Bearer ${apiKey}` };
  const ask = async (index: number) => {
    const { statusCode, body } = await pool.request({
      method: 'POST',
      path: `/v1/users/${seededSub(index)}/access-token`,
      headers,
    });
    const answer = (await body.json()) as { access_token?: unknown; error?: unknown; reason?: unknown };
    if (statusCode !== 200)
      throw new Error(
        `access-token answered ${statusCode} (${String(answer.error)}${answer.reason === undefined ? '' : `, ${String(answer.reason)}`})`,
      );
    // Compared, never printed: a token is not logged even in a benchmark.
    if (answer.access_token !== seededAccessToken(index, tokens))
      throw new Error(`access-token answered a different token for seeded user ${index}`);
  };
  try {
    let next = 0;
    const run = async (until: number, latencies: number[] | null) => {
      const loop = async () => {
        while (next < until) {
          const index = users[next++]!;
          const t0 = performance.now();
          await ask(index);
          latencies?.push((performance.now() - t0) * 1000);
        }
      };
      await Promise.all(Array.from({ length: options.connections }, loop));
    };
    await run(Math.min(options.warmUp, users.length), null);
    const latencies: number[] = [];
    const started = performance.now();
    await run(users.length, latencies);
    const seconds = (performance.now() - started) / 1000;
    return {
      calls: latencies.length,
      seconds,
      callsPerSecond: latencies.length / seconds,
      latency: summarize(latencies),
    };
  } finally {
    await pool.close();
  }
}

/** `count` distinct seeded users out of 0…population-1, in random order. */
export function randomUsers(population: number, count: number): Int32Array {
  const order = new Int32Array(population);
  for (let i = 0; i < population; i++) order[i] = i;
  // A partial Fisher–Yates shuffle: the first `count` places are a uniform random sample.
  const n = Math.min(count, population);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(Math.random() * (population - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order.subarray(0, n);
}
