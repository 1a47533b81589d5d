/**
 * The Postgres schema, as versioned SQL beside SQLite's (./sqlite.ts): the same versions and the
 * same tables, in Postgres types. Migration N runs once, in order, inside the transaction that
 * records it in `schema_migrations`; Postgres DDL is transactional, so a migration either lands
 * whole or not at all. Never edit a released migration; add the next one.
 *
 * Unlike SQLite, these are never applied silently: `behalf migrate` applies them, and a server
 * refuses to start against a schema older or newer than it knows (see ../postgres-store.ts).
 *
 * Every table lives in the connection's current schema (the first of its search_path), so
 * behalf can share a database with other software by being given a schema of its own
 * (`?options=-c%20search_path%3Dbehalf`).
 */
import type { Migration } from './sqlite.js';

export type { Migration };

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'users, grants, api_keys',
    sql: `
      -- One row per Google account, keyed by the ID token's sub. Times are Unix milliseconds from
      -- the caller's clock, as on SQLite. Keys are COLLATE "C": byte order, as SQLite's BINARY,
      -- so (sub, client_id) pages come in the same order on both backends, straight off the index.
      CREATE TABLE users (
        sub              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
        email            TEXT,
        email_verified   BOOLEAN NOT NULL,
        name             TEXT,
        given_name       TEXT,
        family_name      TEXT,
        picture          TEXT,
        locale           TEXT,
        hd               TEXT,
        created_at       BIGINT  NOT NULL,
        updated_at       BIGINT  NOT NULL,
        last_sign_in_at  BIGINT  NOT NULL
      );

      -- One row per (user, OAuth client). Tokens are AES-256-GCM envelopes (src/vault/envelope.ts),
      -- never plaintext. version is bumped on every write, for compare-and-set.
      CREATE TABLE grants (
        sub                      TEXT COLLATE "C" NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
        client_id                TEXT COLLATE "C" NOT NULL,
        refresh_token            BYTEA,
        access_token             BYTEA,
        access_token_expires_at  BIGINT,
        scopes                   TEXT[]  NOT NULL,
        status                   TEXT    NOT NULL CHECK (status IN ('active', 'revoked', 'needs_consent')),
        version                  BIGINT  NOT NULL,
        refresh_token_issued_at  BIGINT,
        created_at               BIGINT  NOT NULL,
        updated_at               BIGINT  NOT NULL,
        PRIMARY KEY (sub, client_id)
      );
      CREATE INDEX grants_by_status ON grants (status, sub, client_id);

      -- Service API keys: only SHA-256 of the whole key is kept.
      CREATE TABLE api_keys (
        id          TEXT   NOT NULL PRIMARY KEY,
        hash        BYTEA  NOT NULL,
        name        TEXT   NOT NULL,
        created_at  BIGINT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'refresh leases',
    sql: `
      -- Who is refreshing a grant's access token right now, and until when, on the database's own
      -- clock (every instance agrees on it, whatever their clocks say): the cross-process half of
      -- single-flight refresh. An expired lease can be taken over.
      -- No foreign key to grants, on purpose: checking one would lock the grant row from the lease
      -- statement, and a user deleted at that moment (grants, then their leases, by cascade) would
      -- deadlock with it. Deleting a user deletes their leases explicitly; a stray lease runs out.
      CREATE TABLE refresh_leases (
        sub         TEXT COLLATE "C" NOT NULL,
        client_id   TEXT COLLATE "C" NOT NULL,
        holder      TEXT        NOT NULL,
        expires_at  TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (sub, client_id)
      );
    `,
  },
];

/** The newest schema version this build knows. */
export const POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS.at(-1)?.version ?? 0;
