//! Request extractors: JSON with our error body, the caller's tenant, the public base URL.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// `axum::Json` whose rejections use our error shape (and name the field serde complained about).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::JsonDataError(e)) => {
                let msg = e.body_text();
                // serde_path_to_error style: "Failed to deserialize the JSON body into the target type: input.width: …"
                let detail = msg
                    .split_once("target type: ")
                    .map(|(_, d)| d.to_owned())
                    .unwrap_or(msg);
                let field = detail
                    .split_once(':')
                    .map(|(f, _)| f.trim().to_owned())
                    .filter(|f| !f.contains(' '));
                let mut err =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", detail);
                if let Some(f) = field {
                    err = err.field(f);
                }
                Err(err)
            }
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {}", e.body_text()),
            )),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(JsonRejection::BytesRejection(e)) => {
                let status = e.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Err(ApiError::new(
                        status,
                        "body_too_large",
                        "request body is larger than the server accepts",
                    ))
                } else {
                    Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_body",
                        e.body_text(),
                    ))
                }
            }
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.body_text(),
            )),
        }
    }
}

/// `axum::extract::Query` whose rejections use our error shape: 422 naming the parameter serde
/// complained about (or `query`), never axum's plain-text 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => {
                let msg = e.body_text();
                let detail = msg
                    .split_once("Failed to deserialize query string: ")
                    .map(|(_, d)| d.to_owned())
                    .unwrap_or(msg);
                let field = detail
                    .split_once(':')
                    .map(|(f, _)| f.trim().to_owned())
                    .filter(|f| !f.is_empty() && !f.contains(' '))
                    .unwrap_or_else(|| "query".to_owned());
                Err(
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", detail)
                        .field(field),
                )
            }
        }
    }
}

/// Which key's limits a request spends (see [`crate::limits::key_id`]); set by [`Tenant`], so
/// handlers that take it must take `Tenant` first.
#[derive(Debug, Clone)]
pub struct KeyId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for KeyId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<KeyId>()
            .cloned()
            .unwrap_or_else(|| KeyId(crate::limits::key_id(&parts.headers))))
    }
}

/// The authenticated tenant of a request.
#[derive(Debug, Clone)]
pub struct Tenant(pub String);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (tenant, keyed) = Self::authenticate(parts, state).await?;
        // Open mode takes any token, so all of them share one budget there.
        let key = if keyed {
            crate::limits::key_id(&parts.headers)
        } else {
            "open".to_owned()
        };
        state.http.check_rate(&key)?;
        parts.extensions.insert(KeyId(key));
        Ok(tenant)
    }
}

impl Tenant {
    /// The tenant a request's key belongs to (any key, or none, in open mode), and whether a
    /// real key matched.
    async fn authenticate(parts: &Parts, state: &AppState) -> Result<(Self, bool), ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let token = header.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("Token "))
                .map(str::trim)
        });
        match token {
            Some(t) if !t.is_empty() => {
                match atelier_platform::auth::verify_key(state.platform.store.as_ref(), t).await {
                    Ok(Some(tenant)) => Ok((Tenant(tenant), true)),
                    // Open mode has no keys to check against; clients such as openai's always
                    // send one, so any token means the single local user.
                    Ok(None) if state.open_mode().await => {
                        Ok((Tenant(state.default_tenant.clone()), false))
                    }
                    Ok(None) => Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "invalid API key",
                    )),
                    Err(e) => Err(e.into()),
                }
            }
            _ => {
                if state.open_mode().await {
                    Ok((Tenant(state.default_tenant.clone()), false))
                } else {
                    Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "missing API key: send Authorization: Bearer <key> (create one with `atelier keys create --tenant NAME`)",
                    ))
                }
            }
        }
    }
}

/// Scheme and authority clients reach us at, for absolute URLs in responses.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(u) = &state.public_url {
            return Ok(BaseUrl(u.clone()));
        }
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| {
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .map(str::to_owned)
            .unwrap_or_else(|| state.listen.clone());
        Ok(BaseUrl(format!("http://{host}")))
    }
}
