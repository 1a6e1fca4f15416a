//! OpenAI-compatible image generation: a job plus a bounded wait.

use std::time::Duration;

use atelier_platform::store::NewJob;
use atelier_platform::{JobStatus, FILE_REF};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{BaseUrl, Json, Tenant};
use crate::render::{file_url, job_json};
use crate::state::AppState;

/// Longest the images endpoint waits for its job.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// `POST /v1/images/generations` body. Fields beyond OpenAI's are atelier extensions.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagesRequest {
    pub prompt: String,
    /// An installed model id (default: the first installed).
    #[serde(default)]
    pub model: Option<String>,
    /// Number of images, 1 to 4.
    #[serde(default)]
    pub n: Option<u64>,
    /// `WIDTHxHEIGHT`, e.g. `512x512`.
    #[serde(default)]
    pub size: Option<String>,
    /// `url` (default) or `b64_json` (raw base64, no data: prefix).
    #[serde(default)]
    pub response_format: Option<String>,
    /// `png` (default), `jpeg` or `webp`.
    #[serde(default)]
    pub output_format: Option<String>,
    /// Accepted for compatibility and ignored.
    #[serde(default)]
    pub quality: Option<String>,
    /// Accepted for compatibility and ignored.
    #[serde(default)]
    pub style: Option<String>,
    /// Accepted for compatibility and ignored.
    #[serde(default)]
    pub user: Option<String>,
    /// Extension: seed of the first image.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Extension: denoising steps.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Extension: classifier-free guidance scale.
    #[serde(default)]
    pub guidance_scale: Option<f64>,
    /// Extension: what to avoid.
    #[serde(default)]
    pub negative_prompt: Option<String>,
    /// Extension: ddim, euler, euler_a, dpmpp_2m_karras, dpmpp_2m, lcm.
    #[serde(default)]
    pub scheduler: Option<String>,
    /// Extension: campaign whose safety policy applies.
    #[serde(default)]
    pub campaign: Option<String>,
    /// Extension: visible AI label (`true` or label settings).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub label: Option<Value>,
}

/// Generate images (OpenAI Images API).
#[utoipa::path(post, path = "/v1/images/generations", tag = "openai", request_body = ImagesRequest,
    responses((status = 200, description = "{created, data: [{url | b64_json}]}", body = Object),
              (status = 404, description = "no installed model of that name", body = crate::routes::ErrorBody),
              (status = 202, description = "not done within the wait (600 s): the prediction to follow (`id`, `status`, `urls.get`; `Location`), with an empty `data`", body = Object),
              (status = 409, body = crate::routes::ErrorBody),
              (status = 422, body = crate::routes::ErrorBody)))]
pub async fn generations(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    BaseUrl(base): BaseUrl,
    Json(req): Json<ImagesRequest>,
) -> ApiResult<Response> {
    let b64 = match req.response_format.as_deref() {
        None | Some("url") => false,
        Some("b64_json") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "response_format",
                "expected url or b64_json",
            ))
        }
    };
    let mut input = json!({"prompt": req.prompt});
    if let Some(size) = req.size.as_deref().filter(|s| *s != "auto") {
        let (w, h) = size
            .split_once('x')
            .and_then(|(w, h)| Some((w.trim().parse::<u64>().ok()?, h.trim().parse::<u64>().ok()?)))
            .ok_or_else(|| ApiError::invalid("size", "expected WIDTHxHEIGHT, e.g. 512x512"))?;
        input["width"] = json!(w);
        input["height"] = json!(h);
    }
    if let Some(f) = req.output_format.as_deref() {
        input["output_format"] = json!(match f {
            "png" => "png",
            "jpeg" | "jpg" => "jpg",
            "webp" => "webp",
            _ =>
                return Err(ApiError::invalid(
                    "output_format",
                    "expected png, jpeg or webp"
                )),
        });
    }
    let extra: [(&str, Option<Value>); 9] = [
        ("model", req.model.map(Value::from)),
        ("num_outputs", req.n.map(Value::from)),
        ("seed", req.seed.map(Value::from)),
        ("steps", req.steps.map(Value::from)),
        ("guidance_scale", req.guidance_scale.map(Value::from)),
        ("negative_prompt", req.negative_prompt.map(Value::from)),
        ("scheduler", req.scheduler.map(Value::from)),
        ("campaign", req.campaign.map(Value::from)),
        ("label", req.label),
    ];
    for (k, v) in extra {
        if let Some(v) = v {
            input[k] = v;
        }
    }
    let new = NewJob {
        tenant_id: tenant.clone(),
        app: "atelier/text-to-image".into(),
        input,
        ..Default::default()
    };
    let (job, _) = state.platform.submit(new).await.map_err(|e| {
        // Report fields as the OpenAI request names them.
        let mut err: ApiError = e.into();
        err.field = err.field.map(|f| match f.as_str() {
            "input.num_outputs" => "n".into(),
            "input.width" | "input.height" => "size".into(),
            other => other.strip_prefix("input.").unwrap_or(other).to_owned(),
        });
        err
    })?;
    let job = state
        .platform
        .wait(&tenant, &job.id, MAX_WAIT)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    match job.status {
        JobStatus::Succeeded => {}
        JobStatus::Failed => {
            let msg = job
                .error
                .as_ref()
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("generation failed")
                .to_owned();
            let code = job
                .error
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(Value::as_str);
            if code == Some("content_blocked") {
                // OpenAI's code for the same situation, so clients handle it unchanged.
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "content_policy_violation",
                    msg,
                )
                .field("prompt"));
            }
            // A job refused for its input or the state it met is the request's answer (4xx);
            // anything else went wrong on our side.
            return Err(match code {
                Some("invalid_input") => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", msg)
                }
                Some("conflict") => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
                _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "generation_failed", msg),
            });
        }
        JobStatus::Canceled | JobStatus::Aborted => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "canceled",
                format!("job {} was canceled", job.id),
            ))
        }
        _ => {
            // Not done within the wait: 202 with the prediction to follow, and an empty
            // `data`. Not a 5xx, which OpenAI's SDKs retry by submitting the same costly
            // generation again while this one runs on.
            let pos = state.platform.store.queue_position(&job).await?;
            let mut body = job_json(&job, pos, &base, &state.platform.links, state.link_ttl_s);
            body["created"] = json!(job.created_at / 1000);
            body["data"] = json!([]);
            let location = format!("/v1/predictions/{}", job.id);
            return Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                axum::Json(body),
            )
                .into_response());
        }
    }
    let output = job.output.unwrap_or(Value::Null);
    let refs: Vec<String> = output
        .get("images")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|s| s.strip_prefix(FILE_REF))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut data = Vec::with_capacity(refs.len());
    for id in refs {
        if b64 {
            let rec = state
                .platform
                .store
                .get_file(&tenant, &id)
                .await?
                .ok_or_else(|| ApiError::not_found("file"))?;
            let bytes = state.platform.artifacts.get(&rec.storage_key).await?;
            data.push(json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(bytes)}));
        } else {
            data.push(
                json!({"url": file_url(&base, &state.platform.links, &id, state.link_ttl_s)}),
            );
        }
    }
    Ok(axum::Json(json!({
        "created": job.created_at / 1000,
        "data": data,
        "seeds": output.get("seeds").cloned().unwrap_or(Value::Null),
        "id": job.id,
        // Extensions: safety results, so a missing checker is never read as a pass.
        "image_screening": output.get("image_screening").cloned().unwrap_or(Value::Null),
        "has_nsfw_concepts": output.get("has_nsfw_concepts").cloned().unwrap_or(Value::Null),
        "flagged": output.get("flagged").cloned().unwrap_or(Value::Null),
    }))
    .into_response())
}
