/**
 * The mutation score per group of the security core, from Stryker's JSON report
 * (https://github.com/stryker-mutator/mutation-testing-elements/tree/master/packages/report-schema),
 * against the thresholds of issue 16: at least 90% of mutants killed in src/idtoken and in the
 * envelope, keyring and key check, at least 80% in every other group.
 *
 *     score = (killed + timeout) / (killed + timeout + survived + no coverage)
 *
 * Compile and runtime errors (mutants that are not valid programs) and ignored mutants do not
 * count. Ignored mutants are the equivalent ones, each marked in the source with
 * `// Stryker disable next-line <mutator>: <reason>`: every one is listed with its reason, and a
 * mark without a reason fails the check.
 *
 *     npx tsx test/mutation/check-thresholds.ts [reports/mutation/mutation.json] [--survivors]
 *
 * Prints a table per group, then the ignored mutants, and the survivors of any group below its
 * threshold (of every group with --survivors). Exits 1 when a group is below its threshold, a
 * mutated file belongs to no group, a mutant has no result, or an ignore mark has no reason.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface Group {
  name: string;
  /** Percent of the counted mutants that must be killed (or time out). */
  threshold: number;
  includes(file: string): boolean;
}

const under = (folder: string) => (file: string) => file.startsWith(folder);
const CRYPTO_FILES = ['src/vault/envelope.ts', 'src/vault/keyring.ts', 'src/vault/key-check.ts'];

/** The groups; a file belongs to the first that includes it. */
export const GROUPS: readonly Group[] = [
  { name: 'src/idtoken', threshold: 90, includes: under('src/idtoken/') },
  {
    name: 'src/vault envelope, keyring, key-check',
    threshold: 90,
    includes: (file) => CRYPTO_FILES.includes(file),
  },
  { name: 'src/vault (stores, api keys, the rest)', threshold: 80, includes: under('src/vault/') },
  { name: 'src/tokens', threshold: 80, includes: under('src/tokens/') },
  { name: 'src/signin', threshold: 80, includes: under('src/signin/') },
  { name: 'src/calls', threshold: 80, includes: under('src/calls/') },
  { name: 'src/risc', threshold: 80, includes: under('src/risc/') },
];

/** The parts of the report schema this reads. */
export interface MutationReport {
  projectRoot?: string;
  files: Record<string, { mutants: ReportMutant[] }>;
}

export interface ReportMutant {
  id: string;
  mutatorName: string;
  replacement?: string;
  status: string;
  statusReason?: string;
  location: { start: { line: number; column: number } };
}

export interface Counts {
  files: number;
  mutants: number;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  ignored: number;
  /** Compile and runtime errors: not valid programs, not counted. */
  errors: number;
  /** No result (Pending, or a status this does not know): the report is incomplete. */
  unfinished: number;
}

export interface GroupResult {
  group: Group;
  counts: Counts;
  /** Percent, or null when no mutant counts. */
  score: number | null;
  passed: boolean;
}

export interface Located {
  file: string;
  mutant: ReportMutant;
}

export interface Evaluation {
  groups: GroupResult[];
  /** Mutated files no group includes. */
  ungrouped: string[];
  ignored: Located[];
  undecided: Located[];
  /** Ignored by a mark that gives no reason (Stryker's default text). */
  unexplained: Located[];
  passed: boolean;
}

const NO_REASON = 'Ignored using a comment';
/** How Stryker explains a static mutant it ignored because of `ignoreStatic`. */
const STATIC_REASON = 'Static mutant';

export function score(counts: Counts): number | null {
  const detected = counts.killed + counts.timeout;
  const counted = detected + counts.survived + counts.noCoverage;
  return counted === 0 ? null : (100 * detected) / counted;
}

export function evaluate(report: MutationReport, groups: readonly Group[] = GROUPS): Evaluation {
  const results = groups.map((group) => ({ group, counts: emptyCounts() }));
  const ungrouped: string[] = [];
  const ignored: Located[] = [];
  const undecided: Located[] = [];
  for (const [name, { mutants }] of Object.entries(report.files)) {
    const file = relativeName(name, report.projectRoot);
    const result = results.find(({ group }) => group.includes(file));
    if (result === undefined) {
      ungrouped.push(file);
      continue;
    }
    const counts = result.counts;
    counts.files++;
    for (const mutant of mutants) {
      counts.mutants++;
      switch (mutant.status) {
        case 'Killed':
          counts.killed++;
          break;
        case 'Timeout':
          counts.timeout++;
          break;
        case 'Survived':
          counts.survived++;
          undecided.push({ file, mutant });
          break;
        case 'NoCoverage':
          counts.noCoverage++;
          undecided.push({ file, mutant });
          break;
        case 'Ignored':
          counts.ignored++;
          ignored.push({ file, mutant });
          break;
        case 'CompileError':
        case 'RuntimeError':
          counts.errors++;
          break;
        default:
          counts.unfinished++;
      }
    }
  }
  const groupResults = results.map(({ group, counts }) => {
    const value = score(counts);
    return {
      group,
      counts,
      score: value,
      passed: counts.unfinished === 0 && (value === null || value >= group.threshold),
    };
  });
  const unexplained = ignored.filter(({ mutant }) => (mutant.statusReason ?? NO_REASON).trim() === NO_REASON);
  return {
    groups: groupResults,
    ungrouped,
    ignored,
    undecided,
    unexplained,
    passed:
      groupResults.every((result) => result.passed) && ungrouped.length === 0 && unexplained.length === 0,
  };
}

/** The printed report: the table, the ignored mutants with their reasons, the survivors. */
export function format(evaluation: Evaluation, options: { allSurvivors?: boolean } = {}): string {
  const header = [
    'group',
    'files',
    'mutants',
    'killed',
    'timeout',
    'survived',
    'no cov.',
    'ignored',
    'errors',
    'score',
    'needs',
    '',
  ];
  const rows = evaluation.groups.map(({ group, counts, score: value, passed }) => [
    group.name,
    counts.files,
    counts.mutants,
    counts.killed,
    counts.timeout,
    counts.survived,
    counts.noCoverage,
    counts.ignored,
    counts.errors,
    value === null ? 'n/a' : `${value.toFixed(2)}%`,
    `${group.threshold}%`,
    passed ? 'ok' : counts.unfinished > 0 ? `FAIL (${counts.unfinished} without a result)` : 'FAIL',
  ]);
  const table = [header, ...rows].map((row) => row.map(String));
  const widths = header.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
  const lines = table.map((row) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((width) => '-'.repeat(width)).join('  '));

  const at = ({ file, mutant }: Located) =>
    `${file}:${mutant.location.start.line}:${mutant.location.start.column}`;
  const out = [
    'Mutation score per group (score = (killed + timeout) / (killed + timeout + survived + no coverage))',
    '',
    ...lines,
  ];
  if (evaluation.ungrouped.length > 0) {
    out.push(
      '',
      'Mutated files in no group (add them to GROUPS in test/mutation/check-thresholds.ts):',
      ...evaluation.ungrouped.map((file) => `  ${file}`),
    );
  }
  // Static mutants are ignored by the configuration (ignoreStatic), not judged equivalent: counted
  // on a line of their own, so the list below is only what a person marked, each with its reason.
  const isStatic = ({ mutant }: Located) => (mutant.statusReason ?? '').startsWith(STATIC_REASON);
  const marked = evaluation.ignored.filter((located) => !isStatic(located));
  out.push(
    '',
    `Static mutants, ignored by the configuration (ignoreStatic in stryker.config.mjs): ${evaluation.ignored.length - marked.length}`,
    `Marked equivalent, with the reason given where they are marked: ${marked.length}`,
  );
  for (const located of sortedByPlace(marked)) {
    out.push(`  ${at(located)}  ${located.mutant.mutatorName}: ${located.mutant.statusReason ?? NO_REASON}`);
  }
  if (evaluation.unexplained.length > 0) {
    out.push(
      '',
      'Ignore marks without a reason (write `// Stryker disable next-line <mutator>: <why it is equivalent>`):',
    );
    out.push(
      ...sortedByPlace(evaluation.unexplained).map(
        (located) => `  ${at(located)}  ${located.mutant.mutatorName}`,
      ),
    );
  }
  const failing = new Set(
    evaluation.groups.filter((result) => !result.passed).map((result) => result.group.name),
  );
  const shown = evaluation.undecided.filter(
    ({ file }) => options.allSurvivors === true || failing.has(groupOf(evaluation, file)),
  );
  if (shown.length > 0) {
    out.push(
      '',
      `Survived or not covered${options.allSurvivors === true ? '' : ' (groups below their threshold)'}: ${shown.length}`,
    );
    for (const located of sortedByPlace(shown)) {
      const replacement =
        located.mutant.replacement === undefined ? '' : ` -> ${oneLine(located.mutant.replacement)}`;
      out.push(`  ${at(located)}  ${located.mutant.status} ${located.mutant.mutatorName}${replacement}`);
    }
  }
  out.push('', evaluation.passed ? 'Mutation thresholds met.' : 'Mutation thresholds NOT met.');
  return out.join('\n');
}

function groupOf(evaluation: Evaluation, file: string): string {
  return evaluation.groups.find(({ group }) => group.includes(file))?.group.name ?? '';
}

function emptyCounts(): Counts {
  return {
    files: 0,
    mutants: 0,
    killed: 0,
    timeout: 0,
    survived: 0,
    noCoverage: 0,
    ignored: 0,
    errors: 0,
    unfinished: 0,
  };
}

function relativeName(name: string, root: string | undefined): string {
  return (isAbsolute(name) ? relative(root ?? process.cwd(), name) : name).replaceAll('\\', '/');
}

function sortedByPlace(list: Located[]): Located[] {
  const key = ({ file, mutant }: Located): [string, number, number] => [
    file,
    mutant.location.start.line,
    mutant.location.start.column,
  ];
  return [...list].sort((a, b) => {
    const [fa, la, ca] = key(a);
    const [fb, lb, cb] = key(b);
    return fa < fb ? -1 : fa > fb ? 1 : la - lb || ca - cb;
  });
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 80 ? `${flat.slice(0, 77)}...` : flat;
}

function main(argv: string[]): number {
  const allSurvivors = argv.includes('--survivors');
  const path = argv.find((arg) => !arg.startsWith('--')) ?? 'reports/mutation/mutation.json';
  let report: MutationReport;
  try {
    report = JSON.parse(readFileSync(path, 'utf8')) as MutationReport;
  } catch (error) {
    console.error(
      `check-thresholds: cannot read the mutation report ${path} (${(error as Error).message}); run Stryker first.`,
    );
    return 1;
  }
  const evaluation = evaluate(report);
  console.log(format(evaluation, { allSurvivors }));
  return evaluation.passed ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
