//! `/openapi.json`: every route, plus each app's input schema.

use serde_json::{json, Value};
use utoipa::OpenApi;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "atelier",
        description = "Self-hosted generative media: Replicate-shaped jobs, OpenAI-compatible images."
    ),
    paths(
        crate::routes::predictions::create_for_model,
        crate::routes::predictions::create_with_version,
        crate::routes::predictions::get,
        crate::routes::predictions::list,
        crate::routes::predictions::cancel,
        crate::routes::predictions::stream,
        crate::routes::predictions::preview,
        crate::routes::openai::generations,
        crate::routes::chat::completions,
        crate::routes::files::get,
        crate::routes::ops::healthz,
        crate::routes::ops::readyz,
        crate::routes::ops::metrics,
        crate::routes::ops::models,
        crate::routes::ops::system,
        crate::routes::ops::start_pull,
        crate::routes::ops::list_pulls,
        crate::routes::ops::get_pull,
        crate::routes::ops::webhook_secret,
        crate::routes::ops::audit,
        crate::routes::tickets::create_campaign,
        crate::routes::tickets::list_campaigns,
        crate::routes::tickets::get_campaign,
        crate::routes::tickets::update_campaign,
        crate::routes::tickets::create_ticket,
        crate::routes::tickets::list_tickets,
        crate::routes::tickets::get_ticket,
        crate::routes::tickets::rerun_ticket,
        crate::routes::tickets::revoke_ticket,
        crate::routes::tickets::create_batch,
        crate::routes::tickets::get_batch,
        crate::routes::tickets::batch_links,
        crate::routes::tickets::batch_zip,
        crate::routes::tickets::share_page,
        crate::routes::tickets::share_image,
        crate::routes::storyboards::create,
        crate::routes::storyboards::list,
        crate::routes::storyboards::categories,
        crate::routes::storyboards::get,
        crate::routes::storyboards::delete,
        crate::routes::storyboards::versions,
        crate::routes::storyboards::version,
        crate::routes::storyboards::edit,
        crate::routes::storyboards::edit_cut,
        crate::routes::storyboards::regenerate_cut,
        crate::routes::storyboards::move_cut,
        crate::routes::storyboards::insert_cut,
        crate::routes::storyboards::delete_cut,
        crate::routes::storyboards::restore,
        crate::routes::storyboards::retry,
        crate::routes::storyboards::diff,
        crate::routes::storyboards::add_comment,
        crate::routes::storyboards::comments,
        crate::routes::storyboards::resolve_comment,
        crate::routes::storyboards::put_reference,
        crate::routes::storyboards::export,
    ),
    components(schemas(
        crate::routes::predictions::PredictionRequest,
        crate::routes::openai::ImagesRequest,
        crate::routes::chat::ChatCompletionRequest,
        crate::routes::ErrorBody,
        crate::routes::ErrorDetail,
        crate::routes::ops::PullRequest,
        crate::pulls::PullStatus,
    ))
)]
struct ApiDoc;

/// Routes that answer without an API key.
const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/t/{share_id}",
    "/t/{share_id}/ticket.png",
];

/// Error answers shared by many routes, as `components.responses` entries: (status, name, why).
const SHARED: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "the body is not valid JSON or could not be read (`malformed_json`, `bad_body`)"),
    ("401", "Unauthorized", "the API key is missing or unknown (`unauthorized`)"),
    ("404", "NotFound", "no such thing for this caller; absent and foreign look the same (`not_found`)"),
    ("413", "PayloadTooLarge", "the body is larger than this route accepts (`body_too_large`)"),
    ("415", "UnsupportedMediaType", "the body's Content-Type is not the one this route reads"),
    ("422", "Unprocessable", "a field or parameter is invalid; `error.field` names it"),
    ("429", "TooManyRequests", "this key is over its request rate or stream limit, or the queue is full; `Retry-After` says when to retry"),
];

/// Adds the error answers every route can give from its extractors and middleware, so the
/// document lists each status a client may see: 401 and 429 on keyed routes, 404 where the path
/// names something, 400/413/415/422 where there is a body, 422 where there are query parameters.
fn document_errors(doc: &mut Value) {
    let mut responses = serde_json::Map::new();
    for (_, name, why) in SHARED {
        responses.insert(
            (*name).to_owned(),
            json!({"description": why, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}),
        );
    }
    if let Some(c) = doc.get_mut("components").and_then(Value::as_object_mut) {
        c.insert("responses".into(), Value::Object(responses));
        c.insert(
            "securitySchemes".into(),
            json!({"bearer": {"type": "http", "scheme": "bearer", "description": "an API key from `atelier keys create`"}}),
        );
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let public = PUBLIC.contains(&path.as_str());
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let has_body = op.contains_key("requestBody");
            let has_query = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let mut add: Vec<&str> = Vec::new();
            if !public {
                add.extend(["401", "429"]);
                op.insert("security".into(), json!([{"bearer": []}]));
            } else {
                op.insert("security".into(), json!([]));
            }
            if path.contains('{') {
                add.push("404");
            }
            if has_body {
                add.extend(["400", "413", "415", "422"]);
            }
            if has_query {
                add.push("422");
            }
            let Some(rs) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for status in add {
                if rs.contains_key(status) {
                    continue;
                }
                if let Some((_, name, _)) = SHARED.iter().find(|(s, _, _)| *s == status) {
                    rs.insert(
                        status.into(),
                        json!({"$ref": format!("#/components/responses/{name}")}),
                    );
                }
            }
        }
    }
}

/// The document as JSON, with app input schemas under `components.schemas`.
pub fn document(state: &AppState) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    document_errors(&mut doc);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for name in state.platform.app_names() {
            if let Some(app) = state.platform.app(&name) {
                let key = format!("{}Input", name.replace(['/', '-'], "_"));
                schemas.insert(key, app.input_schema());
            }
        }
    }
    doc
}
