-- The same tables as migrations/sqlite/0001_init.sql (the conformance suite compares their
-- columns). Times are milliseconds since the Unix epoch; JSON is stored as text, as there.
CREATE TABLE tenants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    webhook_secret TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    secret_hash TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- seq orders the queue; a sequence keeps it unique under concurrent inserts from many nodes.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    seq              BIGSERIAL NOT NULL,
    tenant_id        TEXT NOT NULL,
    app              TEXT NOT NULL,
    status           TEXT NOT NULL,
    input            TEXT NOT NULL,
    output           TEXT,
    error            TEXT,
    logs             TEXT NOT NULL DEFAULT '',
    progress         TEXT,
    metrics          TEXT,
    preview          BYTEA,
    priority         BIGINT NOT NULL DEFAULT 0,
    attempts         BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL DEFAULT 2,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    heartbeat_at     BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    cancel_after     BIGINT,
    idempotency_key  TEXT,
    webhook          TEXT,
    webhook_events   TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    completed_at     BIGINT
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs(tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_queue ON jobs(status, priority DESC, seq);
CREATE INDEX jobs_tenant ON jobs(tenant_id, seq DESC);

CREATE TABLE job_events (
    id         BIGSERIAL PRIMARY KEY,
    job_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX job_events_job ON job_events(job_id, id);

CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    job_id       TEXT,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX files_job ON files(job_id);
