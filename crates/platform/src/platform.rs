//! The platform handle shared by the server and the workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use atelier_engine::CancelToken;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, Notify};

use crate::artifacts::Artifacts;
use crate::error::{PlatformError, Result};
use crate::links::LinkSigner;
use crate::store::{Change, FileRecord, Job, JobStatus, JobStore, NewJob};
use crate::{now_ms, webhooks, FILE_REF};

/// How often a waiter re-reads a job even without a notification.
const REREAD: Duration = Duration::from_secs(5);

/// An application that runs as jobs (`atelier/text-to-image`, …).
#[async_trait]
pub trait App: Send + Sync + 'static {
    /// The model name clients use, `owner/name`.
    fn name(&self) -> &str;
    /// Validates and normalises an input (fills defaults such as a random seed, so retries
    /// reproduce the same result). Errors name the field as `input.<name>`.
    fn validate(&self, input: &Value) -> Result<Value>;
    /// JSON schema of the input, for `/openapi.json` and the UI.
    fn input_schema(&self) -> Value;
    /// Runs the job; returns its output (file references as [`FILE_REF`] strings).
    async fn run(&self, ctx: JobContext) -> Result<Value>;
    /// Attempts for this app's jobs when not the platform default: long jobs that resume where
    /// they stopped (batches) should survive more than one crash.
    fn max_attempts(&self) -> Option<i64> {
        None
    }
    /// Jobs whose validated inputs give the same key may be claimed together and run through
    /// [`App::run_batch`], sharing model calls (same model, size, step count). `None` (the
    /// default) runs every job alone.
    fn batch_key(&self, _input: &Value) -> Option<String> {
        None
    }
    /// Whether a retried job resumes from what earlier attempts stored (recorded steps that
    /// reference their files). Such files are kept; for other apps (the default) a retry
    /// deletes them first, so a finished job has exactly one set of outputs.
    fn resumes(&self) -> bool {
        false
    }
    /// The model a validated input needs, so only workers that can load it claim the job
    /// (`None`, the default: any worker).
    fn model(&self, _input: &Value) -> Option<String> {
        None
    }
    /// Runs jobs that share a batch key; one result per context, in order. Each job keeps its
    /// own progress, cancel and outcome. The default runs them one after another.
    async fn run_batch(&self, ctxs: Vec<JobContext>) -> Vec<Result<Value>> {
        let mut out = Vec::with_capacity(ctxs.len());
        for ctx in ctxs {
            out.push(self.run(ctx).await);
        }
        out
    }
}

/// Bounds on queueing and running.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Queued jobs beyond which submissions get 429.
    pub max_queue: i64,
    /// Attempts per job (a crash mid-job costs one).
    pub max_attempts: i64,
    /// Longest `Prefer: wait`.
    pub max_wait_s: u64,
    /// Most jobs a worker claims at once to run together when their app batches them
    /// ([`App::batch_key`]); 1 runs every job alone.
    pub max_batch: usize,
    /// How long a worker holding a batchable job waits for more to fill the batch (at most
    /// [`crate::worker::MAX_BATCH_WAIT`]); zero takes only what is already queued.
    pub batch_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_queue: 1000,
            max_attempts: 2,
            max_wait_s: 60,
            max_batch: 1,
            batch_wait: Duration::ZERO,
        }
    }
}

/// Platform settings.
#[derive(Debug, Clone, Default)]
pub struct PlatformConfig {
    pub limits: Limits,
    /// Let webhooks reach private and loopback addresses (tests, trusted networks).
    pub allow_private_webhooks: bool,
}

/// Messages from a running job to its recorder.
#[derive(Debug)]
enum Report {
    Progress {
        step: usize,
        total: usize,
        preview: Option<Vec<u8>>,
    },
    Log(String),
}

/// What a running job uses to report and store results. Cheap to clone; usable from blocking
/// threads (engine callbacks) through [`Reporter::progress_blocking`].
#[derive(Clone, Debug)]
pub struct Reporter {
    tx: mpsc::Sender<Report>,
}

impl Reporter {
    /// Reports progress from a blocking thread (never blocks the engine for long: drops the
    /// report when the recorder is far behind, since the next one supersedes it).
    pub fn progress_blocking(&self, step: usize, total: usize, preview: Option<Vec<u8>>) {
        let _ = self.tx.try_send(Report::Progress {
            step,
            total,
            preview,
        });
    }

    /// Adds a log line from a blocking thread.
    pub fn log_blocking(&self, line: impl Into<String>) {
        let _ = self.tx.blocking_send(Report::Log(line.into()));
    }

    /// Adds a log line.
    pub async fn log(&self, line: impl Into<String>) {
        let _ = self.tx.send(Report::Log(line.into())).await;
    }
}

/// Everything a running job gets.
#[derive(Clone)]
pub struct JobContext {
    pub job: Job,
    pub cancel: CancelToken,
    pub reporter: Reporter,
    pub platform: Arc<Platform>,
}

impl JobContext {
    /// Stores an output file and returns the reference to put in the output.
    pub async fn put_file(&self, content_type: &str, ext: &str, bytes: Vec<u8>) -> Result<String> {
        let rec = self
            .platform
            .artifacts
            .put(
                &self.job.tenant_id,
                Some(crate::artifacts::Owner {
                    job_id: &self.job.id,
                    attempt: self.job.attempts,
                }),
                content_type,
                ext,
                bytes,
                now_ms(),
            )
            .await?;
        self.platform.store.put_file(&rec).await?;
        Ok(format!("{FILE_REF}{}", rec.id))
    }

    /// Records a safety decision about this job in the tenant's audit log.
    pub async fn audit(&self, action: &str, category: Option<&str>, detail: Value) -> Result<()> {
        let e = crate::store::AuditEntry {
            id: 0,
            tenant_id: self.job.tenant_id.clone(),
            job_id: Some(self.job.id.clone()),
            action: action.into(),
            category: category.map(str::to_owned),
            detail,
            created_at: 0,
        };
        self.platform.store.audit(&e, now_ms()).await?;
        tracing::info!(job = %self.job.id, action, category, "safety audit");
        Ok(())
    }
}

/// Which attempts' files [`Platform::discard_files`] deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempts {
    /// Every attempt but this one.
    AllBut(i64),
    /// Only this attempt.
    Only(i64),
}

/// Turns a job into the JSON clients see (URLs, our additions); supplied by the server so
/// webhooks carry the same document as `GET /v1/predictions/{id}`.
pub type Renderer = Arc<dyn Fn(&Job) -> Value + Send + Sync>;

/// The shared platform state.
pub struct Platform {
    pub store: Arc<dyn JobStore>,
    pub artifacts: Artifacts,
    pub links: LinkSigner,
    pub config: PlatformConfig,
    apps: HashMap<String, Arc<dyn App>>,
    /// Wakes workers when a job is queued.
    pub work: Notify,
    /// Carries the id of every job whose event log grew.
    bus: broadcast::Sender<String>,
    cancels: Mutex<HashMap<String, CancelToken>>,
    renderer: Mutex<Option<Renderer>>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Platform {
    /// Assembles the platform.
    pub fn new(
        store: Arc<dyn JobStore>,
        artifacts: Artifacts,
        links: LinkSigner,
        config: PlatformConfig,
        apps: Vec<Arc<dyn App>>,
    ) -> Arc<Self> {
        let (bus, _) = broadcast::channel(4096);
        Arc::new(Self {
            store,
            artifacts,
            links,
            config,
            apps: apps.into_iter().map(|a| (a.name().to_owned(), a)).collect(),
            work: Notify::new(),
            bus,
            cancels: Mutex::new(HashMap::new()),
            renderer: Mutex::new(None),
        })
    }

    /// Deletes a job's files, records and bytes, written by the attempts `which` picks: at claim
    /// time everything a dead or released attempt left, after a lost lease this attempt's own.
    /// Returns the number of objects deleted. Keeps everything of jobs whose app resumes from
    /// earlier attempts ([`App::resumes`]): their recorded steps point at those files.
    pub async fn discard_files(&self, job: &Job, which: Attempts) -> Result<usize> {
        if self.app(&job.app).is_some_and(|a| a.resumes()) {
            return Ok(0);
        }
        let job_id = job.id.as_str();
        let hit = |key: &str| {
            let a = crate::artifacts::attempt_of(key, job_id);
            match which {
                Attempts::AllBut(keep) => a != Some(keep),
                Attempts::Only(only) => a == Some(only),
            }
        };
        let mut n = 0;
        for f in self.store.job_files(job_id).await? {
            if hit(&f.storage_key) {
                self.artifacts.delete(&f.storage_key).await?;
                self.store.delete_file(&f.id).await?;
                n += 1;
            }
        }
        // Bytes whose record was never written (the worker died in between).
        for key in self.artifacts.list(&format!("jobs/{job_id}/")).await? {
            if hit(&key) {
                self.artifacts.delete(&key).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Installs the job renderer used for webhook payloads.
    pub fn set_renderer(&self, r: Renderer) {
        if let Ok(mut g) = self.renderer.lock() {
            *g = Some(r);
        }
    }

    /// Jobs this process is running now.
    pub fn running_count(&self) -> usize {
        self.cancels.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Registered app names.
    pub fn app_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.apps.keys().cloned().collect();
        v.sort();
        v
    }

    /// An app by name.
    pub fn app(&self, name: &str) -> Option<Arc<dyn App>> {
        self.apps.get(name).cloned()
    }

    /// Subscribes to "this job has new events" notifications.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.bus.subscribe()
    }

    /// Follows the changes other processes make to a shared store: their jobs' events reach
    /// this node's streams and waiters, and work they queue wakes this node's workers. Does
    /// nothing on a store that only this process writes.
    pub async fn follow_store(self: &Arc<Self>) -> Result<()> {
        let Some(mut rx) = self.store.changes().await? else {
            return Ok(());
        };
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                let Some(p) = weak.upgrade() else { return };
                match change {
                    Change::Events(id) => p.notify(&id),
                    Change::Queued(app) if p.apps.contains_key(&app) => {
                        p.work.notify_waiters();
                        p.work.notify_one();
                    }
                    Change::Queued(_) => {}
                }
            }
        });
        Ok(())
    }

    /// Announces new events of a job to streams, waiters and webhooks.
    pub fn notify(self: &Arc<Self>, job_id: &str) {
        let _ = self.bus.send(job_id.to_owned());
    }

    /// Validates and queues a job (or returns the earlier one with the same idempotency key).
    pub async fn submit(self: &Arc<Self>, mut new: NewJob) -> Result<(Job, bool)> {
        let app = self
            .app(&new.app)
            .ok_or_else(|| PlatformError::UnknownApp(new.app.clone()))?;
        new.input = app.validate(&new.input)?;
        new.batch_key = app.batch_key(&new.input);
        new.model = app.model(&new.input);
        if let Some(url) = &new.webhook {
            webhooks::check_url(url, self.config.allow_private_webhooks)
                .map_err(|e| PlatformError::invalid("webhook", e.to_string()))?;
        }
        if let Some(events) = &new.webhook_events {
            if let Some(bad) = events
                .iter()
                .find(|e| !webhooks::EVENTS.contains(&e.as_str()))
            {
                return Err(PlatformError::invalid(
                    "webhook_events_filter",
                    format!("unknown event {bad:?}; expected start, output, logs, completed"),
                ));
            }
        }
        // An idempotent retry must not be refused for a full queue.
        let depth = self.store.queue_depth().await?;
        if depth >= self.config.limits.max_queue && new.idempotency_key.is_none() {
            return Err(PlatformError::QueueFull {
                depth,
                retry_after_s: 5,
            });
        }
        new.max_attempts = app
            .max_attempts()
            .unwrap_or(self.config.limits.max_attempts);
        let (job, created) = self.store.create_job(new, now_ms()).await?;
        if created {
            crate::metrics::metrics()
                .jobs_submitted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.work.notify_waiters();
            self.work.notify_one();
            self.notify(&job.id);
            self.spawn_webhook(&job, "start");
        }
        Ok((job, created))
    }

    /// Cancels a tenant's job; a running one stops within one denoising step.
    pub async fn cancel(self: &Arc<Self>, tenant_id: &str, id: &str) -> Result<Option<Job>> {
        let job = self.store.request_cancel(tenant_id, id, now_ms()).await?;
        if let Some(j) = &job {
            if let Ok(map) = self.cancels.lock() {
                if let Some(tok) = map.get(&j.id) {
                    tok.cancel();
                }
            }
            self.notify(&j.id);
            if j.status.is_terminal() {
                self.spawn_webhook(j, "completed");
            }
        }
        Ok(job)
    }

    /// Waits until the job is terminal or `timeout` passes; returns the job as it stands.
    pub async fn wait(
        self: &Arc<Self>,
        tenant_id: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<Job>> {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.store.get_job(tenant_id, id).await?;
            match &job {
                Some(j) if !j.status.is_terminal() => {}
                _ => return Ok(job),
            }
            loop {
                // Re-read every few seconds too: a notification from another process can be
                // lost while a shared store's feed reconnects.
                let until = deadline.min(tokio::time::Instant::now() + REREAD);
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Err(_) if until >= deadline => return self.store.get_job(tenant_id, id).await,
                    Err(_) => break,
                    Ok(Ok(jid)) if jid != id => continue,
                    Ok(_) => break,
                }
            }
        }
    }

    pub(crate) fn register_cancel(&self, id: &str, tok: CancelToken) {
        if let Ok(mut m) = self.cancels.lock() {
            m.insert(id.to_owned(), tok);
        }
    }

    pub(crate) fn unregister_cancel(&self, id: &str) {
        if let Ok(mut m) = self.cancels.lock() {
            m.remove(id);
        }
    }

    /// Creates a reporter for a job and the task that records its reports.
    pub(crate) fn reporter(
        self: &Arc<Self>,
        job: &Job,
        owner: &str,
    ) -> (Reporter, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Report>(64);
        let me = self.clone();
        let id = job.id.clone();
        let owner = owner.to_owned();
        let started = std::time::Instant::now();
        let mut last_step: Option<(usize, std::time::Instant)> = None;
        let webhook_logs = job.webhook.is_some();
        let job_for_hooks = job.clone();
        let task = tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let res = match r {
                    Report::Progress {
                        step,
                        total,
                        preview,
                    } => {
                        let now_i = std::time::Instant::now();
                        if let Some((s0, t0)) = last_step {
                            if step > s0 {
                                let per =
                                    now_i.duration_since(t0).as_secs_f64() / (step - s0) as f64;
                                crate::metrics::metrics().step_time.observe(per);
                            }
                        }
                        last_step = Some((step, now_i));
                        let elapsed = started.elapsed().as_secs_f64();
                        let fraction = if total == 0 {
                            0.0
                        } else {
                            step as f64 / total as f64
                        };
                        let eta = if step > 0 && total >= step {
                            Some(elapsed / step as f64 * (total - step) as f64)
                        } else {
                            None
                        };
                        let p = json!({"step": step, "total": total, "fraction": fraction, "eta_s": eta});
                        let mut data = p.clone();
                        if let Some(png) = &preview {
                            use base64::Engine;
                            data["preview"] = json!(format!(
                                "data:image/png;base64,{}",
                                base64::engine::general_purpose::STANDARD.encode(png)
                            ));
                        }
                        let r1 = me
                            .store
                            .set_progress(&id, &owner, &p, preview.as_deref())
                            .await;
                        match r1 {
                            Ok(()) => me
                                .store
                                .append_event(&id, "progress", &data, now_ms())
                                .await
                                .map(|_| ()),
                            Err(e) => Err(e),
                        }
                    }
                    Report::Log(line) => {
                        let r = me.store.append_log(&id, &line, now_ms()).await.map(|_| ());
                        if webhook_logs {
                            me.spawn_webhook(&job_for_hooks, "logs");
                        }
                        r
                    }
                };
                if let Err(e) = res {
                    tracing::warn!(job = %id, "recording progress failed: {e}");
                }
                me.notify(&id);
            }
        });
        (Reporter { tx }, task)
    }

    /// Sends `event` for a job in the background if the job asked for it.
    pub fn spawn_webhook(self: &Arc<Self>, job: &Job, event: &'static str) {
        let Some(url) = job.webhook.clone() else {
            return;
        };
        let wanted = job
            .webhook_events
            .as_ref()
            .is_none_or(|e| e.iter().any(|x| x == event));
        if !wanted {
            return;
        }
        let me = self.clone();
        let id = job.id.clone();
        let tenant = job.tenant_id.clone();
        tokio::spawn(async move {
            me.deliver_webhook(&tenant, &id, &url, event).await;
        });
    }

    async fn deliver_webhook(
        self: Arc<Self>,
        tenant: &str,
        id: &str,
        url: &str,
        event: &'static str,
    ) {
        let secret = match self.store.tenant(tenant).await {
            Ok(Some(t)) => t.webhook_secret,
            _ => return,
        };
        let msg_id = format!("msg_{}", crate::new_id());
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=5u32 {
            // Render at send time so the payload shows the job's latest state.
            let job = match self.store.get_job_any(id).await {
                Ok(Some(j)) => j,
                _ => return,
            };
            let renderer = self.renderer.lock().ok().and_then(|g| g.clone());
            let body = match renderer {
                Some(r) => r(&job),
                None => serde_json::to_value(&job).unwrap_or(Value::Null),
            }
            .to_string();
            let res = webhooks::deliver(
                url,
                self.config.allow_private_webhooks,
                &secret,
                &msg_id,
                &body,
            )
            .await;
            let (status, error, done) = match &res {
                Ok(s) if (200..300).contains(s) => (Some(*s), None, true),
                Ok(s) => (Some(*s), None, false),
                Err(e) => (None, Some(e.to_string()), false),
            };
            let rec = webhooks::Attempt {
                event: event.into(),
                attempt,
                status,
                error,
            };
            let data = serde_json::to_value(&rec).unwrap_or(Value::Null);
            let _ = self
                .store
                .append_event(id, "webhook", &data, now_ms())
                .await;
            if done {
                return;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }

    /// Looks up a file a signed link points at.
    pub async fn signed_file(&self, id: &str, exp: i64, sig: &str) -> Result<Option<FileRecord>> {
        if !self.links.verify(id, exp, sig, now_ms() / 1000) {
            return Ok(None);
        }
        self.store.get_file_any(id).await
    }

    /// Marks jobs terminal after `complete`: notify and webhooks.
    pub(crate) fn finished(self: &Arc<Self>, job: &Job, status: JobStatus) {
        use std::sync::atomic::Ordering::Relaxed;
        let m = crate::metrics::metrics();
        match status {
            JobStatus::Succeeded => m.jobs_succeeded.fetch_add(1, Relaxed),
            JobStatus::Failed => m.jobs_failed.fetch_add(1, Relaxed),
            _ => m.jobs_canceled.fetch_add(1, Relaxed),
        };
        m.job_latency
            .observe((now_ms() - job.created_at).max(0) as f64 / 1000.0);
        self.notify(&job.id);
        if status == JobStatus::Succeeded {
            self.spawn_webhook(job, "output");
        }
        self.spawn_webhook(job, "completed");
    }
}
