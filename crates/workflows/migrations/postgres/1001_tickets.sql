-- Photo-ticket campaigns. Versions are immutable: an edit writes a new version and tickets
-- keep the version they were made with. Times are milliseconds since the Unix epoch.
CREATE TABLE campaigns (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX campaigns_tenant ON campaigns(tenant_id, created_at DESC);

CREATE TABLE campaign_versions (
    campaign_id TEXT NOT NULL,
    version     BIGINT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, version)
);

-- One ticket per customer: its input, every step's record (JSON), the published file and the
-- public share id. A batch row's ticket has (batch_id, line).
CREATE TABLE tickets (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    campaign_id      TEXT NOT NULL,
    campaign_version BIGINT NOT NULL,
    share_id         TEXT NOT NULL UNIQUE,
    batch_id         TEXT,
    line             BIGINT,
    job_id           TEXT,
    status           TEXT NOT NULL,
    input            TEXT NOT NULL,
    steps            TEXT NOT NULL,
    file             TEXT,
    revoked_at       BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX tickets_campaign ON tickets(tenant_id, campaign_id, created_at DESC);
CREATE UNIQUE INDEX tickets_batch_line ON tickets(batch_id, line) WHERE batch_id IS NOT NULL;

-- A CSV upload. The digest (campaign + decoded rows + column mapping) makes re-uploads of the
-- same file return the same batch instead of doubling the tickets.
CREATE TABLE batches (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    campaign_id      TEXT NOT NULL,
    campaign_version BIGINT NOT NULL,
    digest           TEXT NOT NULL,
    filename         TEXT,
    encoding         TEXT NOT NULL,
    total            BIGINT NOT NULL,
    job_id           TEXT,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    completed_at     BIGINT
);
CREATE UNIQUE INDEX batches_digest ON batches(tenant_id, campaign_id, digest);

-- One row per CSV record: pending until its ticket is published or it fails for good.
CREATE TABLE batch_rows (
    batch_id    TEXT NOT NULL,
    line        BIGINT NOT NULL,
    status      TEXT NOT NULL,
    input       TEXT,
    ticket_id   TEXT,
    error       TEXT,
    finished_at BIGINT,
    PRIMARY KEY (batch_id, line)
);
CREATE INDEX batch_rows_status ON batch_rows(batch_id, status, line);
