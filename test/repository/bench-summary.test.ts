import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  END,
  README_PATH,
  renderReadme,
  renderSummary,
  RESULTS_PATH,
  START,
  type ResultsFile,
} from '../../bench/readme-summary.js';

/** Issue 14, point 3: the README's benchmark summary is generated from the committed results. */
describe("README's benchmark summary", () => {
  it('is what npm run bench:readme renders from bench/results.json (run it after committing a new run)', async () => {
    const readme = await readFile(README_PATH, 'utf8');
    const results = JSON.parse(await readFile(RESULTS_PATH, 'utf8')) as ResultsFile;
    // Only the block: the rest of the README is Prettier's and the other tests' business.
    const block = (text: string) => text.slice(text.indexOf(START), text.indexOf(END) + END.length);
    expect(block(await renderReadme(readme, results, README_PATH))).toBe(block(readme));
  });

  it('renders an old or partial results file, saying n/a for what it lacks', () => {
    expect(renderSummary({})).toContain('a results file without its machine');
    const summary = renderSummary({
      machine: { mode: 'quick', commit: 'abc1234' },
      workloads: [
        null,
        {
          name: 'access-token-valid',
          unit: 'calls/s',
          results: { 'behalf cold Postgres': null, 'behalf cold SQLite': 9000 },
          ratios: {},
        },
        {
          name: 'a-workload-added-later',
          unit: 'x',
          results: { behalf: 2 },
          ratios: { 'behalf/other': 0.5 },
        },
      ],
    });
    expect(summary).toContain('a quick run at commit `abc1234`');
    expect(summary).toMatch(/`access-token-valid` cold, Postgres \| n\/a \| n\/a \| n\/a \|/);
    expect(summary).toMatch(/`access-token-valid` cold, SQLite \| 9,000 calls\/s \| n\/a \| n\/a \|/);
    expect(summary).toContain('0.5× (behalf/other)');
  });

  it("takes a row's target from the notes, as the run stated it", () => {
    const summary = renderSummary({
      workloads: [
        {
          name: 'access-token-valid',
          unit: 'calls/s',
          results: { 'behalf cold Postgres': 1500, 'bare SELECT cold Postgres': 6000 },
          ratios: { 'behalf/bare SELECT (cold Postgres)': 0.25 },
          notes:
            'Target: behalf cold Postgres ≥ 0.8 × the bare SELECT: NOT met (0.25; per round 0.2–0.3). More.',
        },
      ],
    });
    expect(summary).toContain(
      '| `access-token-valid` cold, Postgres | 1,500 calls/s | bare SELECT cold Postgres: 6,000 | 0.25× | **NOT met**: behalf cold Postgres ≥ 0.8 × the bare SELECT |',
    );
  });
});
