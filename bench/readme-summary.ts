/**
 * `npm run bench:readme`: the README's benchmark summary, rendered from bench/results.json and
 * written between the README's two markers, so the figures a reader sees are the committed run's.
 * A test (test/repository/bench-summary.test.ts) fails when the README's block differs from what
 * this renders, so the two cannot drift. Workloads or figures missing from an older results file
 * show as "n/a"; workloads this file does not know get a row from their first ratio.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import type { Machine, WorkloadResult } from './lib/report.js';

/** bench/results.json as read: an older file may lack the machine, a workload, or any figure in it. */
export interface ResultsFile {
  machine?: Partial<Machine> | null;
  workloads?: Array<Partial<WorkloadResult> | null> | null;
}

type Workload = Partial<WorkloadResult> & { name: string };

export const START = '<!-- bench-summary:start -->';
export const END = '<!-- bench-summary:end -->';

interface Row {
  workload: string;
  /** What the row compares, after the workload's name. */
  label: string;
  /** Result names for behalf's figure, the first present wins; "…" at the end matches a prefix. */
  behalf: string[];
  /** Result names for what behalf is compared with; none: the figure stands alone. */
  against: string[];
  /** Ratio names; none: the workload's first ratio, shown with its name. */
  ratio: string[];
  /** Which of the notes' "Target …: met / NOT met" statements is this row's (the first that matches). */
  target?: RegExp;
  /** The figure's unit when it is not the workload's. */
  unit?: string;
}

const ROWS: Row[] = [
  {
    workload: 'idtoken-verify-distinct',
    label: 'against the limit (decode + parse + verify)',
    behalf: ['behalf'],
    against: ['limit'],
    ratio: ['behalf/limit'],
    target: /limit/,
  },
  {
    workload: 'idtoken-verify-distinct',
    label: 'against the bare signature check',
    behalf: ['behalf'],
    against: ['bare signature check'],
    ratio: ['behalf/bare signature check'],
  },
  {
    workload: 'idtoken-verify-distinct',
    label: 'against google-auth-library',
    behalf: ['behalf'],
    against: ['google-auth-library'],
    ratio: ['behalf/google-auth-library'],
  },
  {
    workload: 'idtoken-verify-same-token',
    label: 'against google-auth-library',
    behalf: ['behalf'],
    against: ['google-auth-library'],
    ratio: ['behalf/google-auth-library'],
  },
  {
    workload: 'access-token-valid',
    label: 'from memory',
    behalf: ['behalf memory'],
    against: ['google-auth-library memory'],
    ratio: ['behalf/google-auth-library (memory)'],
  },
  {
    workload: 'access-token-valid',
    label: 'cold, SQLite',
    behalf: ['behalf cold SQLite'],
    against: ['bare SELECT cold SQLite'],
    ratio: ['behalf/bare SELECT (cold SQLite)'],
  },
  {
    workload: 'access-token-valid',
    label: 'cold, Postgres',
    behalf: ['behalf cold Postgres'],
    against: ['bare SELECT cold Postgres'],
    ratio: ['behalf/bare SELECT (cold Postgres)'],
    target: /Postgres/,
  },
  {
    workload: 'refresh-storm-time',
    label: 'time until all served',
    behalf: ['behalf'],
    against: ['google-auth-library shared per user'],
    ratio: ['behalf/google-auth-library shared per user'],
    target: /./,
  },
  {
    workload: 'refresh-storm-refresh-calls',
    label: 'refresh calls',
    behalf: ['behalf'],
    against: ['ideal (one per user)'],
    ratio: ['behalf/ideal'],
  },
  {
    workload: 'signin-http-throughput',
    label: '100 connections',
    behalf: ['behalf sign-in', 'behalf'],
    against: ['emulator code exchange (direct)', 'direct'],
    ratio: ['behalf/direct'],
    target: /./,
  },
  {
    workload: 'signin-http-throughput',
    label: 'p99 at 100 connections',
    behalf: ['behalf p99 (ms)'],
    against: ['direct p99 (ms)'],
    ratio: ['behalf/direct p99'],
    target: /p99/,
    unit: 'ms',
  },
  {
    workload: 'signin-http-latency',
    label: 'p99',
    behalf: ['behalf p99'],
    against: ['direct p99'],
    ratio: ['behalf/direct p99'],
    target: /p99|overhead/,
  },
  {
    workload: 'proxy-overhead',
    label: 'p50, one connection',
    behalf: ['behalf p50', 'via behalf p50'],
    against: ['bare proxy p50', 'direct p50'],
    ratio: ['behalf/bare proxy p50', 'via/direct p50'],
    target: /p50/,
  },
  {
    workload: 'proxy-throughput',
    label: '10 connections',
    behalf: ['behalf', 'via behalf'],
    against: ['bare proxy', 'direct'],
    ratio: ['behalf/bare proxy', 'via/direct'],
    target: /×|throughput/,
  },
  {
    workload: 'scale-insert',
    label: 'SQLite, a sign-in at a time',
    behalf: ['behalf SQLite (Vault.saveSignIn, sample)'],
    against: ['bulk fill SQLite'],
    ratio: ['saveSignIn/bulk fill (SQLite)'],
  },
  {
    workload: 'scale-lookups',
    label: 'cold, SQLite, a million users',
    behalf: ['built server SQLite, 1,000,000 users'],
    against: ['built server SQLite, 10,000 users'],
    ratio: ['SQLite large/small'],
    target: /^SQLite/,
  },
  {
    workload: 'scale-lookups',
    label: 'cold, Postgres, a million users',
    behalf: ['built server Postgres, 1,000,000 users'],
    against: ['built server Postgres, 10,000 users'],
    ratio: ['Postgres large/small'],
    target: /^Postgres/,
  },
  {
    workload: 'scale-memory',
    label: 'SQLite, RSS after the lookups',
    behalf: ['built server SQLite, after the cold lookups'],
    against: [],
    ratio: ['SQLite after lookups/150 MiB target'],
    target: /^SQLite/,
  },
  {
    workload: 'scale-memory',
    label: 'Postgres, RSS after the lookups',
    behalf: ['built server Postgres, after the cold lookups'],
    against: [],
    ratio: ['Postgres after lookups/150 MiB target'],
    target: /^Postgres/,
  },
  {
    workload: 'scale-memory',
    label: 'SQLite, RSS with --max-semi-space-size=4',
    behalf: ['built server SQLite, after the cold lookups, --max-semi-space-size=4'],
    against: [],
    ratio: ['SQLite after lookups, --max-semi-space-size=4/150 MiB target'],
  },
];

/** Workloads without a row of their own and nothing to compare: a size on disk says nothing in a ratio. */
const LEFT_OUT = new Set(['scale-storage', 'access-token-valid-latency', 'scale-lookups-latency']);

function pick(
  values: Record<string, number | null> | null | undefined,
  names: string[],
): [string, number | null] | undefined {
  if (values === null || values === undefined) return undefined;
  for (const name of names) {
    const key = name.endsWith('…')
      ? Object.keys(values).find((k) => k.startsWith(name.slice(0, -1)))
      : name in values
        ? name
        : undefined;
    if (key !== undefined) return [key, values[key] ?? null];
  }
  return undefined;
}

function figure(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  if (Math.abs(value) >= 1) return value.toFixed(2);
  return String(Number(value.toPrecision(3)));
}

/** A ratio as the run rounded it (three decimals), big ones as whole numbers. */
const ratioFigure = (value: number) => (Math.abs(value) >= 100 ? figure(value) : String(value));

/** The notes' "Target …: met (…)" / "Target: …: NOT met (…)" statements, in order. */
function targets(notes: string | undefined): Array<{ what: string; status: string }> {
  return [...(notes ?? '').matchAll(/Target:?\s+([^:]{1,200}?):\s+(NOT met|met|not measured)\b/g)].map(
    (m) => ({ what: m[1]!.trim(), status: m[2]! }),
  );
}

const cell = (text: string) => text.replace(/\|/g, '\\|');

function renderRow(row: Row, workload: Workload | undefined): string {
  const rowUnit = row.unit ?? workload?.unit;
  const unit = rowUnit === undefined ? '' : ` ${rowUnit}`;
  const behalf = pick(workload?.results, row.behalf);
  const against = row.against.length === 0 ? undefined : pick(workload?.results, row.against);
  let ratioCell: string;
  if (row.ratio.length > 0) {
    const found = pick(workload?.ratios, row.ratio);
    ratioCell = found === undefined || found[1] === null ? 'n/a' : `${ratioFigure(found[1])}×`;
  } else {
    const first = Object.entries(workload?.ratios ?? {}).find(([, value]) => value !== null);
    ratioCell = first === undefined ? '—' : `${ratioFigure(first[1]!)}× (${first[0]})`;
  }
  const statement =
    row.target === undefined ? undefined : targets(workload?.notes).find((t) => row.target!.test(t.what));
  const target =
    statement === undefined
      ? '—'
      : `${statement.status === 'NOT met' ? '**NOT met**' : statement.status}: ${statement.what}`;
  const behalfCell =
    behalf === undefined
      ? 'n/a'
      : `${figure(behalf[1])}${behalf[1] === null ? '' : unit}${row.behalf[0] === behalf[0] || row.behalf[0]!.endsWith('…') ? '' : ` (${behalf[0]})`}`;
  const againstCell =
    row.against.length === 0 ? '—' : against === undefined ? 'n/a' : `${against[0]}: ${figure(against[1])}`;
  return `| \`${row.workload}\` ${row.label} | ${cell(behalfCell)} | ${cell(againstCell)} | ${cell(ratioCell)} | ${cell(target)} |`;
}

/** The Markdown between the markers (without them) for a results file. */
export function renderSummary(results: ResultsFile): string {
  const m = results.machine ?? undefined;
  const workloads = (results.workloads ?? []).filter(
    (w): w is Workload => typeof w === 'object' && w !== null && typeof w.name === 'string',
  );
  const byName = new Map(workloads.map((w) => [w.name, w]));
  const rows = ROWS.filter((row) => byName.has(row.workload)).map((row) =>
    renderRow(row, byName.get(row.workload)),
  );
  // Workloads added after this file was written still get a line, from their first ratio.
  const known = new Set(ROWS.map((row) => row.workload));
  for (const w of workloads) {
    if (known.has(w.name) || LEFT_OUT.has(w.name)) continue;
    if (!Object.values(w.ratios ?? {}).some((value) => value !== null)) continue;
    const behalf = Object.keys(w.results ?? {}).filter((k) => k.startsWith('behalf'));
    rows.push(
      renderRow(
        { workload: w.name, label: '', behalf: behalf.slice(0, 1), against: [], ratio: [], target: /./ },
        w,
      ),
    );
  }
  const run =
    m === undefined
      ? 'a results file without its machine'
      : `a ${m.mode ?? '?'} run at commit \`${m.commit ?? 'unknown'}\` on ${(m.startedAt ?? '').slice(0, 10) || 'an unknown date'}: ` +
        `${m.cores ?? '?'} × ${m.cpuModel ?? '?'}, ${m.totalMemoryMiB === undefined ? '?' : Math.round(m.totalMemoryMiB / 1024)} GiB, Node ${m.nodeVersion ?? '?'}, ${m.os ?? '?'}`;
  return [
    'Generated by `npm run bench:readme` from `bench/results.json`, which holds',
    `${run}.`,
    'Ratios are behalf over what it is compared with, both measured in that run; for times (ms, µs) lower is',
    "better. Each entry's notes in the file say how it was measured and, where a target is missed, why.",
    '',
    '| Workload | behalf | compared with | ratio | target |',
    '| --- | --- | --- | --- | --- |',
    ...(rows.length === 0 ? ['| (no workloads in the file) | | | | |'] : rows),
  ].join('\n');
}

/** The README with the block between the markers replaced, formatted as Prettier would (npm test checks it). */
export async function renderReadme(
  readme: string,
  results: ResultsFile,
  readmePath: string,
): Promise<string> {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start === -1 || end === -1 || end < start)
    throw new Error(`README.md must hold ${START} … ${END} in that order`);
  const replaced = `${readme.slice(0, start + START.length)}\n\n${renderSummary(results)}\n\n${readme.slice(end)}`;
  const options = (await prettier.resolveConfig(readmePath)) ?? {};
  return prettier.format(replaced, { ...options, filepath: readmePath });
}

export const README_PATH = fileURLToPath(new URL('../README.md', import.meta.url));
export const RESULTS_PATH = fileURLToPath(new URL('./results.json', import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = JSON.parse(await readFile(RESULTS_PATH, 'utf8')) as ResultsFile;
  const readme = await readFile(README_PATH, 'utf8');
  const updated = await renderReadme(readme, results, README_PATH);
  await writeFile(README_PATH, updated);
  process.stdout.write(updated === readme ? 'README.md already up to date\n' : 'README.md summary updated\n');
}
