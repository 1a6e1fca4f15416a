//! The web UI in a real browser: `tests/browser/ui.mjs` drives Debian's chromium through
//! playwright-core against the real server with the tiny fixture models, one flow per page
//! (playground, jobs, tickets, lounge, storyboards, models), with axe-core on every page at
//! desktop and phone width and no console errors allowed.
//!
//! Needs `node`, `chromium` and `npm ci` in `tests/browser` (`.ci/run` does all three); without
//! them the test says so and passes, except under `CI`, where it fails.
//! `ATELIER_SCREENSHOTS=docs/screenshots` keeps the screenshots there (the committed set).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{root, Server};

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("ATELIER_CHROMIUM").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/chromium")),
        Some(PathBuf::from("/usr/bin/chromium-browser")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

fn missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is required under CI (.ci/run installs it)"
    );
    eprintln!("skipping the browser tests: {what} is missing");
}

#[test]
fn web_ui_in_a_real_browser() {
    let browser_dir = root().join("tests/browser");
    let Some(chromium) = chromium() else {
        return missing("chromium (apt install chromium)");
    };
    if Command::new("node").arg("--version").output().is_err() {
        return missing("node");
    }
    if !browser_dir.join("node_modules/playwright-core").is_dir()
        || !browser_dir.join("node_modules/axe-core").is_dir()
    {
        return missing("tests/browser/node_modules (run `npm ci` in tests/browser)");
    }

    let tmp = tempfile::tempdir().unwrap();
    // A hub that serves the tiny pipeline under a new name, for the Models page's pull.
    let hub = common::hub::serve(
        root().join("tests/fixtures/sd15-tiny"),
        "atelier-test/sd15-pulled",
    );
    std::env::set_var("HF_ENDPOINT", format!("http://{hub}"));
    std::env::set_var("HF_HOME", tmp.path().join("hf"));
    std::env::remove_var("HF_HUB_OFFLINE");
    let pulled = tmp.path().join("models");
    std::fs::create_dir_all(&pulled).unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &[pulled, common::fixture()],
        &[
            &common::SMALL_COMICS[..],
            &[
                "--workers",
                "2",
                "--storyboard-size",
                "64",
                "--storyboard-steps",
                "2",
                "--storyboard-video-size",
                "128",
                "--storyboard-formats",
                "gif",
                "--storyboard-sheet-dpi",
                "72",
            ],
        ]
        .concat(),
    );
    // A second server with an API key: the UI must ask for it and send it everywhere.
    let keyed_data = tmp.path().join("keyed");
    let key = common::keys_create(&keyed_data, "studio");
    let keyed = Server::start(&keyed_data, &[common::fixture()], &[]);
    let shots = std::env::var_os("ATELIER_SCREENSHOTS")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    let work = tmp.path().join("work");
    let status = Command::new("node")
        .current_dir(&browser_dir)
        .args(["ui.mjs", "--base", &server.base])
        .arg("--out")
        .arg(&shots)
        .arg("--work")
        .arg(&work)
        .arg("--chromium")
        .arg(&chromium)
        .args(["--keyed-base", &keyed.base, "--key", &key])
        .args(
            std::env::var("ATELIER_UI_ONLY")
                .ok()
                .map(|o| vec!["--only".to_owned(), o])
                .unwrap_or_default(),
        )
        .status()
        .expect("node runs");
    if !status.success() {
        eprintln!("screenshots and report: {}", work.display());
        // Keep the evidence of a failure.
        let _ = tmp.keep();
    }
    assert!(status.success(), "browser flows failed (see above)");
    let report = std::fs::read_to_string(work.join("report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let pages: Vec<&str> = report["report"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["page"].as_str())
        .collect();
    if std::env::var_os("ATELIER_UI_ONLY").is_some() {
        return;
    }
    for p in [
        "playground",
        "jobs",
        "tickets",
        "lounge",
        "storyboards",
        "models",
        "language",
        "keyed",
        "xss",
    ] {
        assert!(pages.contains(&p), "the {p} flow ran: {pages:?}");
    }
    for page in [
        "playground",
        "jobs",
        "tickets",
        "lounge",
        "lounge-post",
        "storyboards",
        "models",
    ] {
        for size in ["desktop", "phone"] {
            let shot = shots.join(format!("{page}-{size}.png"));
            let png = std::fs::read(&shot).unwrap_or_default();
            assert!(
                png.starts_with(b"\x89PNG"),
                "screenshot {} exists",
                shot.display()
            );
        }
    }
    server.assert_no_internal_errors();
    keyed.assert_no_internal_errors();
}
