-- Tenants own API keys, jobs and files. The embedded single-user mode uses tenant 'default'.
CREATE TABLE tenants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    webhook_secret TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

-- API keys are stored as SHA-256 of their secret part; key_id is public and indexes the lookup.
CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    secret_hash TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- One row per job. Times are milliseconds since the Unix epoch.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    seq              INTEGER NOT NULL,
    tenant_id        TEXT NOT NULL,
    app              TEXT NOT NULL,
    status           TEXT NOT NULL,
    input            TEXT NOT NULL,
    output           TEXT,
    error            TEXT,
    logs             TEXT NOT NULL DEFAULT '',
    progress         TEXT,
    metrics          TEXT,
    preview          BLOB,
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 2,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    heartbeat_at     INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    cancel_after     INTEGER,
    idempotency_key  TEXT,
    webhook          TEXT,
    webhook_events   TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs(tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_queue ON jobs(status, priority DESC, seq);
CREATE INDEX jobs_tenant ON jobs(tenant_id, seq DESC);

-- Append-only event log per job: status changes, progress, logs, outputs, webhook deliveries.
-- The global id orders events and is the SSE event id.
CREATE TABLE job_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX job_events_job ON job_events(job_id, id);

-- Artifacts: metadata here, bytes in the artifact store.
CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    job_id       TEXT,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX files_job ON files(job_id);
