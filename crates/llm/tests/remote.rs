//! The remote provider against a local HTTP server speaking the chat-completions format:
//! repair after a malformed answer, retries on 503, fallback when response_format is refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atelier_llm::{CancelToken, Llm, Message, RemoteConfig, RemoteModel, SamplingParams};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// Scripted answers, one per request, and the requests received.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<Vec<(u16, Value)>>>,
    seen: Arc<Mutex<Vec<Value>>>,
}

async fn chat(State(s): State<Script>, Json(body): Json<Value>) -> Response {
    s.seen.lock().unwrap().push(body);
    let (status, answer) = s.answers.lock().unwrap().remove(0);
    (StatusCode::from_u16(status).unwrap(), Json(answer)).into_response()
}

fn completion(content: &str) -> (u16, Value) {
    (
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }),
    )
}

async fn server(answers: Vec<(u16, Value)>) -> (String, Script) {
    let script = Script {
        answers: Arc::new(Mutex::new(answers)),
        ..Default::default()
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), script)
}

fn llm(url: &str) -> Llm {
    let mut cfg = RemoteConfig::new(url, "m");
    cfg.api_key = Some("sk-test".into());
    cfg.timeout = Duration::from_secs(10);
    Llm::Remote(Arc::new(RemoteModel::new(cfg).unwrap()))
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"title": {"type": "string", "maxLength": 20}},
        "required": ["title"],
        "additionalProperties": false
    })
}

#[tokio::test]
async fn malformed_first_answer_triggers_one_repair() {
    let (url, script) = server(vec![
        completion("Sure! Here is the title: {\"title\": \"bad\""),
        completion("```json\n{\"title\": \"우리 가족의 여름\"}\n```"),
    ])
    .await;
    let out = llm(&url)
        .structured(
            vec![Message::user("제목")],
            &schema(),
            SamplingParams::default(),
            2,
            CancelToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(out.value, json!({"title": "우리 가족의 여름"}));
    assert_eq!(out.attempts, 2);
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "exactly one repair request");
    assert_eq!(seen[0]["response_format"]["type"], "json_schema");
    assert_eq!(
        seen[0]["response_format"]["json_schema"]["schema"],
        schema()
    );
    let msgs = seen[1]["messages"].as_array().unwrap();
    // The repair request carries the bad answer and what was wrong with it.
    assert_eq!(msgs[msgs.len() - 2]["role"], "assistant");
    let last = msgs[msgs.len() - 1]["content"].as_str().unwrap();
    assert!(last.contains("not valid JSON"), "{last}");
}

#[tokio::test]
async fn schema_violations_are_fed_back_and_the_budget_is_bounded() {
    let long = "가".repeat(25);
    let (url, script) = server(vec![
        completion(&format!("{{\"title\": \"{long}\"}}")),
        completion(&format!("{{\"title\": \"{long}\"}}")),
    ])
    .await;
    let err = llm(&url)
        .structured(
            vec![Message::user("x")],
            &schema(),
            SamplingParams::default(),
            1,
            CancelToken::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("after 2 attempt(s)"), "{err}");
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let msgs = seen[1]["messages"].as_array().unwrap();
    let last = msgs[msgs.len() - 1]["content"].as_str().unwrap();
    assert!(last.contains("/title"), "{last}");
}

#[tokio::test]
async fn transient_failures_are_retried_and_response_format_refusal_falls_back() {
    let (url, script) = server(vec![
        (503, json!({"error": {"message": "loading model"}})),
        (
            400,
            json!({"error": {"message": "unknown field: response_format"}}),
        ),
        completion("{\"title\": \"ok\"}"),
    ])
    .await;
    let m = llm(&url);
    let out = m
        .structured(
            vec![Message::user("x")],
            &schema(),
            SamplingParams::default(),
            0,
            CancelToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(out.value["title"], "ok");
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen[1].get("response_format").is_some());
    assert!(seen[2].get("response_format").is_none());
    assert_eq!(seen[2]["model"], "m");
    // The schema still reaches the model, in the system message.
    assert!(seen[2]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("maxLength"));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (url, script) = server(vec![(401, json!({"error": {"message": "bad key"}}))]).await;
    let err = llm(&url)
        .structured(
            vec![Message::user("x")],
            &schema(),
            SamplingParams::default(),
            2,
            CancelToken::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("401") && err.to_string().contains("bad key"),
        "{err}"
    );
    assert_eq!(script.seen.lock().unwrap().len(), 1);
    assert!(RemoteModel::new(RemoteConfig::new("ftp://x", "m")).is_err());
}
