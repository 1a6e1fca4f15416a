-- Ad storyboards: the brief, numbered versions of the cuts (each with its own outputs), and
-- review comments attached to cuts by their stable id.
CREATE TABLE storyboards (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    brief       TEXT NOT NULL,            -- JSON Brief
    head        BIGINT NOT NULL,         -- the current version
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE INDEX storyboards_by_tenant ON storyboards (tenant_id, created_at DESC, id DESC);

CREATE TABLE storyboard_versions (
    storyboard_id TEXT NOT NULL REFERENCES storyboards (id),
    version       BIGINT NOT NULL,
    parent        BIGINT,                -- the version it was made from
    action        TEXT NOT NULL,          -- JSON: what made it (create, ops, restore)
    title         TEXT NOT NULL,
    cuts          TEXT NOT NULL,          -- JSON [Cut]
    status        TEXT NOT NULL,          -- pending, processing, ready, failed, superseded
    job_id        TEXT,
    steps         TEXT NOT NULL DEFAULT '[]',
    outputs       TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (storyboard_id, version)
);

CREATE TABLE storyboard_comments (
    id            TEXT PRIMARY KEY,
    storyboard_id TEXT NOT NULL REFERENCES storyboards (id),
    cut_id        TEXT NOT NULL,
    version       BIGINT NOT NULL,       -- the version the reviewer was looking at
    author        TEXT NOT NULL,
    text          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    resolved_at   BIGINT,
    resolved_by   TEXT
);
CREATE INDEX storyboard_comments_by_board ON storyboard_comments (storyboard_id, created_at);
