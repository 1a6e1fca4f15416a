//! Where storyboards live: SQLite next to the platform's tables (migration 1003). A board row
//! holds the brief and the number of its current version; each version row holds the cuts,
//! its job's step records and its outputs, so any version can be shown, diffed or restored.

use atelier_platform::PlatformError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::db::{DbPool, DbRow};

use super::spec::{Brief, Cut};

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// A storyboard and its current version number.
#[derive(Debug, Clone, Serialize)]
pub struct Board {
    pub id: String,
    #[serde(skip)]
    pub tenant_id: String,
    pub brief: Brief,
    pub head: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One saved state of a board's cuts and what was rendered from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub storyboard_id: String,
    pub version: i64,
    pub parent: Option<i64>,
    /// What made this version: `{"kind": "create"}`, `{"kind": "edit", "ops": […]}`,
    /// `{"kind": "restore", "from": n}`.
    pub action: Value,
    pub title: String,
    pub cuts: Vec<Cut>,
    /// `pending`, `processing`, `ready`, `failed` or `superseded`.
    pub status: String,
    pub job_id: Option<String>,
    /// One record per finished step (`{"step", "status", "ms", "output" | "error"}`).
    pub steps: Vec<Value>,
    /// `sheet_png`, `sheet_pdf`, `animatic` (format → reference), `manifest`.
    pub outputs: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A review comment on one cut.
#[derive(Debug, Clone, Serialize)]
pub struct Comment {
    pub id: String,
    pub storyboard_id: String,
    pub cut_id: String,
    pub version: i64,
    pub author: String,
    pub text: String,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
}

/// Storyboards in the platform's database (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlStoryboards {
    pool: DbPool,
}

fn json_col<T: serde::de::DeserializeOwned>(r: &DbRow, col: &str) -> Result<T> {
    let s: String = r.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| PlatformError::Corrupt(format!("{col}: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| PlatformError::Corrupt(e.to_string()))
}

fn board(r: &DbRow) -> Result<Board> {
    Ok(Board {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        brief: json_col(r, "brief")?,
        head: r.try_get("head")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn version(r: &DbRow) -> Result<Version> {
    Ok(Version {
        storyboard_id: r.try_get("storyboard_id")?,
        version: r.try_get("version")?,
        parent: r.try_get("parent")?,
        action: json_col(r, "action")?,
        title: r.try_get("title")?,
        cuts: json_col(r, "cuts")?,
        status: r.try_get("status")?,
        job_id: r.try_get("job_id")?,
        steps: json_col(r, "steps")?,
        outputs: json_col(r, "outputs")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn comment(r: &DbRow) -> Result<Comment> {
    Ok(Comment {
        id: r.try_get("id")?,
        storyboard_id: r.try_get("storyboard_id")?,
        cut_id: r.try_get("cut_id")?,
        version: r.try_get("version")?,
        author: r.try_get("author")?,
        text: r.try_get("text")?,
        created_at: r.try_get("created_at")?,
        resolved_at: r.try_get("resolved_at")?,
        resolved_by: r.try_get("resolved_by")?,
    })
}

impl SqlStoryboards {
    /// Uses the workflows' database ([`crate::db`] opened and migrated it).
    pub async fn new(pool: DbPool) -> Result<Self> {
        Ok(Self { pool })
    }

    /// Writes a board and its first version together.
    pub async fn create(&self, b: &Board, v: &Version) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO storyboards (id, tenant_id, brief, head, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&b.id)
        .bind(&b.tenant_id)
        .bind(to_json(&b.brief)?)
        .bind(b.head)
        .bind(b.created_at)
        .bind(b.updated_at)
        .execute(&mut *tx)
        .await?;
        insert_version(&mut tx, v).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A tenant's board (not deleted).
    pub async fn board(&self, tenant: &str, id: &str) -> Result<Option<Board>> {
        sqlx::query(
            "SELECT * FROM storyboards WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(board)
        .transpose()
    }

    /// A board by id alone (the job runs under the tenant that made it).
    pub async fn board_by_id(&self, id: &str) -> Result<Option<Board>> {
        sqlx::query("SELECT * FROM storyboards WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(board)
            .transpose()
    }

    /// A tenant's boards, newest first.
    pub async fn list(&self, tenant: &str, limit: i64) -> Result<Vec<Board>> {
        sqlx::query(
            "SELECT * FROM storyboards WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(board)
        .collect()
    }

    /// Soft delete: the board disappears from every read; files stay until collected.
    pub async fn delete(&self, tenant: &str, id: &str, now: i64) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE storyboards SET deleted_at = $1 WHERE id = $2 AND tenant_id = $3 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(tenant)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Replaces the brief (the product photo is added after creation).
    pub async fn set_brief(&self, id: &str, brief: &Brief, now: i64) -> Result<()> {
        sqlx::query("UPDATE storyboards SET brief = $1, updated_at = $2 WHERE id = $3")
            .bind(to_json(brief)?)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One version.
    pub async fn version(&self, id: &str, n: i64) -> Result<Option<Version>> {
        sqlx::query("SELECT * FROM storyboard_versions WHERE storyboard_id = $1 AND version = $2")
            .bind(id)
            .bind(n)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(version)
            .transpose()
    }

    /// Every version, oldest first.
    pub async fn versions(&self, id: &str) -> Result<Vec<Version>> {
        sqlx::query("SELECT * FROM storyboard_versions WHERE storyboard_id = $1 ORDER BY version")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(version)
            .collect()
    }

    /// Saves `v` as the version after `expected_head` and makes it the head, unless another
    /// save got there first (then `false`, nothing written).
    pub async fn push_version(&self, expected_head: i64, v: &Version) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE storyboards SET head = $1, updated_at = $2 WHERE id = $3 AND head = $4 AND deleted_at IS NULL",
        )
        .bind(v.version)
        .bind(v.created_at)
        .bind(&v.storyboard_id)
        .bind(expected_head)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        insert_version(&mut tx, v).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records the job drawing a version.
    pub async fn set_job(&self, id: &str, n: i64, job: &str) -> Result<()> {
        sqlx::query(
            "UPDATE storyboard_versions SET job_id = $1 WHERE storyboard_id = $2 AND version = $3",
        )
        .bind(job)
        .bind(id)
        .bind(n)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Saves a version's progress (title, cuts, status, steps, outputs) as its job goes.
    pub async fn save_progress(&self, v: &Version) -> Result<()> {
        sqlx::query(
            "UPDATE storyboard_versions SET title = $1, cuts = $2, status = $3, steps = $4, outputs = $5, updated_at = $6 WHERE storyboard_id = $7 AND version = $8",
        )
        .bind(&v.title)
        .bind(to_json(&v.cuts)?)
        .bind(&v.status)
        .bind(to_json(&v.steps)?)
        .bind(to_json(&v.outputs)?)
        .bind(v.updated_at)
        .bind(&v.storyboard_id)
        .bind(v.version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds a comment.
    pub async fn add_comment(&self, c: &Comment) -> Result<()> {
        sqlx::query(
            "INSERT INTO storyboard_comments (id, storyboard_id, cut_id, version, author, text, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(&c.storyboard_id)
        .bind(&c.cut_id)
        .bind(c.version)
        .bind(&c.author)
        .bind(&c.text)
        .bind(c.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A board's comments, oldest first, optionally of one cut.
    pub async fn comments(&self, id: &str, cut: Option<&str>) -> Result<Vec<Comment>> {
        sqlx::query(
            "SELECT * FROM storyboard_comments WHERE storyboard_id = $1 AND ($2 IS NULL OR cut_id = $3) ORDER BY created_at, id",
        )
        .bind(id)
        .bind(cut)
        .bind(cut)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(comment)
        .collect()
    }

    /// Marks a comment resolved (with who and when) or open again.
    pub async fn resolve_comment(
        &self,
        board: &str,
        id: &str,
        by: Option<&str>,
        now: i64,
    ) -> Result<Option<Comment>> {
        sqlx::query(
            "UPDATE storyboard_comments SET resolved_at = $1, resolved_by = $2 WHERE id = $3 AND storyboard_id = $4",
        )
        .bind(by.map(|_| now))
        .bind(by)
        .bind(id)
        .bind(board)
        .execute(&self.pool)
        .await?;
        sqlx::query("SELECT * FROM storyboard_comments WHERE id = $1 AND storyboard_id = $2")
            .bind(id)
            .bind(board)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(comment)
            .transpose()
    }
}

async fn insert_version(tx: &mut sqlx::Transaction<'_, sqlx::Any>, v: &Version) -> Result<()> {
    sqlx::query(
        "INSERT INTO storyboard_versions (storyboard_id, version, parent, action, title, cuts, status, job_id, steps, outputs, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&v.storyboard_id)
    .bind(v.version)
    .bind(v.parent)
    .bind(to_json(&v.action)?)
    .bind(&v.title)
    .bind(to_json(&v.cuts)?)
    .bind(&v.status)
    .bind(&v.job_id)
    .bind(to_json(&v.steps)?)
    .bind(to_json(&v.outputs)?)
    .bind(v.created_at)
    .bind(v.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
