//! Ad storyboards over HTTP: boards (brief → cuts → pictures, sheet, animatic), edits that make
//! numbered versions (per-cut shortcuts and batched operations), restore, diff, review comments
//! per cut, the product photo, and the export ZIP.

use std::sync::Arc;

use atelier_platform::now_ms;
use atelier_workflows::storyboards::app::ExportItem;
use atelier_workflows::storyboards::spec::CATEGORIES;
use atelier_workflows::storyboards::{Board, StoryboardError, Storyboards, Version};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{BaseUrl, Json, Path, Query, RawBody, Tenant};
use crate::render::resolve_files;
use crate::routes::tickets::{stream_zip, ZipSource};
use crate::state::AppState;

/// Largest product photo upload.
pub const REFERENCE_LIMIT: usize = atelier_workflows::upload::REFERENCE_MAX_BYTES;

impl From<StoryboardError> for ApiError {
    fn from(e: StoryboardError) -> Self {
        match e {
            StoryboardError::Platform(p) => p.into(),
            StoryboardError::NotFound(what) => ApiError::not_found(what),
            c @ StoryboardError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "version_conflict", c.to_string()).field("base")
            }
        }
    }
}

fn boards(state: &AppState) -> ApiResult<&Arc<Storyboards>> {
    state.storyboards.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "storyboards are not enabled on this server",
        )
    })
}

fn signed(state: &AppState, base: &str, v: &Value) -> Value {
    resolve_files(v, base, &state.platform.links, state.link_ttl_s)
}

fn version_json(state: &AppState, base: &str, v: &Version) -> Value {
    let total: f64 = v.cuts.iter().map(|c| c.duration_s as f64).sum();
    let cuts: Vec<Value> = v
        .cuts
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let mut j = serde_json::to_value(c).unwrap_or(Value::Null);
            j["number"] = json!(k + 1);
            j
        })
        .collect();
    signed(
        state,
        base,
        &json!({
            "version": v.version,
            "parent": v.parent,
            "action": v.action,
            "title": v.title,
            "status": v.status,
            "job_id": v.job_id,
            "duration_s": (total * 1000.0).round() / 1000.0,
            "cuts": cuts,
            "outputs": v.outputs,
            "steps": v.steps,
            "created_at": v.created_at,
            "updated_at": v.updated_at,
        }),
    )
}

fn board_json(state: &AppState, base: &str, b: &Board, v: Option<&Version>) -> Value {
    let mut j = json!({
        "id": b.id,
        "head": b.head,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    });
    if let (Some(o), Ok(Value::Object(brief))) = (j.as_object_mut(), serde_json::to_value(&b.brief))
    {
        o.extend(brief);
    }
    if let Some(v) = v {
        j["current"] = version_json(state, base, v);
    }
    signed(state, base, &j)
}

/// Create a storyboard from a brief (and optionally user-written cuts); its first version is
/// drawn by an `atelier/storyboard` job.
#[utoipa::path(post, path = "/v1/storyboards", tag = "storyboards", request_body = Object,
    responses((status = 201, body = Object), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let (b, v) = boards(&state)?
        .create(&state.platform, &tenant, body)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(board_json(&state, &base, &b, Some(&v))),
    )
        .into_response())
}

/// List storyboards, newest first.
#[utoipa::path(get, path = "/v1/storyboards", tag = "storyboards", responses((status = 200, body = Object)))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
) -> ApiResult<axum::Json<Value>> {
    let s = boards(&state)?;
    let list = s.store.list(&tenant, 200).await?;
    let data: Vec<Value> = list
        .iter()
        .map(|b| board_json(&state, &base, b, None))
        .collect();
    Ok(axum::Json(json!({"data": data})))
}

/// The product categories a brief may name.
#[utoipa::path(get, path = "/v1/storyboards/categories", tag = "storyboards", responses((status = 200, body = Object)))]
pub async fn categories() -> axum::Json<Value> {
    let data: Vec<Value> = CATEGORIES
        .iter()
        .map(|(id, ko, en)| json!({"id": id, "ko": ko, "en": en}))
        .collect();
    axum::Json(json!({"data": data}))
}

/// Query naming a version (default: the current one).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct VersionQuery {
    pub version: Option<i64>,
}

/// A storyboard with its current (or given) version.
#[utoipa::path(get, path = "/v1/storyboards/{id}", tag = "storyboards", params(("id" = String, Path), VersionQuery),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<axum::Json<Value>> {
    let (b, v) = boards(&state)?.version(&tenant, &id, q.version).await?;
    Ok(axum::Json(board_json(&state, &base, &b, Some(&v))))
}

/// Delete a storyboard (it leaves every list at once).
#[utoipa::path(delete, path = "/v1/storyboards/{id}", tag = "storyboards", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if boards(&state)?.store.delete(&tenant, &id, now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("storyboard"))
    }
}

/// Every version of a storyboard, oldest first (what made it, status, duration).
#[utoipa::path(get, path = "/v1/storyboards/{id}/versions", tag = "storyboards", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let s = boards(&state)?;
    let b = s.board(&tenant, &id).await?;
    let data: Vec<Value> = s
        .store
        .versions(&id)
        .await?
        .iter()
        .map(|v| {
            json!({
                "version": v.version, "parent": v.parent, "action": v.action, "title": v.title,
                "status": v.status, "cuts": v.cuts.len(), "current": v.version == b.head,
                "duration_s": v.cuts.iter().map(|c| c.duration_s as f64).sum::<f64>(),
                "created_at": v.created_at,
            })
        })
        .collect();
    Ok(axum::Json(json!({"head": b.head, "data": data})))
}

/// One version.
#[utoipa::path(get, path = "/v1/storyboards/{id}/versions/{n}", tag = "storyboards", params(("id" = String, Path), ("n" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn version(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path((id, n)): Path<(String, i64)>,
) -> ApiResult<axum::Json<Value>> {
    let (_, v) = boards(&state)?.version(&tenant, &id, Some(n)).await?;
    Ok(axum::Json(version_json(&state, &base, &v)))
}

async fn edited(
    state: &AppState,
    tenant: &str,
    base: &str,
    id: &str,
    body: Value,
) -> ApiResult<Response> {
    let v = boards(state)?
        .edit(&state.platform, tenant, id, body)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(version_json(state, base, &v)),
    )
        .into_response())
}

/// Save a new version by applying operations in order: `edit`, `regenerate`, `move`,
/// `insert`, `delete`, `title` (see README). Only cuts whose picture changed are drawn again;
/// the sheet and animatic are rendered again from the stored pictures.
#[utoipa::path(post, path = "/v1/storyboards/{id}/versions", tag = "storyboards", params(("id" = String, Path)), request_body = Object,
    responses((status = 201, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 409, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn edit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    edited(&state, &tenant, &base, &id, body).await
}

/// A cut named in a path: digits are a 1-based position, anything else a cut id.
fn cut_ref(cut: &str) -> Value {
    match cut.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(cut),
    }
}

/// One operation from a per-cut route's body; `base` stays at the top level.
fn one_op(op: &str, cut: Option<&str>, body: Value) -> ApiResult<Value> {
    let mut o = match body {
        Value::Object(o) => o,
        Value::Null => serde_json::Map::new(),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "the body must be a JSON object",
            )
            .field("body"))
        }
    };
    let base = o.remove("base");
    o.insert("op".into(), json!(op));
    if let Some(c) = cut {
        o.insert("cut".into(), cut_ref(c));
    }
    let mut e = json!({"ops": [Value::Object(o)]});
    if let Some(b) = base {
        e["base"] = b;
    }
    Ok(e)
}

/// Edit a cut's text (`scene`, `camera`, `copy`, `duration_s`; a new `image_prompt` redraws
/// it). Makes a new version.
#[utoipa::path(patch, path = "/v1/storyboards/{id}/cuts/{cut}", tag = "storyboards", params(("id" = String, Path), ("cut" = String, Path)), request_body = Object,
    responses((status = 201, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 409, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn edit_cut(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path((id, cut)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    edited(
        &state,
        &tenant,
        &base,
        &id,
        one_op("edit", Some(&cut), body)?,
    )
    .await
}

/// Redraw only this cut's picture (`seed`, default a new random one; optional new
/// `image_prompt`). Makes a new version.
#[utoipa::path(post, path = "/v1/storyboards/{id}/cuts/{cut}/regenerate", tag = "storyboards", params(("id" = String, Path), ("cut" = String, Path)), request_body = Object,
    responses((status = 201, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 409, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn regenerate_cut(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path((id, cut)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    // The body is optional: an empty one draws with a new random seed. One that is there is
    // a JSON object (`null` or a list is a mistake, not "no options").
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                e.to_string(),
            )
            .field("body")
        })?;
        if !v.is_object() {
            return Err(ApiError::invalid(
                "body",
                "must be a JSON object (or empty for a new random seed)",
            ));
        }
        v
    };
    edited(
        &state,
        &tenant,
        &base,
        &id,
        one_op("regenerate", Some(&cut), body)?,
    )
    .await
}

/// Move a cut to 1-based position `to`. Makes a new version.
#[utoipa::path(post, path = "/v1/storyboards/{id}/cuts/{cut}/move", tag = "storyboards", params(("id" = String, Path), ("cut" = String, Path)), request_body = Object,
    responses((status = 201, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 409, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn move_cut(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path((id, cut)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    edited(
        &state,
        &tenant,
        &base,
        &id,
        one_op("move", Some(&cut), body)?,
    )
    .await
}

/// Insert a cut (`at`, default the end; `scene`, `camera`, `copy`, `duration_s`,
/// `image_prompt`); only it is drawn. Makes a new version.
#[utoipa::path(post, path = "/v1/storyboards/{id}/cuts", tag = "storyboards", params(("id" = String, Path)), request_body = Object,
    responses((status = 201, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 409, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn insert_cut(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    edited(&state, &tenant, &base, &id, one_op("insert", None, body)?).await
}

/// Delete a cut. Makes a new version.
#[utoipa::path(delete, path = "/v1/storyboards/{id}/cuts/{cut}", tag = "storyboards", params(("id" = String, Path), ("cut" = String, Path)),
    responses((status = 201, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 409, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn delete_cut(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path((id, cut)): Path<(String, String)>,
) -> ApiResult<Response> {
    edited(
        &state,
        &tenant,
        &base,
        &id,
        one_op("delete", Some(&cut), Value::Null)?,
    )
    .await
}

/// Make a new current version with the cuts and pictures of version `n`.
#[utoipa::path(post, path = "/v1/storyboards/{id}/versions/{n}/restore", tag = "storyboards", params(("id" = String, Path), ("n" = i64, Path)),
    responses((status = 201, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn restore(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path((id, n)): Path<(String, i64)>,
) -> ApiResult<Response> {
    let v = boards(&state)?
        .restore(&state.platform, &tenant, &id, n)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(version_json(&state, &base, &v)),
    )
        .into_response())
}

/// Draw the current version again after it failed or was canceled; finished steps and
/// pictures are kept.
#[utoipa::path(post, path = "/v1/storyboards/{id}/retry", tag = "storyboards", params(("id" = String, Path)),
    responses((status = 202, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let v = boards(&state)?.retry(&state.platform, &tenant, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(version_json(&state, &base, &v)),
    )
        .into_response())
}

/// Query of the diff route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DiffQuery {
    pub from: i64,
    /// Default: the current version.
    pub to: Option<i64>,
}

/// The changes between two versions: `added`, `removed`, `moved` (the fewest cuts whose move
/// explains the new order), `edited` (field by field, `image` when the picture changed) and
/// `title`.
#[utoipa::path(get, path = "/v1/storyboards/{id}/diff", tag = "storyboards", params(("id" = String, Path), DiffQuery),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn diff(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<axum::Json<Value>> {
    let s = boards(&state)?;
    let to = match q.to {
        Some(t) => t,
        None => s.board(&tenant, &id).await?.head,
    };
    let d = s.diff(&tenant, &id, q.from, to).await?;
    Ok(axum::Json(signed(&state, &base, &d)))
}

/// Comment on a cut (`author`, `text`, optional `version` being reviewed).
#[utoipa::path(post, path = "/v1/storyboards/{id}/cuts/{cut}/comments", tag = "storyboards", params(("id" = String, Path), ("cut" = String, Path)), request_body = Object,
    responses((status = 201, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn add_comment(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((id, cut)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let c = boards(&state)?.comment(&tenant, &id, &cut, body).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(c))).into_response())
}

/// Query of the comment list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CommentQuery {
    /// Only this cut's comments (cut id).
    pub cut: Option<String>,
    /// Only resolved (`true`) or open (`false`) comments.
    pub resolved: Option<bool>,
}

/// A storyboard's review comments, oldest first.
#[utoipa::path(get, path = "/v1/storyboards/{id}/comments", tag = "storyboards", params(("id" = String, Path), CommentQuery),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn comments(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<CommentQuery>,
) -> ApiResult<axum::Json<Value>> {
    let list = boards(&state)?
        .comments(&tenant, &id, q.cut.as_deref(), q.resolved)
        .await?;
    Ok(axum::Json(json!({"data": list})))
}

/// Resolve a comment (`{"by": "name"}`) or reopen it (`{"resolved": false}`).
#[utoipa::path(post, path = "/v1/storyboards/{id}/comments/{comment}/resolve", tag = "storyboards", params(("id" = String, Path), ("comment" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn resolve_comment(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((id, comment)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<axum::Json<Value>> {
    let c = boards(&state)?
        .resolve(&tenant, &id, &comment, body)
        .await?;
    Ok(axum::Json(json!(c)))
}

/// Upload the product photo (PNG, JPEG or WebP bytes; kept with the brief for
/// image-to-image).
#[utoipa::path(put, path = "/v1/storyboards/{id}/reference", tag = "storyboards", params(("id" = String, Path)), request_body(content = Vec<u8>, content_type = "image/png"),
    responses((status = 200, body = Object), (status = 404, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn put_reference(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<axum::Json<Value>> {
    let s = boards(&state)?;
    s.board(&tenant, &id).await?;
    let raw = body.to_vec();
    let png =
        tokio::task::spawn_blocking(move || atelier_workflows::upload::reference_from_upload(&raw))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })??;
    let p = &state.platform;
    let rec = p
        .artifacts
        .put(&tenant, None, "image/png", "png", png, now_ms())
        .await?;
    p.store.put_file(&rec).await?;
    let reference = format!("{}{}", atelier_platform::FILE_REF, rec.id);
    let b = s.set_reference(&tenant, &id, &reference).await?;
    Ok(axum::Json(board_json(&state, &base, &b, None)))
}

/// Everything of a ready version as one ZIP: sheet PDF and PNG, animatics, every cut picture,
/// the script as JSON and CSV, and the provenance manifest.
#[utoipa::path(get, path = "/v1/storyboards/{id}/export.zip", tag = "storyboards", params(("id" = String, Path), VersionQuery),
    responses((status = 200, description = "the export ZIP", content_type = "application/zip", body = Vec<u8>), (status = 404, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Response> {
    let s = boards(&state)?;
    let items = s.export(&tenant, &id, q.version).await?;
    let mut entries = Vec::with_capacity(items.len());
    for (name, item) in items {
        let source = match item {
            ExportItem::Bytes(b) => ZipSource::Bytes(b),
            ExportItem::File(r) => {
                let fid = r
                    .strip_prefix(atelier_platform::FILE_REF)
                    .unwrap_or(r.as_str());
                let rec = state
                    .platform
                    .store
                    .get_file(&tenant, fid)
                    .await?
                    .ok_or_else(|| ApiError::not_found("file"))?;
                ZipSource::Stored(rec.storage_key)
            }
        };
        entries.push((name, source));
    }
    let version = q.version.map(|v| format!("-v{v}")).unwrap_or_default();
    Ok(stream_zip(
        &state,
        entries,
        &format!("{id}{version}-storyboard.zip"),
    ))
}
