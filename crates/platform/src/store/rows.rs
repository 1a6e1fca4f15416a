//! What the backends share: rows mapped to jobs, events, files and audit entries (one
//! definition, expanded for each backend's row type) and an outcome's column values.

use serde_json::{json, Value};

use super::Outcome;

/// A JSON text column; unreadable JSON reads as absent rather than failing the whole row.
pub(crate) fn parse_json(s: Option<String>) -> Option<Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

/// `(status, output, error, metrics)` as `complete` writes them.
pub(crate) fn outcome_columns(
    outcome: &Outcome,
) -> (&'static str, Option<Value>, Option<Value>, Option<Value>) {
    match outcome {
        Outcome::Succeeded { output, metrics } => (
            "succeeded",
            Some(output.clone()),
            None,
            Some(metrics.clone()),
        ),
        Outcome::Failed {
            code,
            message,
            details,
        } => {
            let mut e = json!({"code": code, "message": message});
            if let (Some(Value::Object(d)), Some(o)) = (details, e.as_object_mut()) {
                for (k, v) in d {
                    o.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            ("failed", None, Some(e), None)
        }
        Outcome::Canceled => ("canceled", None, None, None),
        Outcome::Aborted { message } => (
            "aborted",
            None,
            Some(json!({"code": "aborted", "message": message})),
            None,
        ),
    }
}

/// Expands `job_from_row`, `event_from_row`, `file_from_row` and `audit_from_row` for a
/// backend's row type (the column names and types are the same in both schemas).
macro_rules! row_mappers {
    ($row:ty) => {
        fn worker_from_row(r: &$row) -> Result<WorkerInfo> {
            let list = |col: &str| -> Result<Vec<String>> {
                let s: String = r.try_get(col)?;
                serde_json::from_str(&s)
                    .map_err(|e| PlatformError::Corrupt(format!("workers.{col}: {e}")))
            };
            Ok(WorkerInfo {
                id: r.try_get("id")?,
                host: r.try_get("host")?,
                pid: r.try_get("pid")?,
                device: r.try_get("device")?,
                memory_bytes: r.try_get("memory_bytes")?,
                slots: r.try_get("slots")?,
                apps: list("apps")?,
                models: list("models")?,
                loaded: list("loaded")?,
                running: r.try_get("running")?,
                draining: r.try_get::<i64, _>("draining")? != 0,
                started_at: r.try_get("started_at")?,
                last_seen: r.try_get("last_seen")?,
                stopped_at: r.try_get("stopped_at")?,
            })
        }

        fn job_from_row(r: &$row) -> Result<Job> {
            let status: String = r.try_get("status")?;
            let events: Option<String> = r.try_get("webhook_events")?;
            Ok(Job {
                id: r.try_get("id")?,
                seq: r.try_get("seq")?,
                tenant_id: r.try_get("tenant_id")?,
                app: r.try_get("app")?,
                status: JobStatus::parse(&status)
                    .ok_or_else(|| PlatformError::Corrupt(format!("job status {status:?}")))?,
                input: parse_json(r.try_get("input")?).unwrap_or(Value::Null),
                output: parse_json(r.try_get("output")?),
                error: parse_json(r.try_get("error")?),
                logs: r.try_get("logs")?,
                progress: parse_json(r.try_get("progress")?),
                metrics: parse_json(r.try_get("metrics")?),
                has_preview: r.try_get::<bool, _>("has_preview")?,
                priority: r.try_get("priority")?,
                attempts: r.try_get("attempts")?,
                max_attempts: r.try_get("max_attempts")?,
                lease_owner: r.try_get("lease_owner")?,
                lease_expires_at: r.try_get("lease_expires_at")?,
                cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
                cancel_after: r.try_get("cancel_after")?,
                idempotency_key: r.try_get("idempotency_key")?,
                webhook: r.try_get("webhook")?,
                webhook_events: events.and_then(|e| serde_json::from_str(&e).ok()),
                batch_key: r.try_get("batch_key")?,
                model: r.try_get("model")?,
                created_at: r.try_get("created_at")?,
                started_at: r.try_get("started_at")?,
                completed_at: r.try_get("completed_at")?,
            })
        }

        fn event_from_row(r: &$row) -> Result<Event> {
            Ok(Event {
                id: r.try_get("id")?,
                job_id: r.try_get("job_id")?,
                kind: r.try_get("kind")?,
                data: parse_json(r.try_get("data")?).unwrap_or(Value::Null),
                created_at: r.try_get("created_at")?,
            })
        }

        fn file_from_row(r: &$row) -> Result<FileRecord> {
            Ok(FileRecord {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                job_id: r.try_get("job_id")?,
                content_type: r.try_get("content_type")?,
                size: r.try_get("size")?,
                sha256: r.try_get("sha256")?,
                storage_key: r.try_get("storage_key")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn audit_from_row(r: &$row) -> Result<AuditEntry> {
            let detail: String = r.try_get("detail")?;
            Ok(AuditEntry {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                job_id: r.try_get("job_id")?,
                action: r.try_get("action")?,
                category: r.try_get("category")?,
                detail: serde_json::from_str(&detail)
                    .map_err(|e| PlatformError::Corrupt(format!("audit detail: {e}")))?,
                created_at: r.try_get("created_at")?,
            })
        }
    };
}
pub(crate) use row_mappers;
