//! A local server that speaks the Hugging Face hub's URL layout (repository info, `resolve`
//! with ranges and ETags), for tests of `atelier models pull` and of pulls from the web UI.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

/// The commit every served repository claims to be at.
pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(root, &p, out);
        } else {
            out.push(
                p.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
}

fn respond(mut s: TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

fn handle(s: TcpStream, root: &Path, repo: &str) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range: Option<(u64, Option<u64>)> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let v = v.trim();
            let (a, b) = v.split_once('-').unwrap();
            range = Some((a.parse().unwrap(), b.parse().ok()));
        }
    }
    let api = format!("/api/models/{repo}/revision/main");
    if path == api {
        let mut list = Vec::new();
        files(root, root, &mut list);
        let siblings: Vec<_> = list
            .iter()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        let body = serde_json::json!({ "sha": SHA, "siblings": siblings }).to_string();
        return respond(
            s,
            "200 OK",
            &[("Content-Type".into(), "application/json".into())],
            body.as_bytes(),
        );
    }
    let prefix = format!("/{repo}/resolve/main/");
    let Some(rel) = path.strip_prefix(&prefix) else {
        return respond(s, "404 Not Found", &[], b"not found");
    };
    let Ok(mut f) = std::fs::File::open(root.join(rel)) else {
        return respond(s, "404 Not Found", &[], b"not found");
    };
    let mut data = Vec::new();
    f.read_to_end(&mut data).unwrap();
    let mut hasher = DefaultHasher::new();
    data.hash(&mut hasher);
    rel.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    let size = data.len() as u64;
    let (start, end) = match range {
        Some((a, b)) => (
            a,
            b.unwrap_or(size.saturating_sub(1))
                .min(size.saturating_sub(1)),
        ),
        None => (0, size.saturating_sub(1)),
    };
    let body = if size == 0 {
        &data[..]
    } else {
        &data[start as usize..=end as usize]
    };
    let headers = vec![
        ("ETag".to_string(), etag),
        ("X-Repo-Commit".to_string(), SHA.to_string()),
        (
            "Content-Range".to_string(),
            format!("bytes {start}-{end}/{size}"),
        ),
    ];
    respond(s, "206 Partial Content", &headers, body);
}

/// Serves `root` as repository `repo` on a local port; returns the address.
pub fn serve(root: PathBuf, repo: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || handle(s, &root, repo));
        }
    });
    addr
}
