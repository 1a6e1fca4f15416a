//! Where the diary site's users, sessions, posts, comments, likes and reports live: SQLite next
//! to the platform's tables (migration 1002). Feeds read indexes only: the lounge walks
//! `(listed, created_at, id)`, Hot TOONs walks the last week of live comments through a partial
//! index on `created_at`.

use atelier_platform::PlatformError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::db::{DbPool, DbRow};

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// An account, as others may see it (no email, no hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    pub display_name: String,
    /// `atelier-file://` reference of an uploaded avatar; `None` uses the generated one.
    #[serde(skip)]
    pub avatar: Option<String>,
    /// `member` or `moderator`.
    pub role: String,
    pub created_at: i64,
}

impl User {
    /// Moderators hide reported content.
    pub fn is_moderator(&self) -> bool {
        self.role == "moderator"
    }
}

/// Who a session belongs to and its CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub expires_at: i64,
}

/// Who may read a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    /// Parses `public` / `private`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// A diary post and its comic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Post {
    pub id: String,
    pub user_id: String,
    pub author: String,
    pub text: String,
    /// The author's own panel captions (used when no language model is configured).
    pub captions: Option<Vec<String>>,
    pub style: Option<String>,
    pub visibility: Visibility,
    /// `pending`, `processing`, `ready` or `failed`.
    pub status: String,
    pub title: Option<String>,
    /// Recorded toon steps: `[{step, status, ms, at, output, error}]`.
    pub steps: Vec<Value>,
    pub grid_file: Option<String>,
    pub strip_file: Option<String>,
    pub job_id: Option<String>,
    /// Comic revision: bumped on every redraw; a job draws only its own revision.
    pub rev: i64,
    pub flagged: bool,
    pub hidden: bool,
    pub deleted_at: Option<i64>,
    pub comment_count: i64,
    pub like_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Visible in the lounge, hot and recommendations.
    pub listed: bool,
}

/// A comment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comment {
    pub id: String,
    pub post_id: String,
    pub user_id: String,
    pub author: String,
    pub text: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A report awaiting a moderator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub id: String,
    pub kind: String,
    pub target_id: String,
    pub user_id: String,
    pub reason: String,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    pub resolution: Option<String>,
}

/// What a post was reported for, or a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Post,
    Comment,
}

impl Target {
    /// Parses `post` / `comment`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "post" => Some(Self::Post),
            "comment" => Some(Self::Comment),
            _ => None,
        }
    }
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Comment => "comment",
        }
    }
}

/// The lounge's position: after the post with this creation time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// The opaque string clients pass back.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at, self.id)
    }
    /// `None` for anything this server did not hand out.
    pub fn decode(s: &str) -> Option<Self> {
        let (t, id) = s.split_once('_')?;
        let created_at = t.parse().ok()?;
        (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())).then(|| Self {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// Comments from the last this-many milliseconds count for Hot TOONs.
pub const HOT_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

/// The diary tables in the platform's database (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlDiary {
    pool: DbPool,
}

const POST_COLS: &str = "p.id, p.user_id, u.display_name AS author, p.text, p.captions, p.style, \
    p.visibility, p.status, p.title, p.steps, p.grid_file, p.strip_file, p.job_id, p.rev, p.flagged, \
    p.hidden, p.deleted_at, p.comment_count, p.like_count, p.created_at, p.updated_at, p.listed";

fn corrupt(what: &str, e: impl std::fmt::Display) -> PlatformError {
    PlatformError::Corrupt(format!("{what}: {e}"))
}

fn user_of(r: &DbRow) -> User {
    User {
        id: r.get("id"),
        display_name: r.get("display_name"),
        avatar: r.get("avatar"),
        role: r.get("role"),
        created_at: r.get("created_at"),
    }
}

fn post_of(r: &DbRow) -> Result<Post> {
    let captions: Option<String> = r.get("captions");
    let steps: String = r.get("steps");
    let vis: String = r.get("visibility");
    Ok(Post {
        id: r.get("id"),
        user_id: r.get("user_id"),
        author: r.get("author"),
        text: r.get("text"),
        captions: captions
            .map(|c| serde_json::from_str(&c).map_err(|e| corrupt("post captions", e)))
            .transpose()?,
        style: r.get("style"),
        visibility: Visibility::parse(&vis).ok_or_else(|| corrupt("post visibility", &vis))?,
        status: r.get("status"),
        title: r.get("title"),
        steps: serde_json::from_str(&steps).map_err(|e| corrupt("post steps", e))?,
        grid_file: r.get("grid_file"),
        strip_file: r.get("strip_file"),
        job_id: r.get("job_id"),
        rev: r.get("rev"),
        flagged: r.get::<i64, _>("flagged") != 0,
        hidden: r.get::<i64, _>("hidden") != 0,
        deleted_at: r.get("deleted_at"),
        comment_count: r.get("comment_count"),
        like_count: r.get("like_count"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        listed: r.get::<i64, _>("listed") != 0,
    })
}

fn comment_of(r: &DbRow) -> Comment {
    Comment {
        id: r.get("id"),
        post_id: r.get("post_id"),
        user_id: r.get("user_id"),
        author: r.get("author"),
        text: r.get("text"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

fn json(v: &impl Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| corrupt("json", e))
}

/// A post's fields as written.
#[derive(Debug, Clone)]
pub struct NewPost {
    pub id: String,
    pub user_id: String,
    pub text: String,
    pub captions: Option<Vec<String>>,
    pub style: Option<String>,
    pub visibility: Visibility,
    pub created_at: i64,
}

impl SqlDiary {
    /// Uses the workflows' database ([`crate::db`] opened and migrated it).
    pub async fn new(pool: DbPool) -> Result<Self> {
        Ok(Self { pool })
    }

    /// The pool (seeding tools write in bulk through it).
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Posts of every state (seeding refuses a non-empty site).
    pub async fn post_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM diary_posts")
            .fetch_one(&self.pool)
            .await?)
    }

    // --- accounts -------------------------------------------------------------------

    /// Creates an account; `None` when the email is taken.
    pub async fn create_user(
        &self,
        id: &str,
        email: &str,
        password_hash: &str,
        display_name: &str,
        now: i64,
    ) -> Result<Option<User>> {
        let r = sqlx::query(
            "INSERT INTO diary_users (id, email, password_hash, display_name, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT(email) DO NOTHING",
        )
        .bind(id)
        .bind(email)
        .bind(password_hash)
        .bind(display_name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        self.user(id).await
    }

    /// An account by id.
    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        Ok(sqlx::query("SELECT * FROM diary_users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_of))
    }

    /// An account and its password hash, by email.
    pub async fn credentials(&self, email: &str) -> Result<Option<(User, String)>> {
        Ok(sqlx::query("SELECT * FROM diary_users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| (user_of(&r), r.get("password_hash"))))
    }

    /// Changes a display name and/or avatar (`Some(None)` goes back to the generated one).
    pub async fn update_profile(
        &self,
        id: &str,
        display_name: Option<&str>,
        avatar: Option<Option<&str>>,
    ) -> Result<()> {
        if let Some(n) = display_name {
            sqlx::query("UPDATE diary_users SET display_name = $1 WHERE id = $2")
                .bind(n)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        if let Some(a) = avatar {
            sqlx::query("UPDATE diary_users SET avatar = $1 WHERE id = $2")
                .bind(a)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Grants or removes the moderator role; false when there is no such user.
    pub async fn set_role(&self, id: &str, role: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE diary_users SET role = $1 WHERE id = $2")
            .bind(role)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Stores a session under its token's hash.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO diary_sessions (token_hash, user_id, csrf, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        // Expired sessions of anyone are swept now and then.
        sqlx::query("DELETE FROM diary_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The live session for a token hash.
    pub async fn session(&self, token_hash: &str, now: i64) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT u.*, s.csrf, s.expires_at FROM diary_sessions s
             JOIN diary_users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Session {
            user: user_of(&r),
            csrf: r.get("csrf"),
            expires_at: r.get("expires_at"),
        }))
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM diary_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- posts ----------------------------------------------------------------------

    /// Writes a new post (status `pending`).
    pub async fn create_post(&self, p: &NewPost) -> Result<()> {
        sqlx::query(
            "INSERT INTO diary_posts (id, user_id, text, captions, style, visibility, status,
                                      created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
        )
        .bind(&p.id)
        .bind(&p.user_id)
        .bind(&p.text)
        .bind(p.captions.as_ref().map(json).transpose()?)
        .bind(&p.style)
        .bind(p.visibility.as_str())
        .bind(p.created_at)
        .bind(p.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A post, deleted ones included (callers decide who may see what).
    pub async fn post(&self, id: &str) -> Result<Option<Post>> {
        sqlx::query(&format!(
            "SELECT {POST_COLS} FROM diary_posts p JOIN diary_users u ON u.id = p.user_id
             WHERE p.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(post_of)
        .transpose()
    }

    /// Posts by id, in no particular order; missing ids are skipped.
    pub async fn posts(&self, ids: &[String]) -> Result<Vec<Post>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT {POST_COLS} FROM diary_posts p JOIN diary_users u ON u.id = p.user_id
             WHERE p.id IN ({marks})"
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(&self.pool).await?.iter().map(post_of).collect()
    }

    /// Changes the text (and captions/style) of a post and queues it for a new comic.
    pub async fn edit_post(
        &self,
        id: &str,
        text: Option<&str>,
        captions: Option<Option<&[String]>>,
        style: Option<Option<&str>>,
        visibility: Option<Visibility>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(t) = text {
            sqlx::query("UPDATE diary_posts SET text = $1 WHERE id = $2")
                .bind(t)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(c) = captions {
            sqlx::query("UPDATE diary_posts SET captions = $1 WHERE id = $2")
                .bind(c.map(|c| json(&c)).transpose()?)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(s) = style {
            sqlx::query("UPDATE diary_posts SET style = $1 WHERE id = $2")
                .bind(s)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(v) = visibility {
            sqlx::query("UPDATE diary_posts SET visibility = $1 WHERE id = $2")
                .bind(v.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE diary_posts SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Saves the toon's progress: status, steps, title, files, flag, job. A save for an
    /// older revision (a job an edit superseded) changes nothing.
    pub async fn save_toon(&self, p: &Post) -> Result<()> {
        sqlx::query(
            "UPDATE diary_posts SET status = $1, steps = $2, title = $3, grid_file = $4,
                    strip_file = $5, flagged = $6, job_id = $7, updated_at = $8
             WHERE id = $9 AND rev = $10",
        )
        .bind(&p.status)
        .bind(json(&p.steps)?)
        .bind(&p.title)
        .bind(&p.grid_file)
        .bind(&p.strip_file)
        .bind(p.flagged as i64)
        .bind(&p.job_id)
        .bind(p.updated_at)
        .bind(&p.id)
        .bind(p.rev)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a post for a new comic (status `pending`, steps cleared) and returns the new
    /// revision, written before the job is queued so the job can never miss it.
    pub async fn requeue(&self, id: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE diary_posts SET status = 'pending', steps = '[]', job_id = NULL, flagged = 0,
                    rev = rev + 1, updated_at = $1 WHERE id = $2 RETURNING rev",
        )
        .bind(now)
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records the job drawing a revision (unless a newer revision has been queued since).
    pub async fn set_job(&self, id: &str, rev: i64, job_id: &str) -> Result<()> {
        sqlx::query("UPDATE diary_posts SET job_id = $1 WHERE id = $2 AND rev = $3")
            .bind(job_id)
            .bind(id)
            .bind(rev)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Soft-deletes a post: kept for moderation, gone from every feed at once.
    pub async fn delete_post(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE diary_posts SET deleted_at = $1, updated_at = $2 WHERE id = $3")
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Hides or shows a post (moderators).
    pub async fn hide_post(&self, id: &str, hidden: bool) -> Result<bool> {
        let r = sqlx::query("UPDATE diary_posts SET hidden = $1 WHERE id = $2")
            .bind(hidden as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The newest listed posts after `cursor`, at most `limit`.
    pub async fn lounge(&self, cursor: Option<&Cursor>, limit: i64) -> Result<Vec<Post>> {
        // Two statements so each is a plain range on the lounge index (row values compare
        // like the index orders).
        let rows = match cursor {
            None => {
                sqlx::query(&format!(
                    "SELECT {POST_COLS} FROM diary_posts p JOIN diary_users u ON u.id = p.user_id
                     WHERE p.listed = 1 ORDER BY p.created_at DESC, p.id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some(c) => {
                sqlx::query(&format!(
                    "SELECT {POST_COLS} FROM diary_posts p JOIN diary_users u ON u.id = p.user_id
                     WHERE p.listed = 1 AND (p.created_at, p.id) < ($1, $2)
                     ORDER BY p.created_at DESC, p.id DESC LIMIT $3"
                ))
                .bind(c.created_at)
                .bind(&c.id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(post_of).collect()
    }

    /// Hot TOONs: the `n` listed posts with the most live comments since `since`, ties by
    /// the newer post. Reads only that window's comments (partial index).
    pub async fn hot(&self, since: i64, n: i64) -> Result<Vec<(Post, i64)>> {
        let sql = format!(
            "SELECT {POST_COLS}, h.n AS recent FROM (
                 SELECT post_id, COUNT(*) AS n FROM diary_comments
                 WHERE created_at >= $1 AND deleted_at IS NULL AND hidden = 0
                 GROUP BY post_id
             ) h
             JOIN diary_posts p ON p.id = h.post_id
             JOIN diary_users u ON u.id = p.user_id
             WHERE p.listed = 1
             ORDER BY h.n DESC, p.created_at DESC, p.id DESC LIMIT $2"
        );
        sqlx::query(&sql)
            .bind(since)
            .bind(n)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((post_of(r)?, r.get::<i64, _>("recent"))))
            .collect()
    }

    /// Every listed post's id and text, for building the recommendation index at start.
    pub async fn listed_texts(&self) -> Result<Vec<(String, String)>> {
        Ok(
            sqlx::query("SELECT id, text FROM diary_posts WHERE listed = 1")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| (r.get("id"), r.get("text")))
                .collect(),
        )
    }

    /// Other posts commented on by this post's commenters, with the number of shared
    /// commenters (bounded: the post's 50 latest commenters, their 50 latest posts each).
    pub async fn co_commented(
        &self,
        post_id: &str,
    ) -> Result<std::collections::HashMap<String, u32>> {
        let rows = sqlx::query(
            "WITH who AS (
                 SELECT user_id, MAX(created_at) AS t FROM diary_comments
                 WHERE post_id = $1 AND deleted_at IS NULL AND hidden = 0
                 GROUP BY user_id ORDER BY t DESC LIMIT 50
             )
             SELECT c.post_id AS post_id, COUNT(DISTINCT c.user_id) AS n
             FROM who JOIN diary_comments c ON c.user_id = who.user_id
             WHERE c.post_id != $1 AND c.deleted_at IS NULL AND c.hidden = 0
             GROUP BY c.post_id ORDER BY n DESC LIMIT 200",
        )
        .bind(post_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("post_id"), r.get::<i64, _>("n") as u32))
            .collect())
    }

    // --- comments and likes ---------------------------------------------------------

    /// Adds a comment and counts it on the post.
    pub async fn add_comment(
        &self,
        id: &str,
        post_id: &str,
        user_id: &str,
        text: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO diary_comments (id, post_id, user_id, text, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(post_id)
        .bind(user_id)
        .bind(text)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE diary_posts SET comment_count = comment_count + 1 WHERE id = $1")
            .bind(post_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A live comment (not deleted).
    pub async fn comment(&self, id: &str) -> Result<Option<(Comment, bool)>> {
        Ok(sqlx::query(
            "SELECT c.*, u.display_name AS author FROM diary_comments c
             JOIN diary_users u ON u.id = c.user_id WHERE c.id = $1 AND c.deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| (comment_of(&r), r.get::<i64, _>("hidden") != 0)))
    }

    /// Changes a comment's text.
    pub async fn edit_comment(&self, id: &str, text: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE diary_comments SET text = $1, updated_at = $2 WHERE id = $3")
            .bind(text)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Soft-deletes (or, for moderators, hides/shows) a comment, keeping the post's count of
    /// visible comments right.
    pub async fn remove_comment(
        &self,
        id: &str,
        delete_at: Option<i64>,
        hide: Option<bool>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(r) =
            sqlx::query("SELECT post_id, hidden, deleted_at FROM diary_comments WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        let post_id: String = r.get("post_id");
        let was_visible =
            r.get::<i64, _>("hidden") == 0 && r.get::<Option<i64>, _>("deleted_at").is_none();
        if let Some(t) = delete_at {
            sqlx::query(
                "UPDATE diary_comments SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
            )
            .bind(t)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(h) = hide {
            sqlx::query("UPDATE diary_comments SET hidden = $1 WHERE id = $2")
                .bind(h as i64)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query("SELECT hidden, deleted_at FROM diary_comments WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let visible =
            r.get::<i64, _>("hidden") == 0 && r.get::<Option<i64>, _>("deleted_at").is_none();
        let delta = visible as i64 - was_visible as i64;
        if delta != 0 {
            sqlx::query("UPDATE diary_posts SET comment_count = comment_count + $1 WHERE id = $2")
                .bind(delta)
                .bind(&post_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A post's visible comments, oldest first, after `after` (a creation time), at most `limit`.
    pub async fn comments(
        &self,
        post_id: &str,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Comment>> {
        Ok(sqlx::query(
            "SELECT c.*, u.display_name AS author FROM diary_comments c
             JOIN diary_users u ON u.id = c.user_id
             WHERE c.post_id = $1 AND c.deleted_at IS NULL AND c.hidden = 0 AND c.created_at > $2
             ORDER BY c.created_at, c.id LIMIT $3",
        )
        .bind(post_id)
        .bind(after.unwrap_or(i64::MIN))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(comment_of)
        .collect())
    }

    /// Likes (true) or unlikes a post; idempotent. Returns the post's like count.
    pub async fn like(&self, post_id: &str, user_id: &str, on: bool, now: i64) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let changed = if on {
            sqlx::query(
                "INSERT INTO diary_likes (post_id, user_id, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(post_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64
        } else {
            -(sqlx::query("DELETE FROM diary_likes WHERE post_id = $1 AND user_id = $2")
                .bind(post_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected() as i64)
        };
        let n: i64 = sqlx::query_scalar(
            "UPDATE diary_posts SET like_count = like_count + $1 WHERE id = $2 RETURNING like_count",
        )
        .bind(changed)
        .bind(post_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Whether a user likes a post.
    pub async fn likes(&self, post_id: &str, user_id: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM diary_likes WHERE post_id = $1 AND user_id = $2")
                .bind(post_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    // --- reports --------------------------------------------------------------------

    /// Files a report; a second report of the same thing by the same user is a no-op.
    pub async fn report(
        &self,
        id: &str,
        target: Target,
        target_id: &str,
        user_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO diary_reports (id, kind, target_id, user_id, reason, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(target.as_str())
        .bind(target_id)
        .bind(user_id)
        .bind(reason)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Open reports, oldest first.
    pub async fn open_reports(&self, limit: i64) -> Result<Vec<Report>> {
        Ok(sqlx::query(
            "SELECT * FROM diary_reports WHERE resolved_at IS NULL ORDER BY created_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Report {
            id: r.get("id"),
            kind: r.get("kind"),
            target_id: r.get("target_id"),
            user_id: r.get("user_id"),
            reason: r.get("reason"),
            created_at: r.get("created_at"),
            resolved_at: r.get("resolved_at"),
            resolution: r.get("resolution"),
        })
        .collect())
    }

    /// Closes every open report about a target.
    pub async fn resolve_reports(
        &self,
        target: Target,
        target_id: &str,
        resolution: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE diary_reports SET resolved_at = $1, resolution = $2
             WHERE kind = $3 AND target_id = $4 AND resolved_at IS NULL",
        )
        .bind(now)
        .bind(resolution)
        .bind(target.as_str())
        .bind(target_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
