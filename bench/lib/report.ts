/** The shape of bench/results.json, and the table printed from it. */

export interface WorkloadResult {
  name: string;
  unit: string;
  /** Contender → figure; null when it could not be measured (the notes say why). */
  results: Record<string, number | null>;
  ratios: Record<string, number | null>;
  notes: string;
}

export interface Machine {
  cores: number;
  cpuModel: string;
  nodeVersion: string;
  os: string;
  totalMemoryMiB: number;
  mode: 'quick' | 'full';
  /** When the run started, ISO 8601. */
  startedAt: string;
  /** The commit the working tree was at (other engineers may have uncommitted changes in it). */
  commit: string;
}

export interface Results {
  machine: Machine;
  workloads: WorkloadResult[];
}

/** a / b, or null when either is missing or b is zero. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (
    a === null ||
    a === undefined ||
    b === null ||
    b === undefined ||
    b === 0 ||
    !Number.isFinite(a) ||
    !Number.isFinite(b)
  )
    return null;
  return Math.round((a / b) * 1000) / 1000;
}

function format(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return 'n/a';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** A plain-text table: one block per workload, contenders as rows, then the ratios. */
export function renderTable(results: Results): string {
  const m = results.machine;
  const lines = [
    `behalf benchmarks (${m.mode}) — ${m.cores} × ${m.cpuModel}, ${Math.round(m.totalMemoryMiB / 1024)} GiB, Node ${m.nodeVersion}, ${m.os}, commit ${m.commit}`,
    '',
  ];
  const nameWidth = Math.max(
    ...results.workloads.flatMap((w) =>
      [...Object.keys(w.results), ...Object.keys(w.ratios)].map((k) => k.length),
    ),
    10,
  );
  for (const workload of results.workloads) {
    lines.push(`${workload.name} [${workload.unit}]`);
    for (const [name, value] of Object.entries(workload.results))
      lines.push(`  ${name.padEnd(nameWidth)}  ${format(value).padStart(12)}`);
    for (const [name, value] of Object.entries(workload.ratios)) {
      lines.push(
        `  ${name.padEnd(nameWidth)}  ${(value === null ? 'n/a' : `${value.toFixed(3)}×`).padStart(12)}`,
      );
    }
    if (workload.notes !== '') lines.push(...wrap(workload.notes, 110).map((line) => `  · ${line}`));
    lines.push('');
  }
  return lines.join('\n');
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line.length + word.length + 1 > width && line !== '') {
      out.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') out.push(line);
  return out;
}
