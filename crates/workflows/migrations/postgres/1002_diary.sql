-- Diary toons: accounts, posts and their comics, comments, likes, reports.

CREATE TABLE diary_users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    -- `atelier-file://` reference of the avatar PNG; NULL draws the generated one.
    avatar        TEXT,
    role          TEXT NOT NULL DEFAULT 'member',
    created_at    BIGINT NOT NULL
);

-- Only a hash of the session token is stored: a leaked database opens no sessions.
CREATE TABLE diary_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES diary_users(id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX diary_sessions_user ON diary_sessions(user_id);

CREATE TABLE diary_posts (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES diary_users(id),
    text          TEXT NOT NULL,
    -- User-written panel captions (JSON array) when there is no language model.
    captions      TEXT,
    style         TEXT,
    visibility    TEXT NOT NULL,
    -- pending | processing | ready | failed
    status        TEXT NOT NULL,
    title         TEXT,
    -- JSON: the toon's recorded steps and their outputs.
    steps         TEXT NOT NULL DEFAULT '[]',
    grid_file     TEXT,
    strip_file    TEXT,
    job_id        TEXT,
    -- Bumped whenever the comic is queued again; a job draws only the revision it was queued for.
    rev           BIGINT NOT NULL DEFAULT 0,
    flagged       BIGINT NOT NULL DEFAULT 0,
    hidden        BIGINT NOT NULL DEFAULT 0,
    deleted_at    BIGINT,
    comment_count BIGINT NOT NULL DEFAULT 0,
    like_count    BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    -- 1 when anyone may see it in the lounge: public, ready, not flagged, hidden or deleted.
    -- Computed by the database on every change, so no code path can forget it; feeds read one index.
    listed        BIGINT GENERATED ALWAYS AS (CASE WHEN
        visibility = 'public' AND status = 'ready' AND flagged = 0 AND hidden = 0
        AND deleted_at IS NULL THEN 1 ELSE 0 END
    ) STORED
);
CREATE INDEX diary_posts_lounge ON diary_posts(listed, created_at DESC, id DESC);
CREATE INDEX diary_posts_user ON diary_posts(user_id, created_at DESC);

CREATE TABLE diary_comments (
    id         TEXT PRIMARY KEY,
    post_id    TEXT NOT NULL REFERENCES diary_posts(id),
    user_id    TEXT NOT NULL REFERENCES diary_users(id),
    text       TEXT NOT NULL,
    hidden     BIGINT NOT NULL DEFAULT 0,
    deleted_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX diary_comments_post ON diary_comments(post_id, created_at);
CREATE INDEX diary_comments_user ON diary_comments(user_id, post_id);
-- Hot TOONs read only the last week's live comments through this index.
CREATE INDEX diary_comments_recent ON diary_comments(created_at, post_id)
    WHERE deleted_at IS NULL AND hidden = 0;

CREATE TABLE diary_likes (
    post_id    TEXT NOT NULL REFERENCES diary_posts(id),
    user_id    TEXT NOT NULL REFERENCES diary_users(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE diary_reports (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES diary_users(id),
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT,
    resolution  TEXT,
    UNIQUE (kind, target_id, user_id)
);
CREATE INDEX diary_reports_open ON diary_reports(resolved_at, created_at);
