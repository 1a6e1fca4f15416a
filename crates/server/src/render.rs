//! Jobs as clients see them: Replicate's prediction object plus our additions
//! (`queue_position`, `progress`, `preview_url`), with file references turned into signed URLs.

use atelier_platform::links::LinkSigner;
use atelier_platform::{now_ms, Job, JobStatus, FILE_REF};
use serde_json::{json, Value};

fn iso(ms: Option<i64>) -> Value {
    match ms {
        Some(ms) => {
            let secs = ms.div_euclid(1000);
            let millis = ms.rem_euclid(1000);
            let days = secs.div_euclid(86_400);
            let rem = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            json!(format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
                rem / 3600,
                (rem % 3600) / 60,
                rem % 60
            ))
        }
        None => Value::Null,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Signed absolute URL of a file.
pub fn file_url(base: &str, links: &LinkSigner, id: &str, ttl_s: i64) -> String {
    let exp = now_ms() / 1000 + ttl_s;
    format!("{base}/v1/files/{id}?{}", links.sign(id, exp))
}

/// Replaces every `atelier-file://ID` string in an output with a signed URL.
pub fn resolve_files(v: &Value, base: &str, links: &LinkSigner, ttl_s: i64) -> Value {
    match v {
        Value::String(s) => match s.strip_prefix(FILE_REF) {
            Some(id) => json!(file_url(base, links, id, ttl_s)),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_files(x, base, links, ttl_s))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), resolve_files(x, base, links, ttl_s)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// The public status name. Replicate's clients know five; `aborted` is reported as `canceled`.
pub fn status_name(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Aborted => "canceled",
        s => s.as_str(),
    }
}

/// Renders a job.
pub fn job_json(
    job: &Job,
    queue_position: Option<i64>,
    base: &str,
    links: &LinkSigner,
    ttl_s: i64,
) -> Value {
    let id = &job.id;
    let error = job.error.as_ref().map(|e| {
        e.get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| e.to_string())
    });
    let error_code = job.error.as_ref().and_then(|e| e.get("code").cloned());
    let progress = job
        .progress
        .clone()
        .or_else(|| (job.status == JobStatus::Succeeded).then(|| json!({"fraction": 1.0})));
    json!({
        "id": id,
        "model": job.app,
        "version": "atelier-1",
        "status": status_name(job.status),
        "input": job.input,
        "output": job.output.as_ref().map(|o| resolve_files(o, base, links, ttl_s)),
        "error": error,
        "error_code": error_code,
        "logs": job.logs,
        "metrics": job.metrics.clone().unwrap_or_else(|| json!({})),
        "created_at": iso(Some(job.created_at)),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "data_removed": false,
        "urls": {
            "get": format!("{base}/v1/predictions/{id}"),
            "cancel": format!("{base}/v1/predictions/{id}/cancel"),
            "stream": format!("{base}/v1/predictions/{id}/stream"),
        },
        "queue_position": queue_position,
        "progress": progress,
        "preview_url": job.has_preview.then(|| format!("{base}/v1/predictions/{id}/preview")),
        "attempts": job.attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso(Some(0)), json!("1970-01-01T00:00:00.000Z"));
        assert_eq!(
            iso(Some(1_795_000_000_123)),
            json!("2026-11-18T11:06:40.123Z")
        );
        assert_eq!(iso(None), Value::Null);
    }

    #[test]
    fn file_refs_become_signed_urls() {
        let l = LinkSigner::new(b"s");
        let v = resolve_files(
            &json!({"images": ["atelier-file://abc", "plain"]}),
            "http://h",
            &l,
            60,
        );
        let u = v["images"][0].as_str().unwrap();
        assert!(u.starts_with("http://h/v1/files/abc?exp="), "{u}");
        assert!(u.contains("&sig="));
        assert_eq!(v["images"][1], "plain");
    }
}
