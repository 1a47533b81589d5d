import { describe, expect, it } from 'vitest';
import { redactDatabaseUrl } from '../../src/vault/index.js';

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
