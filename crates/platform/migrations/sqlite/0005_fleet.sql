-- Model affinity: the model a job needs (set by its app at submit; NULL when any worker can
-- run it), so a worker never claims a job whose model it cannot load.
ALTER TABLE jobs ADD COLUMN model TEXT;
-- Worker processes (`atelier worker`) and what they can do; `atelier admin` reads and drains
-- them. JSON arrays are TEXT in both backends.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    device TEXT NOT NULL,
    memory_bytes BIGINT,
    slots BIGINT NOT NULL,
    apps TEXT NOT NULL,
    models TEXT NOT NULL,
    loaded TEXT NOT NULL,
    running BIGINT NOT NULL DEFAULT 0,
    draining BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    stopped_at BIGINT
);
-- Deployment-wide values every node must agree on (the signed-link secret).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
