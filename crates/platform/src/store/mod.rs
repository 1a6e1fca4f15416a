//! The job store: jobs, their append-only event log, files, tenants and API keys.
//!
//! One trait so the embedded SQLite backend and a PostgreSQL backend can be swapped; every
//! state transition that must not race (claiming, completing, cancelling) is a single
//! conditional statement in the backend.

pub mod postgres;
mod rows;
pub mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;

/// Job lifecycle, with Replicate's names so its clients understand them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Queued, waiting for a worker.
    Starting,
    /// Claimed by a worker and running.
    Processing,
    Succeeded,
    Failed,
    Canceled,
    /// Stopped by the system (deadline) rather than by the user.
    Aborted,
}

impl JobStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Aborted => "aborted",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "starting" => Self::Starting,
            "processing" => Self::Processing,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "aborted" => Self::Aborted,
            _ => return None,
        })
    }

    /// Whether the job can no longer change.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Canceled | Self::Aborted
        )
    }
}

/// A job as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub seq: i64,
    pub tenant_id: String,
    pub app: String,
    pub status: JobStatus,
    pub input: Value,
    pub output: Option<Value>,
    /// `{code, message}` when failed.
    pub error: Option<Value>,
    pub logs: String,
    /// Latest `{step, total, fraction, eta_s}`.
    pub progress: Option<Value>,
    pub metrics: Option<Value>,
    pub has_preview: bool,
    pub priority: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub cancel_requested: bool,
    pub cancel_after: Option<i64>,
    pub idempotency_key: Option<String>,
    pub webhook: Option<String>,
    pub webhook_events: Option<Vec<String>>,
    /// Jobs with equal keys may be claimed together and share model calls (set by the app).
    pub batch_key: Option<String>,
    /// The model the job needs, for worker affinity (`None`: any worker).
    pub model: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
}

/// What a client submits.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    pub tenant_id: String,
    pub app: String,
    pub input: Value,
    pub priority: i64,
    pub max_attempts: i64,
    pub cancel_after: Option<i64>,
    pub idempotency_key: Option<String>,
    pub webhook: Option<String>,
    pub webhook_events: Option<Vec<String>>,
    /// Filled by [`crate::Platform::submit`] from [`crate::App::batch_key`].
    pub batch_key: Option<String>,
    /// Filled by [`crate::Platform::submit`] from [`crate::App::model`].
    pub model: Option<String>,
}

/// What a worker can claim.
#[derive(Debug, Clone, Default)]
pub struct Want {
    /// Apps it runs.
    pub apps: Vec<String>,
    /// Models it can load; `None` for any. Jobs that name another model are left alone.
    pub models: Option<Vec<String>>,
    /// Models it has loaded: among equally urgent jobs, theirs come first.
    pub prefer: Vec<String>,
}

impl Want {
    /// Any job of these apps.
    pub fn apps(apps: &[String]) -> Self {
        Self {
            apps: apps.to_vec(),
            ..Self::default()
        }
    }
}

/// One entry of a job's event log.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Global, increasing; the SSE event id.
    pub id: i64,
    pub job_id: String,
    /// `status`, `progress`, `logs`, `output`, `error`, `done`, `webhook`.
    pub kind: String,
    pub data: Value,
    pub created_at: i64,
}

/// A page of jobs, newest first.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `before_seq` to get the next page.
    pub next_cursor: Option<i64>,
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub tenant_id: String,
    pub status: Option<JobStatus>,
    pub app: Option<String>,
    /// Only jobs with `seq` below this (cursor).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// How a job ended, as written by its worker.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded {
        output: Value,
        metrics: Value,
    },
    /// `details` is merged into the stored error object (e.g. a block's category and span).
    Failed {
        code: String,
        message: String,
        details: Option<Value>,
    },
    Canceled,
    Aborted {
        message: String,
    },
}

/// A stored artifact's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct FileRecord {
    pub id: String,
    pub tenant_id: String,
    pub job_id: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub created_at: i64,
}

/// One line of the safety audit log: every block, blur, flag and policy override.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub tenant_id: String,
    pub job_id: Option<String>,
    /// `blocked_prompt`, `flagged_prompt`, `blocked_image`, `blurred_image`,
    /// `flagged_image`, `override`.
    pub action: String,
    pub category: Option<String>,
    /// Matched terms, spans, scores, the policy layer.
    pub detail: Value,
    pub created_at: i64,
}

/// A tenant and its webhook signing secret.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub webhook_secret: String,
}

/// What recovery did with jobs whose worker vanished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub requeued: Vec<String>,
    pub failed: Vec<String>,
}

/// A change another process made to a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This job's event log grew.
    Events(String),
    /// A job of this app was queued (or requeued).
    Queued(String),
}

/// Storage of everything the platform persists.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Changes made by any process on this store, as they commit, for stores that several
    /// processes share; `None` for a store only this process writes (SQLite), where the
    /// platform's in-process notifications already say everything.
    async fn changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>> {
        Ok(None)
    }
    /// Inserts a job, or returns the existing one with the same tenant and idempotency key
    /// (`true` when newly created).
    async fn create_job(&self, job: NewJob, now: i64) -> Result<(Job, bool)>;
    /// A tenant's job; `None` for unknown ids and for other tenants' jobs alike.
    async fn get_job(&self, tenant_id: &str, id: &str) -> Result<Option<Job>>;
    /// A job regardless of tenant (workers, webhooks).
    async fn get_job_any(&self, id: &str) -> Result<Option<Job>>;
    /// Newest-first page of a tenant's jobs.
    async fn list_jobs(&self, q: &ListQuery) -> Result<JobPage>;
    /// Atomically claims the next queued job this worker wants (highest priority, then a model
    /// it has loaded, then queue order), leasing it to `owner` until `now + lease_ms`.
    async fn claim(&self, owner: &str, want: &Want, now: i64, lease_ms: i64)
        -> Result<Option<Job>>;
    /// Claims up to `limit` more queued jobs of `app` with this batch key, in queue order, under
    /// the same lease terms, so one worker can run them together with a job it already holds.
    async fn claim_batch(
        &self,
        owner: &str,
        app: &str,
        batch_key: &str,
        limit: usize,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<Job>>;
    /// Extends the lease; returns whether the lease is still ours and whether cancel was asked.
    async fn heartbeat(&self, id: &str, owner: &str, now: i64, lease_ms: i64) -> Result<Heartbeat>;
    /// Records progress (and optionally a preview image) for a job we hold.
    async fn set_progress(
        &self,
        id: &str,
        owner: &str,
        progress: &Value,
        preview: Option<&[u8]>,
    ) -> Result<()>;
    /// Appends to the job's log text and event log.
    async fn append_log(&self, id: &str, line: &str, now: i64) -> Result<Event>;
    /// Ends a job we hold. Returns `false` (and changes nothing) when the lease was lost, so an
    /// interrupted job's output is never recorded twice.
    async fn complete(&self, id: &str, owner: &str, outcome: &Outcome, now: i64) -> Result<bool>;
    /// Returns a job we hold to the queue without spending an attempt (graceful shutdown).
    async fn release(&self, id: &str, owner: &str, now: i64) -> Result<bool>;
    /// Cancels a job: a queued one at once (returns it terminal), a running one by flag.
    async fn request_cancel(&self, tenant_id: &str, id: &str, now: i64) -> Result<Option<Job>>;
    /// Requeues (or fails with `interrupted` when out of attempts) jobs whose lease expired.
    async fn recover_expired(&self, now: i64) -> Result<Recovered>;
    /// Cancels queued jobs whose `Cancel-After` deadline passed; returns their ids.
    async fn expire_deadlines(&self, now: i64) -> Result<Vec<String>>;
    /// Appends an event and returns it with its id.
    async fn append_event(&self, job_id: &str, kind: &str, data: &Value, now: i64)
        -> Result<Event>;
    /// Events of a job after `after_id`, oldest first.
    async fn events_after(&self, job_id: &str, after_id: i64) -> Result<Vec<Event>>;
    /// Queued jobs ahead of this one (0 = next), or `None` when it is not queued.
    async fn queue_position(&self, job: &Job) -> Result<Option<i64>>;
    /// Number of queued jobs.
    async fn queue_depth(&self) -> Result<i64>;
    /// The latest preview image of a job.
    async fn preview(&self, tenant_id: &str, id: &str) -> Result<Option<Vec<u8>>>;
    /// Records an artifact's metadata.
    async fn put_file(&self, f: &FileRecord) -> Result<()>;
    /// A tenant's file (`None` for other tenants' files).
    async fn get_file(&self, tenant_id: &str, id: &str) -> Result<Option<FileRecord>>;
    /// A file regardless of tenant (signed links).
    async fn get_file_any(&self, id: &str) -> Result<Option<FileRecord>>;
    /// Every file a job wrote, in any attempt (cleaning up after a dead worker).
    async fn job_files(&self, job_id: &str) -> Result<Vec<FileRecord>>;
    /// Forgets a file's record (its bytes are the caller's to delete).
    async fn delete_file(&self, id: &str) -> Result<()>;
    /// Creates a tenant (or returns the existing one of that name).
    async fn ensure_tenant(&self, name: &str, now: i64) -> Result<Tenant>;
    /// A tenant by id.
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>>;
    /// Stores a new API key's hash.
    async fn add_key(
        &self,
        key_id: &str,
        tenant_id: &str,
        secret_hash: &str,
        now: i64,
    ) -> Result<()>;
    /// The tenant and secret hash of an active key.
    async fn key(&self, key_id: &str) -> Result<Option<(String, String)>>;
    /// Number of active keys (0 means the server may run open on loopback).
    async fn key_count(&self) -> Result<i64>;
    /// A deployment-wide value: the stored one, or `init` stored now when there is none (the
    /// first node to ask decides, every other node reads the same).
    async fn setting(&self, name: &str, init: &str) -> Result<String>;
    /// Records (or re-records) a worker process at start.
    async fn register_worker(&self, w: &WorkerInfo) -> Result<()>;
    /// Refreshes a worker's liveness and load; returns whether it was asked to drain (`None`
    /// when no such worker is registered).
    async fn worker_heartbeat(
        &self,
        id: &str,
        loaded: &[String],
        running: i64,
        now: i64,
    ) -> Result<Option<bool>>;
    /// Marks a worker stopped (clean shutdown).
    async fn worker_stopped(&self, id: &str, now: i64) -> Result<()>;
    /// Every registered worker, newest first.
    async fn list_workers(&self) -> Result<Vec<WorkerInfo>>;
    /// Asks a worker to drain (or to resume); `false` when it is unknown.
    async fn set_draining(&self, id: &str, draining: bool) -> Result<bool>;
    /// Ends the leases of running jobs held by `owner` or by its slots (`owner/…`) so that
    /// [`JobStore::recover_expired`] requeues them now instead of at lease expiry; returns
    /// their ids.
    async fn expire_leases(&self, owner: &str) -> Result<Vec<String>>;
    /// Appends to the safety audit log (the `id` and `created_at` given are ignored).
    async fn audit(&self, entry: &AuditEntry, now: i64) -> Result<AuditEntry>;
    /// A tenant's audit entries, newest first, `limit` at most, before `before_id` if given.
    async fn list_audit(
        &self,
        tenant_id: &str,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>>;
}

/// A worker process as it advertises itself (`atelier worker`), for placement and operations.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// `cpu`, `cuda:0`, `metal`.
    pub device: String,
    /// Accelerator (or host) memory, when known.
    pub memory_bytes: Option<i64>,
    /// Jobs it runs at once.
    pub slots: i64,
    pub apps: Vec<String>,
    /// Models it can load.
    pub models: Vec<String>,
    /// Models it holds in memory now.
    pub loaded: Vec<String>,
    /// Jobs running now.
    pub running: i64,
    /// Asked to stop claiming and exit after its running jobs.
    pub draining: bool,
    pub started_at: i64,
    pub last_seen: i64,
    /// Set when it shut down cleanly.
    pub stopped_at: Option<i64>,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub still_ours: bool,
    pub cancel_requested: bool,
    /// The job's `Cancel-After` deadline has passed.
    pub deadline_passed: bool,
}
