//! Operations and discovery: health, readiness, metrics, installed models, OpenAPI.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::extract::Tenant;
use crate::state::AppState;

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Object), (status = 503, body = Object)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.platform.store.queue_depth().await {
        Ok(depth) => (
            StatusCode::OK,
            axum::Json(json!({"ready": true, "queue_depth": depth})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let m = atelier_platform::metrics::metrics();
    let depth = state.platform.store.queue_depth().await.unwrap_or(-1);
    let mut out = String::new();
    out.push_str(&format!("# HELP atelier_queue_depth Jobs waiting for a worker.\n# TYPE atelier_queue_depth gauge\natelier_queue_depth {depth}\n"));
    out.push_str("# HELP atelier_jobs_total Jobs by outcome.\n# TYPE atelier_jobs_total counter\n");
    for (k, v) in [
        ("submitted", &m.jobs_submitted),
        ("succeeded", &m.jobs_succeeded),
        ("failed", &m.jobs_failed),
        ("canceled", &m.jobs_canceled),
    ] {
        out.push_str(&format!(
            "atelier_jobs_total{{outcome=\"{k}\"}} {}\n",
            v.load(Relaxed)
        ));
    }
    m.job_latency.render(
        "atelier_job_latency_seconds",
        "Time from submission to completion.",
        &mut out,
    );
    m.step_time
        .render("atelier_step_seconds", "Time per denoising step.", &mut out);
    let resident = state.models.resident();
    out.push_str(&format!(
        "# HELP atelier_models_loaded Models resident in memory.\n# TYPE atelier_models_loaded gauge\natelier_models_loaded {}\n",
        resident.len()
    ));
    for r in resident {
        out.push_str(&format!(
            "atelier_model_loaded{{model=\"{}\"}} 1\n",
            r.replace('"', "")
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Installed models (OpenAI list shape, with atelier details).
#[utoipa::path(get, path = "/v1/models", tag = "models", responses((status = 200, body = Object)))]
pub async fn models(State(state): State<AppState>, _t: Tenant) -> ApiResult<axum::Json<Value>> {
    let list = state.models.list();
    let resident = state.models.resident();
    let data: Vec<Value> = list
        .iter()
        .map(|m| {
            json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "atelier",
                "family": m.family,
                "prediction_type": m.prediction_type,
                "default_scheduler": m.default_scheduler.name(),
                "native_size": m.native_size,
                "loaded": resident.contains(&m.name),
            })
        })
        .collect();
    let mut body = json!({"object": "list", "data": data, "apps": state.platform.app_names()});
    if list.is_empty() {
        body["message"] = json!(no_models_message(&state));
    }
    Ok(axum::Json(body))
}

/// What to tell users when no model is installed.
pub fn no_models_message(state: &AppState) -> String {
    let dirs: Vec<String> = state
        .models
        .dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    format!(
        "no models installed in {}; install one with `atelier models pull stabilityai/sd-turbo --dir {}` or copy a diffusers-format folder there",
        dirs.join(", "),
        dirs.first().cloned().unwrap_or_else(|| "models".into())
    )
}

/// The OpenAPI document.
pub async fn openapi(State(state): State<AppState>) -> Response {
    axum::Json(crate::openapi::document(&state)).into_response()
}

/// The caller's webhook signing secret (`whsec_…`), as Replicate's `webhooks.default.secret()` reads it.
#[utoipa::path(get, path = "/v1/webhooks/default/secret", tag = "webhooks", responses((status = 200, description = "{key}", body = Object)))]
pub async fn webhook_secret(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> ApiResult<axum::Json<Value>> {
    let t = state
        .platform
        .store
        .tenant(&tenant)
        .await?
        .ok_or_else(|| crate::error::ApiError::not_found("tenant"))?;
    Ok(axum::Json(json!({"key": t.webhook_secret})))
}

/// Query of `GET /v1/audit`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries with an id below this (the previous page's `next_cursor`).
    pub before: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
}

/// The caller's safety audit log: every blocked or flagged prompt and image and every policy
/// override, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "safety", params(("before" = Option<i64>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, body = Object)))]
pub async fn audit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    q: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<Value>> {
    let axum::extract::Query(q) =
        q.map_err(|e| crate::error::ApiError::invalid("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(crate::error::ApiError::invalid(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let entries = state
        .platform
        .store
        .list_audit(&tenant, q.before, limit)
        .await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(axum::Json(json!({"data": entries, "next_cursor": next})))
}
