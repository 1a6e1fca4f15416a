//! Worker processes (`atelier worker`): the same platform as `serve`, without the API. A
//! worker registers itself (device, memory, models), claims only jobs whose model it can load
//! (those of models it holds first), heartbeats, drains when an operator asks and hands its
//! jobs back when it stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atelier_platform::store::{Want, WorkerInfo};
use atelier_platform::worker::{run_reaper, run_worker, WorkerOptions};
use atelier_platform::{now_ms, Platform};
use atelier_workflows::ModelRegistry;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::{open_node, routes, Node, ServeConfig, ServeError};

/// How often a worker refreshes its registry row (and learns it should drain).
pub const WORKER_HEARTBEAT: Duration = Duration::from_secs(2);

/// How long a worker trusts its list of installed models before reading the folders again
/// (models can be pulled while it runs; reading them on every claim would scan the disk).
const INSTALLED_TTL: Duration = Duration::from_secs(5);

/// Claim settings for a worker of `platform`: jobs of its apps whose model is installed here,
/// those of resident models first. `drain` stops the claiming (`None`: never drains).
pub fn worker_options(
    platform: &Platform,
    models: &Arc<ModelRegistry>,
    drain: Option<watch::Receiver<bool>>,
) -> WorkerOptions {
    let apps = platform.app_names();
    let models = models.clone();
    let installed: std::sync::Mutex<Option<(std::time::Instant, Vec<String>)>> =
        std::sync::Mutex::new(None);
    let want = Arc::new(move || {
        let names = match installed.lock() {
            Ok(mut cache) => match cache.as_ref() {
                Some((at, names)) if at.elapsed() < INSTALLED_TTL => names.clone(),
                _ => {
                    let names: Vec<String> = models.list().into_iter().map(|m| m.name).collect();
                    *cache = Some((std::time::Instant::now(), names.clone()));
                    names
                }
            },
            Err(_) => models.list().into_iter().map(|m| m.name).collect(),
        };
        Want {
            apps: apps.clone(),
            models: Some(names),
            prefer: models.resident(),
        }
    });
    // Nobody holds the sender of a worker that never drains.
    let drain = drain.unwrap_or_else(|| watch::channel(false).1);
    WorkerOptions::new(want, drain)
}

/// `atelier worker` settings beyond the node's.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    /// Stable id (e.g. the host name under systemd): a restart under the same id hands the
    /// jobs its previous run held back to the queue at once. Default: host and a random part.
    pub id: Option<String>,
    /// Serve `/healthz` and `/metrics` on `ServeConfig::listen`.
    pub http: bool,
}

/// Runs a worker process until SIGINT/SIGTERM (running jobs go back to the queue) or until an
/// operator drains it (running jobs finish first).
pub async fn run_worker_node(cfg: ServeConfig, wc: WorkerConfig) -> Result<(), ServeError> {
    let Node {
        platform,
        state,
        models,
        store,
    } = open_node(&cfg).await?;
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let id = wc
        .id
        .clone()
        .unwrap_or_else(|| format!("{host}-{}", &atelier_platform::new_id()[..8]));
    if id.is_empty() || id.contains('/') {
        return Err(ServeError::Platform(
            atelier_platform::PlatformError::invalid("id", "must be non-empty and contain no '/'"),
        ));
    }
    let slots = cfg.workers.max(1);

    // Jobs an earlier run under this id held are not running any more: requeue them now
    // rather than when their leases run out.
    let stale = store.expire_leases(&id).await?;
    if !stale.is_empty() {
        let r = store.recover_expired(now_ms()).await?;
        tracing::warn!(worker = %id, requeued = r.requeued.len(), failed = r.failed.len(), "jobs of this worker's previous run handed back");
    }
    let info = |now: i64| WorkerInfo {
        id: id.clone(),
        host: host.clone(),
        pid: i64::from(std::process::id()),
        device: device_name(&cfg.load),
        memory_bytes: memory_bytes(),
        slots: slots as i64,
        apps: platform.app_names(),
        models: models.list().into_iter().map(|m| m.name).collect(),
        loaded: models.resident(),
        running: platform.running_count() as i64,
        draining: false,
        started_at: now,
        last_seen: now,
        stopped_at: None,
    };
    store.register_worker(&info(now_ms())).await?;
    platform.follow_store().await?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut workers = Vec::new();
    for slot in 0..slots {
        workers.push(tokio::spawn(run_worker(
            platform.clone(),
            format!("{id}/{slot}"),
            worker_options(&platform, &models, Some(drain_rx.clone())),
            shutdown_rx.clone(),
        )));
    }
    let reaper = tokio::spawn(run_reaper(platform.clone(), shutdown_rx.clone()));
    let beat = {
        let (store, platform, models, id) =
            (store.clone(), platform.clone(), models.clone(), id.clone());
        let mut shutdown = shutdown_rx.clone();
        let info = info(now_ms());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(WORKER_HEARTBEAT) => {}
                    _ = shutdown.changed() => return,
                }
                let running = platform.running_count() as i64;
                match store
                    .worker_heartbeat(&id, &models.resident(), running, now_ms())
                    .await
                {
                    Ok(Some(true)) => {
                        if !*drain_tx.borrow() {
                            tracing::info!(worker = %id, running, "draining: no new jobs; exiting when the running ones end");
                        }
                        let _ = drain_tx.send(true);
                    }
                    Ok(Some(false)) => {}
                    // Someone removed our row: say who we are again.
                    Ok(None) => {
                        let now = now_ms();
                        let again = WorkerInfo {
                            loaded: models.resident(),
                            running,
                            started_at: now,
                            last_seen: now,
                            ..info.clone()
                        };
                        if let Err(e) = store.register_worker(&again).await {
                            tracing::warn!(worker = %id, "re-registering failed: {e}");
                        }
                    }
                    Err(e) => tracing::warn!(worker = %id, "worker heartbeat failed: {e}"),
                }
            }
        })
    };
    let http = if wc.http {
        let addr: SocketAddr = cfg
            .listen
            .parse()
            .map_err(|_| ServeError::Listen(cfg.listen.clone()))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Io {
                path: cfg.listen.clone(),
                source: e,
            })?;
        let app = Router::new()
            .route("/healthz", get(routes::ops::healthz))
            .route("/metrics", get(routes::ops::metrics))
            .with_state(state);
        let mut stop = shutdown_rx.clone();
        Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
        }))
    } else {
        None
    };
    tracing::info!(worker = %id, slots, device = %info(0).device, models = ?info(0).models, "atelier worker running");
    eprintln!("atelier worker {id} running {slots} slot(s)");

    let mut all_done = tokio::spawn(async move {
        for w in workers {
            let _ = w.await;
        }
    });
    tokio::select! {
        _ = crate::shutdown_signal() => {
            tracing::info!(worker = %id, "stopping: running jobs return to the queue");
            let _ = shutdown_tx.send(true);
            let _ = (&mut all_done).await;
        }
        _ = &mut all_done => tracing::info!(worker = %id, "drained"),
    }
    let _ = shutdown_tx.send(true);
    let _ = beat.await;
    let _ = reaper.await;
    if let Some(h) = http {
        let _ = h.await;
    }
    store.worker_stopped(&id, now_ms()).await?;
    Ok(())
}

fn device_name(load: &atelier_engine::LoadOptions) -> String {
    let d = &load.device;
    if d.is_cuda() {
        "cuda".into()
    } else if d.is_metal() {
        "metal".into()
    } else {
        "cpu".into()
    }
}

/// Host memory (Linux); accelerator memory is not read yet.
fn memory_bytes() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
