/**
 * The catalog's schema, as an append-only list of migrations (each applied once,
 * in order, under an advisory lock so several ccpd replicas sharing an external
 * catalog do not race).
 */
export const CATALOG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE ccp.api_keys (
    id          bigserial PRIMARY KEY,
    key_hash    text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE ccp.databases (
    id            text PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    -- creating | ready | stopped | failed | destroying
    status        text NOT NULL,
    -- what reconciliation brings the instance back to: running | stopped
    desired_state text NOT NULL DEFAULT 'running',
    runtime       text NOT NULL,
    pg_version    text NOT NULL,
    owner_role    text NOT NULL,
    database_name text NOT NULL,
    token_hash    text NOT NULL,
    restarts      integer NOT NULL DEFAULT 0,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
  );
  -- Intent is recorded here before any multi-step operation acts; reconciliation
  -- on start-up finishes or undoes every operation still 'running'.
  CREATE TABLE ccp.operations (
    id           bigserial PRIMARY KEY,
    database_id  text NOT NULL,
    kind         text NOT NULL,
    state        text NOT NULL,
    error        text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
  );
  CREATE INDEX operations_running ON ccp.operations (state) WHERE state = 'running';
  CREATE TABLE ccp.instance_events (
    id           bigserial PRIMARY KEY,
    database_id  text NOT NULL,
    kind         text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}',
    at           timestamptz NOT NULL DEFAULT now()
  );
  `,
  `
  -- Wire-protocol credentials: a SCRAM verifier (what the proxy checks) and the
  -- password sealed with the data dir's secret key (for \`ccp db info --show-secrets\`).
  CREATE TABLE ccp.credentials (
    database_id     text NOT NULL REFERENCES ccp.databases (id) ON DELETE CASCADE,
    role            text NOT NULL,
    scram_verifier  text NOT NULL,
    password_sealed text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (database_id, role)
  );
  `,
  `
  -- Base backups. Intent first (status 'running'), then the copy, then 'ready'.
  CREATE TABLE ccp.backups (
    id           text PRIMARY KEY,
    database_id  text NOT NULL,
    kind         text NOT NULL,
    status       text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    start_lsn    pg_lsn,
    stop_lsn     pg_lsn,
    start_wal    text,
    size_bytes   bigint,
    error        text
  );
  CREATE INDEX backups_by_database ON ccp.backups (database_id, started_at);
  `,
  `
  -- Read-only tokens for GET /metrics (Prometheus scrapers), hashed like admin keys.
  CREATE TABLE ccp.metrics_tokens (
    id          bigserial PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
  );
  -- Platform events are read per database in order (ccp db logs).
  CREATE INDEX instance_events_by_database ON ccp.instance_events (database_id, id);
  `,
  `
  -- Sleep and wake (runtime/instances.ts): status may be 'suspended'; suspend_after is the
  -- database's own timeout ("30s", "5m", "never"; NULL: the server's default).
  ALTER TABLE ccp.databases
    ADD COLUMN suspend_after  text,
    ADD COLUMN last_active_at timestamptz,
    -- when a suspension last found WAL written since the wake (or the last backup)
    ADD COLUMN last_write_at  timestamptz;
  `,
  `
  -- Branches (branches/service.ts): a database copied from a parent at an instant.
  -- parent_id is NULL for ordinary databases and for branches whose parent was
  -- destroyed (they stay, standalone); expires_at: ccpd destroys it then.
  ALTER TABLE ccp.databases
    ADD COLUMN parent_id   text,
    ADD COLUMN branched_at timestamptz,
    ADD COLUMN branch_lsn  pg_lsn,
    ADD COLUMN expires_at  timestamptz;
  CREATE INDEX databases_by_parent ON ccp.databases (parent_id) WHERE parent_id IS NOT NULL;
  CREATE INDEX databases_expiring ON ccp.databases (expires_at) WHERE expires_at IS NOT NULL;
  `,
  `
  -- Limits (#15, databases/limits.ts): a database's own limits, by name ({"memory": 536870912,
  -- "cpu": 0.5}); absent names take the server's defaults. read_only_since: when ccpd made it
  -- read-only for being over its storage quota (NULL: writable); storage_used_bytes: that reading.
  ALTER TABLE ccp.databases
    ADD COLUMN limits             jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN read_only_since    timestamptz,
    ADD COLUMN storage_used_bytes bigint;
  `,
];
