import { isAbsolute, resolve } from 'node:path';
import { BehalfError } from '../errors.js';

export type DatabaseLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/**
 * `sqlite:PATH` (relative to the working directory, or absolute; `sqlite:///abs/path` too),
 * `sqlite::memory:` for tests, or `postgres://…` / `postgresql://…`.
 */
export function parseDatabaseUrl(url: string, cwd = process.cwd()): DatabaseLocation {
  if (/^postgres(ql)?:\/\//i.test(url)) return { kind: 'postgres', url };
  const match = /^sqlite:(.*)$/i.exec(url);
  if (match === null || match[1] === undefined || match[1].trim() === '') {
    throw new BehalfError('CONFIG_INVALID', 'BEHALF_DATABASE_URL: use sqlite:PATH (e.g. sqlite:.behalf/behalf.db) or postgres://USER@HOST/DB.');
  }
  let path = match[1];
  if (path === ':memory:') return { kind: 'sqlite', path };
  if (path.startsWith('//')) path = path.slice(2);
  return { kind: 'sqlite', path: isAbsolute(path) ? path : resolve(cwd, path) };
}
