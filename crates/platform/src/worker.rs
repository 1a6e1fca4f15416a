//! In-process workers: claim a job, hold its lease with heartbeats, run its app, record the
//! outcome exactly once. A background reaper requeues jobs whose worker vanished.

use std::sync::Arc;
use std::time::Duration;

use atelier_engine::{CancelToken, EngineError};
use tokio::sync::watch;

use crate::error::PlatformError;
use crate::now_ms;
use crate::platform::{JobContext, Platform};
use crate::store::{JobStatus, Outcome};

/// Lease length; a worker that stops heartbeating loses its job after this long.
pub const LEASE_MS: i64 = 10_000;
/// Heartbeat (and cancel-flag poll) interval.
pub const HEARTBEAT: Duration = Duration::from_millis(1000);

/// Runs one worker until `shutdown` turns true. On shutdown the running job is cancelled and
/// put back in the queue without spending an attempt.
pub async fn run_worker(
    platform: Arc<Platform>,
    owner: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let apps = platform.app_names();
    tracing::info!(worker = %owner, ?apps, "worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        let claimed = platform
            .store
            .claim(&owner, &apps, now_ms(), LEASE_MS)
            .await;
        match claimed {
            Ok(Some(job)) => run_job(&platform, &owner, job, &mut shutdown).await,
            Ok(None) => {
                tokio::select! {
                    _ = platform.work.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => {}
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

async fn run_job(
    platform: &Arc<Platform>,
    owner: &str,
    job: crate::store::Job,
    shutdown: &mut watch::Receiver<bool>,
) {
    let id = job.id.clone();
    tracing::info!(job = %id, app = %job.app, attempt = job.attempts, "job started");
    platform.notify(&id);
    let Some(app) = platform.app(&job.app) else {
        let _ = platform
            .store
            .complete(
                &id,
                owner,
                &Outcome::Failed {
                    code: "unknown_model".into(),
                    message: format!("no app {}", job.app),
                    details: None,
                },
                now_ms(),
            )
            .await;
        platform.finished(&job, JobStatus::Failed);
        return;
    };
    let cancel = CancelToken::new();
    platform.register_cancel(&id, cancel.clone());
    let (reporter, recorder) = platform.reporter(&job, owner);
    let started = std::time::Instant::now();

    // Heartbeats keep the lease and turn the cancel flag, a passed deadline or a shutdown into
    // the engine's cancel token.
    let (stop_hb, mut hb_stop) = watch::channel(false);
    let hb = {
        let platform = platform.clone();
        let owner = owner.to_owned();
        let id = id.clone();
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

    let ctx = JobContext {
        job: job.clone(),
        cancel: cancel.clone(),
        reporter: reporter.clone(),
        platform: platform.clone(),
    };
    let result = app.run(ctx).await;
    let _ = stop_hb.send(true);
    let why = hb.await.ok().flatten();
    drop(reporter);
    let _ = recorder.await;
    platform.unregister_cancel(&id);

    let predict_time = started.elapsed().as_secs_f64();
    let outcome = match result {
        Ok(output) => Outcome::Succeeded {
            output,
            metrics: serde_json::json!({"predict_time": predict_time}),
        },
        Err(PlatformError::Engine(EngineError::Cancelled { .. })) => match why {
            Some("shutdown") => {
                // Put it back for the next start; this attempt does not count.
                release(platform, &id, owner).await;
                return;
            }
            Some("lease lost") => {
                tracing::warn!(job = %id, "lease lost; result discarded");
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
        Ok(false) => tracing::warn!(job = %id, "lease lost before completion; result discarded"),
        Err(e) => tracing::error!(job = %id, "recording the outcome failed: {e}"),
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
