//! Where campaigns, tickets and batches live: one trait, the embedded SQLite backend next to
//! the platform's tables (its own migrations, versions from 1000 up).

use async_trait::async_trait;
use atelier_platform::PlatformError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::db::{DbPool, DbRow};

use super::campaign::{Campaign, CampaignSpec};
use super::steps::StepRecord;

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// What a customer (or a CSV row) asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketInput {
    /// The customer's name (printed only when `show_name`).
    pub name: String,
    /// Their lifestyle text, Korean or English. Never shown on the share page.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The customer chose to print their name on the ticket.
    #[serde(default)]
    pub show_name: bool,
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    /// Steps are running (or will resume after a restart).
    Processing,
    /// Published: the share page shows it (unless revoked).
    Ready,
    /// A step failed; see its record.
    Failed,
}

impl TicketStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "processing" => Self::Processing,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            _ => return Err(PlatformError::Corrupt(format!("ticket status {s:?}"))),
        })
    }
}

/// A ticket and every step's record.
#[derive(Debug, Clone, Serialize)]
pub struct TicketRecord {
    pub id: String,
    pub tenant_id: String,
    pub campaign_id: String,
    pub campaign_version: i64,
    /// Public, unguessable id of the share page `/t/{share_id}`.
    pub share_id: String,
    pub batch_id: Option<String>,
    pub line: Option<i64>,
    /// The job that last worked on it.
    pub job_id: Option<String>,
    pub status: TicketStatus,
    pub input: TicketInput,
    pub steps: Vec<StepRecord>,
    /// The published ticket image (`atelier-file://…`).
    pub file: Option<String>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TicketRecord {
    /// A new ticket, not yet run, under `campaign`'s current version, with a fresh share id.
    pub fn new(
        id: String,
        campaign: &Campaign,
        input: TicketInput,
        job_id: Option<String>,
    ) -> Self {
        let now = atelier_platform::now_ms();
        Self {
            id,
            tenant_id: campaign.tenant_id.clone(),
            campaign_id: campaign.id.clone(),
            campaign_version: campaign.version,
            share_id: super::app::new_share_id(),
            batch_id: None,
            line: None,
            job_id,
            status: TicketStatus::Processing,
            input,
            steps: Vec::new(),
            file: None,
            revoked_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A CSV upload's state.
#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub id: String,
    pub tenant_id: String,
    pub campaign_id: String,
    pub campaign_version: i64,
    pub digest: String,
    pub filename: Option<String>,
    /// How the file was decoded (`utf-8`, `utf-8-bom`, `cp949`).
    pub encoding: String,
    pub total: i64,
    pub job_id: Option<String>,
    /// `running`, `succeeded`, `canceled`.
    pub status: String,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// One CSV record's state.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    /// 1-based line of the record's first line in the file (the header is line 1).
    pub line: i64,
    /// `pending`, `done`, `failed`.
    pub status: String,
    pub input: Option<TicketInput>,
    pub ticket_id: Option<String>,
    /// `{code, reason, category?}` for failed rows.
    pub error: Option<Value>,
    pub finished_at: Option<i64>,
}

/// Counts of a batch's rows.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct RowCounts {
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
}

/// Storage of the photo-ticket workflow.
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Writes version 1 of a new campaign.
    async fn create_campaign(&self, c: &Campaign) -> Result<()>;
    /// Writes the next version of a campaign; `None` if the tenant has no such campaign.
    async fn update_campaign(
        &self,
        tenant_id: &str,
        id: &str,
        spec: &CampaignSpec,
        now: i64,
    ) -> Result<Option<Campaign>>;
    /// A campaign at `version` (latest when `None`); other tenants' campaigns are `None`.
    async fn campaign(
        &self,
        tenant_id: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<Option<Campaign>>;
    /// A tenant's campaigns (latest versions), newest first.
    async fn list_campaigns(&self, tenant_id: &str) -> Result<Vec<Campaign>>;
    /// Inserts or updates a ticket (same id).
    async fn put_ticket(&self, t: &TicketRecord) -> Result<()>;
    /// A tenant's ticket.
    async fn ticket(&self, tenant_id: &str, id: &str) -> Result<Option<TicketRecord>>;
    /// A ticket by id regardless of tenant (jobs).
    async fn ticket_any(&self, id: &str) -> Result<Option<TicketRecord>>;
    /// A ticket by its public share id.
    async fn ticket_by_share(&self, share_id: &str) -> Result<Option<TicketRecord>>;
    /// Revokes a tenant's ticket (idempotent); returns it.
    async fn revoke_ticket(
        &self,
        tenant_id: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<TicketRecord>>;
    /// A campaign's tickets, newest first, at most `limit`.
    async fn list_tickets(
        &self,
        tenant_id: &str,
        campaign_id: &str,
        limit: i64,
    ) -> Result<Vec<TicketRecord>>;
    /// Creates a batch with its rows, or returns the existing batch with the same digest
    /// (`false`).
    async fn create_batch(&self, b: &Batch, rows: &[BatchRow]) -> Result<(Batch, bool)>;
    /// Records the job that runs a batch.
    async fn set_batch_job(&self, id: &str, job_id: &str) -> Result<()>;
    /// A tenant's batch.
    async fn batch(&self, tenant_id: &str, id: &str) -> Result<Option<Batch>>;
    /// A batch regardless of tenant (jobs).
    async fn batch_any(&self, id: &str) -> Result<Option<Batch>>;
    /// Rows of a batch in line order; only those with `status` when given.
    async fn batch_rows(&self, id: &str, status: Option<&str>) -> Result<Vec<BatchRow>>;
    /// Counts of a batch's rows by status.
    async fn row_counts(&self, id: &str) -> Result<RowCounts>;
    /// Ends a row (`done` with its ticket, or `failed` with the error).
    async fn finish_row(
        &self,
        id: &str,
        line: i64,
        status: &str,
        ticket_id: Option<&str>,
        error: Option<&Value>,
        now: i64,
    ) -> Result<()>;
    /// Sets a batch's status (`running`, `succeeded`, `canceled`) and when it ended.
    async fn set_batch_status(
        &self,
        id: &str,
        status: &str,
        completed_at: Option<i64>,
    ) -> Result<()>;
    /// Tickets made by a batch, in line order.
    async fn batch_tickets(&self, id: &str) -> Result<Vec<TicketRecord>>;
}

/// [`TicketStore`] in the platform's database (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlTickets {
    pool: DbPool,
}

impl SqlTickets {
    /// Uses the workflows' database ([`crate::db`] opened and migrated it).
    pub async fn new(pool: DbPool) -> Result<Self> {
        Ok(Self { pool })
    }
}

fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| PlatformError::Corrupt(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| PlatformError::Corrupt(format!("{what}: {e}")))
}

fn campaign_from_row(r: &DbRow) -> Result<Campaign> {
    let spec: String = r.try_get("spec")?;
    Ok(Campaign {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        version: r.try_get("version")?,
        spec: parse("campaign spec", &spec)?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn ticket_from_row(r: &DbRow) -> Result<TicketRecord> {
    let input: String = r.try_get("input")?;
    let steps: String = r.try_get("steps")?;
    let status: String = r.try_get("status")?;
    Ok(TicketRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        campaign_id: r.try_get("campaign_id")?,
        campaign_version: r.try_get("campaign_version")?,
        share_id: r.try_get("share_id")?,
        batch_id: r.try_get("batch_id")?,
        line: r.try_get("line")?,
        job_id: r.try_get("job_id")?,
        status: TicketStatus::parse(&status)?,
        input: parse("ticket input", &input)?,
        steps: parse("ticket steps", &steps)?,
        file: r.try_get("file")?,
        revoked_at: r.try_get("revoked_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn batch_from_row(r: &DbRow) -> Result<Batch> {
    Ok(Batch {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        campaign_id: r.try_get("campaign_id")?,
        campaign_version: r.try_get("campaign_version")?,
        digest: r.try_get("digest")?,
        filename: r.try_get("filename")?,
        encoding: r.try_get("encoding")?,
        total: r.try_get("total")?,
        job_id: r.try_get("job_id")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        completed_at: r.try_get("completed_at")?,
    })
}

fn row_from_row(r: &DbRow) -> Result<BatchRow> {
    let input: Option<String> = r.try_get("input")?;
    let error: Option<String> = r.try_get("error")?;
    Ok(BatchRow {
        line: r.try_get("line")?,
        status: r.try_get("status")?,
        input: input.map(|s| parse("row input", &s)).transpose()?,
        ticket_id: r.try_get("ticket_id")?,
        error: error.map(|s| parse("row error", &s)).transpose()?,
        finished_at: r.try_get("finished_at")?,
    })
}

const CAMPAIGN_SELECT: &str = "SELECT c.id, c.tenant_id, v.version, v.spec, c.created_at, \
    v.created_at AS updated_at FROM campaigns c JOIN campaign_versions v ON v.campaign_id = c.id";

#[async_trait]
impl TicketStore for SqlTickets {
    async fn create_campaign(&self, c: &Campaign) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO campaigns (id, tenant_id, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(c.version)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO campaign_versions (campaign_id, version, spec, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&c.id)
        .bind(c.version)
        .bind(json(&c.spec)?)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_campaign(
        &self,
        tenant_id: &str,
        id: &str,
        spec: &CampaignSpec,
        now: i64,
    ) -> Result<Option<Campaign>> {
        let mut tx = self.pool.begin().await?;
        // One statement bumps the version, so two concurrent edits get two versions.
        let row = sqlx::query(
            "UPDATE campaigns SET version = version + 1, updated_at = $1 \
             WHERE id = $2 AND tenant_id = $3 RETURNING version",
        )
        .bind(now)
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let version: i64 = row.try_get("version")?;
        sqlx::query(
            "INSERT INTO campaign_versions (campaign_id, version, spec, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(version)
        .bind(json(spec)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.campaign(tenant_id, id, Some(version)).await
    }

    async fn campaign(
        &self,
        tenant_id: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<Option<Campaign>> {
        let row = match version {
            Some(v) => {
                sqlx::query(&format!(
                    "{CAMPAIGN_SELECT} WHERE c.id = $1 AND c.tenant_id = $2 AND v.version = $3"
                ))
                .bind(id)
                .bind(tenant_id)
                .bind(v)
                .fetch_optional(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                "{CAMPAIGN_SELECT} WHERE c.id = $1 AND c.tenant_id = $2 AND v.version = c.version"
            ))
                .bind(id)
                .bind(tenant_id)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.as_ref().map(campaign_from_row).transpose()
    }

    async fn list_campaigns(&self, tenant_id: &str) -> Result<Vec<Campaign>> {
        let rows = sqlx::query(&format!(
            "{CAMPAIGN_SELECT} WHERE c.tenant_id = $1 AND v.version = c.version ORDER BY c.created_at DESC, c.id DESC"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(campaign_from_row).collect()
    }

    async fn put_ticket(&self, t: &TicketRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO tickets (id, tenant_id, campaign_id, campaign_version, share_id, batch_id, line, \
             job_id, status, input, steps, file, revoked_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT(id) DO UPDATE SET job_id = excluded.job_id, status = excluded.status, \
             input = excluded.input, steps = excluded.steps, file = excluded.file, \
             updated_at = excluded.updated_at",
        )
        .bind(&t.id)
        .bind(&t.tenant_id)
        .bind(&t.campaign_id)
        .bind(t.campaign_version)
        .bind(&t.share_id)
        .bind(&t.batch_id)
        .bind(t.line)
        .bind(&t.job_id)
        .bind(t.status.as_str())
        .bind(json(&t.input)?)
        .bind(json(&t.steps)?)
        .bind(&t.file)
        .bind(t.revoked_at)
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn ticket(&self, tenant_id: &str, id: &str) -> Result<Option<TicketRecord>> {
        let row = sqlx::query("SELECT * FROM tickets WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    async fn ticket_any(&self, id: &str) -> Result<Option<TicketRecord>> {
        let row = sqlx::query("SELECT * FROM tickets WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    async fn ticket_by_share(&self, share_id: &str) -> Result<Option<TicketRecord>> {
        let row = sqlx::query("SELECT * FROM tickets WHERE share_id = $1")
            .bind(share_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    async fn revoke_ticket(
        &self,
        tenant_id: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<TicketRecord>> {
        sqlx::query(
            "UPDATE tickets SET revoked_at = COALESCE(revoked_at, $1), updated_at = $2 \
             WHERE id = $3 AND tenant_id = $4",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .bind(tenant_id)
        .execute(&self.pool)
        .await?;
        self.ticket(tenant_id, id).await
    }

    async fn list_tickets(
        &self,
        tenant_id: &str,
        campaign_id: &str,
        limit: i64,
    ) -> Result<Vec<TicketRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM tickets WHERE tenant_id = $1 AND campaign_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(tenant_id)
        .bind(campaign_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ticket_from_row).collect()
    }

    async fn create_batch(&self, b: &Batch, rows: &[BatchRow]) -> Result<(Batch, bool)> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO batches (id, tenant_id, campaign_id, campaign_version, digest, filename, \
             encoding, total, job_id, status, created_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT(tenant_id, campaign_id, digest) DO NOTHING",
        )
        .bind(&b.id)
        .bind(&b.tenant_id)
        .bind(&b.campaign_id)
        .bind(b.campaign_version)
        .bind(&b.digest)
        .bind(&b.filename)
        .bind(&b.encoding)
        .bind(b.total)
        .bind(&b.job_id)
        .bind(&b.status)
        .bind(b.created_at)
        .bind(b.completed_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            let row = sqlx::query(
                "SELECT * FROM batches WHERE tenant_id = $1 AND campaign_id = $2 AND digest = $3",
            )
            .bind(&b.tenant_id)
            .bind(&b.campaign_id)
            .bind(&b.digest)
            .fetch_one(&mut *tx)
            .await?;
            return Ok((batch_from_row(&row)?, false));
        }
        for r in rows {
            sqlx::query(
                "INSERT INTO batch_rows (batch_id, line, status, input, ticket_id, error, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&b.id)
            .bind(r.line)
            .bind(&r.status)
            .bind(r.input.as_ref().map(json).transpose()?)
            .bind(&r.ticket_id)
            .bind(r.error.as_ref().map(json).transpose()?)
            .bind(r.finished_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((b.clone(), true))
    }

    async fn set_batch_job(&self, id: &str, job_id: &str) -> Result<()> {
        sqlx::query("UPDATE batches SET job_id = $1 WHERE id = $2")
            .bind(job_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn batch(&self, tenant_id: &str, id: &str) -> Result<Option<Batch>> {
        let row = sqlx::query("SELECT * FROM batches WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(batch_from_row).transpose()
    }

    async fn batch_any(&self, id: &str) -> Result<Option<Batch>> {
        let row = sqlx::query("SELECT * FROM batches WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(batch_from_row).transpose()
    }

    async fn batch_rows(&self, id: &str, status: Option<&str>) -> Result<Vec<BatchRow>> {
        let rows =
            match status {
                Some(s) => sqlx::query(
                    "SELECT * FROM batch_rows WHERE batch_id = $1 AND status = $2 ORDER BY line",
                )
                .bind(id)
                .bind(s)
                .fetch_all(&self.pool)
                .await?,
                None => {
                    sqlx::query("SELECT * FROM batch_rows WHERE batch_id = $1 ORDER BY line")
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await?
                }
            };
        rows.iter().map(row_from_row).collect()
    }

    async fn row_counts(&self, id: &str) -> Result<RowCounts> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM batch_rows WHERE batch_id = $1 GROUP BY status",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut c = RowCounts::default();
        for r in rows {
            let s: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            match s.as_str() {
                "pending" => c.pending = n,
                "done" => c.done = n,
                "failed" => c.failed = n,
                other => return Err(PlatformError::Corrupt(format!("row status {other:?}"))),
            }
        }
        Ok(c)
    }

    async fn finish_row(
        &self,
        id: &str,
        line: i64,
        status: &str,
        ticket_id: Option<&str>,
        error: Option<&Value>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE batch_rows SET status = $1, ticket_id = $2, error = $3, finished_at = $4 \
             WHERE batch_id = $5 AND line = $6",
        )
        .bind(status)
        .bind(ticket_id)
        .bind(error.map(json).transpose()?)
        .bind(now)
        .bind(id)
        .bind(line)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_batch_status(
        &self,
        id: &str,
        status: &str,
        completed_at: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE batches SET status = $1, completed_at = $2 WHERE id = $3")
            .bind(status)
            .bind(completed_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn batch_tickets(&self, id: &str) -> Result<Vec<TicketRecord>> {
        let rows = sqlx::query("SELECT * FROM tickets WHERE batch_id = $1 ORDER BY line")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ticket_from_row).collect()
    }
}
