//! End-to-end tests of `atelier serve`: the real binary on a free port with the sd15-tiny
//! fixture, spoken to over HTTP.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// Reads an SSE stream until `done` or until `stop_after` events; returns (id, event, data).
fn read_sse(
    c: &Client,
    url: &str,
    last_id: Option<i64>,
    stop_after: Option<usize>,
) -> Vec<(i64, String, String)> {
    let mut r = c.get(url);
    if let Some(l) = last_id {
        r = r.header("Last-Event-ID", l.to_string());
    }
    let resp = r.send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut reader = BufReader::new(resp);
    let mut out = Vec::new();
    let (mut id, mut ev, mut data) = (None, String::new(), String::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            if let Some(i) = id.take() {
                out.push((i, std::mem::take(&mut ev), std::mem::take(&mut data)));
                if out.last().is_some_and(|e| e.1 == "done")
                    || stop_after.is_some_and(|n| out.len() >= n)
                {
                    break;
                }
            }
            continue;
        }
        if let Some(v) = l.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("event:") {
            ev = v.trim().to_owned();
        } else if let Some(v) = l.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    out
}

#[test]
fn starts_without_models_and_says_how_to_install_one() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("models");
    std::fs::create_dir_all(&empty).unwrap();
    let s = Server::start(&tmp.path().join("data"), &[empty], &[]);
    let c = client();
    let (st, v) = get(&c, &format!("{}/v1/models", s.base), None);
    assert_eq!(st, 200);
    assert_eq!(v["data"], json!([]));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("atelier models pull"),
        "{v}"
    );
    let (st, v, _) = post(
        &c,
        &predict_url(&s.base),
        None,
        &json!({"input": {"prompt": "x"}}),
    );
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["field"], "input.model");
    let (st, v) = get(&c, &format!("{}/readyz", s.base), None);
    assert_eq!((st, v["ready"].clone()), (200, json!(true)));
    // Open mode (loopback, no keys): clients that always send a key still get in.
    let (st, _) = get(
        &c,
        &format!("{}/v1/predictions", s.base),
        Some("sk-anything"),
    );
    assert_eq!(st, 200);
}

#[test]
fn prediction_lifecycle_wait_idempotency_list_files_metrics_openapi() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[fixture()], &[]);
    let c = client();
    let (st, v) = get(&c, &format!("{}/v1/models", s.base), None);
    assert_eq!(st, 200);
    assert_eq!(v["data"][0]["id"], "sd15-tiny");

    // Prefer: wait returns the finished job.
    let body = json!({"input": {"prompt": "a photo ticket", "width": 64, "height": 64, "steps": 2, "seed": 9, "num_outputs": 2}});
    let resp = c
        .post(predict_url(&s.base))
        .header("Prefer", "wait=60")
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let j: Value = resp.json().unwrap();
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(j["output"]["seeds"], json!([9, 10]));
    assert_eq!(j["progress"]["fraction"], json!(1.0));
    let url = j["output"]["images"][0].as_str().unwrap().to_owned();
    assert!(url.starts_with(&s.base) && url.contains("sig="), "{url}");
    assert!(
        !j.to_string().contains(tmp.path().to_str().unwrap()),
        "a local path leaked: {j}"
    );

    // The file: content type, ETag, Range, 304, tampered signature.
    let r = c.get(&url).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let bytes = r.bytes().unwrap();
    assert_eq!(&bytes[..4], b"\x89PNG");
    let r = c.get(&url).header("Range", "bytes=0-7").send().unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 0-7/{}", bytes.len())
    );
    assert_eq!(r.bytes().unwrap().as_ref(), &bytes[..8]);
    let r = c.get(&url).header("If-None-Match", &etag).send().unwrap();
    assert_eq!(r.status().as_u16(), 304);
    let bad = url.replace("sig=", "sig=00");
    assert_eq!(c.get(&bad).send().unwrap().status().as_u16(), 404);

    // Idempotency: same key, same job, not run twice.
    let send = || {
        c.post(predict_url(&s.base))
            .header("Idempotency-Key", "abc-1")
            .json(&json!({"input": {"prompt": "once", "width": 64, "height": 64, "steps": 1}}))
            .send()
            .unwrap()
    };
    let a = send();
    assert_eq!(a.status().as_u16(), 201);
    let a: Value = a.json().unwrap();
    let b = send();
    assert_eq!(b.status().as_u16(), 200);
    let b: Value = b.json().unwrap();
    assert_eq!(a["id"], b["id"]);

    // Listing with a cursor.
    let (st, page) = get(&c, &format!("{}/v1/predictions?limit=1", s.base), None);
    assert_eq!(st, 200);
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, page2) = get(&c, &next, None);
    assert_ne!(page["results"][0]["id"], page2["results"][0]["id"]);
    let (_, filtered) = get(
        &c,
        &format!("{}/v1/predictions?status=succeeded", s.base),
        None,
    );
    assert!(filtered["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["status"] == "succeeded"));

    // Operations.
    let m = c
        .get(format!("{}/metrics", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        m.contains("atelier_queue_depth") && m.contains("atelier_job_latency_seconds_bucket"),
        "{m}"
    );
    let (_, doc) = get(&c, &format!("{}/openapi.json", s.base), None);
    for p in [
        "/v1/models/{owner}/{name}/predictions",
        "/v1/predictions/{id}/stream",
        "/v1/images/generations",
        "/v1/files/{id}",
        "/metrics",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    assert!(
        doc["components"]["schemas"]["atelier_text_to_imageInput"]["properties"]["prompt"]
            .is_object()
    );
    s.assert_no_internal_errors();
}

#[test]
fn bad_input_gets_4xx_naming_the_field_and_never_500() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[fixture()], &[]);
    let c = client();
    // Model pulls: every bad field is named before anything is downloaded.
    for (body, field) in [
        (json!({"repo": "not-a-repo"}), "repo"),
        (json!({"repo": "a/b/c"}), "repo"),
        (json!({"repo": "../x"}), "repo"),
        (
            json!({"repo": "owner/name", "revision": "../../etc"}),
            "revision",
        ),
        (json!({"repo": "owner/name", "file": "../secret"}), "file"),
    ] {
        let (st, v, _) = post(&c, &format!("{}/v1/models/pulls", s.base), None, &body);
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {v}"
        );
    }
    let (st, v) = get(&c, &format!("{}/v1/models/pulls/pull_nope", s.base), None);
    assert_eq!(st, 404, "{v}");
    // The web UI: the page, its modules, the fonts, and a JSON 404 for anything else.
    let r = c.get(format!("{}/", s.base)).send().unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(r.text().unwrap().contains("/ui/app.js"));
    for (path, status) in [
        ("/ui/app.js", 200),
        ("/ui/pages/playground.js", 200),
        ("/ui/fonts/NanumSquareR.ttf", 200),
        ("/ui/fonts/NotoColorEmoji.ttf", 404),
        ("/ui/../Cargo.toml", 404),
        ("/ui/nope.js", 404),
    ] {
        let r = c.get(format!("{}{path}", s.base)).send().unwrap();
        assert_eq!(r.status(), status, "{path}");
    }
    let u = predict_url(&s.base);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"input": {}}), 422, "input.prompt"),
        (json!({"input": {"prompt": ""}}), 422, "input.prompt"),
        (
            json!({"input": {"prompt": "x".repeat(2001)}}),
            422,
            "input.prompt",
        ),
        (
            json!({"input": {"prompt": "x", "width": 100}}),
            422,
            "input.width",
        ),
        (
            json!({"input": {"prompt": "x", "height": 4096}}),
            422,
            "input.height",
        ),
        (
            json!({"input": {"prompt": "x", "steps": 0}}),
            422,
            "input.steps",
        ),
        (
            json!({"input": {"prompt": "x", "steps": 1000}}),
            422,
            "input.steps",
        ),
        (
            json!({"input": {"prompt": "x", "num_outputs": 5}}),
            422,
            "input.num_outputs",
        ),
        (
            json!({"input": {"prompt": "x", "guidance_scale": -1}}),
            422,
            "input.guidance_scale",
        ),
        (
            json!({"input": {"prompt": "x", "scheduler": "heun"}}),
            422,
            "input.scheduler",
        ),
        (
            json!({"input": {"prompt": "x", "output_format": "gif"}}),
            422,
            "input.output_format",
        ),
        (
            json!({"input": {"prompt": "x", "model": "nope"}}),
            422,
            "input.model",
        ),
        (
            json!({"input": {"prompt": "x", "seed": -3}}),
            422,
            "input.seed",
        ),
        (
            json!({"input": {"prompt": "x", "colour": "red"}}),
            422,
            "input.colour",
        ),
        (json!({"input": "just text"}), 422, "input"),
        (
            json!({"input": {"prompt": "x"}, "webhook": "http://127.0.0.1:9/x"}),
            422,
            "webhook",
        ),
        (
            json!({"input": {"prompt": "x"}, "webhook": "https://example.com/h", "webhook_events_filter": ["nope"]}),
            422,
            "webhook_events_filter",
        ),
    ];
    for (body, status, field) in cases {
        let (st, v, _) = post(&c, &u, None, &body);
        assert_eq!(st, status, "{body} -> {v}");
        assert_eq!(v["error"]["field"], field, "{body} -> {v}");
    }
    // Malformed JSON, wrong content type, oversize body.
    let r = c
        .post(&u)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "malformed_json"
    );
    let r = c.post(&u).body("{}").send().unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let big = json!({"input": {"prompt": "x".repeat(2 << 20)}});
    // The server answers 413 without reading the whole body and closes the connection, so
    // this request gets a client of its own rather than poisoning the pool.
    let once = Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let r = once.post(&u).json(&big).send().unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "body_too_large"
    );
    // Headers.
    let r = c
        .post(&u)
        .header("Prefer", "wait=999")
        .json(&json!({"input": {"prompt": "x"}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "Prefer");
    let r = c
        .post(&u)
        .header("Cancel-After", "soon")
        .json(&json!({"input": {"prompt": "x"}}))
        .send()
        .unwrap();
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "Cancel-After");
    // Unknown things are 404 with our body.
    let (st, v, _) = post(
        &c,
        &format!("{}/v1/models/acme/nothing/predictions", s.base),
        None,
        &json!({"input": {}}),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("unknown_model"))
    );
    let (st, v) = get(&c, &format!("{}/v1/predictions/nope", s.base), None);
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (st, _) = get(&c, &format!("{}/v1/predictions?limit=0", s.base), None);
    assert_eq!(st, 422);
    let (st, v) = get(&c, &format!("{}/no/such/route", s.base), None);
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("not_found")));
    // OpenAI-shaped errors name OpenAI's fields.
    let (st, v, _) = post(
        &c,
        &format!("{}/v1/images/generations", s.base),
        None,
        &json!({"prompt": "x", "size": "big"}),
    );
    assert_eq!((st, v["error"]["field"].as_str()), (422, Some("size")));
    let (st, v, _) = post(
        &c,
        &format!("{}/v1/images/generations", s.base),
        None,
        &json!({"prompt": "x", "n": 9}),
    );
    assert_eq!((st, v["error"]["field"].as_str()), (422, Some("n")));
    let (st, v, _) = post(
        &c,
        &format!("{}/v1/images/generations", s.base),
        None,
        &json!({"prompt": "x", "response_format": "gif"}),
    );
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (422, Some("response_format"))
    );
    s.assert_no_internal_errors();
}

#[test]
fn cancel_after_deadline_cancels_the_job() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[fixture()], &[]);
    let c = client();
    let r = c
        .post(predict_url(&s.base))
        .header("Cancel-After", "1.5s")
        .json(&json!({"input": {"prompt": "slow", "width": 256, "height": 256, "steps": 150}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let id = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = wait_terminal(&c, &s.base, &id, None, Duration::from_secs(60));
    assert_eq!(done["status"], "canceled", "{done}");
    assert!(
        done["logs"].as_str().unwrap().contains("Cancel-After"),
        "{done}"
    );
    s.assert_no_internal_errors();
}

#[test]
fn queue_limit_gives_429_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &[fixture()],
        &["--max-queue", "1"],
    );
    let c = client();
    let body = json!({"input": {"prompt": "x", "width": 256, "height": 256, "steps": 60}});
    let mut refused = None;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (st, v, h) = post(&c, &predict_url(&s.base), None, &body);
        if st == 429 {
            refused = Some((v, h));
            break;
        }
        assert_eq!(st, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let (v, h) = refused.expect("a submission beyond the queue limit is refused");
    assert_eq!(v["error"]["code"], "queue_full");
    assert!(h.get("retry-after").is_some());
    for id in ids {
        let _ = c
            .post(format!("{}/v1/predictions/{id}/cancel", s.base))
            .send();
    }
}

#[test]
fn tenants_are_isolated_and_keys_are_required() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ka = keys_create(&data, "alpha");
    let kb = keys_create(&data, "beta");
    assert!(ka.starts_with("atl_") && ka != kb);
    let s = Server::start(&data, &[fixture()], &[]);
    let c = client();
    let body = json!({"input": {"prompt": "mine", "width": 64, "height": 64, "steps": 1}});
    // Keys exist: no key and a bad key are both 401.
    let (st, v, _) = post(&c, &predict_url(&s.base), None, &body);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (st, _, _) = post(&c, &predict_url(&s.base), Some("atl_nothere_0000"), &body);
    assert_eq!(st, 401);
    // With keys, the system view needs one and model pulls are the operator's (403).
    assert_eq!(get(&c, &format!("{}/v1/system", s.base), None).0, 401);
    let (st, v) = get(&c, &format!("{}/v1/system", s.base), Some(&ka));
    assert_eq!(
        (st, &v["open_mode"], &v["model_pull"]),
        (200, &json!(false), &json!(false)),
        "{v}"
    );
    let (st, v, _) = post(
        &c,
        &format!("{}/v1/models/pulls", s.base),
        Some(&ka),
        &json!({"repo": "stabilityai/sd-turbo"}),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (st, _) = get(
        &c,
        &format!("{}/v1/predictions", s.base),
        Some(&format!("{ka}x")),
    );
    assert_eq!(st, 401);

    let (st, j, _) = post(&c, &predict_url(&s.base), Some(&ka), &body);
    assert_eq!(st, 201, "{j}");
    let id = j["id"].as_str().unwrap().to_owned();
    let done = wait_terminal(&c, &s.base, &id, Some(&ka), Duration::from_secs(60));
    assert_eq!(done["status"], "succeeded");
    let url = done["output"]["images"][0].as_str().unwrap();
    let file_id = url
        .split("/v1/files/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap();

    for path in [
        format!("/v1/predictions/{id}"),
        format!("/v1/predictions/{id}/stream"),
        format!("/v1/predictions/{id}/preview"),
        format!("/v1/files/{file_id}"),
    ] {
        let r = c
            .get(format!("{}{path}", s.base))
            .bearer_auth(&kb)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "tenant beta reached {path}");
        let r = c
            .get(format!("{}{path}", s.base))
            .bearer_auth(&ka)
            .send()
            .unwrap();
        assert_ne!(r.status().as_u16(), 404, "tenant alpha lost {path}");
    }
    let r = c
        .post(format!("{}/v1/predictions/{id}/cancel", s.base))
        .bearer_auth(&kb)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (_, list_b) = get(&c, &format!("{}/v1/predictions", s.base), Some(&kb));
    assert_eq!(list_b["results"], json!([]));
    s.assert_no_internal_errors();
}

/// Decoded RGB pixels of a served PNG.
fn png_pixels(c: &Client, url: &str) -> Vec<u8> {
    let bytes = c.get(url).send().unwrap().bytes().unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    buf
}

#[test]
fn queued_jobs_of_one_shape_run_as_one_batch_and_each_keeps_its_own_result() {
    let tmp = tempfile::tempdir().unwrap();
    // Without the watermark, a job's pixels depend only on its input, not its id.
    let s = Server::start(
        &tmp.path().join("data"),
        &[fixture()],
        &["--max-batch", "4", "--no-watermark"],
    );
    let c = client();
    let submit = |input: Value| -> String {
        let (st, j, _) = post(&c, &predict_url(&s.base), None, &json!({ "input": input }));
        assert_eq!(st, 201, "{j}");
        j["id"].as_str().unwrap().to_owned()
    };
    // A long job of another size keeps the worker busy while the others queue up.
    let blocker = submit(json!({"prompt": "blocker", "width": 256, "height": 256, "steps": 60}));
    let t = Instant::now();
    while get(&c, &format!("{}/v1/predictions/{blocker}", s.base), None).1["status"] != "processing"
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "blocker never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let a_input = json!({"prompt": "a cinema ticket", "width": 64, "height": 64, "steps": 4, "seed": 1, "guidance_scale": 7.5});
    let a = submit(a_input.clone());
    let blocked =
        submit(json!({"prompt": "a 12 year old, n@ked", "width": 64, "height": 64, "steps": 4}));
    let other_size =
        submit(json!({"prompt": "wide", "width": 128, "height": 64, "steps": 4, "seed": 2}));
    let c_id = submit(
        json!({"prompt": "바닷가의 고양이", "negative_prompt": "blurry", "width": 64, "height": 64, "steps": 4, "seed": 3, "num_outputs": 2}),
    );
    let d = submit(
        json!({"prompt": "a storyboard cut", "width": 64, "height": 64, "steps": 4, "seed": 4, "guidance_scale": 0}),
    );
    let done = |id: &str| wait_terminal(&c, &s.base, id, None, Duration::from_secs(120));

    let blocked_job = done(&blocked);
    assert_eq!(blocked_job["status"], "failed", "{blocked_job}");
    assert_eq!(
        blocked_job["error_code"], "content_blocked",
        "{blocked_job}"
    );
    for (id, seeds) in [(&a, json!([1])), (&c_id, json!([3, 4])), (&d, json!([4]))] {
        let j = done(id);
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_eq!(
            j["metrics"]["batch_size"], 4,
            "claimed with three others: {j}"
        );
        assert_eq!(j["output"]["seeds"], seeds, "{j}");
        assert_eq!(j["progress"]["step"], 4, "{j}");
        assert_eq!(j["progress"]["total"], 4, "{j}");
    }
    let j = done(&other_size);
    assert_eq!(j["status"], "succeeded", "{j}");
    assert!(
        j["metrics"].get("batch_size").is_none(),
        "another size runs alone: {j}"
    );

    // The batched picture equals the same input run alone (summation order aside).
    let batched = done(&a)["output"]["images"][0].as_str().unwrap().to_owned();
    let alone_id = submit(a_input);
    let alone = done(&alone_id);
    assert!(alone["metrics"].get("batch_size").is_none(), "{alone}");
    let (p, q) = (
        png_pixels(&c, &batched),
        png_pixels(&c, alone["output"]["images"][0].as_str().unwrap()),
    );
    assert_eq!(p.len(), q.len());
    let worst = p
        .iter()
        .zip(&q)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0);
    assert!(
        worst <= 1,
        "batched and single pictures differ by {worst} levels"
    );
    s.assert_no_internal_errors();
}

#[test]
fn with_a_batch_wait_jobs_arriving_a_moment_apart_share_a_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &[fixture()],
        &["--max-batch", "3", "--batch-wait-ms", "2000"],
    );
    let c = client();
    // The idle worker claims the first job at once, then waits for two more of its shape.
    let ids: Vec<String> = (0..3)
        .map(|seed| {
            let body = json!({"input": {"prompt": "a ticket", "width": 64, "height": 64, "steps": 2, "seed": seed}});
            let (st, j, _) = post(&c, &predict_url(&s.base), None, &body);
            assert_eq!(st, 201, "{j}");
            j["id"].as_str().unwrap().to_owned()
        })
        .collect();
    for id in &ids {
        let j = wait_terminal(&c, &s.base, id, None, Duration::from_secs(60));
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_eq!(j["metrics"]["batch_size"], 3, "{j}");
    }
    s.assert_no_internal_errors();
}

#[test]
fn cancel_stops_a_running_job_within_a_step() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[fixture()], &[]);
    let c = client();
    let (_, j, _) = post(
        &c,
        &predict_url(&s.base),
        None,
        &json!({"input": {"prompt": "long", "width": 256, "height": 256, "steps": 150}}),
    );
    let id = j["id"].as_str().unwrap().to_owned();
    let t = Instant::now();
    loop {
        let (_, j) = get(&c, &format!("{}/v1/predictions/{id}", s.base), None);
        if j["progress"]["step"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "never progressed: {j}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = c
        .post(format!("{}/v1/predictions/{id}/cancel", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let at_cancel = get(&c, &format!("{}/v1/predictions/{id}", s.base), None).1["progress"]["step"]
        .as_u64()
        .unwrap();
    let done = wait_terminal(&c, &s.base, &id, None, Duration::from_secs(30));
    assert_eq!(done["status"], "canceled", "{done}");
    let last = done["progress"]["step"].as_u64().unwrap();
    assert!(
        last <= at_cancel + 1,
        "ran {} steps after cancel",
        last - at_cancel
    );
    assert!(last < 150);
    s.assert_no_internal_errors();
}

#[test]
fn sse_resumes_with_last_event_id_without_loss_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[fixture()], &[]);
    let c = client();
    let (_, j, _) = post(
        &c,
        &predict_url(&s.base),
        None,
        &json!({"input": {"prompt": "stream me", "width": 128, "height": 128, "steps": 12}}),
    );
    let id = j["id"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/predictions/{id}/stream", s.base);
    // Read a few events, drop the connection mid-job, resume.
    let first = read_sse(&c, &url, None, Some(3));
    assert_eq!(first.len(), 3);
    let last = first.last().unwrap().0;
    let rest = read_sse(&c, &url, Some(last), None);
    let mut got: Vec<(i64, String, String)> = first.into_iter().chain(rest).collect();
    assert_eq!(got.last().unwrap().1, "done", "{got:?}");
    // Compare with a full replay after the fact: same events, same order, each once.
    let full = read_sse(&c, &url, None, None);
    assert_eq!(
        got.iter().map(|e| e.0).collect::<Vec<_>>(),
        full.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    got.dedup_by_key(|e| e.0);
    assert_eq!(got.len(), full.len());
    let kinds: Vec<&str> = full.iter().map(|e| e.1.as_str()).collect();
    assert!(
        kinds.contains(&"progress") && kinds.contains(&"output") && kinds.contains(&"logs"),
        "{kinds:?}"
    );
    assert!(
        full.iter()
            .any(|e| e.1 == "progress" && e.2.contains("data:image/png;base64,")),
        "no preview in progress events"
    );
    s.assert_no_internal_errors();
}

#[test]
fn kill_dash_nine_mid_job_loses_nothing_and_runs_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(&tmp.path().join("data"), &[fixture()], &[]);
    let c = client();
    let mut ids = Vec::new();
    for i in 0..20 {
        let steps = if i == 2 { 40 } else { 2 };
        let (st, j, _) = post(
            &c,
            &predict_url(&s.base),
            None,
            &json!({"input": {"prompt": format!("job {i}"), "width": 64, "height": 64, "steps": steps}}),
        );
        assert_eq!(st, 201, "{j}");
        ids.push(j["id"].as_str().unwrap().to_owned());
    }
    // Wait for the 3rd job to be mid-run, then kill -9.
    let t = Instant::now();
    loop {
        let (_, j) = get(&c, &format!("{}/v1/predictions/{}", s.base, ids[2]), None);
        if j["status"] == "processing" && j["progress"]["step"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "3rd job never started: {j}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.restart();
    for id in &ids {
        let j = wait_terminal(&c, &s.base, id, None, Duration::from_secs(180));
        assert!(
            j["status"] == "succeeded" || j["error_code"] == "interrupted",
            "job {id} ended {}: {j}",
            j["status"]
        );
        let events = read_sse(
            &c,
            &format!("{}/v1/predictions/{id}/stream", s.base),
            None,
            None,
        );
        let outputs = events.iter().filter(|e| e.1 == "output").count();
        let dones = events.iter().filter(|e| e.1 == "done").count();
        let expected = usize::from(j["status"] == "succeeded");
        assert_eq!((outputs, dones), (expected, 1), "job {id}: {events:?}");
    }
    let (_, j) = get(&c, &format!("{}/v1/predictions/{}", s.base, ids[2]), None);
    assert_eq!(
        j["attempts"], 2,
        "the interrupted job was retried once: {j}"
    );
    s.assert_no_internal_errors();
}

/// The official Python clients (openai, replicate, standardwebhooks), installed by .ci/run
/// (or by tests/python/setup.sh) into a virtualenv named by ATELIER_TEST_PYTHON.
/// The virtualenv python with the official clients: ATELIER_TEST_PYTHON (set by .ci/run) or
/// tests/python/setup.sh.
fn python_clients() -> PathBuf {
    match std::env::var("ATELIER_TEST_PYTHON") {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            let o = Command::new("bash")
                .arg(root().join("tests/python/setup.sh"))
                .output()
                .expect("bash");
            assert!(
                o.status.success(),
                "setting up the Python clients failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
        }
    }
}

#[test]
fn official_python_clients_work_unchanged() {
    let python = python_clients();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = keys_create(&data, "clients");
    let s = Server::start(&data, &[fixture()], &["--allow-private-webhooks"]);
    let mut child = Command::new(&python)
        .arg(root().join("tests/python/clients.py"))
        .args([&s.base, &key])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    println!("{out}");
    assert!(status.success(), "python clients failed:\n{out}\n{err}");
    assert!(out.contains("5 passed, 0 failed"), "{out}");
}

/// Creates a text-to-image job and waits for its end (`Prefer: wait`).
fn wait(c: &Client, base: &str, body: &Value) -> Value {
    c.post(predict_url(base))
        .header("Prefer", "wait=60")
        .json(body)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// A blocked prompt fails its job with `content_blocked` (the OpenAI endpoint answers 400
/// `content_policy_violation`), the audit log records it, and `atelier inspect` on a served
/// PNG shows its parameters, model hash, seed, job id, source type and watermark payload.
#[test]
fn blocked_prompts_fail_and_served_images_carry_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &[fixture()],
        &["--service-id", "42"],
    );
    let c = client();
    let body =
        json!({"input": {"prompt": "a 12 year old, n@ked", "width": 64, "height": 64, "steps": 1}});
    let j = wait(&c, &s.base, &body);
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["error_code"], "content_blocked", "{j}");
    assert!(j["error"].as_str().unwrap().contains("minors"), "{j}");
    let (st, v, _) = post(
        &c,
        &format!("{}/v1/images/generations", s.base),
        None,
        &json!({"prompt": "ㅅㅔㄱㅅ", "size": "64x64"}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "content_policy_violation", "{v}");
    let (st, audit) = get(&c, &format!("{}/v1/audit", s.base), None);
    assert_eq!(st, 200);
    assert_eq!(audit["data"].as_array().unwrap().len(), 2, "{audit}");
    assert_eq!(audit["data"][1]["category"], "minors", "{audit}");

    let body = json!({"input": {"prompt": "영화 티켓, a photo ticket", "width": 256, "height": 256, "steps": 1, "seed": 5, "label": true}});
    let j = wait(&c, &s.base, &body);
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(j["output"]["image_screening"], "unavailable");
    let id = j["id"].as_str().unwrap().to_owned();
    let url = j["output"]["images"][0].as_str().unwrap();
    let png = c.get(url).send().unwrap().bytes().unwrap();
    let file = tmp.path().join("served.png");
    std::fs::write(&file, &png).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["inspect", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}");
    assert!(out.status.success());
    let payload = j["output"]["watermarks"][0].as_str().unwrap().to_owned();
    assert!(payload.starts_with("002a-"), "{payload}");
    for needle in [
        "trainedAlgorithmicMedia",
        &format!("job id:        {id}"),
        "weights hash:  sha256:",
        "seed:          5",
        "label:         AI 생성",
        "parameters text: 영화 티켓, a photo ticket | Steps: 1",
        &format!("watermark:     detected, payload {payload}"),
        "c2pa manifest: atelier 0.1.0 output; source type http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        "signingCredential.untrusted",
    ] {
        assert!(
            text.contains(needle),
            "inspect output lacks {needle:?}:\n{text}"
        );
    }
    s.assert_no_internal_errors();
}

/// The official openai client's chat API against a tiny random-weight Qwen2 model served by
/// `atelier serve --llm` (tests/python/chat.py), plus what a server without a model says.
#[test]
fn chat_completions_work_with_the_openai_client() {
    let python = python_clients();
    let tmp = tempfile::tempdir().unwrap();
    let tiny =
        atelier_llm::tiny::build(tmp.path(), &atelier_llm::tiny::TinySpec::default()).unwrap();
    let data = tmp.path().join("data");
    let key = keys_create(&data, "chat");
    let local = atelier_llm::LocalModel::load(&tiny.folder, &atelier_llm::Device::Cpu).unwrap();
    let max_token_chars = (0..local.tokenizer().len() as u32)
        .map(|id| {
            String::from_utf8_lossy(local.tokenizer().text_bytes(id))
                .chars()
                .count() as u64
        })
        .max()
        .unwrap();
    for model in [&tiny.gguf, &tiny.folder] {
        let s = Server::start(&data, &[], &["--llm", model.to_str().unwrap()]);
        let id = model.file_stem().unwrap().to_str().unwrap();
        let out = Command::new(&python)
            .arg(root().join("tests/python/chat.py"))
            .args([&s.base, &key, id])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{}: {text}", model.display());
        assert!(
            out.status.success(),
            "python chat client failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("5 passed, 0 failed"), "{text}");
        stream_disconnect_stops_generation(&s, &key, id, max_token_chars);
        s.assert_no_internal_errors();
    }
    // Without --llm: a clear 404 (not a 503 that clients would retry) that says how to
    // configure a model.
    let s = Server::start(&data, &[], &[]);
    let (status, body, _) = post(
        &client(),
        &format!("{}/v1/chat/completions", s.base),
        Some(&key),
        &json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "no_language_model");
    assert_eq!(body["error"]["field"], "model");
    assert!(body["error"]["message"].as_str().unwrap().contains("--llm"));
}

/// Tokens the server's language model has generated (`/metrics`).
fn llm_tokens(base: &str) -> u64 {
    metric(base, "atelier_llm_tokens_total")
}

/// A client that reads three chunks of a long stream and hangs up: generation stops far short
/// of the answer (a schema whose one string needs at least 8000 characters, so the model
/// cannot end its turn early).
fn stream_disconnect_stops_generation(s: &Server, key: &str, model: &str, max_token_chars: u64) {
    let before = llm_tokens(&s.base);
    let body = json!({
        "model": model, "stream": true, "max_tokens": 8000, "seed": 1,
        "messages": [{"role": "user", "content": "긴 이야기"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "long", "schema": {
            "type": "object", "properties": {"story": {"type": "string", "minLength": 8000}},
            "required": ["story"], "additionalProperties": false}}},
    });
    let resp = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut reader = BufReader::new(resp);
    let mut chunks = 0;
    let mut line = String::new();
    while chunks < 3 {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
        if line.starts_with("data:") {
            chunks += 1;
        }
    }
    drop(reader);
    // Wait until the counter settles (generation ended), then compare with the answer's size.
    let mut last = llm_tokens(&s.base);
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(200));
        let now = llm_tokens(&s.base);
        if now == last {
            break;
        }
        last = now;
    }
    let generated = last - before;
    println!("tokens generated before the hang-up took effect: {generated}");
    // The answer needs at least 8000 / (longest token in characters) tokens.
    let needed = 8000 / max_token_chars;
    assert!(
        generated < needed,
        "generation went on after the client left: {generated} tokens (a full answer needs {needed})"
    );
}
