/**
 * The SQLite schema, as versioned SQL: migration N runs once, in order, inside the same
 * transaction that records it in `schema_migrations`. Never edit a released migration; add the
 * next one. The Postgres backend keeps its own list beside this one, with the same versions
 * and the same tables.
 *
 * The SQL lives in a TypeScript module rather than in .sql files so that `tsc` carries it into
 * dist/ and the published package needs no copy step.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'users, grants, api_keys',
    sql: `
      -- One row per Google account, keyed by the ID token's sub. Unix milliseconds throughout.
      CREATE TABLE users (
        sub              TEXT    NOT NULL PRIMARY KEY,
        email            TEXT,
        email_verified   INTEGER NOT NULL CHECK (email_verified IN (0, 1)),
        name             TEXT,
        given_name       TEXT,
        family_name      TEXT,
        picture          TEXT,
        locale           TEXT,
        hd               TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        last_sign_in_at  INTEGER NOT NULL
      ) STRICT;

      -- One row per (user, OAuth client). Tokens are AES-256-GCM envelopes (src/vault/envelope.ts),
      -- never plaintext. version is bumped on every write, for compare-and-set.
      CREATE TABLE grants (
        sub                      TEXT    NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
        client_id                TEXT    NOT NULL,
        refresh_token            BLOB,
        access_token             BLOB,
        access_token_expires_at  INTEGER,
        scopes                   TEXT    NOT NULL,
        status                   TEXT    NOT NULL CHECK (status IN ('active', 'revoked', 'needs_consent')),
        version                  INTEGER NOT NULL,
        refresh_token_issued_at  INTEGER,
        created_at               INTEGER NOT NULL,
        updated_at               INTEGER NOT NULL,
        PRIMARY KEY (sub, client_id)
      ) STRICT;
      CREATE INDEX grants_by_status ON grants (status, sub, client_id);

      -- Service API keys: only SHA-256 of the whole key is kept.
      CREATE TABLE api_keys (
        id          TEXT    NOT NULL PRIMARY KEY,
        hash        BLOB    NOT NULL,
        name        TEXT    NOT NULL,
        created_at  INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: 'refresh leases',
    sql: `
      -- Who is refreshing a grant's access token right now, until when (Unix ms, the process clock):
      -- the cross-process half of single-flight refresh. An expired lease can be taken over.
      CREATE TABLE refresh_leases (
        sub         TEXT    NOT NULL,
        client_id   TEXT    NOT NULL,
        holder      TEXT    NOT NULL,
        expires_at  INTEGER NOT NULL,
        PRIMARY KEY (sub, client_id)
      ) STRICT;
    `,
  },
];

/** The newest schema version this build knows. */
export const SQLITE_SCHEMA_VERSION = SQLITE_MIGRATIONS.at(-1)?.version ?? 0;
