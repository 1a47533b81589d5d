/**
 * Stryker keeps each killed mutant's failing assertion as its `statusReason`, and those messages
 * can quote the tokens and codes the emulator issued during the test (`expected '1//0…' to be …`).
 * They are random and local, but the incremental file is committed, and a tracked file holding
 * token-shaped strings is what secret scanners (and readers) rightly flag. This rewrites every
 * statusReason of the incremental file and the JSON report with such strings replaced; nothing
 * Stryker matches mutants by (code, locations, tests) is touched.
 *
 *     npx tsx test/mutation/redact-reports.ts [files...]
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** Google's token and code shapes, behalf's own secrets, and JWTs. */
const SECRET_SHAPES =
  /ya29\.[\w.-]+|1\/\/0[\w-]+|4\/0[\w-]+|GOCSPX-[\w-]+|bhf_[0-9a-f]{12}_[\w-]+|whsec_[A-Za-z0-9+/=]+|eyJ[\w-]+\.[\w-]+(?:\.[\w-]*)?/g;

export function redact(text: string): string {
  return text.replace(SECRET_SHAPES, '[redacted]');
}

interface Reports {
  files?: Record<string, { mutants?: Array<{ statusReason?: string }> }>;
}

/** Redact the statusReasons of one report; whether anything changed. */
export function redactReport(report: Reports): boolean {
  let changed = false;
  for (const file of Object.values(report.files ?? {})) {
    for (const mutant of file.mutants ?? []) {
      if (mutant.statusReason === undefined) continue;
      const clean = redact(mutant.statusReason);
      if (clean !== mutant.statusReason) {
        mutant.statusReason = clean;
        changed = true;
      }
    }
  }
  return changed;
}

const DEFAULT_FILES = ['test/mutation/stryker-incremental.json', 'reports/mutation/mutation.json'];

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const files = process.argv.length > 2 ? process.argv.slice(2) : DEFAULT_FILES;
  for (const path of files.filter((file) => existsSync(file))) {
    const report = JSON.parse(readFileSync(path, 'utf8')) as Reports;
    // Written the way Stryker writes it (two-space JSON), so an unchanged file stays byte for byte.
    if (redactReport(report)) writeFileSync(path, JSON.stringify(report, null, 2));
  }
}
