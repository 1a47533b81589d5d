/**
 * The Postgres schema, as versioned SQL beside SQLite's (./sqlite.ts): the same versions and the
 * same tables, in Postgres types. Migration N runs once, in order, inside the transaction that
 * records it in `schema_migrations`; Postgres DDL is transactional, so a migration either lands
 * whole or not at all. Never edit a released migration; add the next one.
 *
 * This one list covers every table behalf uses: the vault, the security event log, job runs,
 * and pg-boss's job queue (in a schema of its own, see ../postgres.ts), so `behalf migrate`
 * prepares the whole database and `behalf serve` needs no DDL rights.
 *
 * Unlike SQLite, these are never applied silently: `behalf migrate` applies them, and a server
 * refuses to start against a schema older or newer than it knows (see ../postgres-store.ts).
 *
 * Every table lives in the connection's current schema (the first of its search_path), so
 * behalf can share a database with other software by being given a schema of its own
 * (`?options=-c%20search_path%3Dbehalf`).
 */
import PgBoss from 'pg-boss';
import type { Migration, MigrationClient, MigrationContext } from './sqlite.js';

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
  {
    version: 3,
    name: 'security events, job runs, job queue',
    sql: `
      -- Earlier versions created these tables themselves at run time: adopt them as they are.
      -- Each security event token's id, recorded in the same transaction that acts on it.
      CREATE TABLE IF NOT EXISTS security_events (jti TEXT PRIMARY KEY, received_at BIGINT NOT NULL);
      -- What Google last told us about a user's account (Cross-Account Protection).
      CREATE TABLE IF NOT EXISTS user_security (sub TEXT PRIMARY KEY, state TEXT NOT NULL, at BIGINT NOT NULL);

      -- One row per job run: its status and outcome, beside pg-boss's own delivery rows.
      CREATE TABLE IF NOT EXISTS job_runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        sub TEXT NOT NULL,
        params JSONB NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        error_code TEXT,
        error_message TEXT,
        result JSONB,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        finished_at BIGINT
      );
      CREATE INDEX IF NOT EXISTS job_runs_by_name_status ON job_runs (name, status, created_at);
      CREATE INDEX IF NOT EXISTS job_runs_by_sub ON job_runs (sub, created_at);
      DROP TABLE IF EXISTS job_runs_schema;
    `,
    after: installJobQueue,
  },
  {
    version: 4,
    name: 'grant change notifications',
    sql: `
      -- Every committed change to a grant (a sign-in, a refresh, a status change, a deletion) is
      -- announced on a channel named after this schema, delivered by Postgres at commit; each
      -- instance listens and drops that user from its token cache (src/database/grant-changes.ts).
      CREATE FUNCTION behalf_grant_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' THEN
          PERFORM pg_notify('behalf_grants:' || TG_TABLE_SCHEMA, OLD.sub);
        ELSE
          PERFORM pg_notify('behalf_grants:' || TG_TABLE_SCHEMA, NEW.sub);
        END IF;
        RETURN NULL;
      END
      $$;
      CREATE TRIGGER grants_changed AFTER INSERT OR UPDATE OR DELETE ON grants
        FOR EACH ROW EXECUTE FUNCTION behalf_grant_changed();
    `,
  },
  {
    version: 5,
    name: 'encryption key checks',
    sql: `
      -- One row per encryption key id ever used: a value encrypted under that key, so a server
      -- started with different bytes under the same id stops at once instead of failing per row.
      CREATE TABLE key_checks (
        key_id      TEXT   NOT NULL PRIMARY KEY,
        check_value BYTEA  NOT NULL,
        created_at  BIGINT NOT NULL
      );
    `,
  },
  {
    version: 6,
    name: 'webhooks',
    sql: `
      -- Where behalf announces changes to grants and users (src/webhooks). The signing secret is an
      -- AES-256-GCM envelope bound to the endpoint's id and URL (src/vault/envelope.ts), never
      -- plaintext. events: the subscribed event types; NULL is every type.
      CREATE TABLE webhook_endpoints (
        id               TEXT    NOT NULL PRIMARY KEY,
        url              TEXT    NOT NULL,
        events           TEXT[],
        secret           BYTEA   NOT NULL,
        status           TEXT    NOT NULL CHECK (status IN ('enabled', 'disabled')),
        disabled_reason  TEXT,
        created_at       BIGINT  NOT NULL,
        updated_at       BIGINT  NOT NULL
      );

      -- The outbox: one row per event per subscribed endpoint, written in the transaction that
      -- makes the change the event announces. id is the webhook-id every attempt carries; payload
      -- is the exact body signed and sent. A pending row is due at next_attempt_at; lease_until
      -- is set while an attempt is in flight (a crashed sender's row is due again after it).
      CREATE TABLE webhook_deliveries (
        id               TEXT    NOT NULL PRIMARY KEY,
        endpoint_id      TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        event_type       TEXT    NOT NULL,
        sub              TEXT    NOT NULL,
        payload          TEXT    NOT NULL,
        status           TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts         INTEGER NOT NULL,
        next_attempt_at  BIGINT,
        lease_until      BIGINT,
        last_attempt_at  BIGINT,
        last_status      INTEGER,
        last_error       TEXT,
        created_at       BIGINT  NOT NULL,
        finished_at      BIGINT
      );
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
      CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at, id);
      CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE status <> 'pending';
    `,
  },
  {
    version: 7,
    name: 'admin console: sessions, sweep runs, last refresh per grant, security event history, API key last use, users by email',
    sql: `
      -- Admin console sessions (src/admin): SHA-256 of the session token, never the token itself.
      -- Revoking (deleting) an API key deletes the sessions opened with it.
      CREATE TABLE admin_sessions (
        id_hash       BYTEA  NOT NULL PRIMARY KEY,
        api_key_id    TEXT   NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
        created_at    BIGINT NOT NULL,
        last_seen_at  BIGINT NOT NULL
      );
      CREATE INDEX admin_sessions_by_key ON admin_sessions (api_key_id);

      -- Health sweeps started from the console, with their progress, so any instance can show it.
      CREATE TABLE sweep_runs (
        id             TEXT    NOT NULL PRIMARY KEY,
        forced         BOOLEAN NOT NULL,
        started_by     TEXT    NOT NULL,
        total          BIGINT  NOT NULL,
        checked        BIGINT  NOT NULL,
        healthy        BIGINT  NOT NULL,
        refreshed      BIGINT  NOT NULL,
        needs_consent  BIGINT  NOT NULL,
        unavailable    BIGINT  NOT NULL,
        status         TEXT    NOT NULL CHECK (status IN ('running', 'done', 'stopped', 'failed')),
        started_at     BIGINT  NOT NULL,
        updated_at     BIGINT  NOT NULL,
        finished_at    BIGINT
      );
      CREATE INDEX sweep_runs_by_start ON sweep_runs (started_at);

      -- Each grant's last refresh at Google and how it ended: 'ok', or behalf's error code (and
      -- reason). Kept apart from grants so that recording it is no change to the grant (and no
      -- notification). Deleted with the grant by trigger, not by a foreign key: checking one would
      -- lock the grant row from the refresh's write, and a deletion at that moment would deadlock.
      CREATE TABLE grant_refreshes (
        sub        TEXT COLLATE "C" NOT NULL,
        client_id  TEXT COLLATE "C" NOT NULL,
        at         BIGINT NOT NULL,
        outcome    TEXT   NOT NULL,
        reason     TEXT,
        PRIMARY KEY (sub, client_id)
      );
      CREATE FUNCTION behalf_grant_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        EXECUTE format('DELETE FROM %I.grant_refreshes WHERE sub = $1 AND client_id = $2', TG_TABLE_SCHEMA) USING OLD.sub, OLD.client_id;
        RETURN NULL;
      END
      $$;
      CREATE TRIGGER grants_deleted_refreshes AFTER DELETE ON grants
        FOR EACH ROW EXECUTE FUNCTION behalf_grant_deleted();

      -- Each Cross-Account Protection event received about a user, and what behalf did about it.
      -- Deleted with the user by trigger (a foreign key would lock the user row from the event's
      -- transaction, in the opposite order to a deletion's).
      CREATE TABLE security_event_history (
        sub     TEXT COLLATE "C" NOT NULL,
        jti     TEXT   NOT NULL,
        type    TEXT   NOT NULL,
        action  TEXT   NOT NULL,
        at      BIGINT NOT NULL,
        PRIMARY KEY (sub, jti, type)
      );
      CREATE INDEX security_event_history_by_time ON security_event_history (sub, at);
      CREATE FUNCTION behalf_user_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        EXECUTE format('DELETE FROM %I.security_event_history WHERE sub = $1', TG_TABLE_SCHEMA) USING OLD.sub;
        RETURN NULL;
      END
      $$;
      CREATE TRIGGER users_deleted_security_history AFTER DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION behalf_user_deleted();

      -- When each service API key was last used (to the minute: written at most once a minute).
      ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;

      -- The console's user list: by email, ASCII case folded (lower() under COLLATE "C" folds
      -- A-Z only, as SQLite's), NULL as '', in byte order, then sub; keyset pages and
      -- email-prefix searches are ranges of this index, in the same order on both backends.
      CREATE INDEX users_by_email ON users ((lower((coalesce(email, '')) COLLATE "C")), sub);
    `,
  },
  {
    version: 8,
    name: 'grant counts',
    sql: `
      -- Grants per status, kept by triggers in the transaction of every change, so the
      -- behalf_grants metric sums a few rows instead of counting every grant (src/vault/grant-counts.ts).
      -- Each connection counts in rows of its own (slot = its backend pid): two transactions never
      -- write the same row, so counting adds no lock for concurrent sign-ins to queue on. Slot 0
      -- holds the count at migration and the rows of ended connections, folded in by the reader.
      CREATE TABLE grant_counts (
        status  TEXT    NOT NULL,
        slot    INTEGER NOT NULL,
        n       BIGINT  NOT NULL,
        PRIMARY KEY (status, slot)
      );
      INSERT INTO grant_counts (status, slot, n) SELECT status, 0, COUNT(*) FROM grants GROUP BY status;
      CREATE FUNCTION behalf_count_grant() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        bump CONSTANT text := format(
          'INSERT INTO %I.grant_counts (status, slot, n) VALUES ($1, pg_backend_pid(), $2)
             ON CONFLICT (status, slot) DO UPDATE SET n = grant_counts.n + excluded.n', TG_TABLE_SCHEMA);
      BEGIN
        IF TG_OP <> 'INSERT' THEN EXECUTE bump USING OLD.status, -1; END IF;
        IF TG_OP <> 'DELETE' THEN EXECUTE bump USING NEW.status, 1; END IF;
        RETURN NULL;
      END
      $$;
      CREATE TRIGGER grants_counted AFTER INSERT OR DELETE ON grants
        FOR EACH ROW EXECUTE FUNCTION behalf_count_grant();
      CREATE TRIGGER grants_counted_status AFTER UPDATE OF status ON grants
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION behalf_count_grant();
    `,
  },
  {
    version: 9,
    name: 'refresh token expiry',
    sql: `
      -- When Google said the grant's refresh token stops working (refresh_token_expires_in: a
      -- Testing-mode app's 7 days, or time-based access the user chose), Unix ms; NULL when Google
      -- gave no expiry. The index holds only grants that have one: start-up counts those expiring soon.
      ALTER TABLE grants ADD COLUMN refresh_token_expires_at BIGINT;
      CREATE INDEX grants_by_refresh_expiry ON grants (refresh_token_expires_at)
        WHERE refresh_token_expires_at IS NOT NULL;
    `,
  },
];

/**
 * pg-boss's own schema, installed or upgraded here rather than by pg-boss at run time (its
 * `migrate` option is off in the server). pg-boss's plans come wrapped in BEGIN … COMMIT; they
 * run inside the migrating transaction instead, unwrapped. Queues are created at run time by
 * pg-boss's create_queue function, which makes a partition table: it is made SECURITY DEFINER so
 * that a serving role without DDL rights can create a queue the first time a job is defined.
 */
async function installJobQueue(db: MigrationClient, { jobSchema }: MigrationContext): Promise<void> {
  const { rows } = await db.query(`SELECT to_regclass($1) IS NOT NULL AS installed`, [
    `${jobSchema}.version`,
  ]);
  const installed = (rows[0] as { installed: boolean }).installed;
  if (!installed) {
    await db.query(unwrap(PgBoss.getConstructionPlans(jobSchema)));
  } else {
    const current = Number(
      ((await db.query(`SELECT version FROM ${jobSchema}.version`)).rows[0] as { version: number | string })
        .version,
    );
    // One plan from the installed version up to pg-boss's newest; none when it is the newest.
    let plan: string | undefined;
    try {
      plan = PgBoss.getMigrationPlans(jobSchema, String(current));
    } catch {
      plan = undefined;
    }
    if (plan !== undefined) await db.query(unwrap(plan));
  }
  await db.query(
    `ALTER FUNCTION ${jobSchema}.create_queue(text, json) SECURITY DEFINER SET search_path = pg_catalog, pg_temp`,
  );
  await db.query(
    `ALTER FUNCTION ${jobSchema}.delete_queue(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp`,
  );
  await db.query(`GRANT USAGE ON SCHEMA ${jobSchema} TO PUBLIC`);
}

/** pg-boss's plans are `BEGIN; … COMMIT;`: the statements in between. */
function unwrap(plan: string): string {
  const match = /^\s*BEGIN;([\s\S]*)COMMIT;\s*$/.exec(plan);
  if (match === null)
    throw new Error('pg-boss plan is not wrapped in BEGIN … COMMIT as expected: check the pg-boss version.');
  return match[1]!;
}

/** The newest schema version this build knows. */
export const POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS.at(-1)?.version ?? 0;
