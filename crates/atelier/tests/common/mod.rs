//! The harness shared by the end-to-end tests: the real `atelier` binary on a free port,
//! spoken to over HTTP.
#![allow(dead_code)]

pub mod hub;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture() -> PathBuf {
    root().join("tests/fixtures/sd15-tiny")
}

/// Serve flags that keep diary comics small (64 px panels, 2 steps, a 320 px page) so the
/// tests that draw them stay fast.
pub const SMALL_COMICS: [&str; 6] = [
    "--diary-size",
    "64",
    "--diary-steps",
    "2",
    "--diary-comic-width",
    "320",
];

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub child: Child,
    /// Server log lines that report an internal (5xx) error.
    pub internal_errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub base: String,
    pub data: PathBuf,
    pub port: u16,
    pub models: Vec<PathBuf>,
    pub extra: Vec<String>,
}

impl Server {
    pub fn start(data: &Path, models: &[PathBuf], extra: &[&str]) -> Self {
        Self::start_on(
            free_port(),
            data,
            models,
            extra.iter().map(|s| s.to_string()).collect(),
        )
    }

    pub fn start_on(port: u16, data: &Path, models: &[PathBuf], extra: Vec<String>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_atelier"));
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
            data.to_str().unwrap(),
        ]);
        for m in models {
            cmd.args(["--models", m.to_str().unwrap()]);
        }
        cmd.args(&extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("server starts");
        let base = format!("http://127.0.0.1:{port}");
        let stderr = child.stderr.take().unwrap();
        let internal_errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = internal_errors.clone();
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("ATELIER_TEST_LOG").is_ok() {
                    eprintln!("[server] {line}");
                }
                if line.contains("internal error") {
                    sink.lock().unwrap().push(line);
                }
            }
        });
        let c = Client::new();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if c.get(format!("{base}/healthz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return Self {
                    child,
                    internal_errors,
                    base,
                    data: data.to_path_buf(),
                    port,
                    models: models.to_vec(),
                    extra,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("server did not come up");
    }

    /// Fails the test if the server logged any internal error (every 5xx is logged).
    pub fn assert_no_internal_errors(&self) {
        let errs = self.internal_errors.lock().unwrap();
        assert!(errs.is_empty(), "the server hit internal errors: {errs:?}");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.kill9();
        let s = Server::start_on(self.port, &self.data, &self.models, self.extra.clone());
        // The old process is already reaped; dropping it is harmless.
        drop(std::mem::replace(self, s));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A counter from the server's `/metrics` (e.g. `atelier_generations_total`).
pub fn metric(base: &str, name: &str) -> u64 {
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// Image generations the server started (after screening).
pub fn generations(_c: &Client, base: &str) -> u64 {
    metric(base, "atelier_generations_total")
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

pub fn post(
    c: &Client,
    url: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = c.post(url).json(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let v: Value = resp.json().unwrap_or(Value::Null);
    (status, v, headers)
}

pub fn get(c: &Client, url: &str, key: Option<&str>) -> (u16, Value) {
    let mut r = c.get(url);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let resp = r.send().unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().unwrap_or(Value::Null))
}

pub fn predict_url(base: &str) -> String {
    format!("{base}/v1/models/atelier/text-to-image/predictions")
}

pub fn wait_terminal(
    c: &Client,
    base: &str,
    id: &str,
    key: Option<&str>,
    limit: Duration,
) -> Value {
    let t = Instant::now();
    loop {
        let (_, j) = get(c, &format!("{base}/v1/predictions/{id}"), key);
        if matches!(
            j["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        ) {
            return j;
        }
        assert!(t.elapsed() < limit, "job {id} did not finish: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn keys_create(data: &Path, tenant: &str) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args([
            "keys",
            "create",
            "--tenant",
            tenant,
            "--data",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}
