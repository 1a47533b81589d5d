/**
 * The SQLite schema, as versioned SQL: migration N runs once, in order, inside the same
 * transaction that records it in `schema_migrations`. Never edit a released migration; add the
 * next one. The Postgres backend keeps its own list beside this one, with the same versions
 * and the same tables. This one list covers every table behalf uses: the vault, the security
 * event log, job runs and the job queue (plainjob's tables, which plainjob would otherwise
 * create itself when a queue is defined).
 *
 * The SQL lives in a TypeScript module rather than in .sql files so that `tsc` carries it into
 * dist/ and the published package needs no copy step.
 */
export interface Migration {
  version: number;
  name: string;
  /** The SQL, or a function of the migration's context (Postgres: the job queue's schema name). */
  sql: string | ((context: MigrationContext) => string);
  /** Postgres only: a step that must look at the database first (installing or upgrading pg-boss). */
  after?: (db: MigrationClient, context: MigrationContext) => Promise<void>;
}

export interface MigrationContext {
  /** Postgres only: the schema pg-boss's tables live in (see ../postgres.ts). */
  jobSchema: string;
}

/** What a migration step may run SQL on (the migrating transaction's connection). */
export interface MigrationClient {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
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
  {
    version: 3,
    name: 'security events, job runs, job queue',
    sql: `
      -- Earlier versions created these tables themselves at run time: adopt them as they are.
      -- Each security event token's id, recorded in the same transaction that acts on it.
      CREATE TABLE IF NOT EXISTS security_events (jti TEXT PRIMARY KEY, received_at BIGINT NOT NULL);
      -- What Google last told us about a user's account (Cross-Account Protection).
      CREATE TABLE IF NOT EXISTS user_security (sub TEXT PRIMARY KEY, state TEXT NOT NULL, at BIGINT NOT NULL);

      -- One row per job run: its status and outcome, beside the queue's own delivery rows.
      CREATE TABLE IF NOT EXISTS job_runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        sub TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        error_code TEXT,
        error_message TEXT,
        result TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER
      );
      CREATE INDEX IF NOT EXISTS job_runs_by_name_status ON job_runs (name, status, created_at);
      CREATE INDEX IF NOT EXISTS job_runs_by_sub ON job_runs (sub, created_at);
      DROP TABLE IF EXISTS job_runs_schema;

      -- plainjob's delivery tables, exactly as plainjob 0.0.x declares them.
      CREATE TABLE IF NOT EXISTS plainjob_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        status INTEGER DEFAULT 0 NOT NULL,
        failed_at INTEGER,
        error TEXT,
        next_run_at INTEGER,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS idx_jobs_status_type_next_run_at ON plainjob_jobs (status, type, next_run_at);
      CREATE TABLE IF NOT EXISTS plainjob_scheduled_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL UNIQUE,
        status INTEGER DEFAULT 0 NOT NULL,
        cron_expression TEXT,
        next_run_at INTEGER,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS idx_scheduled_jobs_status_type_next_run_at ON plainjob_scheduled_jobs (status, type, next_run_at);
    `,
  },
  {
    version: 4,
    name: 'grant change log',
    sql: `
      -- Every committed change to a grant, in commit order (SQLite has one writer at a time, so
      -- seq order is commit order): other processes on this file read what changed since they
      -- last looked and drop those users from their token caches (src/database/grant-changes.ts).
      -- Rows older than a few minutes are pruned.
      CREATE TABLE grant_changes (
        seq  INTEGER PRIMARY KEY AUTOINCREMENT,
        sub  TEXT    NOT NULL,
        at   INTEGER NOT NULL
      ) STRICT;
      CREATE TRIGGER grants_changed_insert AFTER INSERT ON grants BEGIN
        INSERT INTO grant_changes (sub, at) VALUES (NEW.sub, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
      END;
      CREATE TRIGGER grants_changed_update AFTER UPDATE ON grants BEGIN
        INSERT INTO grant_changes (sub, at) VALUES (NEW.sub, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
      END;
      CREATE TRIGGER grants_changed_delete AFTER DELETE ON grants BEGIN
        INSERT INTO grant_changes (sub, at) VALUES (OLD.sub, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
      END;
    `,
  },
  {
    version: 5,
    name: 'encryption key checks',
    sql: `
      -- One row per encryption key id ever used: a value encrypted under that key, so a server
      -- started with different bytes under the same id stops at once instead of failing per row.
      CREATE TABLE key_checks (
        key_id      TEXT    NOT NULL PRIMARY KEY,
        check_value BLOB    NOT NULL,
        created_at  INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 6,
    name: 'webhooks',
    sql: `
      -- Where behalf announces changes to grants and users (src/webhooks). The signing secret is an
      -- AES-256-GCM envelope bound to the endpoint's id and URL (src/vault/envelope.ts), never
      -- plaintext. events: the subscribed event types, space-separated; NULL is every type.
      CREATE TABLE webhook_endpoints (
        id               TEXT    NOT NULL PRIMARY KEY,
        url              TEXT    NOT NULL,
        events           TEXT,
        secret           BLOB    NOT NULL,
        status           TEXT    NOT NULL CHECK (status IN ('enabled', 'disabled')),
        disabled_reason  TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
      ) STRICT;

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
        next_attempt_at  INTEGER,
        lease_until      INTEGER,
        last_attempt_at  INTEGER,
        last_status      INTEGER,
        last_error       TEXT,
        created_at       INTEGER NOT NULL,
        finished_at      INTEGER
      ) STRICT;
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
        id_hash       BLOB    NOT NULL PRIMARY KEY,
        api_key_id    TEXT    NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
        created_at    INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX admin_sessions_by_key ON admin_sessions (api_key_id);

      -- Health sweeps started from the console, with their progress, so any instance can show it.
      CREATE TABLE sweep_runs (
        id             TEXT    NOT NULL PRIMARY KEY,
        forced         INTEGER NOT NULL CHECK (forced IN (0, 1)),
        started_by     TEXT    NOT NULL,
        total          INTEGER NOT NULL,
        checked        INTEGER NOT NULL,
        healthy        INTEGER NOT NULL,
        refreshed      INTEGER NOT NULL,
        needs_consent  INTEGER NOT NULL,
        unavailable    INTEGER NOT NULL,
        status         TEXT    NOT NULL CHECK (status IN ('running', 'done', 'stopped', 'failed')),
        started_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        finished_at    INTEGER
      ) STRICT;
      CREATE INDEX sweep_runs_by_start ON sweep_runs (started_at);

      -- Each grant's last refresh at Google and how it ended: 'ok', or behalf's error code (and
      -- reason). Kept apart from grants so that recording it is no change to the grant. Deleted
      -- with the grant by trigger (a foreign key would lock the grant row from the refresh's write).
      CREATE TABLE grant_refreshes (
        sub        TEXT    NOT NULL,
        client_id  TEXT    NOT NULL,
        at         INTEGER NOT NULL,
        outcome    TEXT    NOT NULL,
        reason     TEXT,
        PRIMARY KEY (sub, client_id)
      ) STRICT;
      CREATE TRIGGER grants_deleted_refreshes AFTER DELETE ON grants BEGIN
        DELETE FROM grant_refreshes WHERE sub = OLD.sub AND client_id = OLD.client_id;
      END;

      -- Each Cross-Account Protection event received about a user, and what behalf did about it.
      -- Deleted with the user by trigger.
      CREATE TABLE security_event_history (
        sub     TEXT    NOT NULL,
        jti     TEXT    NOT NULL,
        type    TEXT    NOT NULL,
        action  TEXT    NOT NULL,
        at      INTEGER NOT NULL,
        PRIMARY KEY (sub, jti, type)
      ) STRICT;
      CREATE INDEX security_event_history_by_time ON security_event_history (sub, at);
      CREATE TRIGGER users_deleted_security_history AFTER DELETE ON users BEGIN
        DELETE FROM security_event_history WHERE sub = OLD.sub;
      END;

      -- When each service API key was last used (to the minute: written at most once a minute).
      ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;

      -- The console's user list: by email, ASCII case folded (SQLite's lower()), NULL as '', then
      -- sub; keyset pages and email-prefix searches are ranges of this index.
      CREATE INDEX users_by_email ON users (lower(coalesce(email, '')), sub);
    `,
  },
  {
    version: 8,
    name: 'grant counts',
    sql: `
      -- Grants per status, kept by triggers in the transaction of every change, so the
      -- behalf_grants metric reads three rows instead of counting every grant (src/vault/grant-counts.ts).
      CREATE TABLE grant_counts (
        status  TEXT    NOT NULL PRIMARY KEY CHECK (status IN ('active', 'revoked', 'needs_consent')),
        n       INTEGER NOT NULL
      ) STRICT;
      INSERT INTO grant_counts (status, n)
        SELECT s.status, (SELECT COUNT(*) FROM grants WHERE grants.status = s.status)
        FROM (SELECT 'active' AS status UNION ALL SELECT 'revoked' UNION ALL SELECT 'needs_consent') AS s;
      CREATE TRIGGER grants_counted_insert AFTER INSERT ON grants BEGIN
        UPDATE grant_counts SET n = n + 1 WHERE status = NEW.status;
      END;
      CREATE TRIGGER grants_counted_delete AFTER DELETE ON grants BEGIN
        UPDATE grant_counts SET n = n - 1 WHERE status = OLD.status;
      END;
      CREATE TRIGGER grants_counted_update AFTER UPDATE OF status ON grants WHEN OLD.status <> NEW.status BEGIN
        UPDATE grant_counts SET n = n - 1 WHERE status = OLD.status;
        UPDATE grant_counts SET n = n + 1 WHERE status = NEW.status;
      END;
    `,
  },
  {
    version: 9,
    name: 'refresh token expiry',
    sql: `
      -- When Google said the grant's refresh token stops working (refresh_token_expires_in: a
      -- Testing-mode app's 7 days, or time-based access the user chose), Unix ms; NULL when Google
      -- gave no expiry. The index holds only grants that have one: start-up counts those expiring soon.
      ALTER TABLE grants ADD COLUMN refresh_token_expires_at INTEGER;
      CREATE INDEX grants_by_refresh_expiry ON grants (refresh_token_expires_at)
        WHERE refresh_token_expires_at IS NOT NULL;
    `,
  },
];

/** The newest schema version this build knows. */
export const SQLITE_SCHEMA_VERSION = SQLITE_MIGRATIONS.at(-1)?.version ?? 0;
