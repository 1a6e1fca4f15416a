//! In-process workers: claim a job, hold its lease with heartbeats, run its app, record the
//! outcome exactly once. A background reaper requeues jobs whose worker vanished.

use std::sync::Arc;
use std::time::Duration;

use atelier_engine::{CancelToken, EngineError};
use tokio::sync::watch;

use crate::error::PlatformError;
use crate::now_ms;
use crate::platform::{Attempts, JobContext, Platform};
use crate::store::{Job, JobStatus, Outcome, Want};

/// Lease length; a worker that stops heartbeating loses its job after this long.
pub const LEASE_MS: i64 = 10_000;
/// Heartbeat (and cancel-flag poll) interval.
pub const HEARTBEAT: Duration = Duration::from_millis(1000);
/// Longest wait for more jobs to fill a batch; the first job's lease has no heartbeat yet.
pub const MAX_BATCH_WAIT: Duration = Duration::from_secs(2);

/// What a worker claims, asked before every claim so affinity follows the models it holds.
pub type WantFn = Arc<dyn Fn() -> Want + Send + Sync>;

/// How one worker loop runs.
#[derive(Clone)]
pub struct WorkerOptions {
    /// What it claims (default: any job of the platform's apps).
    pub want: WantFn,
    /// Turns true to drain: claim nothing more and return once the running jobs end.
    pub drain: watch::Receiver<bool>,
}

impl WorkerOptions {
    /// Any job of `platform`'s apps, never draining.
    pub fn any(platform: &Platform) -> Self {
        let want = Want::apps(&platform.app_names());
        // Nobody holds the sender: this worker never drains.
        Self::new(Arc::new(move || want.clone()), watch::channel(false).1)
    }

    /// Claims what `want` says; drains when `drain` turns true.
    pub fn new(want: WantFn, drain: watch::Receiver<bool>) -> Self {
        Self { want, drain }
    }
}

/// Runs one worker until `shutdown` turns true. On shutdown the running job is cancelled and
/// put back in the queue without spending an attempt; on drain it finishes first.
pub async fn run_worker(
    platform: Arc<Platform>,
    owner: String,
    opts: WorkerOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut drain = opts.drain.clone();
    tracing::info!(worker = %owner, apps = ?(opts.want)().apps, "worker started");
    loop {
        if *shutdown.borrow() || *drain.borrow() {
            break;
        }
        let want = (opts.want)();
        let asked = std::time::Instant::now();
        let claimed = platform
            .store
            .claim(&owner, &want, now_ms(), LEASE_MS)
            .await;
        let claim_ms = asked.elapsed().as_secs_f64() * 1000.0;
        match claimed {
            Ok(Some(job)) => {
                let jobs = gather(&platform, &owner, job).await;
                run_jobs(&platform, &owner, jobs, &shutdown, claim_ms).await
            }
            Ok(None) => {
                tokio::select! {
                    _ = platform.work.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => {}
                    _ = async {
                        // A closed channel means nobody can ask for a drain any more.
                        if drain.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    } => {}
                }
            }
            Err(e) => {
                tracing::error!(worker = %owner, "claiming failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::info!(worker = %owner, "worker stopped");
}

/// Claims up to `max_batch - 1` more queued jobs that can share `first`'s model calls. With a
/// batch wait, keeps claiming jobs as they arrive until the batch is full or the wait is over,
/// so requests that land a moment apart still share a batch.
async fn gather(platform: &Arc<Platform>, owner: &str, first: Job) -> Vec<Job> {
    let limits = &platform.config.limits;
    let max = limits.max_batch;
    let key = first.batch_key.clone();
    let mut jobs = vec![first];
    let (true, Some(key)) = (max > 1, key) else {
        return jobs;
    };
    let app = jobs[0].app.clone();
    let deadline = tokio::time::Instant::now() + limits.batch_wait.min(MAX_BATCH_WAIT);
    loop {
        // Registered before claiming, so a job queued in between still wakes us.
        let queued = platform.work.notified();
        match platform
            .store
            .claim_batch(owner, &app, &key, max - jobs.len(), now_ms(), LEASE_MS)
            .await
        {
            Ok(more) => jobs.extend(more),
            Err(e) => {
                tracing::warn!(worker = %owner, "claiming a batch failed: {e}");
                return jobs;
            }
        }
        if jobs.len() >= max || tokio::time::Instant::now() >= deadline {
            return jobs;
        }
        if tokio::time::timeout_at(deadline, queued).await.is_err() {
            // One last look: a job may have been queued just as the wait ended.
            if let Ok(more) = platform
                .store
                .claim_batch(owner, &app, &key, max - jobs.len(), now_ms(), LEASE_MS)
                .await
            {
                jobs.extend(more);
            }
            return jobs;
        }
    }
}

/// A claimed job while its app runs: cancel token, reporter, heartbeat.
struct Running {
    job: Job,
    cancel: CancelToken,
    reporter: crate::platform::Reporter,
    recorder: tokio::task::JoinHandle<()>,
    stop_hb: watch::Sender<bool>,
    hb: tokio::task::JoinHandle<Option<&'static str>>,
}

/// Runs jobs of one app claimed together: alone through [`crate::App::run`], several through
/// [`crate::App::run_batch`]; each keeps its own lease, progress, cancel and outcome.
async fn run_jobs(
    platform: &Arc<Platform>,
    owner: &str,
    jobs: Vec<Job>,
    shutdown: &watch::Receiver<bool>,
    claim_ms: f64,
) {
    let Some(app) = jobs.first().and_then(|j| platform.app(&j.app)) else {
        for job in &jobs {
            let outcome = Outcome::Failed {
                code: "unknown_model".into(),
                message: format!("no app {}", job.app),
                details: None,
            };
            let _ = platform
                .store
                .complete(&job.id, owner, &outcome, now_ms())
                .await;
            platform.finished(job, JobStatus::Failed);
        }
        return;
    };
    for job in jobs.iter().filter(|j| j.attempts > 1) {
        // An earlier attempt died or was released: what it stored is not this job's output.
        match platform
            .discard_files(job, Attempts::AllBut(job.attempts))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(job = %job.id, files = n, "deleted an earlier attempt's files"),
            Err(e) => {
                tracing::warn!(job = %job.id, "deleting an earlier attempt's files failed: {e}")
            }
        }
    }
    let n = jobs.len();
    let started = std::time::Instant::now();
    let running: Vec<Running> = jobs
        .into_iter()
        .map(|job| start(platform, owner, job, shutdown, n))
        .collect();
    let ctxs: Vec<JobContext> = running
        .iter()
        .map(|r| JobContext {
            job: r.job.clone(),
            cancel: r.cancel.clone(),
            reporter: r.reporter.clone(),
            platform: platform.clone(),
        })
        .collect();
    let mut results = match <[JobContext; 1]>::try_from(ctxs) {
        Ok([ctx]) => vec![app.run(ctx).await],
        Err(ctxs) => app.run_batch(ctxs).await,
    };
    results.truncate(n);
    while results.len() < n {
        results.push(Err(PlatformError::Corrupt(
            "the app returned fewer results than jobs".into(),
        )));
    }
    let predict_time = started.elapsed().as_secs_f64();
    for (r, result) in running.into_iter().zip(results) {
        finish(platform, owner, r, result, predict_time, n, claim_ms).await;
    }
}

/// Registers a claimed job's cancel token and starts its recorder and heartbeat.
fn start(
    platform: &Arc<Platform>,
    owner: &str,
    job: Job,
    shutdown: &watch::Receiver<bool>,
    batch: usize,
) -> Running {
    let id = job.id.clone();
    tracing::info!(job = %id, app = %job.app, attempt = job.attempts, batch, "job started");
    platform.notify(&id);
    let cancel = CancelToken::new();
    platform.register_cancel(&id, cancel.clone());
    let (reporter, recorder) = platform.reporter(&job, owner);

    // Heartbeats keep the lease and turn the cancel flag, a passed deadline or a shutdown into
    // the engine's cancel token.
    let (stop_hb, mut hb_stop) = watch::channel(false);
    let hb = {
        let platform = platform.clone();
        let owner = owner.to_owned();
        let cancel = cancel.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut why = None;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(HEARTBEAT) => {}
                    _ = hb_stop.changed() => return why,
                    _ = shutdown.changed() => {
                        if *shutdown.borrow() { cancel.cancel(); why = Some("shutdown"); }
                    }
                }
                match platform
                    .store
                    .heartbeat(&id, &owner, now_ms(), LEASE_MS)
                    .await
                {
                    Ok(h) if !h.still_ours => {
                        cancel.cancel();
                        return Some("lease lost");
                    }
                    Ok(h) if h.deadline_passed => {
                        cancel.cancel();
                        why = Some("deadline");
                    }
                    Ok(h) if h.cancel_requested => cancel.cancel(),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(job = %id, "heartbeat failed: {e}"),
                }
            }
        })
    };
    Running {
        job,
        cancel,
        reporter,
        recorder,
        stop_hb,
        hb,
    }
}

/// Stops a job's heartbeat and records its outcome exactly once.
async fn finish(
    platform: &Arc<Platform>,
    owner: &str,
    r: Running,
    result: Result<serde_json::Value, PlatformError>,
    predict_time: f64,
    batch: usize,
    claim_ms: f64,
) {
    let Running {
        job,
        cancel: _,
        reporter,
        recorder,
        stop_hb,
        hb,
    } = r;
    let id = job.id.clone();
    let _ = stop_hb.send(true);
    let why = hb.await.ok().flatten();
    drop(reporter);
    let _ = recorder.await;
    platform.unregister_cancel(&id);

    let outcome = match result {
        Ok(output) => Outcome::Succeeded {
            output,
            metrics: {
                // claim_ms: how long the claim that found this job (or its batch) took.
                let mut m = serde_json::json!({"predict_time": predict_time, "claim_ms": claim_ms});
                if batch > 1 {
                    m["batch_size"] = batch.into();
                }
                m
            },
        },
        Err(PlatformError::Engine(EngineError::Cancelled { .. })) => match why {
            Some("shutdown") => {
                // Put it back for the next start; this attempt does not count.
                discard_own(platform, &job).await;
                release(platform, &id, owner).await;
                return;
            }
            Some("lease lost") => {
                tracing::warn!(job = %id, "lease lost; result discarded");
                discard_own(platform, &job).await;
                return;
            }
            Some("deadline") => {
                reporter_log(platform, &id, "canceled: Cancel-After deadline passed").await;
                Outcome::Canceled
            }
            _ => Outcome::Canceled,
        },
        Err(PlatformError::InvalidInput { field, message }) => Outcome::Failed {
            code: "invalid_input".into(),
            message: format!("{field}: {message}"),
            details: Some(serde_json::json!({"field": field})),
        },
        Err(PlatformError::Conflict { field, message }) => Outcome::Failed {
            code: "conflict".into(),
            message: format!("{field}: {message}"),
            details: Some(serde_json::json!({"field": field})),
        },
        Err(PlatformError::ContentBlocked(b)) => Outcome::Failed {
            code: "content_blocked".into(),
            message: format!("content blocked ({}): {}", b.category, b.message),
            details: Some(serde_json::json!({"category": b.category, "details": b.details})),
        },
        Err(PlatformError::Failed { code, message }) => Outcome::Failed {
            code,
            message,
            details: None,
        },
        Err(PlatformError::Engine(e)) => Outcome::Failed {
            code: "engine_error".into(),
            message: e.to_string(),
            details: None,
        },
        Err(e) => Outcome::Failed {
            code: "internal".into(),
            message: e.to_string(),
            details: None,
        },
    };
    let status = match &outcome {
        Outcome::Succeeded { .. } => JobStatus::Succeeded,
        Outcome::Failed { .. } => JobStatus::Failed,
        Outcome::Canceled => JobStatus::Canceled,
        Outcome::Aborted { .. } => JobStatus::Aborted,
    };
    match platform
        .store
        .complete(&id, owner, &outcome, now_ms())
        .await
    {
        Ok(true) => {
            tracing::info!(job = %id, status = status.as_str(), predict_time, "job finished");
            platform.finished(&job, status);
        }
        Ok(false) => {
            tracing::warn!(job = %id, "lease lost before completion; result discarded");
            discard_own(platform, &job).await;
        }
        Err(e) => tracing::error!(job = %id, "recording the outcome failed: {e}"),
    }
}

/// Deletes the files this attempt stored, when its result will not be recorded (unless the
/// app resumes from them, which [`Platform::discard_files`] knows).
async fn discard_own(platform: &Arc<Platform>, job: &Job) {
    if let Err(e) = platform
        .discard_files(job, Attempts::Only(job.attempts))
        .await
    {
        tracing::warn!(job = %job.id, "deleting this attempt's files failed: {e}");
    }
}

async fn reporter_log(platform: &Arc<Platform>, id: &str, line: &str) {
    if let Err(e) = platform.store.append_log(id, line, now_ms()).await {
        tracing::warn!(job = %id, "log failed: {e}");
    }
}

async fn release(platform: &Arc<Platform>, id: &str, owner: &str) {
    match platform.store.release(id, owner, now_ms()).await {
        Ok(true) => tracing::info!(job = %id, "job returned to the queue for the next start"),
        Ok(false) => {}
        Err(e) => tracing::warn!(job = %id, "returning the job to the queue failed: {e}"),
    }
    platform.notify(id);
}

/// Periodically requeues jobs whose lease expired and cancels queued jobs past their deadline.
pub async fn run_reaper(platform: Arc<Platform>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match platform.store.recover_expired(now_ms()).await {
            Ok(r) => {
                for id in r.requeued.iter() {
                    tracing::warn!(job = %id, "worker lost; job requeued");
                    platform.notify(id);
                }
                for id in r.failed.iter() {
                    tracing::warn!(job = %id, "worker lost and no attempts left; job failed (interrupted)");
                    if let Ok(Some(j)) = platform.store.get_job_any(id).await {
                        platform.finished(&j, j.status);
                    }
                }
                if !r.requeued.is_empty() {
                    platform.work.notify_waiters();
                }
            }
            Err(e) => tracing::warn!("recovery failed: {e}"),
        }
        if let Ok(ids) = platform.store.expire_deadlines(now_ms()).await {
            for id in ids {
                if let Ok(Some(j)) = platform.store.get_job_any(&id).await {
                    platform.finished(&j, j.status);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
    }
}
