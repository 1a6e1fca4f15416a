//! OpenAI-compatible chat completions on the configured language model, streaming (SSE) and
//! not, so other tools can use atelier's model. A dropped stream cancels generation before
//! its next token.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use atelier_llm::{
    CancelToken, ChatRequest, Completion, FinishReason, Llm, LlmError, Message, ResponseFormat,
    Role, SamplingParams,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Tenant};
use crate::state::AppState;

/// `POST /v1/chat/completions` body (OpenAI's fields; unknown ones are ignored as OpenAI's
/// own SDKs send optional extras).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    /// The language model's id (see `GET /v1/models`).
    pub model: String,
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Value>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub stream_options: Option<Value>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Extension: keep only the k most likely tokens.
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Extension: >1 discourages repeats.
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// A string or a list of up to 8 strings.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub stop: Option<Value>,
    /// Only 1 is supported.
    #[serde(default)]
    pub n: Option<u32>,
    /// `{"type":"text"}`, `{"type":"json_object"}` or
    /// `{"type":"json_schema","json_schema":{"name":…,"schema":{…}}}`: local models decode
    /// under the schema, so the answer always parses.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub response_format: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tools: Option<Value>,
}

/// What to tell callers when no language model is configured.
pub const NO_LLM: &str = "no language model is configured: start `atelier serve` with --llm <model folder or .gguf file> (local Qwen2/Qwen2.5/Qwen3) or --llm-url <OpenAI-compatible base URL> --llm-model <name>";

fn invalid(field: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid(field, msg)
}

fn message(i: usize, v: &Value) -> ApiResult<Message> {
    let field = format!("messages[{i}]");
    let role = match v.get("role").and_then(Value::as_str) {
        Some("system") | Some("developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(invalid(
                &format!("{field}.role"),
                format!("role {other:?} is not supported (system, developer, user, assistant)"),
            ))
        }
        None => return Err(invalid(&format!("{field}.role"), "missing role")),
    };
    let content = match v.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(invalid(
                            &format!("{field}.content[{j}]"),
                            "only text parts are supported",
                        ))
                    }
                }
            }
            text
        }
        Some(Value::Null) | None if role == Role::Assistant => String::new(),
        _ => {
            return Err(invalid(
                &format!("{field}.content"),
                "must be a string or text parts",
            ))
        }
    };
    Ok(Message { role, content })
}

fn request(body: &ChatCompletionRequest) -> ApiResult<ChatRequest> {
    if body.messages.is_empty() {
        return Err(invalid("messages", "at least one message is needed"));
    }
    if body.n.unwrap_or(1) != 1 {
        return Err(invalid("n", "only n=1 is supported"));
    }
    if body.tools.as_ref().is_some_and(|t| !t.is_null()) {
        return Err(invalid("tools", "tool calling is not supported"));
    }
    let messages = body
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<ApiResult<Vec<_>>>()?;
    let d = SamplingParams::default();
    let stop = match &body.stop {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("stop", "must be strings"))
            })
            .collect::<ApiResult<_>>()?,
        Some(_) => return Err(invalid("stop", "must be a string or a list of strings")),
    };
    let params = SamplingParams {
        temperature: body.temperature.unwrap_or(1.0),
        top_p: body.top_p.unwrap_or(1.0),
        top_k: body.top_k.map_or(0, |k| k as usize),
        repetition_penalty: body.repetition_penalty.unwrap_or(1.0),
        seed: body.seed,
        max_tokens: body
            .max_completion_tokens
            .or(body.max_tokens)
            .map_or(d.max_tokens, |n| n as usize),
        stop,
        ..d
    };
    params.validate().map_err(llm_error)?;
    let format = match &body.response_format {
        None | Some(Value::Null) => ResponseFormat::Text,
        Some(f) => match f.get("type").and_then(Value::as_str) {
            Some("text") => ResponseFormat::Text,
            Some("json_object") => ResponseFormat::JsonObject,
            Some("json_schema") => {
                let schema = f
                    .pointer("/json_schema/schema")
                    .filter(|s| s.is_object())
                    .ok_or_else(|| {
                        invalid(
                            "response_format.json_schema.schema",
                            "must be a JSON schema object",
                        )
                    })?;
                ResponseFormat::JsonSchema {
                    name: f
                        .pointer("/json_schema/name")
                        .and_then(Value::as_str)
                        .unwrap_or("answer")
                        .to_owned(),
                    schema: schema.clone(),
                }
            }
            _ => {
                return Err(invalid(
                    "response_format.type",
                    "must be text, json_object or json_schema",
                ))
            }
        },
    };
    Ok(ChatRequest {
        messages,
        params,
        format,
    })
}

/// Maps model errors to HTTP: the caller's mistakes are 4xx naming the field.
pub fn llm_error(e: LlmError) -> ApiError {
    match e {
        LlmError::InvalidRequest { field, message } => {
            let msg = format!("{field}: {message}");
            ApiError::invalid(field, msg)
        }
        LlmError::ContextOverflow { .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "context_length_exceeded",
            e.to_string(),
        )
        .field("messages"),
        LlmError::Schema(_) => ApiError::invalid("response_format", e.to_string()),
        LlmError::Template(_) => ApiError::invalid(
            "messages",
            format!("the model's chat template refused these messages: {e}"),
        ),
        LlmError::Remote { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", e.to_string())
        }
        other => {
            tracing::error!("language model failed: {other}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log",
            )
        }
    }
}

fn llm_for<'a>(state: &'a AppState, model: &str) -> ApiResult<&'a Llm> {
    let llm = state.llm.as_ref().ok_or_else(|| {
        // 404 as for any model this server does not have: a 503 would make clients (openai's
        // among them) retry a request that cannot succeed until the operator adds a model.
        ApiError::new(StatusCode::NOT_FOUND, "no_language_model", NO_LLM).field("model")
    })?;
    if model != llm.id() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "no language model {model:?}; this server has {:?}",
                llm.id()
            ),
        )
        .field("model"));
    }
    Ok(llm)
}

fn finish(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        _ => "stop",
    }
}

fn usage(c: &Completion) -> Value {
    json!({
        "prompt_tokens": c.usage.prompt_tokens,
        "completion_tokens": c.usage.completion_tokens,
        "total_tokens": c.usage.prompt_tokens + c.usage.completion_tokens,
    })
}

/// Cancels generation when the response stream is dropped (client went away).
/// A streamed answer also holds its key's stream slot until it ends.
struct CancelOnDrop(
    CancelToken,
    #[allow(dead_code)] Option<crate::limits::StreamPermit>,
);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Chat completions (OpenAI Chat Completions API) on the configured language model.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatCompletionRequest,
    responses((status = 200, description = "chat.completion, or an SSE stream of chat.completion.chunk when stream=true", body = Object),
              (status = 404, body = crate::routes::ErrorBody), (status = 422, body = crate::routes::ErrorBody),
              (status = 404, description = "no such model, or no language model configured (`no_language_model`)", body = crate::routes::ErrorBody)))]
pub async fn completions(
    State(state): State<AppState>,
    Tenant(_tenant): Tenant,
    crate::extract::KeyId(key): crate::extract::KeyId,
    Json(body): Json<ChatCompletionRequest>,
) -> ApiResult<Response> {
    let llm = llm_for(&state, &body.model)?.clone();
    let permit = if body.stream {
        Some(state.http.open_stream(&key)?)
    } else {
        None
    };
    let req = request(&body)?;
    let id = format!("chatcmpl-{}", atelier_platform::new_id());
    let created = atelier_platform::now_ms() / 1000;
    let model = llm.id().to_owned();
    if !body.stream {
        // If the client goes away, this future is dropped and the guard stops generation.
        let cancel = CancelToken::new();
        let _guard = CancelOnDrop(cancel.clone(), None);
        let out = llm
            .chat(req, cancel, Box::new(|_| {}))
            .await
            .map_err(llm_error)?;
        return Ok(axum::Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": finish(out.finish_reason), "logprobs": null,
                         "message": {"role": "assistant", "content": out.text}}],
            "usage": usage(&out),
        }))
        .into_response());
    }
    let include_usage = body
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Each message says whether it counts toward the backlog (text chunks do).
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(Value, bool)>();
    // Chunks sent but not yet taken by the response: generation waits above a bound, so a slow
    // reader holds it back instead of piling up memory.
    let backlog = Arc::new(AtomicUsize::new(0));
    let cancel = CancelToken::new();
    let chunk = {
        let (id, model) = (id.clone(), model.clone());
        move |delta: Value, finish: Option<&str>| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
        }
    };
    let _ = tx.send((
        chunk(json!({"role": "assistant", "content": ""}), None),
        false,
    ));
    let text_tx = tx.clone();
    let text_chunk = chunk.clone();
    let gen_cancel = cancel.clone();
    let gen_backlog = backlog.clone();
    let (usage_id, usage_model) = (id.clone(), model.clone());
    tokio::spawn(async move {
        let c2 = gen_cancel.clone();
        let result = llm
            .chat(
                req,
                gen_cancel,
                Box::new(move |t: &str| {
                    // Local models call this on a blocking thread (waiting is fine there);
                    // remote ones once, with an empty backlog.
                    while gen_backlog.load(Ordering::SeqCst) >= MAX_BACKLOG && !c2.is_cancelled() {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    gen_backlog.fetch_add(1, Ordering::SeqCst);
                    if text_tx
                        .send((text_chunk(json!({"content": t}), None), true))
                        .is_err()
                    {
                        c2.cancel();
                    }
                }),
            )
            .await;
        match result {
            Ok(out) => {
                let _ = tx.send((chunk(json!({}), Some(finish(out.finish_reason))), false));
                if include_usage {
                    let v = json!({"id": usage_id, "object": "chat.completion.chunk",
                        "created": created, "model": usage_model, "choices": [], "usage": usage(&out)});
                    let _ = tx.send((v, false));
                }
            }
            Err(e) => {
                let e = llm_error(e);
                let _ = tx.send((
                    json!({"error": {"code": e.code, "message": e.message}}),
                    false,
                ));
            }
        }
    });
    Ok(
        Sse::new(sse_stream(rx, backlog, CancelOnDrop(cancel, permit)))
            .keep_alive(KeepAlive::default())
            .into_response(),
    )
}

/// Text chunks that may wait for the client before generation pauses.
const MAX_BACKLOG: usize = 64;

fn sse_stream(
    rx: tokio::sync::mpsc::UnboundedReceiver<(Value, bool)>,
    backlog: Arc<AtomicUsize>,
    guard: CancelOnDrop,
) -> impl Stream<Item = Result<Event, Infallible>> {
    // The guard lives in the stream's state: dropping the response cancels generation.
    futures_util::stream::unfold(Some((rx, backlog, guard)), |st| async move {
        let (mut rx, backlog, guard) = st?;
        match rx.recv().await {
            Some((v, counted)) => {
                if counted {
                    backlog.fetch_sub(1, Ordering::SeqCst);
                }
                let ev = Event::default().data(v.to_string());
                Some((Ok(ev), Some((rx, backlog, guard))))
            }
            None => Some((Ok(Event::default().data("[DONE]")), None)),
        }
    })
}
