import { describe, expect, it } from 'vitest';
import { parseDatabaseUrl, redactDatabaseUrl } from '../../src/vault/index.js';

const UNREADABLE = '(unreadable database URL)';

describe('redactDatabaseUrl', () => {
  it('keeps scheme, user, host, port and database of a postgres URL', () => {
    expect(redactDatabaseUrl('postgres://behalf@db.internal:5432/behalf')).toBe(
      'postgres://behalf@db.internal:5432/behalf',
    );
    expect(redactDatabaseUrl('postgresql://db/behalf')).toBe('postgresql://db/behalf');
    expect(redactDatabaseUrl('POSTGRES://db:6543')).toBe('postgres://db:6543');
    expect(redactDatabaseUrl('  postgres://u@[::1]:5432/x  ')).toBe('postgres://u@[::1]:5432/x');
  });

  it('drops the password in the userinfo', () => {
    const out = redactDatabaseUrl('postgres://behalf:hunter2@db:5432/behalf');
    expect(out).toBe('postgres://behalf@db:5432/behalf');
    expect(out).not.toContain('hunter2');
    expect(redactDatabaseUrl('postgres://behalf:p%40ss%2Fw0rd@db/behalf')).toBe(
      'postgres://behalf@db/behalf',
    );
    expect(redactDatabaseUrl('postgres://:onlypass@db/behalf')).toBe('postgres://db/behalf');
  });

  it('drops the whole query string: password=, sslpassword= and everything else', () => {
    const out = redactDatabaseUrl(
      'postgres://behalf@db:5432/behalf?sslmode=verify-full&password=hunter3&sslpassword=hunter4&pool_max=5',
    );
    expect(out).toBe('postgres://behalf@db:5432/behalf');
    expect(redactDatabaseUrl('postgresql://db/behalf?password=hunter3')).toBe('postgresql://db/behalf');
    expect(redactDatabaseUrl('postgres://u:hunter2@db/behalf?sslpassword=hunter4#frag')).toBe(
      'postgres://u@db/behalf',
    );
  });

  it('says nothing when an unencoded /, ? or # in the password would put a piece of it into the host or port', () => {
    for (const url of [
      'postgres://behalf:1234/abc@db:5432/behalf',
      'postgres://behalf:1234?abc@db:5432/behalf',
      'postgres://behalf:1234#abc@db:5432/behalf',
    ]) {
      expect(redactDatabaseUrl(url)).toBe(UNREADABLE);
    }
  });

  it('prints a sqlite URL with its path, as given', () => {
    expect(redactDatabaseUrl('sqlite:.behalf/behalf.db')).toBe('sqlite:.behalf/behalf.db');
    expect(redactDatabaseUrl('sqlite:/var/lib/behalf/behalf.db')).toBe('sqlite:/var/lib/behalf/behalf.db');
    expect(redactDatabaseUrl('sqlite:///var/lib/behalf.db')).toBe('sqlite:///var/lib/behalf.db');
    expect(redactDatabaseUrl('sqlite::memory:')).toBe('sqlite::memory:');
    expect(redactDatabaseUrl('SQLite:data/b.db')).toBe('sqlite:data/b.db');
  });

  it('drops a lone / as the database path', () => {
    expect(redactDatabaseUrl('postgres://db:5432/')).toBe('postgres://db:5432');
  });

  it('reads the scheme only at the start', () => {
    expect(redactDatabaseUrl('xpostgres://behalf:hunter2@db/behalf')).toBe(UNREADABLE);
    expect(redactDatabaseUrl('xsqlite:/data/behalf.db')).toBe(UNREADABLE);
  });

  it('leaves out anything from a ? on in a sqlite URL', () => {
    expect(redactDatabaseUrl('sqlite:/data/behalf.db?key=hunter5')).toBe('sqlite:/data/behalf.db');
  });

  it('never echoes a malformed or unknown URL', () => {
    for (const url of [
      'postgres://behalf:hunter2@',
      'postgres://behalf:hunter2@db:notaport/behalf',
      'postgres://behalf:hunter2@db:99999/behalf',
      'mysql://root:hunter2@db/behalf',
      'behalf:hunter2@db/behalf',
      'hunter2',
      '',
      'sqlite:',
      'sqlite://root:hunter2@host/behalf.db',
      'sqlite:/data/hunter2\n.db',
    ]) {
      expect(redactDatabaseUrl(url)).toBe(UNREADABLE);
    }
  });
});

const FORMS =
  'use sqlite:PATH (relative to the working directory, or absolute), sqlite:///ABSOLUTE/PATH, or postgres://USER@HOST:PORT/DB';

describe('parseDatabaseUrl', () => {
  const refusal = (url: string) => {
    try {
      parseDatabaseUrl(url, '/srv');
    } catch (error) {
      return error;
    }
    throw new Error(`${JSON.stringify(url)} was accepted`);
  };

  it('takes postgres and sqlite URLs, a relative sqlite path from the working directory', () => {
    expect(parseDatabaseUrl(' postgresql://u@db/behalf ', '/srv')).toEqual({
      kind: 'postgres',
      url: 'postgresql://u@db/behalf',
    });
    expect(parseDatabaseUrl('sqlite:data/b.db', '/srv')).toEqual({ kind: 'sqlite', path: '/srv/data/b.db' });
    expect(parseDatabaseUrl('SQLITE:///var/b.db', '/srv')).toEqual({ kind: 'sqlite', path: '/var/b.db' });
    expect(parseDatabaseUrl('sqlite::memory:', '/srv')).toEqual({ kind: 'sqlite', path: ':memory:' });
  });

  it('refuses a postgres URL without a host, without echoing it', () => {
    for (const url of ['postgres:///behalf', 'postgres://:hunter2@/behalf'])
      expect(refusal(url)).toMatchObject({
        code: 'CONFIG_INVALID',
        message:
          'BEHALF_DATABASE_URL: the postgres:// URL is malformed (expected postgres://USER:PASSWORD@HOST:PORT/DB).',
      });
  });

  it('reads the scheme only at the start of the URL, and names an unknown one', () => {
    expect(refusal('xpostgres://db/behalf')).toMatchObject({
      code: 'CONFIG_INVALID',
      message: `BEHALF_DATABASE_URL: unsupported scheme 'xpostgres:'; ${FORMS}.`,
    });
    expect(refusal('xsqlite:/data/b.db')).toMatchObject({
      message: `BEHALF_DATABASE_URL: unsupported scheme 'xsqlite:'; ${FORMS}.`,
    });
    expect(refusal('MySQL://root@db/behalf')).toMatchObject({
      message: `BEHALF_DATABASE_URL: unsupported scheme 'mysql:'; ${FORMS}.`,
    });
    // Not a scheme: it starts with a digit.
    expect(refusal('1db:behalf')).toMatchObject({
      message: `BEHALF_DATABASE_URL: not a database URL; ${FORMS}.`,
    });
  });

  it('refuses a sqlite URL with a host, no path, or a NUL in the path', () => {
    expect(refusal('sqlite://host/b.db')).toMatchObject({
      code: 'CONFIG_INVALID',
      message: `BEHALF_DATABASE_URL: sqlite://… names a host; ${FORMS}.`,
    });
    expect(refusal('sqlite:')).toMatchObject({
      message: `BEHALF_DATABASE_URL: no SQLite file path given; ${FORMS}.`,
    });
    expect(refusal('sqlite:/data/b\0.db')).toMatchObject({
      code: 'CONFIG_INVALID',
      message: 'BEHALF_DATABASE_URL: the SQLite file path contains a NUL character.',
    });
  });
});
