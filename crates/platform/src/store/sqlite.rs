//! The embedded backend: one SQLite file in WAL mode.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::rows::{outcome_columns, parse_json};
use super::{
    AuditEntry, Event, FileRecord, Heartbeat, Job, JobPage, JobStatus, JobStore, ListQuery, NewJob,
    Outcome, Recovered, Tenant, Want, WorkerInfo,
};
use crate::error::{PlatformError, Result};

const JOB_COLUMNS: &str = "id, seq, tenant_id, app, status, input, output, error, logs, progress, metrics, \
    preview IS NOT NULL AS has_preview, priority, attempts, max_attempts, lease_owner, lease_expires_at, \
    cancel_requested, cancel_after, idempotency_key, webhook, webhook_events, batch_key, model, created_at, started_at, completed_at";

/// SQLite-backed [`JobStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

super::rows::row_mappers!(SqliteRow);

async fn insert_event<'e, E: sqlx::SqliteExecutor<'e>>(
    ex: E,
    job_id: &str,
    kind: &str,
    data: &Value,
    now: i64,
) -> Result<Event> {
    let row = sqlx::query(
        "INSERT INTO job_events (job_id, kind, data, created_at) VALUES (?, ?, ?, ?) \
         RETURNING id, job_id, kind, data, created_at",
    )
    .bind(job_id)
    .bind(kind)
    .bind(data.to_string())
    .bind(now)
    .fetch_one(ex)
    .await?;
    event_from_row(&row)
}

/// The `processing` status event of each job just claimed, in the claim's transaction.
async fn claimed_events(tx: &mut sqlx::SqliteConnection, jobs: &[Job], now: i64) -> Result<()> {
    for j in jobs {
        insert_event(
            &mut *tx,
            &j.id,
            "status",
            &json!({"status": "processing", "attempt": j.attempts}),
            now,
        )
        .await?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        // A filename, not a URL: `?`, `%` and `#` in folder names stay part of the path.
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        // The workflows keep their own tables in the same file with their own migrations
        // (versions from 1000 up); each migrator ignores the other's.
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool, for stores of the apps that share this database file.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn job_by_id(&self, id: &str) -> Result<Option<Job>> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job(&self, job: NewJob, now: i64) -> Result<(Job, bool)> {
        let id = crate::new_id();
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "INSERT OR IGNORE INTO jobs (id, seq, tenant_id, app, status, input, priority, max_attempts, cancel_after, \
             idempotency_key, webhook, webhook_events, batch_key, model, created_at) \
             VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?, ?, 'starting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&job.tenant_id)
        .bind(&job.app)
        .bind(job.input.to_string())
        .bind(job.priority)
        .bind(job.max_attempts.max(1))
        .bind(job.cancel_after)
        .bind(&job.idempotency_key)
        .bind(&job.webhook)
        .bind(job.webhook_events.as_ref().map(|e| json!(e).to_string()))
        .bind(&job.batch_key)
        .bind(&job.model)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let created = res.rows_affected() == 1;
        let row = if created {
            insert_event(&mut *tx, &id, "status", &json!({"status": "starting"}), now).await?;
            sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?
        } else {
            sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = ? AND idempotency_key = ?"
            ))
            .bind(&job.tenant_id)
            .bind(&job.idempotency_key)
            .fetch_one(&mut *tx)
            .await?
        };
        tx.commit().await?;
        Ok((job_from_row(&row)?, created))
    }

    async fn get_job(&self, tenant_id: &str, id: &str) -> Result<Option<Job>> {
        Ok(self
            .job_by_id(id)
            .await?
            .filter(|j| j.tenant_id == tenant_id))
    }

    async fn get_job_any(&self, id: &str) -> Result<Option<Job>> {
        self.job_by_id(id).await
    }

    async fn list_jobs(&self, q: &ListQuery) -> Result<JobPage> {
        let limit = q.limit.clamp(1, 100);
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = ? AND (? IS NULL OR status = ?) \
             AND (? IS NULL OR app = ?) AND (? IS NULL OR seq < ?) ORDER BY seq DESC LIMIT ?"
        ))
        .bind(&q.tenant_id)
        .bind(q.status.map(JobStatus::as_str))
        .bind(q.status.map(JobStatus::as_str))
        .bind(&q.app)
        .bind(&q.app)
        .bind(q.before_seq)
        .bind(q.before_seq)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        let next_cursor = if jobs.len() as i64 > limit {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| j.seq)
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    async fn claim(
        &self,
        owner: &str,
        want: &Want,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<Job>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = 'processing', lease_owner = ?1, lease_expires_at = ?2, heartbeat_at = ?3, \
             attempts = attempts + 1, started_at = COALESCE(started_at, ?3) \
             WHERE id = (SELECT id FROM jobs WHERE status = 'starting' AND cancel_requested = 0 \
                         AND app IN (SELECT value FROM json_each(?4)) \
                         AND (?5 IS NULL OR model IS NULL OR model IN (SELECT value FROM json_each(?5))) \
                         ORDER BY priority DESC, COALESCE(model IN (SELECT value FROM json_each(?6)), 0) DESC, \
                         seq ASC LIMIT 1) \
             AND status = 'starting' RETURNING {JOB_COLUMNS}"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(json!(want.apps).to_string())
        .bind(want.models.as_ref().map(|m| json!(m).to_string()))
        .bind(json!(want.prefer).to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let job = row.as_ref().map(job_from_row).transpose()?;
        claimed_events(&mut tx, job.as_slice(), now).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn claim_batch(
        &self,
        owner: &str,
        app: &str,
        batch_key: &str,
        limit: usize,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<Job>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "UPDATE jobs SET status = 'processing', lease_owner = ?1, lease_expires_at = ?2, heartbeat_at = ?3, \
             attempts = attempts + 1, started_at = COALESCE(started_at, ?3) \
             WHERE id IN (SELECT id FROM jobs WHERE app = ?4 AND batch_key = ?5 AND status = 'starting' \
                          AND cancel_requested = 0 ORDER BY priority DESC, seq ASC LIMIT ?6) \
             AND status = 'starting' RETURNING {JOB_COLUMNS}"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(app)
        .bind(batch_key)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        // RETURNING follows no ORDER BY: put them back in queue order.
        jobs.sort_by_key(|j| (-j.priority, j.seq));
        claimed_events(&mut tx, &jobs, now).await?;
        tx.commit().await?;
        Ok(jobs)
    }

    async fn heartbeat(&self, id: &str, owner: &str, now: i64, lease_ms: i64) -> Result<Heartbeat> {
        let row = sqlx::query(
            "UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ? WHERE id = ? AND lease_owner = ? \
             AND status = 'processing' RETURNING cancel_requested, cancel_after",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => {
                let deadline: Option<i64> = r.try_get("cancel_after")?;
                Heartbeat {
                    still_ours: true,
                    cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
                    deadline_passed: deadline.is_some_and(|d| d <= now),
                }
            }
            None => Heartbeat {
                still_ours: false,
                cancel_requested: false,
                deadline_passed: false,
            },
        })
    }

    async fn set_progress(
        &self,
        id: &str,
        owner: &str,
        progress: &Value,
        preview: Option<&[u8]>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET progress = ?, preview = COALESCE(?, preview) WHERE id = ? AND lease_owner = ? \
             AND status = 'processing'",
        )
        .bind(progress.to_string())
        .bind(preview)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn append_log(&self, id: &str, line: &str, now: i64) -> Result<Event> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE jobs SET logs = logs || ? WHERE id = ?")
            .bind(format!("{line}\n"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let ev = insert_event(&mut *tx, id, "logs", &json!(line), now).await?;
        tx.commit().await?;
        Ok(ev)
    }

    async fn complete(&self, id: &str, owner: &str, outcome: &Outcome, now: i64) -> Result<bool> {
        let (status, output, error, metrics) = outcome_columns(outcome);
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "UPDATE jobs SET status = ?, output = ?, error = ?, metrics = COALESCE(?, metrics), completed_at = ?, \
             lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ? AND status = 'processing'",
        )
        .bind(status)
        .bind(output.as_ref().map(Value::to_string))
        .bind(error.as_ref().map(Value::to_string))
        .bind(metrics.as_ref().map(Value::to_string))
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(o) = &output {
            insert_event(&mut *tx, id, "output", o, now).await?;
        }
        if let Some(e) = &error {
            insert_event(&mut *tx, id, "error", e, now).await?;
        }
        insert_event(&mut *tx, id, "done", &json!({"status": status}), now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn release(&self, id: &str, owner: &str, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "UPDATE jobs SET status = 'starting', lease_owner = NULL, lease_expires_at = NULL, progress = NULL, \
             attempts = MAX(attempts - 1, 0) WHERE id = ? AND lease_owner = ? AND status = 'processing'",
        )
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        let ok = res.rows_affected() == 1;
        if ok {
            insert_event(
                &mut *tx,
                id,
                "status",
                &json!({"status": "starting", "reason": "server shutting down"}),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ok)
    }

    async fn request_cancel(&self, tenant_id: &str, id: &str, now: i64) -> Result<Option<Job>> {
        let mut tx = self.pool.begin().await?;
        let queued = sqlx::query(
            "UPDATE jobs SET status = 'canceled', completed_at = ?, cancel_requested = 1 \
             WHERE id = ? AND tenant_id = ? AND status = 'starting'",
        )
        .bind(now)
        .bind(id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        if queued.rows_affected() == 1 {
            insert_event(&mut *tx, id, "done", &json!({"status": "canceled"}), now).await?;
        } else {
            let running = sqlx::query(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND tenant_id = ? AND status = 'processing' \
                 AND cancel_requested = 0",
            )
            .bind(id)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
            if running.rows_affected() == 1 {
                insert_event(&mut *tx, id, "logs", &json!("cancel requested"), now).await?;
            }
        }
        tx.commit().await?;
        self.get_job(tenant_id, id).await
    }

    async fn recover_expired(&self, now: i64) -> Result<Recovered> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, attempts, max_attempts, cancel_requested FROM jobs \
             WHERE status = 'processing' AND lease_expires_at < ?",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Recovered::default();
        for r in rows {
            let id: String = r.try_get("id")?;
            let attempts: i64 = r.try_get("attempts")?;
            let max: i64 = r.try_get("max_attempts")?;
            let cancel: i64 = r.try_get("cancel_requested")?;
            if cancel != 0 {
                sqlx::query(
                    "UPDATE jobs SET status = 'canceled', completed_at = ?, lease_owner = NULL, \
                     lease_expires_at = NULL WHERE id = ? AND status = 'processing'",
                )
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                insert_event(&mut *tx, &id, "done", &json!({"status": "canceled"}), now).await?;
                out.failed.push(id);
            } else if attempts < max {
                sqlx::query(
                    "UPDATE jobs SET status = 'starting', lease_owner = NULL, lease_expires_at = NULL, progress = NULL \
                     WHERE id = ? AND status = 'processing'",
                )
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                insert_event(
                    &mut *tx,
                    &id,
                    "status",
                    &json!({"status": "starting", "reason": "worker lost; retrying", "attempt": attempts}),
                    now,
                )
                .await?;
                out.requeued.push(id);
            } else {
                let err = json!({"code": "interrupted", "message": format!("the worker stopped during attempt {attempts} of {max}")});
                sqlx::query(
                    "UPDATE jobs SET status = 'failed', error = ?, completed_at = ?, lease_owner = NULL, \
                     lease_expires_at = NULL WHERE id = ? AND status = 'processing'",
                )
                .bind(err.to_string())
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                insert_event(&mut *tx, &id, "error", &err, now).await?;
                insert_event(&mut *tx, &id, "done", &json!({"status": "failed"}), now).await?;
                out.failed.push(id);
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn expire_deadlines(&self, now: i64) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "UPDATE jobs SET status = 'canceled', completed_at = ?1 WHERE status = 'starting' \
             AND cancel_after IS NOT NULL AND cancel_after <= ?1 RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = Vec::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            insert_event(
                &mut *tx,
                &id,
                "logs",
                &json!("canceled: Cancel-After deadline passed"),
                now,
            )
            .await?;
            insert_event(&mut *tx, &id, "done", &json!({"status": "canceled"}), now).await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn append_event(
        &self,
        job_id: &str,
        kind: &str,
        data: &Value,
        now: i64,
    ) -> Result<Event> {
        insert_event(&self.pool, job_id, kind, data, now).await
    }

    async fn events_after(&self, job_id: &str, after_id: i64) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT id, job_id, kind, data, created_at FROM job_events WHERE job_id = ? AND id > ? ORDER BY id",
        )
        .bind(job_id)
        .bind(after_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn queue_position(&self, job: &Job) -> Result<Option<i64>> {
        if job.status != JobStatus::Starting {
            return Ok(None);
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE status = 'starting' AND (priority > ?1 OR (priority = ?1 AND seq < ?2))",
        )
        .bind(job.priority)
        .bind(job.seq)
        .fetch_one(&self.pool)
        .await?;
        Ok(Some(n))
    }

    async fn queue_depth(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'starting'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn preview(&self, tenant_id: &str, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT preview FROM jobs WHERE id = ? AND tenant_id = ?")
                .bind(id)
                .bind(tenant_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    async fn put_file(&self, f: &FileRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO files (id, tenant_id, job_id, content_type, size, sha256, storage_key, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&f.id)
        .bind(&f.tenant_id)
        .bind(&f.job_id)
        .bind(&f.content_type)
        .bind(f.size)
        .bind(&f.sha256)
        .bind(&f.storage_key)
        .bind(f.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_file(&self, tenant_id: &str, id: &str) -> Result<Option<FileRecord>> {
        Ok(self
            .get_file_any(id)
            .await?
            .filter(|f| f.tenant_id == tenant_id))
    }

    async fn get_file_any(&self, id: &str) -> Result<Option<FileRecord>> {
        let row = sqlx::query("SELECT * FROM files WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(file_from_row).transpose()
    }

    async fn job_files(&self, job_id: &str) -> Result<Vec<FileRecord>> {
        let rows = sqlx::query("SELECT * FROM files WHERE job_id = ? ORDER BY created_at, id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(file_from_row).collect()
    }

    async fn delete_file(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM files WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn ensure_tenant(&self, name: &str, now: i64) -> Result<Tenant> {
        let secret = crate::auth::new_webhook_secret();
        sqlx::query("INSERT OR IGNORE INTO tenants (id, name, webhook_secret, created_at) VALUES (?, ?, ?, ?)")
            .bind(crate::new_id())
            .bind(name)
            .bind(secret)
            .bind(now)
            .execute(&self.pool)
            .await?;
        let r = sqlx::query("SELECT id, name, webhook_secret FROM tenants WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(Tenant {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            webhook_secret: r.try_get("webhook_secret")?,
        })
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let r = sqlx::query("SELECT id, name, webhook_secret FROM tenants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| {
            Ok(Tenant {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                webhook_secret: r.try_get("webhook_secret")?,
            })
        })
        .transpose()
    }

    async fn add_key(
        &self,
        key_id: &str,
        tenant_id: &str,
        secret_hash: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, tenant_id, secret_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(key_id)
        .bind(tenant_id)
        .bind(secret_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn key(&self, key_id: &str) -> Result<Option<(String, String)>> {
        let r = sqlx::query(
            "SELECT tenant_id, secret_hash FROM api_keys WHERE key_id = ? AND revoked_at IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| Ok((r.try_get("tenant_id")?, r.try_get("secret_hash")?)))
            .transpose()
    }

    async fn key_count(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn setting(&self, name: &str, init: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(init)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = ?1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn register_worker(&self, w: &WorkerInfo) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, device, memory_bytes, slots, apps, models, loaded, running, \
             draining, started_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, device = excluded.device, \
             memory_bytes = excluded.memory_bytes, slots = excluded.slots, apps = excluded.apps, \
             models = excluded.models, loaded = excluded.loaded, running = excluded.running, \
             started_at = excluded.started_at, last_seen = excluded.last_seen, stopped_at = NULL",
        )
        .bind(&w.id)
        .bind(&w.host)
        .bind(w.pid)
        .bind(&w.device)
        .bind(w.memory_bytes)
        .bind(w.slots)
        .bind(json!(w.apps).to_string())
        .bind(json!(w.models).to_string())
        .bind(json!(w.loaded).to_string())
        .bind(w.running)
        .bind(i64::from(w.draining))
        .bind(w.started_at)
        .bind(w.last_seen)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn worker_heartbeat(
        &self,
        id: &str,
        loaded: &[String],
        running: i64,
        now: i64,
    ) -> Result<Option<bool>> {
        let draining: Option<i64> = sqlx::query_scalar(
            "UPDATE workers SET loaded = ?, running = ?, last_seen = ? WHERE id = ? RETURNING draining",
        )
        .bind(json!(loaded).to_string())
        .bind(running)
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(draining.map(|d| d != 0))
    }

    async fn worker_stopped(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE workers SET stopped_at = ?1, last_seen = ?1, running = 0 WHERE id = ?2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_workers(&self) -> Result<Vec<WorkerInfo>> {
        let rows = sqlx::query("SELECT * FROM workers ORDER BY started_at DESC, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(worker_from_row).collect()
    }

    async fn set_draining(&self, id: &str, draining: bool) -> Result<bool> {
        let res = sqlx::query("UPDATE workers SET draining = ? WHERE id = ?")
            .bind(i64::from(draining))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn expire_leases(&self, owner: &str) -> Result<Vec<String>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = 0 WHERE status = 'processing' \
             AND (lease_owner = ?1 OR substr(lease_owner, 1, length(?1) + 1) = ?1 || '/') RETURNING id",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn audit(&self, e: &AuditEntry, now: i64) -> Result<AuditEntry> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (tenant_id, job_id, action, category, detail, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&e.tenant_id)
        .bind(&e.job_id)
        .bind(&e.action)
        .bind(&e.category)
        .bind(e.detail.to_string())
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(AuditEntry {
            id,
            created_at: now,
            ..e.clone()
        })
    }

    async fn list_audit(
        &self,
        tenant_id: &str,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, job_id, action, category, detail, created_at FROM audit_log \
             WHERE tenant_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(tenant_id)
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}
