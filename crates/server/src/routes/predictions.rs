//! Replicate-shaped predictions: create, get, list, cancel, stream, preview.

use std::convert::Infallible;
use std::time::Duration;

use atelier_platform::store::{Event, ListQuery, NewJob};
use atelier_platform::{now_ms, JobStatus};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{BaseUrl, Json, Path, Query, Tenant};
use crate::render::job_json;
use crate::state::AppState;

/// Body of a prediction request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PredictionRequest {
    /// The app's input (for `atelier/text-to-image`: prompt, width, …).
    #[schema(value_type = Object)]
    pub input: Value,
    /// `owner/name` of the app when posting to `/v1/predictions`.
    #[serde(default)]
    pub version: Option<String>,
    /// URL notified of `webhook_events_filter` events, signed with Standard Webhooks.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Subset of start, output, logs, completed (default: all).
    #[serde(default)]
    pub webhook_events_filter: Option<Vec<String>>,
    /// Replicate's streaming flag; every prediction streams here, so it is accepted and ignored.
    #[serde(default)]
    pub stream: Option<bool>,
}

/// Parses `Prefer: wait` / `wait=N` into seconds, capped.
pub fn prefer_wait(headers: &HeaderMap, max: u64) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get("prefer").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    for part in v.split(',').map(str::trim) {
        if part == "wait" {
            return Ok(Some(max));
        }
        if let Some(n) = part.strip_prefix("wait=") {
            let n: u64 = n
                .trim()
                .parse()
                .map_err(|_| ApiError::invalid("Prefer", "expected wait or wait=<seconds>"))?;
            if n == 0 || n > max {
                return Err(ApiError::invalid(
                    "Prefer",
                    format!("wait must be between 1 and {max} seconds"),
                ));
            }
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// Longest `Cancel-After`: a week. Longer deadlines are refused rather than overflowing the
/// millisecond clock (a fuzzed `Cancel-After: 9999…` panicked here before).
pub const MAX_CANCEL_AFTER_S: f64 = 7.0 * 24.0 * 3600.0;

/// Parses a `Cancel-After` duration: `90`, `45s`, `5m`, `1h30m`, `1.5m`.
pub fn parse_duration_s(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return (n > 0.0 && n.is_finite()).then_some(n);
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut any = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => return None,
            }
        };
        let n: f64 = num.parse().ok()?;
        total += n * unit;
        num.clear();
        any = true;
    }
    (any && num.is_empty() && total > 0.0).then_some(total)
}

async fn create(
    state: &AppState,
    tenant: &str,
    base: &str,
    app: String,
    headers: &HeaderMap,
    body: PredictionRequest,
) -> ApiResult<Response> {
    let wait = prefer_wait(headers, state.platform.config.limits.max_wait_s)?;
    let cancel_after = match headers.get("cancel-after").and_then(|v| v.to_str().ok()) {
        Some(v) => {
            let secs = parse_duration_s(v)
                .filter(|s| *s <= MAX_CANCEL_AFTER_S)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "Cancel-After",
                        "expected a duration of at most a week, such as 30s, 5m or 1h",
                    )
                })?;
            Some(now_ms().saturating_add((secs * 1000.0) as i64))
        }
        None => None,
    };
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(k) = &idempotency_key {
        if k.is_empty() || k.len() > 256 {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "must be 1 to 256 characters",
            ));
        }
    }
    let new = NewJob {
        tenant_id: tenant.to_owned(),
        app,
        input: body.input,
        priority: 0,
        max_attempts: 0,
        cancel_after,
        idempotency_key,
        webhook: body.webhook,
        webhook_events: body.webhook_events_filter,
        batch_key: None,
        model: None,
    };
    let (mut job, created) = state.platform.submit(new).await?;
    if let Some(secs) = wait {
        if let Some(j) = state
            .platform
            .wait(tenant, &job.id, Duration::from_secs(secs))
            .await?
        {
            job = j;
        }
    }
    let pos = state.platform.store.queue_position(&job).await?;
    let body = job_json(&job, pos, base, &state.platform.links, state.link_ttl_s);
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = (code, axum::Json(body)).into_response();
    if let Ok(v) = format!("{base}/v1/predictions/{}", job.id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Create a prediction of an app addressed as a model.
#[utoipa::path(post, path = "/v1/models/{owner}/{name}/predictions", tag = "predictions",
    params(("owner" = String, Path, description = "e.g. atelier"), ("name" = String, Path, description = "e.g. text-to-image"),
           ("Prefer" = Option<String>, Header, description = "wait or wait=N (seconds, at most 60)"),
           ("Cancel-After" = Option<String>, Header, description = "deadline, e.g. 30s or 5m"),
           ("Idempotency-Key" = Option<String>, Header, description = "a retried submit with the same key returns the same job")),
    request_body = PredictionRequest,
    responses((status = 201, description = "created", body = Object), (status = 200, description = "existing job for this Idempotency-Key", body = Object),
              (status = 422, description = "invalid input", body = crate::routes::ErrorBody), (status = 429, description = "queue full", body = crate::routes::ErrorBody)))]
pub async fn create_for_model(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<PredictionRequest>,
) -> ApiResult<Response> {
    create(
        &state,
        &tenant,
        &base,
        format!("{owner}/{name}"),
        &headers,
        body,
    )
    .await
}

/// Create a prediction naming the app in `version`.
#[utoipa::path(post, path = "/v1/predictions", tag = "predictions", request_body = PredictionRequest,
    responses((status = 201, description = "created", body = Object), (status = 404, description = "no app of that `version`", body = crate::routes::ErrorBody),
              (status = 422, description = "invalid input", body = crate::routes::ErrorBody), (status = 429, description = "queue full", body = crate::routes::ErrorBody)))]
pub async fn create_with_version(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Json(body): Json<PredictionRequest>,
) -> ApiResult<Response> {
    let app = body
        .version
        .clone()
        .ok_or_else(|| ApiError::invalid("version", "name the app, e.g. atelier/text-to-image"))?;
    let app = app.split(':').next().unwrap_or_default().to_owned();
    create(&state, &tenant, &base, app, &headers, body).await
}

/// Get a prediction.
#[utoipa::path(get, path = "/v1/predictions/{id}", tag = "predictions", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let job = state.platform.store.get_job(&tenant, &id).await?;
    render(&state, job, &base).await
}

/// Renders a job found for the caller, or the 404 shared by absent and foreign jobs.
async fn render(
    state: &AppState,
    job: Option<atelier_platform::Job>,
    base: &str,
) -> ApiResult<axum::Json<Value>> {
    let job = job.ok_or_else(|| ApiError::not_found("prediction"))?;
    let pos = state.platform.store.queue_position(&job).await?;
    Ok(axum::Json(job_json(
        &job,
        pos,
        base,
        &state.platform.links,
        state.link_ttl_s,
    )))
}

/// Query of the list route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// Opaque cursor from a previous page's `next`.
    pub cursor: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this app (`owner/name`).
    pub model: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<i64>,
}

/// List predictions, newest first, with cursor pagination.
#[utoipa::path(get, path = "/v1/predictions", tag = "predictions", params(ListParams),
    responses((status = 200, description = "{next, previous, results}", body = Object)))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Value>> {
    let status = match p.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "status",
                "expected starting, processing, succeeded, failed or canceled",
            )
        })?),
    };
    let before_seq = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", "not a cursor from this server"))?,
        ),
    };
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 100"));
    }
    let page = state
        .platform
        .store
        .list_jobs(&ListQuery {
            tenant_id: tenant,
            status,
            app: p.model.clone(),
            before_seq,
            limit,
        })
        .await?;
    let mut results = Vec::with_capacity(page.jobs.len());
    for j in &page.jobs {
        let pos = state.platform.store.queue_position(j).await?;
        results.push(job_json(
            j,
            pos,
            &base,
            &state.platform.links,
            state.link_ttl_s,
        ));
    }
    let next = page.next_cursor.map(|c| {
        let mut u = format!("{base}/v1/predictions?cursor={c}&limit={limit}");
        if let Some(s) = &p.status {
            u.push_str(&format!("&status={s}"));
        }
        if let Some(m) = &p.model {
            u.push_str(&format!("&model={m}"));
        }
        u
    });
    Ok(axum::Json(
        json!({"next": next, "previous": null, "results": results}),
    ))
}

/// Cancel a queued or running prediction (a running one stops within one denoising step).
#[utoipa::path(post, path = "/v1/predictions/{id}/cancel", tag = "predictions", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let job = state.platform.cancel(&tenant, &id).await?;
    render(&state, job, &base).await
}

/// Latest preview image of a running prediction.
#[utoipa::path(get, path = "/v1/predictions/{id}/preview", tag = "predictions", params(("id" = String, Path)),
    responses((status = 200, content_type = "image/png", body = Vec<u8>), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let png = state
        .platform
        .store
        .preview(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("preview"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        png,
    )
        .into_response())
}

fn sse_event(e: &Event) -> SseEvent {
    let data = match e.kind.as_str() {
        "logs" => e
            .data
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| e.data.to_string()),
        _ => e.data.to_string(),
    };
    SseEvent::default()
        .id(e.id.to_string())
        .event(e.kind.clone())
        .data(data)
}

struct StreamState {
    state: AppState,
    id: String,
    last: i64,
    rx: tokio::sync::broadcast::Receiver<String>,
    pending: std::collections::VecDeque<Event>,
    done: bool,
    /// The key's stream slot, given back when the client goes away or the stream ends.
    _permit: crate::limits::StreamPermit,
}

/// Server-sent events of a prediction: `status`, `progress` (with a preview data URL every few
/// steps), `logs`, `output`, `error`, `done`. `Last-Event-ID` resumes after that event; the
/// stream ends after `done`.
#[utoipa::path(get, path = "/v1/predictions/{id}/stream", tag = "predictions",
    params(("id" = String, Path), ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id")),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    crate::extract::KeyId(key): crate::extract::KeyId,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    state
        .platform
        .store
        .get_job(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("prediction"))?;
    let last = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(v) => v.trim().parse::<i64>().map_err(|_| {
            ApiError::invalid("Last-Event-ID", "expected an event id from this stream")
        })?,
        None => 0,
    };
    let permit = state.http.open_stream(&key)?;
    // Subscribe before reading the log so nothing written in between is missed.
    let rx = state.platform.subscribe();
    let init = StreamState {
        state,
        id,
        last,
        rx,
        pending: Default::default(),
        done: false,
        _permit: permit,
    };
    let s = futures_util::stream::unfold(init, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                st.last = e.id;
                if e.kind == "done" {
                    st.done = true;
                }
                if e.kind == "webhook" {
                    continue;
                }
                return Some((Ok(sse_event(&e)), st));
            }
            if st.done {
                return None;
            }
            match st.state.platform.store.events_after(&st.id, st.last).await {
                Ok(evs) if !evs.is_empty() => {
                    st.pending.extend(evs);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("stream read failed: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            // Wait for this job's next write (or re-check periodically; a lagged receiver
            // just re-reads the log).
            let wait = async {
                loop {
                    match st.rx.recv().await {
                        Ok(j) if j == st.id => return,
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        }
    });
    Ok(Sse::new(s).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_huge_ones_stay_finite() {
        assert_eq!(parse_duration_s("90"), Some(90.0));
        assert_eq!(parse_duration_s("1h30m"), Some(5400.0));
        assert_eq!(parse_duration_s("250ms"), Some(0.25));
        for bad in ["", "0", "-5", "5x", "m", "1e999", "NaN", "inf"] {
            assert_eq!(parse_duration_s(bad), None, "{bad:?}");
        }
        // Found by schemathesis: these overflowed the deadline arithmetic and panicked.
        for huge in [
            "999999999999999999999999999999",
            "9224999999999999",
            "99999999999999h",
        ] {
            let s = parse_duration_s(huge).unwrap();
            assert!(s > MAX_CANCEL_AFTER_S, "{huge} is refused by the handler");
        }
    }
}
