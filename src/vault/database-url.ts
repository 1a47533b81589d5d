import { isAbsolute, resolve } from 'node:path';
import { BehalfError } from '../errors.js';

/** Where the store lives, from BEHALF_DATABASE_URL. A sqlite path is absolute, or `:memory:`. */
export type DatabaseLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

const SETTING = 'BEHALF_DATABASE_URL';
const FORMS =
  'use sqlite:PATH (relative to the working directory, or absolute), sqlite:///ABSOLUTE/PATH, or postgres://USER@HOST:PORT/DB';

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
    if (parsed === undefined || parsed.hostname === '')
      fail('the postgres:// URL is malformed (expected postgres://USER:PASSWORD@HOST:PORT/DB).');
    return { kind: 'postgres', url: value };
  }
  const sqlite = /^sqlite:(.*)$/is.exec(value);
  if (sqlite === null) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1];
    return fail(
      scheme === undefined
        ? `not a database URL; ${FORMS}.`
        : `unsupported scheme '${scheme.toLowerCase()}:'; ${FORMS}.`,
    );
  }
  let path = sqlite[1]!;
  if (path === ':memory:') return { kind: 'sqlite', path };
  if (path.startsWith('///')) path = path.slice(2);
  else if (path.startsWith('//')) fail(`sqlite://… names a host; ${FORMS}.`);
  // Stryker disable next-line MethodExpression: the path ends the trimmed value, so it is blank only when empty
  if (path.trim() === '') fail(`no SQLite file path given; ${FORMS}.`);
  if (path.includes('\0')) fail('the SQLite file path contains a NUL character.');
  return { kind: 'sqlite', path: isAbsolute(path) ? path : resolve(cwd, path) };
}

/** What {@link redactDatabaseUrl} prints for anything it cannot take apart safely. */
const UNREADABLE = '(unreadable database URL)';

/**
 * BEHALF_DATABASE_URL fit for a log line or a message: the one redactor for database URLs.
 *
 * - `postgres://` / `postgresql://`: scheme, user, host, port and database only. The password
 *   goes, and so does the whole query string, since libpq also takes `password=` and
 *   `sslpassword=` there (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS).
 * - `sqlite:`: the path as given, anything from a `?` on left out.
 * - Anything else, or a URL that does not parse cleanly: a fixed placeholder. The input is never
 *   echoed, since a malformed URL may still hold a password.
 */
export function redactDatabaseUrl(url: string): string {
  const value = url.trim();
  if (/^postgres(ql)?:\/\//i.test(value)) {
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      return UNREADABLE;
    }
    // An `@` after the authority means the userinfo held an unencoded `/`, `?` or `#`: the URL
    // parser then took part of the password for the host and port (`user:1234/x@host` reads as
    // host `user`, port 1234). Say nothing rather than print a piece of it.
    if (`${parsed.pathname}${parsed.search}${parsed.hash}`.includes('@')) return UNREADABLE;
    const user = parsed.username === '' ? '' : `${parsed.username}@`;
    return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  }
  const sqlite = /^sqlite:(.*)$/is.exec(value);
  if (sqlite === null) return UNREADABLE;
  const path = sqlite[1]!.split('?')[0]!;
  // `sqlite://host…` is refused by parseDatabaseUrl; its authority could carry userinfo.
  if (path.startsWith('//') && !path.startsWith('///')) return UNREADABLE;
  // eslint-disable-next-line no-control-regex
  if (path === '' || /[\u0000-\u001f\u007f]/.test(path)) return UNREADABLE;
  return `sqlite:${path}`;
}
