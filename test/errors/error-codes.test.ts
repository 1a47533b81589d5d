import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** The README's "Error codes" table: each row's codes (`A` / `B` / `C`) and its HTTP status. */
async function documentedCodes(): Promise<Map<string, number>> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^### Error codes$/m)[1]?.split(/^#{2,3} /m)[0] ?? '';
  const codes = new Map<string, number>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    const status = Number(cells[2]);
    if (!Number.isInteger(status)) continue;
    for (const [, code] of (cells[1] ?? '').matchAll(/`([A-Z][A-Z_]+)`/g)) codes.set(code!, status);
  }
  return codes;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => join(e.parentPath, e.name));
}

/**
 * The codes behalf's code produces: quoted where a code is given (`new BehalfError('X', …)`, a
 * `code: 'X'`, a function returning one), not where one is only compared (`case 'X':`,
 * `=== 'X'`). Comments are left out; so are errors.ts (the list itself) and the emulator (Google's
 * stand-in, which answers with Google's errors, not behalf's).
 */
async function producedCodes(): Promise<Set<string>> {
  const known = new Set(Object.keys(ERROR_CODES));
  const produced = new Set<string>();
  for (const file of await sourceFiles(join(ROOT, 'src'))) {
    const relative = file.slice(ROOT.length + 1);
    if (relative === join('src', 'errors.ts') || relative.startsWith(join('src', 'emulator'))) continue;
    const code = (await readFile(file, 'utf8')).replace(/\/\*[\s\S]*?\*\/|(^|[^:])\/\/.*$/gm, '$1');
    for (const match of code.matchAll(/(case\s+|[!=]==\s*)?'([A-Z][A-Z_]+)'/g)) {
      if (match[1] === undefined && known.has(match[2]!)) produced.add(match[2]!);
    }
  }
  return produced;
}

/** Issue 12, point 7: the error codes are the API, so the documented list and the code agree. */
describe('error codes', () => {
  it('every code behalf has is documented in the README, with its HTTP status, and nothing else is', async () => {
    const documented = await documentedCodes();
    expect([...documented.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, status] of documented) {
      expect({ code, status }).toEqual({ code, status: ERROR_CODES[code as ErrorCode].status });
    }
  });

  it('every documented code is produced somewhere in src, and every produced code is documented', async () => {
    const documented = new Set((await documentedCodes()).keys());
    const produced = await producedCodes();
    expect([...documented].filter((code) => !produced.has(code))).toEqual([]);
    expect([...produced].filter((code) => !documented.has(code))).toEqual([]);
  });
});
