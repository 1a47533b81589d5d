import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** Where the rule is enforced: everything a reader of the repository reads (issue 12, point 7). */
const CHECKED = ['README.md', 'docs', 'examples', 'bench', 'src', 'test'];

async function filesUnder(path: string): Promise<string[]> {
  const absolute = join(ROOT, path);
  if (/\.(ts|md)$/.test(path)) return [absolute];
  const entries = await readdir(absolute, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && /\.(ts|md)$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

/** Problems of one file: a private citation, or a relative link or path leading out of the repository. */
function problemsOf(file: string, text: string): string[] {
  const name = relative(ROOT, file);
  const problems: string[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    const where = `${name}:${index + 1}`;
    if (line.includes('spec §')) problems.push(`${where}: cites "spec §"`);
    const targets = new Set([
      ...[...line.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!),
      ...[...line.matchAll(/(?:^|[\s'"`(])((?:\.\.\/)+[\w.@-][\w./@-]*)/g)].map((m) => m[1]!),
    ]);
    for (const target of targets) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue; // a URL or an anchor
      const path = resolve(target.startsWith('/') ? ROOT : dirname(file), target.replace(/^\//, ''));
      if (path !== ROOT && !path.startsWith(ROOT + sep)) {
        problems.push(`${where}: links to ${target}, outside the repository`);
      }
    }
  }
  return problems;
}

/** Issue 12, point 7: every link and citation in the repository points into it or to a public URL. */
describe('citations and links', () => {
  it('cite public documentation, never "spec §" or a file outside the repository', async () => {
    const problems: string[] = [];
    for (const path of CHECKED) {
      for (const file of await filesUnder(path)) {
        // This file holds the patterns it looks for.
        if (file === import.meta.filename) continue;
        problems.push(...problemsOf(file, await readFile(file, 'utf8')));
      }
    }
    expect(problems).toEqual([]);
  });

  it('the check finds what it looks for', () => {
    const file = join(ROOT, 'docs', 'example.md');
    expect(problemsOf(file, 'as [the spec](../../shared/google-oauth-spec.md) says (spec §4.1)')).toEqual([
      'docs/example.md:1: cites "spec §"',
      'docs/example.md:1: links to ../../shared/google-oauth-spec.md, outside the repository',
    ]);
    expect(
      problemsOf(file, 'see [emulator](emulator.md#faults), [RFC](https://www.rfc-editor.org/rfc/rfc6749)'),
    ).toEqual([]);
    expect(problemsOf(join(ROOT, 'src', 'a', 'b.ts'), "import x from '../../../outside/x.js';")).toEqual([
      'src/a/b.ts:1: links to ../../../outside/x.js, outside the repository',
    ]);
  });

  it("examples import only the package's public front doors", async () => {
    const imports: string[] = [];
    for (const file of await filesUnder('examples')) {
      const text = await readFile(file, 'utf8');
      for (const [, target] of text.matchAll(/from '(\.\.\/[^']+)'/g)) {
        const path = relative(ROOT, resolve(dirname(file), target!));
        if (path.startsWith('src')) imports.push(path);
      }
    }
    expect(imports.length).toBeGreaterThan(0);
    expect(
      imports.filter((p) => p !== join('src', 'index.js') && p !== join('src', 'emulator', 'index.js')),
    ).toEqual([]);
  });
});
