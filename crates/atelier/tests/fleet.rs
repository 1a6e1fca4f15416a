//! A deployment of separate processes on PostgreSQL and a real S3-protocol server: API nodes
//! started with `--no-workers`, `atelier worker` processes, and a chaos loop that `kill -9`s a
//! random worker every few seconds and starts it again. Every job must succeed with exactly
//! one set of outputs in the bucket, nothing orphaned, and every SSE client — on either API
//! node — must see every event of its job.
//!
//! Needs PostgreSQL (`ATELIER_TEST_POSTGRES`, default 127.0.0.1:5432/test) and an S3 endpoint
//! (`ATELIER_TEST_S3`, or `moto` in the `ATELIER_TEST_PYTHON` virtualenv, started here).
//! Without them the test says it was skipped; under `CI` it fails.
//!
//! Knobs (for `bench/fleet.sh`): `ATELIER_FLEET_JOBS` (300), `ATELIER_FLEET_WORKERS` (3),
//! `ATELIER_FLEET_API` (2), `ATELIER_FLEET_CHAOS` (1; 0 turns the killing off).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fixture, free_port, predict_url};
use reqwest::blocking::Client;
use serde_json::{json, Value};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Skips (or, under CI, fails) when a dependency is missing.
fn unavailable(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "the fleet test needs {what} under CI"
    );
    eprintln!("skipped: {what} is not available");
}

/// One `atelier` process and how to start it again.
struct Proc {
    name: String,
    args: Vec<String>,
    child: Child,
    internal_errors: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(name: &str, args: Vec<String>, health: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_atelier"))
            .args(&args)
            .env("ATELIER_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("atelier starts");
        let internal_errors = Arc::new(Mutex::new(Vec::new()));
        let (sink, tag) = (internal_errors.clone(), name.to_owned());
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("ATELIER_TEST_LOG").is_ok() {
                    eprintln!("[{tag}] {line}");
                }
                if line.contains("internal error") {
                    sink.lock().unwrap().push(line);
                }
            }
        });
        let c = Client::new();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if c.get(health).send().is_ok_and(|r| r.status().is_success()) {
                return Self {
                    name: name.into(),
                    args,
                    child,
                    internal_errors,
                };
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("{name} exited at start: {st}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{name} did not come up");
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An S3 endpoint: the one CI started, or moto started here.
fn s3_endpoint() -> Option<(String, Option<Proc>)> {
    if let Ok(url) = std::env::var("ATELIER_TEST_S3") {
        return Some((url, None));
    }
    let python = std::env::var("ATELIER_TEST_PYTHON").ok()?;
    let port = free_port();
    let mut child = Command::new(&python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("http://127.0.0.1:{port}");
    let c = Client::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if c.get(&url).send().is_ok() {
            let p = Proc {
                name: "moto".into(),
                args: vec![],
                child,
                internal_errors: Arc::default(),
            };
            return Some((url, Some(p)));
        }
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    None
}

fn pg_url() -> String {
    std::env::var("ATELIER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Reads the SSE stream of a job to its end; returns the event ids in order.
fn follow(base: &str, id: &str) -> Result<Vec<i64>, String> {
    let c = Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = c
        .get(format!("{base}/v1/predictions/{id}/stream"))
        .send()
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("stream status {}", resp.status()));
    }
    let mut ids = Vec::new();
    for line in BufReader::new(resp).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(v) = line.strip_prefix("id:") {
            ids.push(v.trim().parse::<i64>().map_err(|e| e.to_string())?);
        }
    }
    Ok(ids)
}

/// File ids an output refers to.
fn file_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(atelier_platform::FILE_REF) {
                out.insert(id.to_owned());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| file_refs(x, out)),
        Value::Object(o) => o.values().for_each(|x| file_refs(x, out)),
        _ => {}
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn fleet_of_processes_loses_nothing_when_workers_are_killed() {
    let n_jobs = knob("ATELIER_FLEET_JOBS", 300);
    let n_workers = knob("ATELIER_FLEET_WORKERS", 3);
    let n_api = knob("ATELIER_FLEET_API", 2).max(1);
    let chaos = knob("ATELIER_FLEET_CHAOS", 1) != 0;
    let rt = tokio::runtime::Runtime::new().unwrap();

    // PostgreSQL: a schema of its own.
    let base_url = pg_url();
    let schema = format!("fleet_{}", atelier_platform::new_id().replace('-', ""));
    let admin = match rt.block_on(sqlx::PgPool::connect(&base_url)) {
        Ok(p) => p,
        Err(e) => return unavailable(&format!("PostgreSQL at {base_url} ({e})")),
    };
    rt.block_on(sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin))
        .unwrap();
    let sep = if base_url.contains('?') { '&' } else { '?' };
    let db = format!("{base_url}{sep}options=-c%20search_path%3D{schema}");

    // S3: a bucket of its own.
    let Some((endpoint, _moto)) = s3_endpoint() else {
        return unavailable("an S3 endpoint (ATELIER_TEST_S3, or moto in ATELIER_TEST_PYTHON)");
    };
    let bucket = format!("fleet-{}", &atelier_platform::new_id()[..12]).to_lowercase();
    let made = Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .expect("S3 endpoint answers");
    assert!(
        made.status().is_success(),
        "creating the bucket: {}",
        made.status()
    );
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ] {
        std::env::set_var(k, v);
    }
    let store = format!("s3://{bucket}/atelier");
    let tmp = tempfile::tempdir().unwrap();
    let common_args = |data: &str| {
        vec![
            "--database".to_string(),
            db.clone(),
            "--store".into(),
            store.clone(),
            "--data".into(),
            tmp.path().join(data).display().to_string(),
            "--models".into(),
            fixture().display().to_string(),
            "--no-c2pa".into(),
        ]
    };

    // API nodes without workers; many attempts, since chaos may hit a job more than once.
    let mut apis = Vec::new();
    for i in 0..n_api {
        let port = free_port();
        let mut args = vec![
            "serve".to_string(),
            "--no-workers".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--max-attempts".into(),
            "20".into(),
            "--max-queue".into(),
            "100000".into(),
        ];
        args.extend(common_args(&format!("api{i}")));
        let base = format!("http://127.0.0.1:{port}");
        apis.push((
            base.clone(),
            Proc::start(&format!("api{i}"), args, &format!("{base}/healthz")),
        ));
    }
    let bases: Vec<String> = apis.iter().map(|(b, _)| b.clone()).collect();

    // Workers: separate processes with stable ids, so a restart hands back what the killed
    // run held at once (a worker that stays dead is recovered when its leases run out).
    let start_worker = |i: usize| {
        let port = free_port();
        let mut args = vec![
            "worker".to_string(),
            "--id".into(),
            format!("w{i}"),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(common_args(&format!("w{i}")));
        Proc::start(
            &format!("w{i}"),
            args,
            &format!("http://127.0.0.1:{port}/healthz"),
        )
    };
    let workers: Arc<Mutex<Vec<Proc>>> =
        Arc::new(Mutex::new((0..n_workers).map(start_worker).collect()));

    // Submit, alternating API nodes; each job's SSE client connects to another node than the
    // one that took the job.
    let c = Client::new();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n_jobs);
    for i in 0..n_jobs {
        let body = json!({"input": {"prompt": format!("a lighthouse at dusk, take {i}"),
            "width": 64, "height": 64, "steps": 2, "seed": i}});
        let r = c
            .post(predict_url(&bases[i % bases.len()]))
            .json(&body)
            .send()
            .unwrap();
        let st = r.status();
        let v: Value = r.json().unwrap();
        assert!(st.is_success(), "submit {i}: {st} {v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let submitted_s = started.elapsed().as_secs_f64();
    let streams: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (base, id) = (bases[(i + 1) % bases.len()].clone(), id.clone());
            std::thread::spawn(move || follow(&base, &id))
        })
        .collect();

    // Chaos: kill -9 a random worker every 1.5–3.5 s and start it again.
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let chaos_thread = {
        let (stop, kills, workers) = (stop.clone(), kills.clone(), workers.clone());
        std::thread::spawn(move || {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut rand = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            while chaos && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1500 + rand() % 2000));
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let k = (rand() % n_workers as u64) as usize;
                let (name, args, health) = {
                    let mut w = workers.lock().unwrap();
                    w[k].kill9();
                    let args = w[k].args.clone();
                    let li = args.iter().position(|a| a == "--listen").unwrap() + 1;
                    (
                        w[k].name.clone(),
                        args.clone(),
                        format!("http://{}/healthz", args[li]),
                    )
                };
                kills.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                let p = Proc::start(&name, args, &health);
                workers.lock().unwrap()[k] = p;
            }
        })
    };

    // Wait for every job to end.
    let pool = rt.block_on(sqlx::PgPool::connect(&db)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let open: i64 = rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT count(*) FROM jobs WHERE status IN ('starting', 'processing')",
                )
                .fetch_one(&pool),
            )
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} jobs still open after 15 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    chaos_thread.join().unwrap();

    // Every job succeeded.
    type JobRow = (String, String, i64, Option<String>, Option<String>);
    let rows: Vec<JobRow> = rt
        .block_on(
            sqlx::query_as("SELECT id, status, attempts, output, metrics FROM jobs")
                .fetch_all(&pool),
        )
        .unwrap();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        *by_status.entry(r.1.clone()).or_default() += 1;
    }
    assert_eq!(rows.len(), n_jobs);
    assert_eq!(
        by_status.get("succeeded").copied().unwrap_or(0),
        n_jobs,
        "outcomes: {by_status:?}"
    );
    let retried = rows.iter().filter(|r| r.2 > 1).count();

    // Exactly one set of outputs per job in the bucket, and nothing else there.
    let files: Vec<(String, Option<String>, String)> = rt
        .block_on(sqlx::query_as("SELECT id, job_id, storage_key FROM files").fetch_all(&pool))
        .unwrap();
    let artifacts = atelier_platform::artifacts::Artifacts::open(&store).unwrap();
    let objects: BTreeSet<String> = rt
        .block_on(artifacts.list(""))
        .unwrap()
        .into_iter()
        .collect();
    let keys: BTreeSet<String> = files.iter().map(|f| f.2.clone()).collect();
    let orphans: Vec<_> = objects.difference(&keys).collect();
    let missing: Vec<_> = keys.difference(&objects).collect();
    assert!(
        orphans.is_empty(),
        "{} orphaned objects: {orphans:?}",
        orphans.len()
    );
    assert!(
        missing.is_empty(),
        "{} records without bytes: {missing:?}",
        missing.len()
    );
    let mut per_job: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let job = f.1.clone().expect("every file here belongs to a job");
        per_job.entry(job).or_default().insert(f.0.clone());
    }
    let mut claim_ms = Vec::new();
    for (id, _, _, output, metrics) in &rows {
        let mut refs = BTreeSet::new();
        file_refs(
            &serde_json::from_str(output.as_deref().unwrap()).unwrap(),
            &mut refs,
        );
        assert_eq!(refs.len(), 1, "job {id} has one image: {output:?}");
        assert_eq!(
            per_job.get(id),
            Some(&refs),
            "job {id}'s stored files are exactly its outputs"
        );
        let m: Value = serde_json::from_str(metrics.as_deref().unwrap()).unwrap();
        claim_ms.push(m["claim_ms"].as_f64().expect("claim_ms in metrics"));
    }

    // Every SSE client saw every event of its job, in order.
    let mut seen_events = 0;
    for (id, h) in ids.iter().zip(streams) {
        let seen = h
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("stream of {id}: {e}"));
        let stored: Vec<i64> = rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT id FROM job_events WHERE job_id = $1 AND kind <> 'webhook' ORDER BY id",
                )
                .bind(id)
                .fetch_all(&pool),
            )
            .unwrap();
        assert_eq!(
            seen, stored,
            "the stream of job {id} missed or reordered events"
        );
        seen_events += seen.len();
    }
    for (_, p) in &apis {
        let errs = p.internal_errors.lock().unwrap();
        assert!(errs.is_empty(), "{}: internal errors {errs:?}", p.name);
    }
    let kills = kills.load(Ordering::SeqCst);
    if chaos {
        assert!(kills >= 2, "the chaos loop killed only {kills} workers");
    }
    claim_ms.sort_by(f64::total_cmp);
    println!(
        "fleet: {n_api} API nodes, {n_workers} workers, {n_jobs} jobs: all succeeded in {elapsed:.1} s \
         ({:.2} jobs/s; submitting took {submitted_s:.1} s); {kills} workers killed, {retried} jobs retried; \
         {seen_events} SSE events all delivered; {} objects, 0 orphaned; \
         claim latency p50 {:.2} ms, p99 {:.2} ms",
        n_jobs as f64 / elapsed,
        objects.len(),
        percentile(&claim_ms, 0.5),
        percentile(&claim_ms, 0.99),
    );

    // Operations: the registry lists every worker with its device and models, a worker serves
    // /metrics, and a drained worker stops claiming and exits by itself.
    let admin_cmd = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_atelier"))
            .arg("admin")
            .args(args)
            .args(["--database", &db, "--data"])
            .arg(tmp.path().join("admin"))
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, err) = admin_cmd(&["workers"]);
    assert!(ok, "{err}");
    let listed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), n_workers, "{out}");
    for w in &listed {
        assert_eq!(w["device"], "cpu", "{w}");
        assert!(w["models"].as_array().is_some_and(|m| !m.is_empty()), "{w}");
        assert!(w["memory_bytes"].as_i64().is_some_and(|m| m > 0), "{w}");
    }
    let w0_listen = {
        let w = workers.lock().unwrap();
        let li = w[0].args.iter().position(|a| a == "--listen").unwrap() + 1;
        w[0].args[li].clone()
    };
    let metrics = c
        .get(format!("http://{w0_listen}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("atelier_jobs_total"), "{metrics}");
    let (ok, _, err) = admin_cmd(&["drain", "nobody"]);
    assert!(!ok && err.contains("no worker"), "{err}");
    let (ok, _, err) = admin_cmd(&["drain", "w0"]);
    assert!(ok, "{err}");
    let t = Instant::now();
    let exited = loop {
        if let Some(st) = workers.lock().unwrap()[0].child.try_wait().unwrap() {
            break Some(st);
        }
        if t.elapsed() > Duration::from_secs(30) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        exited.is_some_and(|s| s.success()),
        "a drained worker exits cleanly: {exited:?}"
    );
    let (_, out, _) = admin_cmd(&["workers"]);
    let w0: Value = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|w| w["id"] == "w0")
        .unwrap();
    assert_eq!(
        (w0["draining"].clone(), w0["stopped_at"].is_i64()),
        (json!(true), true),
        "{w0}"
    );
    let (ok, out, err) = admin_cmd(&["requeue", "--stale", "0"]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["requeued"], json!([]), "nothing is running any more: {r}");

    drop(workers);
    drop(apis);
    rt.block_on(pool.close());
    rt.block_on(sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin))
        .unwrap();
}
