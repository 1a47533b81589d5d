/**
 * `npm run bench [-- --quick] [--only idtoken,signin] [--scale-users N] [--postgres-scale-users N]`
 *
 * Runs issue 7's workloads one after another, prints a table and writes bench/results.json.
 * Benchmarks are not tests: nothing here asserts a timing; figures are reported as measured,
 * with every contender's figure from the same run. See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, release, tmpdir, totalmem, type as osType } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchContext } from './lib/context.js';
import { startEmulatorProcess } from './lib/emulator.js';
import { renderTable, type Machine, type Results, type WorkloadResult } from './lib/report.js';
import { runAccessTokenWorkload } from './workloads/access-token.js';
import { runIdTokenWorkloads } from './workloads/idtoken.js';
import { runProxyWorkload } from './workloads/proxy.js';
import { runRefreshStormWorkload } from './workloads/refresh-storm.js';
import { runScaleWorkload } from './workloads/scale.js';
import { runSignInWorkload } from './workloads/signin.js';

const WORKLOADS: Record<string, (ctx: BenchContext) => Promise<WorkloadResult[]>> = {
  idtoken: runIdTokenWorkloads,
  'access-token': runAccessTokenWorkload,
  'refresh-storm': runRefreshStormWorkload,
  signin: runSignInWorkload,
  proxy: runProxyWorkload,
  scale: runScaleWorkload,
};

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'scale-users': { type: 'string' },
    'postgres-scale-users': { type: 'string' },
    out: { type: 'string', default: new URL('./results.json', import.meta.url).pathname },
  },
});
const quick = values.quick === true;
const selected =
  values.only === undefined ? Object.keys(WORKLOADS) : values.only.split(',').map((name) => name.trim());
for (const name of selected)
  if (!(name in WORKLOADS))
    throw new Error(`unknown workload ${name}; known: ${Object.keys(WORKLOADS).join(', ')}`);
const scaleUsers =
  values['scale-users'] === undefined ? (quick ? 20_000 : 1_000_000) : Number(values['scale-users']);
if (!Number.isSafeInteger(scaleUsers) || scaleUsers < 1000)
  throw new Error('--scale-users takes a whole number ≥ 1000');
// Quick mode keeps Postgres small so the whole run stays near a minute and a half.
const postgresScaleUsers =
  values['postgres-scale-users'] === undefined
    ? quick
      ? Math.min(scaleUsers, 10_000)
      : scaleUsers
    : Number(values['postgres-scale-users']);
if (!Number.isSafeInteger(postgresScaleUsers) || postgresScaleUsers < 1000)
  throw new Error('--postgres-scale-users takes a whole number ≥ 1000');

// Postgres is measured whenever a server answers: BEHALF_DATABASE_URL when it names one, else the
// server the tests use (BEHALF_TEST_DATABASE_URL, by default the local one). Each workload says
// "not available" and why when it cannot use it.
const databaseUrl = process.env.BEHALF_DATABASE_URL;
const postgresUrl =
  databaseUrl !== undefined && /^postgres(ql)?:\/\//.test(databaseUrl)
    ? databaseUrl
    : (process.env.BEHALF_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');

const machine: Machine = {
  cores: availableParallelism(),
  cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
  nodeVersion: process.version,
  os: `${osType()} ${release()}`,
  totalMemoryMiB: Math.round(totalmem() / 2 ** 20),
  mode: quick ? 'quick' : 'full',
  startedAt: new Date().toISOString(),
  commit: gitCommit(),
};

const started = performance.now();
const log = (message: string) =>
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
const dir = await mkdtemp(join(tmpdir(), 'behalf-bench-'));
const emulator = await startEmulatorProcess(dir);
const ctx: BenchContext = { quick, dir, emulator, scaleUsers, postgresScaleUsers, postgresUrl, log };
const workloads: WorkloadResult[] = [];
try {
  for (const name of selected) {
    log(`── ${name}`);
    await emulator.clearFaults();
    workloads.push(...(await WORKLOADS[name]!(ctx)));
  }
} finally {
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
}

const results: Results = { machine, workloads };
await writeFile(values.out!, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`${renderTable(results)}\n`);
log(`done; results in ${values.out}`);

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty =
      execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} (src/ has uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}
