//! One conformance suite for every [`JobStore`] backend: each case runs on SQLite (a fresh file)
//! and on PostgreSQL (a fresh schema on `ATELIER_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Without a reachable PostgreSQL the PostgreSQL
//! cases say they were skipped; under `CI` they fail.

use std::sync::Arc;

use atelier_platform::store::postgres::PgStore;
use atelier_platform::store::sqlite::SqliteStore;
use atelier_platform::store::{
    AuditEntry, FileRecord, ListQuery, NewJob, Outcome, Want, WorkerInfo,
};
use atelier_platform::{JobStatus, JobStore};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;

/// A backend under test and what must outlive it.
struct Backend {
    store: Arc<dyn JobStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { url: String, schema: String },
}

fn pg_url() -> String {
    std::env::var("ATELIER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn sqlite() -> (Backend, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    (
        Backend {
            store: Arc::new(s.clone()),
            cleanup: Cleanup::Sqlite(dir),
        },
        s,
    )
}

/// A store in a schema of its own, so cases run in parallel on one database.
async fn postgres() -> Option<(Backend, PgStore)> {
    let url = pg_url();
    let opts: PgConnectOptions = url.parse().unwrap();
    let mut conn = match opts.connect().await {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL at {url} is needed under CI: {e}"
            );
            eprintln!("skipped: no PostgreSQL at {url} ({e})");
            return None;
        }
    };
    let schema = format!("conformance_{}", atelier_platform::new_id());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let s = PgStore::connect_with(opts.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    Some((
        Backend {
            store: Arc::new(s.clone()),
            cleanup: Cleanup::Postgres { url, schema },
        },
        s,
    ))
}

impl Backend {
    async fn close(self) {
        if let Cleanup::Postgres { url, schema } = &self.cleanup {
            drop(self.store);
            let opts: PgConnectOptions = url.parse().unwrap();
            let mut conn = opts.connect().await.unwrap();
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// Runs each case on both backends.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (b, _) = super::sqlite().await;
                    super::$case(b.store.clone()).await;
                    b.close().await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some((b, _)) = super::postgres().await else { return };
                    super::$case(b.store.clone()).await;
                    b.close().await;
                }
            )*
        }
    };
}

conformance!(
    jobs_are_per_tenant_and_idempotent,
    claims_follow_priority_then_queue_order,
    claim_batch_takes_the_same_key_in_queue_order,
    outcomes_are_recorded_once_with_their_events,
    release_requeues_without_spending_an_attempt,
    cancel_ends_queued_jobs_and_flags_running_ones,
    expired_leases_requeue_then_fail,
    deadlines_cancel_queued_jobs,
    progress_logs_and_previews,
    listing_pages_newest_first,
    files_keys_and_audit,
    concurrent_claims_never_share_a_job,
    claims_respect_model_affinity,
    workers_register_heartbeat_and_drain,
    expired_leases_of_a_worker_requeue_at_once,
    job_files_are_listed_and_forgotten,
);

fn model_job(model: Option<&str>) -> NewJob {
    NewJob {
        model: model.map(str::to_owned),
        ..job("t", "x/y")
    }
}

async fn claims_respect_model_affinity(s: Arc<dyn JobStore>) {
    let a = s.create_job(model_job(Some("a")), T0).await.unwrap().0;
    let b = s.create_job(model_job(Some("b")), T0).await.unwrap().0;
    let any = s.create_job(model_job(None), T0).await.unwrap().0;
    assert_eq!(
        s.get_job_any(&a.id)
            .await
            .unwrap()
            .unwrap()
            .model
            .as_deref(),
        Some("a")
    );
    let only_b = Want {
        models: Some(vec!["b".into()]),
        ..apps()
    };
    // Never a job whose model it cannot load; a loaded model's job before older others.
    let first = s.claim("wb", &only_b, T0, LEASE).await.unwrap().unwrap();
    assert_eq!(first.id, b.id);
    let second = s.claim("wb", &only_b, T0, LEASE).await.unwrap().unwrap();
    assert_eq!(
        second.id, any.id,
        "a job without a model goes to any worker"
    );
    assert!(s.claim("wb", &only_b, T0, LEASE).await.unwrap().is_none());
    let c = s.create_job(model_job(Some("c")), T0).await.unwrap().0;
    let prefers_c = Want {
        prefer: vec!["c".into()],
        ..apps()
    };
    let third = s.claim("wc", &prefers_c, T0, LEASE).await.unwrap().unwrap();
    assert_eq!(
        third.id, c.id,
        "its loaded model's job comes before the older one"
    );
    let last = s.claim("wc", &prefers_c, T0, LEASE).await.unwrap().unwrap();
    assert_eq!(last.id, a.id);
}

async fn workers_register_heartbeat_and_drain(s: Arc<dyn JobStore>) {
    let w = WorkerInfo {
        id: "w-1".into(),
        host: "gpu-1".into(),
        pid: 42,
        device: "cuda:0".into(),
        memory_bytes: Some(80 << 30),
        slots: 2,
        apps: vec!["x/y".into()],
        models: vec!["a".into(), "b".into()],
        loaded: vec![],
        running: 0,
        draining: false,
        started_at: T0,
        last_seen: T0,
        stopped_at: None,
    };
    s.register_worker(&w).await.unwrap();
    assert_eq!(s.list_workers().await.unwrap(), vec![w.clone()]);
    assert_eq!(
        s.worker_heartbeat("w-1", &["a".into()], 1, T0 + 5)
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(
        s.worker_heartbeat("nobody", &[], 0, T0).await.unwrap(),
        None
    );
    assert!(s.set_draining("w-1", true).await.unwrap());
    assert!(!s.set_draining("nobody", true).await.unwrap());
    assert_eq!(
        s.worker_heartbeat("w-1", &["a".into()], 1, T0 + 6)
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(s.setting("secret", "first").await.unwrap(), "first");
    assert_eq!(s.setting("secret", "second").await.unwrap(), "first");
    s.worker_stopped("w-1", T0 + 7).await.unwrap();
    let got = s.list_workers().await.unwrap().remove(0);
    assert_eq!(got.loaded, vec!["a".to_string()]);
    assert!(got.draining);
    assert_eq!(
        (got.running, got.last_seen, got.stopped_at),
        (0, T0 + 7, Some(T0 + 7))
    );
    // A restart re-registers under the same id and clears the stop.
    s.register_worker(&WorkerInfo {
        started_at: T0 + 8,
        last_seen: T0 + 8,
        ..w
    })
    .await
    .unwrap();
    assert_eq!(s.list_workers().await.unwrap()[0].stopped_at, None);
}

async fn expired_leases_of_a_worker_requeue_at_once(s: Arc<dyn JobStore>) {
    let j1 = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    let j2 = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    let j3 = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    s.claim("w-1/0", &apps(), T0, LEASE).await.unwrap();
    s.claim("w-1/1", &apps(), T0, LEASE).await.unwrap();
    s.claim("w-10/0", &apps(), T0, LEASE).await.unwrap();
    let mut hit = s.expire_leases("w-1").await.unwrap();
    hit.sort();
    let mut want = vec![j1.id.clone(), j2.id.clone()];
    want.sort();
    assert_eq!(hit, want, "w-10's job is not w-1's");
    let r = s.recover_expired(T0 + 1).await.unwrap();
    assert_eq!(r.requeued.len(), 2);
    assert_eq!(
        s.get_job_any(&j3.id).await.unwrap().unwrap().status,
        JobStatus::Processing
    );
    assert_eq!(
        s.get_job_any(&j1.id).await.unwrap().unwrap().status,
        JobStatus::Starting
    );
}

async fn job_files_are_listed_and_forgotten(s: Arc<dyn JobStore>) {
    let j = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    for (id, key) in [("f1", "jobs/j/1/f1.png"), ("f2", "jobs/j/2/f2.png")] {
        s.put_file(&FileRecord {
            id: id.into(),
            tenant_id: "t".into(),
            job_id: Some(j.id.clone()),
            content_type: "image/png".into(),
            size: 3,
            sha256: "x".into(),
            storage_key: key.into(),
            created_at: T0,
        })
        .await
        .unwrap();
    }
    let keys: Vec<String> = s
        .job_files(&j.id)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.storage_key)
        .collect();
    assert_eq!(keys.len(), 2);
    s.delete_file("f1").await.unwrap();
    let left = s.job_files(&j.id).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, "f2");
    assert!(s.get_file_any("f1").await.unwrap().is_none());
    assert!(s.job_files("other").await.unwrap().is_empty());
}

fn job(tenant: &str, app: &str) -> NewJob {
    NewJob {
        tenant_id: tenant.into(),
        app: app.into(),
        input: json!({"prompt": "p"}),
        max_attempts: 2,
        ..Default::default()
    }
}

const T0: i64 = 1_000_000;
const LEASE: i64 = 10_000;

fn apps() -> Want {
    Want::apps(&["x/y".to_string()])
}

async fn jobs_are_per_tenant_and_idempotent(s: Arc<dyn JobStore>) {
    let a = s.ensure_tenant("a", T0).await.unwrap();
    let again = s.ensure_tenant("a", T0 + 1).await.unwrap();
    assert_eq!(a.id, again.id);
    assert_eq!(a.webhook_secret, again.webhook_secret);
    assert_eq!(s.tenant(&a.id).await.unwrap().unwrap().name, "a");
    let mut n = job(&a.id, "x/y");
    n.idempotency_key = Some("k".into());
    n.batch_key = Some("m|64x64".into());
    n.webhook_events = Some(vec!["completed".into()]);
    let (j, created) = s.create_job(n.clone(), T0).await.unwrap();
    assert!(created);
    assert_eq!(j.status, JobStatus::Starting);
    assert_eq!(j.batch_key.as_deref(), Some("m|64x64"));
    assert_eq!(j.webhook_events, Some(vec!["completed".to_string()]));
    assert_eq!(j.input, json!({"prompt": "p"}));
    let (j2, created2) = s.create_job(n, T0 + 5).await.unwrap();
    assert!(!created2, "same idempotency key: the same job");
    assert_eq!(j.id, j2.id);
    assert_eq!(s.get_job(&a.id, &j.id).await.unwrap().unwrap().id, j.id);
    assert!(s.get_job("other", &j.id).await.unwrap().is_none());
    assert!(s.get_job_any(&j.id).await.unwrap().is_some());
    let ev = s.events_after(&j.id, 0).await.unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].data, json!({"status": "starting"}));
}

async fn claims_follow_priority_then_queue_order(s: Arc<dyn JobStore>) {
    let low = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    let mut hi = job("t", "x/y");
    hi.priority = 5;
    let hi = s.create_job(hi, T0).await.unwrap().0;
    let later = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    s.create_job(job("t", "other/app"), T0).await.unwrap();
    assert!(low.seq < later.seq);
    assert_eq!(s.queue_depth().await.unwrap(), 4);
    assert_eq!(s.queue_position(&hi).await.unwrap(), Some(0));
    assert_eq!(s.queue_position(&later).await.unwrap(), Some(2));
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(s.claim("w", &apps(), T0, LEASE).await.unwrap().unwrap().id);
    }
    assert_eq!(order, vec![hi.id.clone(), low.id, later.id]);
    assert!(s.claim("w", &apps(), T0, LEASE).await.unwrap().is_none());
    let claimed = s.get_job_any(&hi.id).await.unwrap().unwrap();
    assert_eq!(claimed.status, JobStatus::Processing);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("w"));
    assert_eq!(claimed.lease_expires_at, Some(T0 + LEASE));
    assert_eq!(s.queue_position(&claimed).await.unwrap(), None);
    assert_eq!(s.queue_depth().await.unwrap(), 1);
}

async fn claim_batch_takes_the_same_key_in_queue_order(s: Arc<dyn JobStore>) {
    let keyed = |k: &str| NewJob {
        batch_key: Some(k.into()),
        ..job("t", "x/y")
    };
    let first = s.create_job(keyed("k1"), T0).await.unwrap().0;
    let other = s.create_job(keyed("k2"), T0).await.unwrap().0;
    let b = s.create_job(keyed("k1"), T0).await.unwrap().0;
    let c = s.create_job(keyed("k1"), T0).await.unwrap().0;
    let d = s.create_job(keyed("k1"), T0).await.unwrap().0;
    let cancelled = s.create_job(keyed("k1"), T0).await.unwrap().0;
    s.request_cancel("t", &cancelled.id, T0).await.unwrap();
    let claimed = s.claim("w", &apps(), T0, LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.id, first.id);
    let more = s.claim_batch("w", "x/y", "k1", 2, T0, LEASE).await.unwrap();
    let ids: Vec<&str> = more.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![b.id.as_str(), c.id.as_str()],
        "limit and queue order"
    );
    assert!(more
        .iter()
        .all(|j| j.status == JobStatus::Processing && j.attempts == 1));
    let rest = s
        .claim_batch("w", "x/y", "k1", 10, T0, LEASE)
        .await
        .unwrap();
    assert_eq!(
        rest.len(),
        1,
        "only d is left with k1 (not the cancelled one)"
    );
    assert_eq!(rest[0].id, d.id);
    assert!(s
        .claim_batch("w", "other/app", "k2", 10, T0, LEASE)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.get_job_any(&other.id).await.unwrap().unwrap().status,
        JobStatus::Starting
    );
    let ev = s.events_after(&b.id, 0).await.unwrap();
    assert_eq!(ev.last().unwrap().data["status"], "processing");
}

async fn outcomes_are_recorded_once_with_their_events(s: Arc<dyn JobStore>) {
    let j = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    s.claim("w", &apps(), T0, LEASE).await.unwrap();
    let hb = s.heartbeat(&j.id, "w", T0 + 1, LEASE).await.unwrap();
    assert!(hb.still_ours && !hb.cancel_requested && !hb.deadline_passed);
    assert!(
        !s.heartbeat(&j.id, "intruder", T0 + 1, LEASE)
            .await
            .unwrap()
            .still_ours
    );
    let out = Outcome::Succeeded {
        output: json!({"images": ["atelier-file://f"]}),
        metrics: json!({"predict_time": 1.5}),
    };
    assert!(!s.complete(&j.id, "intruder", &out, T0 + 2).await.unwrap());
    assert!(s.complete(&j.id, "w", &out, T0 + 2).await.unwrap());
    assert!(
        !s.complete(&j.id, "w", &out, T0 + 3).await.unwrap(),
        "only once"
    );
    let done = s.get_job_any(&j.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.output, Some(json!({"images": ["atelier-file://f"]})));
    assert_eq!(done.metrics, Some(json!({"predict_time": 1.5})));
    assert_eq!(done.completed_at, Some(T0 + 2));
    assert!(done.lease_owner.is_none());
    let kinds: Vec<String> = s
        .events_after(&j.id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec!["status", "status", "output", "done"]);
    assert!(
        !s.heartbeat(&j.id, "w", T0 + 4, LEASE)
            .await
            .unwrap()
            .still_ours
    );

    let f = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    s.claim("w", &apps(), T0, LEASE).await.unwrap();
    let failed = Outcome::Failed {
        code: "content_blocked".into(),
        message: "no".into(),
        details: Some(json!({"category": "minors", "code": "ignored"})),
    };
    assert!(s.complete(&f.id, "w", &failed, T0 + 5).await.unwrap());
    let f = s.get_job_any(&f.id).await.unwrap().unwrap();
    assert_eq!(f.status, JobStatus::Failed);
    assert_eq!(
        f.error,
        Some(json!({"code": "content_blocked", "message": "no", "category": "minors"}))
    );
}

async fn release_requeues_without_spending_an_attempt(s: Arc<dyn JobStore>) {
    let j = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    s.claim("w", &apps(), T0, LEASE).await.unwrap();
    assert!(!s.release(&j.id, "other", T0).await.unwrap());
    assert!(s.release(&j.id, "w", T0).await.unwrap());
    let back = s.get_job_any(&j.id).await.unwrap().unwrap();
    assert_eq!(back.status, JobStatus::Starting);
    assert_eq!(back.attempts, 0);
    assert!(back.lease_owner.is_none());
}

async fn cancel_ends_queued_jobs_and_flags_running_ones(s: Arc<dyn JobStore>) {
    let queued = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    let c = s
        .request_cancel("t", &queued.id, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, JobStatus::Canceled);
    assert!(s
        .request_cancel("other", &queued.id, T0)
        .await
        .unwrap()
        .is_none());
    let running = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    s.claim("w", &apps(), T0, LEASE).await.unwrap();
    let r = s
        .request_cancel("t", &running.id, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, JobStatus::Processing);
    assert!(r.cancel_requested);
    let hb = s.heartbeat(&running.id, "w", T0 + 1, LEASE).await.unwrap();
    assert!(hb.cancel_requested);
    assert!(s
        .complete(&running.id, "w", &Outcome::Canceled, T0 + 2)
        .await
        .unwrap());
    assert_eq!(
        s.get_job_any(&running.id).await.unwrap().unwrap().status,
        JobStatus::Canceled
    );
}

async fn expired_leases_requeue_then_fail(s: Arc<dyn JobStore>) {
    let j = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    s.claim("w", &apps(), T0, LEASE).await.unwrap();
    assert!(s.recover_expired(T0 + 1).await.unwrap().requeued.is_empty());
    let r = s.recover_expired(T0 + LEASE + 1).await.unwrap();
    assert_eq!(r.requeued, vec![j.id.clone()]);
    let again = s
        .claim("w2", &apps(), T0 + LEASE + 2, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (j.id.as_str(), 2));
    let r = s.recover_expired(T0 + 3 * LEASE).await.unwrap();
    assert_eq!(r.failed, vec![j.id.clone()]);
    let failed = s.get_job_any(&j.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.unwrap()["code"], "interrupted");
}

async fn deadlines_cancel_queued_jobs(s: Arc<dyn JobStore>) {
    let mut n = job("t", "x/y");
    n.cancel_after = Some(T0 + 100);
    let j = s.create_job(n, T0).await.unwrap().0;
    let keep = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    assert!(s.expire_deadlines(T0 + 99).await.unwrap().is_empty());
    assert_eq!(
        s.expire_deadlines(T0 + 100).await.unwrap(),
        vec![j.id.clone()]
    );
    assert_eq!(
        s.get_job_any(&j.id).await.unwrap().unwrap().status,
        JobStatus::Canceled
    );
    assert_eq!(
        s.get_job_any(&keep.id).await.unwrap().unwrap().status,
        JobStatus::Starting
    );
}

async fn progress_logs_and_previews(s: Arc<dyn JobStore>) {
    let j = s.create_job(job("t", "x/y"), T0).await.unwrap().0;
    s.claim("w", &apps(), T0, LEASE).await.unwrap();
    let p = json!({"step": 1, "total": 4});
    s.set_progress(&j.id, "w", &p, Some(b"\x89PNG1"))
        .await
        .unwrap();
    s.set_progress(&j.id, "w", &json!({"step": 2, "total": 4}), None)
        .await
        .unwrap();
    s.set_progress(&j.id, "intruder", &json!({"step": 9}), None)
        .await
        .unwrap();
    let got = s.get_job_any(&j.id).await.unwrap().unwrap();
    assert_eq!(got.progress, Some(json!({"step": 2, "total": 4})));
    assert!(got.has_preview);
    assert_eq!(
        s.preview("t", &j.id).await.unwrap().as_deref(),
        Some(&b"\x89PNG1"[..]),
        "a progress report without a preview keeps the last one"
    );
    assert!(s.preview("other", &j.id).await.unwrap().is_none());
    let e1 = s.append_log(&j.id, "loading", T0).await.unwrap();
    let e2 = s.append_log(&j.id, "running", T0).await.unwrap();
    assert!(e2.id > e1.id);
    assert_eq!(
        s.get_job_any(&j.id).await.unwrap().unwrap().logs,
        "loading\nrunning\n"
    );
    let after = s.events_after(&j.id, e1.id).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].data, json!("running"));
    let custom = s
        .append_event(&j.id, "webhook", &json!({"ok": true}), T0)
        .await
        .unwrap();
    assert_eq!(custom.kind, "webhook");
}

async fn listing_pages_newest_first(s: Arc<dyn JobStore>) {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(s.create_job(job("t", "x/y"), T0).await.unwrap().0.id);
    }
    s.create_job(job("u", "x/y"), T0).await.unwrap();
    s.request_cancel("t", &ids[1], T0).await.unwrap();
    let q = ListQuery {
        tenant_id: "t".into(),
        limit: 2,
        ..Default::default()
    };
    let p1 = s.list_jobs(&q).await.unwrap();
    assert_eq!(
        p1.jobs.iter().map(|j| &j.id).collect::<Vec<_>>(),
        vec![&ids[4], &ids[3]]
    );
    let p2 = s
        .list_jobs(&ListQuery {
            before_seq: p1.next_cursor,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        p2.jobs.iter().map(|j| &j.id).collect::<Vec<_>>(),
        vec![&ids[2], &ids[1]]
    );
    let canceled = s
        .list_jobs(&ListQuery {
            status: Some(JobStatus::Canceled),
            limit: 10,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(canceled.jobs.len(), 1);
    assert!(canceled.next_cursor.is_none());
}

async fn files_keys_and_audit(s: Arc<dyn JobStore>) {
    let t = s.ensure_tenant("files", T0).await.unwrap();
    let f = FileRecord {
        id: "f1".into(),
        tenant_id: t.id.clone(),
        job_id: Some("j".into()),
        content_type: "image/png".into(),
        size: 42,
        sha256: "ab".into(),
        storage_key: "t/f1.png".into(),
        created_at: T0,
    };
    s.put_file(&f).await.unwrap();
    assert_eq!(s.get_file(&t.id, "f1").await.unwrap().unwrap().size, 42);
    assert!(s.get_file("other", "f1").await.unwrap().is_none());
    assert_eq!(
        s.get_file_any("f1").await.unwrap().unwrap().storage_key,
        "t/f1.png"
    );
    assert_eq!(s.key_count().await.unwrap(), 0);
    s.add_key("kid", &t.id, "hash", T0).await.unwrap();
    assert_eq!(
        s.key("kid").await.unwrap(),
        Some((t.id.clone(), "hash".to_string()))
    );
    assert!(s.key("nope").await.unwrap().is_none());
    assert_eq!(s.key_count().await.unwrap(), 1);
    let mut last = 0;
    for i in 0..3 {
        let e = s
            .audit(
                &AuditEntry {
                    id: 0,
                    tenant_id: t.id.clone(),
                    job_id: None,
                    action: "blocked_prompt".into(),
                    category: Some("minors".into()),
                    detail: json!({ "i": i }),
                    created_at: 0,
                },
                T0 + i,
            )
            .await
            .unwrap();
        assert!(e.id > last);
        last = e.id;
    }
    let page = s.list_audit(&t.id, None, 2).await.unwrap();
    assert_eq!(
        page.iter()
            .map(|e| e.detail["i"].clone())
            .collect::<Vec<_>>(),
        vec![json!(2), json!(1)]
    );
    let older = s.list_audit(&t.id, Some(page[1].id), 10).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].created_at, T0);
    assert!(s.list_audit("other", None, 10).await.unwrap().is_empty());
}

async fn concurrent_claims_never_share_a_job(s: Arc<dyn JobStore>) {
    let n = 40;
    for _ in 0..n {
        s.create_job(job("t", "x/y"), T0).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) = s.claim(&format!("w{w}"), &apps(), T0, LEASE).await.unwrap() {
                mine.push(j.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!((total, all.len()), (n, n), "every job claimed exactly once");
}

/// Column names and nullability per table must match between the two backends' migrations.
#[tokio::test]
async fn schemas_have_the_same_shape() {
    let Some((pb, pg)) = postgres().await else {
        return;
    };
    let (sb, lite) = sqlite().await;
    for table in [
        "tenants",
        "api_keys",
        "jobs",
        "job_events",
        "files",
        "audit_log",
    ] {
        let mut a: Vec<(String, bool)> = sqlx::query_as(&format!(
            "SELECT name, \"notnull\" = 1 OR pk = 1 FROM pragma_table_info('{table}')"
        ))
        .fetch_all(lite.pool())
        .await
        .unwrap();
        let mut b: Vec<(String, bool)> = sqlx::query_as(
            "SELECT column_name::TEXT, is_nullable = 'NO' FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(table)
        .fetch_all(pg.pool())
        .await
        .unwrap();
        a.sort();
        b.sort();
        assert!(!a.is_empty(), "{table} exists");
        assert_eq!(a, b, "{table}: SQLite and PostgreSQL columns differ");
    }
    pb.close().await;
    sb.close().await;
}

/// A second node on the same PostgreSQL database hears, as they commit, the events and queued
/// work that the first one writes; a platform following the store passes them to its streams.
#[tokio::test]
async fn postgres_nodes_hear_each_others_changes() {
    use atelier_platform::store::Change;
    use atelier_platform::{Platform, PlatformConfig};
    let Some((b, writer)) = postgres().await else {
        return;
    };
    let Cleanup::Postgres { url, schema } = &b.cleanup else {
        unreachable!()
    };
    let opts: PgConnectOptions = url.parse().unwrap();
    let reader = PgStore::connect_with(opts.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    let mut changes = reader
        .changes()
        .await
        .unwrap()
        .expect("PostgreSQL has a feed");
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new(
        Arc::new(reader.clone()),
        atelier_platform::artifacts::Artifacts::local(dir.path().join("a")).unwrap(),
        atelier_platform::links::LinkSigner::new(b"test"),
        PlatformConfig::default(),
        Vec::new(),
    );
    let mut bus = platform.subscribe();
    platform.follow_store().await.unwrap();

    let j = writer.create_job(job("t", "x/y"), T0).await.unwrap().0;
    let mut got = vec![
        next_change(&mut changes).await,
        next_change(&mut changes).await,
    ];
    got.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        got,
        vec![Change::Events(j.id.clone()), Change::Queued("x/y".into())]
    );
    writer.append_log(&j.id, "hello", T0).await.unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Events(j.id.clone())
    );
    // The platform saw both commits on its bus.
    for _ in 0..2 {
        let id = tokio::time::timeout(std::time::Duration::from_secs(10), bus.recv())
            .await
            .expect("bus within 10 s")
            .unwrap();
        assert_eq!(id, j.id);
    }
    drop(platform);
    b.close().await;
}

async fn next_change(
    c: &mut tokio::sync::mpsc::Receiver<atelier_platform::store::Change>,
) -> atelier_platform::store::Change {
    tokio::time::timeout(std::time::Duration::from_secs(10), c.recv())
        .await
        .expect("a change within 10 s")
        .expect("feed open")
}
