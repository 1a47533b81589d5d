import { isAbsolute, resolve } from 'node:path';
import { BehalfError } from '../errors.js';

/** Where the store lives, from BEHALF_DATABASE_URL. A sqlite path is absolute, or `:memory:`. */
export type DatabaseLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

const SETTING = 'BEHALF_DATABASE_URL';
const FORMS = 'use sqlite:PATH (relative to the working directory, or absolute), sqlite:///ABSOLUTE/PATH, or postgres://USER@HOST:PORT/DB';

/**
 * Parse BEHALF_DATABASE_URL:
 * - `sqlite:PATH` — relative to `cwd`, or absolute (`sqlite:/var/lib/behalf.db`);
 * - `sqlite:///abs/path` — the URL form of an absolute path;
 * - `sqlite::memory:` — an in-memory database, for tests;
 * - `postgres://…` / `postgresql://…` — the Postgres store (see postgres-store.ts).
 *
 * Messages never echo a postgres URL: it may carry a password.
 */
export function parseDatabaseUrl(url: string, cwd: string = process.cwd()): DatabaseLocation {
  const value = url.trim();
  const fail = (problem: string): never => {
    throw new BehalfError('CONFIG_INVALID', `${SETTING}: ${problem}`);
  };
  if (/^postgres(ql)?:\/\//i.test(value)) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(value);
    } catch {
      // The URL is not echoed: it may contain a password.
    }
    if (parsed === undefined || parsed.hostname === '') fail('the postgres:// URL is malformed (expected postgres://USER:PASSWORD@HOST:PORT/DB).');
    return { kind: 'postgres', url: value };
  }
  const sqlite = /^sqlite:(.*)$/is.exec(value);
  if (sqlite === null) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1];
    return fail(scheme === undefined ? `not a database URL; ${FORMS}.` : `unsupported scheme '${scheme.toLowerCase()}:'; ${FORMS}.`);
  }
  let path = sqlite[1]!;
  if (path === ':memory:') return { kind: 'sqlite', path };
  if (path.startsWith('///')) path = path.slice(2);
  else if (path.startsWith('//')) fail(`sqlite://… names a host; ${FORMS}.`);
  if (path.trim() === '') fail(`no SQLite file path given; ${FORMS}.`);
  if (path.includes('\0')) fail('the SQLite file path contains a NUL character.');
  return { kind: 'sqlite', path: isAbsolute(path) ? path : resolve(cwd, path) };
}
