//! Photo tickets over HTTP: campaigns (versioned), tickets (create, get, re-run steps, revoke),
//! CSV batches (upload, progress, links CSV, ZIP) and the public share page `/t/{share_id}`.

use std::io::Write;

use atelier_platform::{now_ms, Job};
use atelier_workflows::tickets::app::{ticket_summary, Upload};
use atelier_workflows::tickets::csv::ColumnMap;
use atelier_workflows::tickets::share::{self, SharePage};
use atelier_workflows::tickets::{Step, Tickets};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{BaseUrl, Json, Path, Query, RawBody, Tenant};
use crate::render::{job_json, resolve_files};
use crate::state::AppState;

/// Largest CSV upload (10,000 rows of a few hundred bytes fit many times over).
pub const CSV_LIMIT: usize = 64 << 20;
/// Lifetime of the signed image link on a share page (crawlers fetch `og:image` soon after).
pub const SHARE_LINK_TTL_S: i64 = 7 * 24 * 3600;

fn tickets(state: &AppState) -> ApiResult<&std::sync::Arc<Tickets>> {
    state.tickets.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "photo tickets are not enabled on this server",
        )
    })
}

/// A response value with its `atelier-file://` references turned into signed URLs.
fn signed(state: &AppState, base: &str, v: &Value) -> Value {
    resolve_files(v, base, &state.platform.links, state.link_ttl_s)
}

fn campaign_json(c: &atelier_workflows::tickets::Campaign, state: &AppState, base: &str) -> Value {
    let mut v = json!({
        "id": c.id,
        "version": c.version,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    });
    if let (Some(o), Ok(Value::Object(spec))) = (v.as_object_mut(), serde_json::to_value(&c.spec)) {
        o.extend(spec);
    }
    signed(state, base, &v)
}

/// Create a campaign (version 1).
#[utoipa::path(post, path = "/v1/campaigns", tag = "tickets", request_body = Object,
    responses((status = 201, body = Object), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn create_campaign(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let c = tickets(&state)?
        .create_campaign(&state.platform, &tenant, body)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(campaign_json(&c, &state, &base)),
    )
        .into_response())
}

/// List campaigns (latest versions), newest first.
#[utoipa::path(get, path = "/v1/campaigns", tag = "tickets", responses((status = 200, body = Object)))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
) -> ApiResult<axum::Json<Value>> {
    let list = tickets(&state)?.store.list_campaigns(&tenant).await?;
    let data: Vec<Value> = list
        .iter()
        .map(|c| campaign_json(c, &state, &base))
        .collect();
    Ok(axum::Json(json!({"data": data})))
}

/// Query of the campaign route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct VersionQuery {
    /// A past version (default: the latest).
    pub version: Option<i64>,
}

/// Get a campaign, optionally at a past version.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "tickets", params(("id" = String, Path), VersionQuery),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn get_campaign(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<axum::Json<Value>> {
    let c = tickets(&state)?
        .store
        .campaign(&tenant, &id, q.version)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    Ok(axum::Json(campaign_json(&c, &state, &base)))
}

/// Edit a campaign with a JSON merge patch; writes a new version (tickets keep theirs).
#[utoipa::path(patch, path = "/v1/campaigns/{id}", tag = "tickets", params(("id" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn update_campaign(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> ApiResult<axum::Json<Value>> {
    let c = tickets(&state)?
        .update_campaign(&state.platform, &tenant, &id, &patch)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    Ok(axum::Json(campaign_json(&c, &state, &base)))
}

async fn job_response(
    state: &AppState,
    base: &str,
    job: Job,
    created: bool,
) -> ApiResult<Response> {
    let pos = state.platform.store.queue_position(&job).await?;
    let mut body = job_json(&job, pos, base, &state.platform.links, state.link_ttl_s);
    let ticket = job
        .input
        .get("ticket")
        .and_then(Value::as_str)
        .unwrap_or(&job.id);
    body["urls"]["ticket"] = json!(format!("{base}/v1/tickets/{ticket}"));
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

/// Make one ticket: `{name, text, title?, tagline?, preset?, seed?, show_name?}`. Returns the
/// job (a prediction); its id is the ticket id.
#[utoipa::path(post, path = "/v1/campaigns/{id}/tickets", tag = "tickets", params(("id" = String, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "a retried submit with the same key returns the same ticket")),
    request_body = Object,
    responses((status = 201, body = Object), (status = 200, description = "the ticket already made for this Idempotency-Key", body = Object),
              (status = 422, body = crate::routes::ErrorBody)))]
pub async fn create_ticket(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let tk = tickets(&state)?;
    let mut input = body;
    let webhook = match input.as_object_mut() {
        Some(o) => match o.remove("webhook") {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => None,
            Some(_) => return Err(ApiError::invalid("webhook", "must be a URL string")),
        },
        None => return Err(ApiError::invalid("body", "must be a JSON object")),
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if tk.store.campaign(&tenant, &id, None).await?.is_none() {
        return Err(ApiError::not_found("campaign"));
    }
    let (job, created) = tk
        .submit_ticket(&state.platform, &tenant, &id, input, key, webhook)
        .await?;
    job_response(&state, &base, job, created).await
}

/// Query of the ticket list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LimitQuery {
    /// At most this many (1 to 500, default 50).
    pub limit: Option<i64>,
}

/// A campaign's tickets, newest first.
#[utoipa::path(get, path = "/v1/campaigns/{id}/tickets", tag = "tickets", params(("id" = String, Path), LimitQuery),
    responses((status = 200, body = Object)))]
pub async fn list_tickets(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> ApiResult<axum::Json<Value>> {
    let tk = tickets(&state)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let list = tk.store.list_tickets(&tenant, &id, limit).await?;
    let data: Vec<Value> = list
        .iter()
        .map(|t| signed(&state, &base, &ticket_summary(&tk.workflow, t)))
        .collect();
    Ok(axum::Json(json!({"data": data})))
}

/// A ticket with every step's record (files as signed URLs).
#[utoipa::path(get, path = "/v1/tickets/{id}", tag = "tickets", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn get_ticket(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tk = tickets(&state)?;
    let t = tk
        .store
        .ticket(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    let mut v = ticket_summary(&tk.workflow, &t);
    v["input"] = serde_json::to_value(&t.input).unwrap_or(Value::Null);
    v["steps"] = serde_json::to_value(&t.steps).unwrap_or(Value::Null);
    v["job"] = json!(t.job_id);
    v["batch"] = json!(t.batch_id);
    v["line"] = json!(t.line);
    v["share_id"] = json!(t.share_id);
    v["created_at"] = json!(t.created_at);
    v["updated_at"] = json!(t.updated_at);
    v["share_url"] = json!(format!("{base}/t/{}", t.share_id));
    Ok(axum::Json(signed(&state, &base, &v)))
}

/// Run a step again, and every later one: `{"from": "image"}` (new picture, same copy; a new
/// seed unless `seed` is given), `{"from": "copy", "title": …}`, `{"from": "preset", "preset": …}`.
#[utoipa::path(post, path = "/v1/tickets/{id}/rerun", tag = "tickets", params(("id" = String, Path)), request_body = Object,
    responses((status = 201, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn rerun_ticket(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    if let Some(from) = body.get("from").filter(|f| !f.is_null()) {
        let ok = from.as_str().and_then(Step::parse).is_some();
        if !ok {
            return Err(ApiError::invalid(
                "from",
                format!(
                    "unknown step; steps: {}",
                    Step::ALL.map(|s| s.name()).join(", ")
                ),
            ));
        }
    }
    let (job, created) = tickets(&state)?
        .rerun(&state.platform, &tenant, &id, body)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    job_response(&state, &base, job, created).await
}

/// Take a ticket's share page down (idempotent). Its image link stops working too.
#[utoipa::path(post, path = "/v1/tickets/{id}/revoke", tag = "tickets", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn revoke_ticket(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tk = tickets(&state)?;
    let t = tk
        .store
        .revoke_ticket(&tenant, &id, now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    tracing::info!(ticket = %t.id, "ticket revoked");
    Ok(axum::Json(signed(
        &state,
        &base,
        &ticket_summary(&tk.workflow, &t),
    )))
}

/// Query of the batch upload: encoding and column mapping.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct BatchQuery {
    /// `utf-8`, `cp949` or `euc-kr`; detected when absent (BOM, valid UTF-8, else CP949).
    pub encoding: Option<String>,
    /// Shown in the batch; the upload's file name.
    pub filename: Option<String>,
    /// Header name of the customer-name column (default: name, 이름, 성명, 고객명, …).
    pub name_column: Option<String>,
    /// Header name of the lifestyle-text column (default: text, lifestyle, 사연, 내용, …).
    pub text_column: Option<String>,
    pub title_column: Option<String>,
    pub tagline_column: Option<String>,
    pub preset_column: Option<String>,
    pub seed_column: Option<String>,
    pub show_name_column: Option<String>,
}

/// Upload a customer CSV (the raw body) and start its batch. The same rows again return the
/// existing batch (200) instead of doubling the tickets.
#[utoipa::path(post, path = "/v1/campaigns/{id}/batches", tag = "tickets", params(("id" = String, Path), BatchQuery),
    request_body(content = Vec<u8>, content_type = "text/csv"),
    responses((status = 201, body = Object), (status = 200, description = "the same file was uploaded before", body = Object),
              (status = 422, body = crate::routes::ErrorBody)))]
pub async fn create_batch(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    Query(q): Query<BatchQuery>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let tk = tickets(&state)?;
    if tk.store.campaign(&tenant, &id, None).await?.is_none() {
        return Err(ApiError::not_found("campaign"));
    }
    // A column named by nothing cannot be told from the blank headers of spare columns.
    for (param, v) in [
        ("name_column", &q.name_column),
        ("text_column", &q.text_column),
        ("title_column", &q.title_column),
        ("tagline_column", &q.tagline_column),
        ("preset_column", &q.preset_column),
        ("seed_column", &q.seed_column),
        ("show_name_column", &q.show_name_column),
    ] {
        if v.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(ApiError::invalid(param, "must name a column of the header"));
        }
    }
    let map = ColumnMap {
        name: q.name_column,
        text: q.text_column,
        title: q.title_column,
        tagline: q.tagline_column,
        preset: q.preset_column,
        seed: q.seed_column,
        show_name: q.show_name_column,
    };
    let upload = Upload {
        bytes: &body,
        encoding: q.encoding.as_deref(),
        columns: map,
        filename: q.filename,
    };
    let (b, created) = tk
        .create_batch(&state.platform, &tenant, &id, &upload)
        .await?;
    let v = batch_json(&state, tk, &b, &base).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(v)).into_response())
}

async fn batch_json(
    state: &AppState,
    tk: &Tickets,
    b: &atelier_workflows::tickets::store::Batch,
    base: &str,
) -> ApiResult<Value> {
    let rows = tk.store.batch_rows(&b.id, None).await?;
    let counts = tk.store.row_counts(&b.id).await?;
    let errors: Vec<Value> = rows
        .iter()
        .filter(|r| r.status == "failed")
        .map(|r| {
            let mut e = r.error.clone().unwrap_or(json!({}));
            e["line"] = json!(r.line);
            if let Some(t) = &r.ticket_id {
                e["ticket"] = json!(t);
            }
            e
        })
        .collect();
    // ETA from the pace of the last rows finished by the batch job (creation-time errors
    // excluded): robust to restarts, since it only looks at recent finishes.
    let mut times: Vec<i64> = rows
        .iter()
        .filter(|r| r.ticket_id.is_some())
        .filter_map(|r| r.finished_at)
        .collect();
    times.sort_unstable();
    let recent = &times[times.len().saturating_sub(20)..];
    let eta_s = match (recent.first(), recent.last()) {
        (Some(a), Some(z)) if recent.len() >= 2 && counts.pending > 0 => {
            let per = (z - a) as f64 / (recent.len() - 1) as f64 / 1000.0;
            Some((per * counts.pending as f64 * 10.0).round() / 10.0)
        }
        _ => None,
    };
    // Where the time goes: mean milliseconds per step over the batch's finished tickets.
    let tickets = tk.store.batch_tickets(&b.id).await?;
    let mut sums: std::collections::BTreeMap<&'static str, (u64, u64)> = Default::default();
    for t in &tickets {
        for r in &t.steps {
            let e = sums.entry(r.step.name()).or_default();
            e.0 += r.ms;
            e.1 += 1;
        }
    }
    let step_ms: serde_json::Map<String, Value> = Step::ALL
        .iter()
        .filter_map(|s| {
            sums.get(s.name())
                .map(|(sum, n)| (s.name().to_owned(), json!(*sum as f64 / *n as f64)))
        })
        .collect();
    let job = match &b.job_id {
        Some(j) => state.platform.store.get_job(&b.tenant_id, j).await?,
        None => None,
    };
    // A job cancelled (or failed) before it ran never wrote the batch's status.
    let status = match &job {
        Some(j) if b.status == "running" && j.status.is_terminal() && counts.pending > 0 => {
            crate::render::status_name(j.status).to_owned()
        }
        _ => b.status.clone(),
    };
    Ok(json!({
        "id": b.id,
        "campaign": b.campaign_id,
        "campaign_version": b.campaign_version,
        "filename": b.filename,
        "encoding": b.encoding,
        "status": status,
        "job": b.job_id,
        "job_status": job.map(|j| crate::render::status_name(j.status)),
        "total": b.total,
        "done": counts.done,
        "failed": counts.failed,
        "pending": counts.pending,
        "eta_s": eta_s,
        "errors": errors,
        "step_ms": step_ms,
        "created_at": b.created_at,
        "completed_at": b.completed_at,
        "urls": {
            "get": format!("{base}/v1/batches/{}", b.id),
            "links": format!("{base}/v1/batches/{}/links.csv", b.id),
            "zip": format!("{base}/v1/batches/{}/tickets.zip", b.id),
        },
    }))
}

/// A batch's progress: rows done, failed and pending, ETA, every row error with its line, and
/// mean time per step.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "tickets", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn get_batch(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tk = tickets(&state)?;
    let b = tk
        .store
        .batch(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("batch"))?;
    Ok(axum::Json(batch_json(&state, tk, &b, &base).await?))
}

async fn links_text(tk: &Tickets, tenant: &str, id: &str, base: &str) -> ApiResult<String> {
    tk.store
        .batch(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("batch"))?;
    let rows = tk.store.batch_rows(id, None).await?;
    let tickets = tk.store.batch_tickets(id).await?;
    Ok(share::links_csv(&rows, &tickets, &|s| {
        format!("{base}/t/{s}")
    }))
}

/// A CSV (UTF-8 with BOM, for Excel) of every row: share link, or error code and reason.
#[utoipa::path(get, path = "/v1/batches/{id}/links.csv", tag = "tickets", params(("id" = String, Path)),
    responses((status = 200, description = "one line per row: its share link or why it failed", content_type = "text/csv", body = String), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn batch_links(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let tk = tickets(&state)?;
    let text = links_text(tk, &tenant, &id, &base).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}-links.csv\""),
            ),
        ],
        text,
    )
        .into_response())
}

/// Forwards ZIP bytes from the writing thread to the response body in 256 KiB chunks.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

/// Every published ticket of a batch plus `links.csv`, as a ZIP streamed while it is written.
#[utoipa::path(get, path = "/v1/batches/{id}/tickets.zip", tag = "tickets", params(("id" = String, Path)),
    responses((status = 200, description = "the batch's ticket images", content_type = "application/zip", body = Vec<u8>), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn batch_zip(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let tk = tickets(&state)?;
    let links = links_text(tk, &tenant, &id, &base).await?;
    let mut entries: Vec<(String, String)> = Vec::new();
    for t in tk.store.batch_tickets(&id).await? {
        let Some(file) = t.file.as_deref().filter(|_| share::is_public(&t)) else {
            continue;
        };
        let Some(fid) = file.strip_prefix(atelier_platform::FILE_REF) else {
            continue;
        };
        if let Some(rec) = state.platform.store.get_file(&tenant, fid).await? {
            entries.push((
                format!("tickets/{:05}-{}.png", t.line.unwrap_or(0), t.id),
                rec.storage_key,
            ));
        }
    }
    let mut items: Vec<(String, ZipSource)> = entries
        .into_iter()
        .map(|(name, key)| (name, ZipSource::Stored(key)))
        .collect();
    items.push(("links.csv".to_owned(), ZipSource::Bytes(links.into_bytes())));
    Ok(stream_zip(&state, items, &format!("{id}-tickets.zip")))
}

/// Where the bytes of one ZIP entry come from.
pub(crate) enum ZipSource {
    /// An artifact's storage key (read when the entry is written).
    Stored(String),
    /// Bytes made for the download.
    Bytes(Vec<u8>),
}

/// A ZIP response streamed while it is written: entries are read one at a time on a blocking
/// thread, so memory holds one file.
pub(crate) fn stream_zip(
    state: &AppState,
    entries: Vec<(String, ZipSource)>,
    filename: &str,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let artifacts = state.platform.artifacts.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let err_tx = tx.clone();
        let w = ChannelWriter {
            tx,
            buf: Vec::new(),
        };
        let mut items = entries.into_iter();
        let res = share::write_zip(w, || {
            let (name, source) = items.next()?;
            Some(match source {
                ZipSource::Stored(key) => handle
                    .block_on(artifacts.get(&key))
                    .map(|b| (name, b))
                    .map_err(std::io::Error::other),
                ZipSource::Bytes(b) => Ok((name, b)),
            })
        });
        if let Err(e) = res {
            tracing::warn!("zip download: {e}");
            let _ = err_tx.blocking_send(Err(e));
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

fn share_key(share_id: &str) -> String {
    format!("share:{share_id}")
}

/// The page for a share link that shows nothing: never made, not finished, or withdrawn by the
/// customer. All read the same, so an old link does not tell that a withdrawn ticket existed.
fn missing() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><meta charset=\"utf-8\"><title>없는 티켓 · Not found</title><p style=\"font-family:sans-serif\">없거나 더 이상 공유되지 않는 티켓입니다 · This ticket does not exist or is no longer shared.</p>"),
    )
        .into_response()
}

/// The public share page of a ticket: the image, its title and tagline, a download button, and
/// Open Graph / Twitter card tags. No API key; unknown, unfinished and revoked tickets are all
/// the same 404.
#[utoipa::path(get, path = "/t/{share_id}", tag = "tickets", params(("share_id" = String, Path)),
    responses((status = 200, description = "text/html"), (status = 404, description = "unknown, unfinished or revoked")))]
pub async fn share_page(
    State(state): State<AppState>,
    BaseUrl(base): BaseUrl,
    Path(share_id): Path<String>,
) -> ApiResult<Response> {
    let Some(tk) = state.tickets.as_ref() else {
        return Ok(missing());
    };
    let Some(t) = tk.store.ticket_by_share(&share_id).await? else {
        return Ok(missing());
    };
    if t.revoked_at.is_some() || !share::is_public(&t) {
        return Ok(missing());
    }
    let c = tk
        .store
        .campaign(&t.tenant_id, &t.campaign_id, Some(t.campaign_version))
        .await?;
    let brand = c.as_ref().map(|c| c.spec.brand.clone()).unwrap_or_default();
    let label = c
        .as_ref()
        .filter(|c| c.spec.label)
        .map(|c| c.spec.label_text.clone());
    let (title, tagline, w, h) = share::public_copy(&t);
    let exp = now_ms() / 1000 + SHARE_LINK_TTL_S;
    let q = state.platform.links.sign(&share_key(&share_id), exp);
    let image = format!("{base}/t/{share_id}/ticket.png?{q}");
    let html = share::share_html(&SharePage {
        title: &title,
        tagline: &tagline,
        brand: &brand,
        image_url: &image,
        download_url: &format!("{image}&download=1"),
        page_url: &format!("{base}/t/{share_id}"),
        width: w,
        height: h,
        label: label.as_deref(),
    });
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Html(html)).into_response())
}

/// Query of a signed share image link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ShareImageQuery {
    pub exp: Option<i64>,
    pub sig: Option<String>,
    /// `1`: as an attachment (the page's download button).
    pub download: Option<String>,
}

/// The ticket PNG behind a share page, by signed link; refused once the ticket is revoked.
#[utoipa::path(get, path = "/t/{share_id}/ticket.png", tag = "tickets", params(("share_id" = String, Path), ShareImageQuery),
    responses((status = 200, description = "image/png"), (status = 403), (status = 404)))]
pub async fn share_image(
    State(state): State<AppState>,
    Path(share_id): Path<String>,
    Query(q): Query<ShareImageQuery>,
) -> ApiResult<Response> {
    let (Some(exp), Some(sig)) = (q.exp, q.sig.as_deref()) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a share image needs its signed link (exp and sig); open the share page",
        ));
    };
    if !state
        .platform
        .links
        .verify(&share_key(&share_id), exp, sig, now_ms() / 1000)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the link is invalid or expired; open the share page again",
        ));
    }
    let tk = tickets(&state)?;
    let t = tk
        .store
        .ticket_by_share(&share_id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    if t.revoked_at.is_some() {
        return Err(ApiError::not_found("ticket"));
    }
    let fid = t
        .file
        .as_deref()
        .filter(|_| share::is_public(&t))
        .and_then(|f| f.strip_prefix(atelier_platform::FILE_REF))
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    let rec = state
        .platform
        .store
        .get_file(&t.tenant_id, fid)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    let bytes = state.platform.artifacts.get(&rec.storage_key).await?;
    let mut headers = vec![
        (header::CONTENT_TYPE, "image/png".to_owned()),
        (header::CACHE_CONTROL, "public, max-age=3600".to_owned()),
    ];
    if q.download.as_deref() == Some("1") {
        headers.push((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"ticket-{share_id}.png\""),
        ));
    }
    let mut resp = (StatusCode::OK, bytes).into_response();
    for (k, v) in headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}
