//! Artifacts over HTTP: content type, ETag, Range; signed links work without a key.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query, Tenant};
use crate::state::AppState;

/// Signed-link query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SignedQuery {
    /// Expiry, seconds since the epoch.
    pub exp: Option<i64>,
    /// Signature over the file id and `exp`.
    pub sig: Option<String>,
}

/// Parses a single `bytes=a-b` range against `len`; `Err` means unsatisfiable.
pub fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: serve the whole file
    }
    let (a, b) = spec.split_once('-')?;
    let r = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        (start, "") => {
            let s: u64 = start.parse().ok()?;
            if s >= len {
                return Some(Err(()));
            }
            (s, len - 1)
        }
        (start, end) => {
            let s: u64 = start.parse().ok()?;
            let e: u64 = end.parse().ok()?;
            if s > e || s >= len {
                return Some(Err(()));
            }
            (s, e.min(len - 1))
        }
    };
    Some(Ok(r))
}

/// Download a file (API key, or a signed link's `exp` and `sig`).
#[utoipa::path(get, path = "/v1/files/{id}", tag = "files", params(("id" = String, Path), SignedQuery),
    responses((status = 200, description = "the bytes", body = Vec<u8>), (status = 206, description = "a range"),
              (status = 304, description = "not modified"), (status = 404, body = crate::routes::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SignedQuery>,
    headers: HeaderMap,
    parts: axum::http::request::Parts,
) -> ApiResult<Response> {
    let rec = match (q.exp, q.sig.as_deref()) {
        (Some(exp), Some(sig)) => state.platform.signed_file(&id, exp, sig).await?,
        _ => {
            let mut parts = parts;
            let Tenant(tenant) =
                <Tenant as axum::extract::FromRequestParts<AppState>>::from_request_parts(
                    &mut parts, &state,
                )
                .await?;
            state.platform.store.get_file(&tenant, &id).await?
        }
    }
    .ok_or_else(|| ApiError::not_found("file"))?;
    let etag = format!("\"{}\"", rec.sha256);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let bytes = state.platform.artifacts.get(&rec.storage_key).await?;
    let len = bytes.len() as u64;
    let mut h = HeaderMap::new();
    let ct = HeaderValue::from_str(&rec.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    match headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| parse_range(r, len))
    {
        Some(Ok((s, e))) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            Ok((
                StatusCode::PARTIAL_CONTENT,
                h,
                bytes[s as usize..=e as usize].to_vec(),
            )
                .into_response())
        }
        Some(Err(())) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            Ok((StatusCode::RANGE_NOT_SATISFIABLE, h).into_response())
        }
        None => Ok((StatusCode::OK, h, bytes).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Some(Ok((0, 0))));
        assert_eq!(parse_range("bytes=5-", 10), Some(Ok((5, 9))));
        assert_eq!(parse_range("bytes=-3", 10), Some(Ok((7, 9))));
        assert_eq!(parse_range("bytes=2-100", 10), Some(Ok((2, 9))));
        assert_eq!(parse_range("bytes=10-", 10), Some(Err(())));
        assert_eq!(parse_range("bytes=5-2", 10), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }
}
