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
    "/v1/storyboards/categories",
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
    ("409", "Conflict", "well formed, but the current state of what it names cannot take it: a campaign outside its dates, a cut the version lacks, a version still drawing (`conflict`, `version_conflict`)"),
    ("415", "UnsupportedMediaType", "the body's Content-Type is not the one this route reads"),
    ("422", "Unprocessable", "a field or parameter is invalid; `error.field` names it"),
    ("429", "TooManyRequests", "this key is over its request rate or stream limit, or the queue is full; `Retry-After` says when to retry"),
];

/// Operations that can answer 409 because of the state of what they name.
const CONFLICTS: &[(&str, &str)] = &[
    ("patch", "/v1/campaigns/{id}"),
    ("post", "/v1/campaigns/{id}/tickets"),
    ("post", "/v1/campaigns/{id}/batches"),
    ("post", "/v1/tickets/{id}/rerun"),
    ("post", "/v1/storyboards/{id}/versions"),
    ("post", "/v1/storyboards/{id}/versions/{n}/restore"),
    ("post", "/v1/storyboards/{id}/retry"),
    ("post", "/v1/storyboards/{id}/cuts"),
    ("patch", "/v1/storyboards/{id}/cuts/{cut}"),
    ("delete", "/v1/storyboards/{id}/cuts/{cut}"),
    ("post", "/v1/storyboards/{id}/cuts/{cut}/regenerate"),
    ("post", "/v1/storyboards/{id}/cuts/{cut}/move"),
    ("get", "/v1/storyboards/{id}/export.zip"),
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
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let has_body = op.contains_key("requestBody");
            // Query and header parameters are checked too (422 naming them).
            let has_query = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query" || p["in"] == "header"));
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
            if CONFLICTS.contains(&(method.as_str(), path.as_str())) {
                add.push("409");
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

/// Characters a text field may hold: anything but control characters (a newline is fine).
const NO_CONTROL: &str = "[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]";

/// A text field as the storyboard and campaign checks read it: at most `max` characters, no
/// control characters, and (when `required`) something other than white space.
fn text(max: usize, required: bool) -> Value {
    let pattern = if required {
        format!("^{NO_CONTROL}*[^\\s\\u0000-\\u001f\\u007f-\\u009f]{NO_CONTROL}*$")
    } else {
        format!("^{NO_CONTROL}*$")
    };
    json!({"type": "string", "maxLength": max, "pattern": pattern})
}

/// A text field checked only for length and for something other than white space.
fn plain(max: usize) -> Value {
    json!({"type": "string", "maxLength": max, "pattern": "\\S"})
}

/// An optional field the server reads into an `Option`: `null` means absent.
fn opt(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

/// `WIDTHxHEIGHT` with each side a multiple of 8 in 64..=2048 (or `auto`), spelled out.
fn size_pattern() -> String {
    let sides: Vec<String> = (8..=256).map(|k| (k * 8).to_string()).collect();
    let side = sides.join("|");
    format!("^(auto|({side})x({side}))$")
}

fn int(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn num(min: f64, max: f64) -> Value {
    json!({"type": "number", "minimum": min, "maximum": max})
}

/// An object schema that refuses fields it does not name, as the server does.
fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": props, "required": required})
}

/// Request bodies that `utoipa` can only call `Object` because the handlers read JSON values
/// into the workflows' own types: their real shapes, with the limits the workflows check, so
/// generated clients and fuzzers send what the server takes. `installed` and `presets` are
/// this server's model and ticket-preset names.
#[rustfmt::skip]
fn request_bodies(installed: &[String], presets: &[String], label: Value) -> Vec<(&'static str, &'static str, Value)> {
    use atelier_workflows::storyboards::app::{AUTHOR_MAX, COMMENT_MAX};
    use atelier_workflows::storyboards::spec::{
        CAMERA_MAX, COPY_MAX, CUTS, CUT_SECONDS, PROMPT_MAX, SCENE_MAX, TITLE_MAX,
    };
    let schedulers = json!(["ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm"]);
    let scheduler = opt(json!({"type": "string", "enum": schedulers}));
    let model = opt(json!({"type": "string", "enum": installed}));
    let categories: Vec<&str> = atelier_workflows::storyboards::spec::CATEGORIES.iter().map(|c| c.0).collect();
    let seed32 = opt(json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}));
    let seed64 = opt(json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}));
    let position = json!({"type": "integer", "minimum": 1, "maximum": CUTS.1});
    let cut_ref = json!({"oneOf": [position, {"type": "string", "pattern": "^cut_[0-9a-f]{8}$"}]});
    let duration = num(CUT_SECONDS.0 as f64, CUT_SECONDS.1 as f64);
    let base = opt(json!({"type": "integer", "minimum": 1, "maximum": i64::MAX, "description": "the version this edit was made on; a newer current version answers 409"}));

    // Storyboard edits: per-cut routes and the operations of POST …/versions.
    let edit = json!({
        "scene": opt(text(SCENE_MAX, true)), "camera": opt(text(CAMERA_MAX, false)),
        "copy": opt(text(COPY_MAX, false)), "duration_s": opt(duration.clone()),
        "image_prompt": opt(text(PROMPT_MAX, true)),
    });
    let insert = json!({
        "at": opt(position.clone()), "scene": text(SCENE_MAX, true), "camera": text(CAMERA_MAX, false),
        "copy": text(COPY_MAX, false), "duration_s": duration, "image_prompt": opt(text(PROMPT_MAX, true)),
    });
    let regenerate = json!({"seed": seed64.clone(), "image_prompt": opt(text(PROMPT_MAX, true))});
    let with = |props: &Value, extra: Value| {
        let mut p = props.clone();
        if let (Some(o), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        p
    };
    let op = |name: &str, props: Value, required: &[&str]| {
        let props = with(&props, json!({"op": {"type": "string", "enum": [name]}}));
        let mut req = vec!["op"];
        req.extend_from_slice(required);
        object(props, &req)
    };
    // At least one of the fields an edit changes, given and not null.
    let some_edit = json!(["scene", "camera", "copy", "duration_s", "image_prompt"]
        .map(|f| json!({"required": [f], "properties": {f: {"not": {"type": "null"}}}})));
    let mut edit_op = op("edit", with(&edit, json!({"cut": cut_ref})), &["cut"]);
    edit_op["anyOf"] = some_edit.clone();
    let ops = json!({"type": "array", "minItems": 1, "maxItems": 32, "items": {"oneOf": [
        edit_op,
        op("regenerate", with(&regenerate, json!({"cut": cut_ref})), &["cut"]),
        op("move", json!({"cut": cut_ref, "to": position}), &["cut", "to"]),
        op("insert", insert.clone(), &["scene", "duration_s"]),
        op("delete", json!({"cut": cut_ref}), &["cut"]),
        op("title", json!({"title": text(TITLE_MAX, false)}), &["title"]),
    ]}});

    // Photo-ticket campaigns (POST) and their edits (PATCH: any subset).
    let colour = opt(json!({"type": "string", "pattern": "^\\s*#([0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})\\s*$"}));
    let action = opt(json!({"type": "string", "enum": ["reject", "blur", "flag"]}));
    let campaign = object(json!({
        "name": text(100, true), "brand": text(60, true),
        "style_prompt": text(400, false), "negative_prompt": text(400, false),
        "generation": object(json!({
            "model": model, "width": opt(int(64, 2048)), "height": opt(int(64, 2048)),
            "steps": opt(int(1, 150)), "guidance_scale": opt(num(0.0, 30.0)), "scheduler": scheduler,
        }), &[]),
        "palette": object(json!({"primary": colour, "accent": colour}), &[]),
        "logo": opt(json!({"type": "string", "pattern": "^(data:image/(png|jpeg);base64,|atelier-file://)",
                           "description": "a data:image/png;base64,… (or JPEG) URL of an image, at most 1 MiB, or the file reference a campaign already holds"})),
        "presets": {"type": "array", "items": {"type": "string", "enum": presets}, "uniqueItems": true},
        "label": {"type": "boolean"}, "label_text": text(40, true),
        "safety": object(json!({
            "action": action, "image_action": action,
            "allow": {"type": "array", "items": text(atelier_safety::policy::TERM_MAX, true)},
            "deny": {"type": "array", "items": object(json!({"category": {"type": "string", "pattern": "^[a-z0-9_]{1,40}$"}, "terms": {"type": "array", "items": text(atelier_safety::policy::TERM_MAX, true)}}), &["category", "terms"])},
            "disable": {"type": "array", "items": {"type": "string", "enum": atelier_safety::lists::CATEGORIES}},
            "label": opt(json!({"type": "boolean"})),
        }), &[]),
        "copy": {"type": "string", "enum": ["llm", "supplied"]},
        "active_from": opt(json!({"type": "string", "format": "date-time"})),
        "active_until": opt(json!({"type": "string", "format": "date-time", "description": "after active_from"})),
        "fields": {"type": "object", "maxProperties": 16,
                   "propertyNames": {"pattern": "^(?!(title|tagline|name|qr|label|brand)$)[a-z0-9_]{1,40}$"},
                   "additionalProperties": text(80, false)},
        "scale": num(0.25, 2.0),
    }), &["name", "brand"]);
    let mut campaign_patch = campaign.clone();
    campaign_patch["required"] = json!([]);
    let ticket = object(json!({
        "name": plain(atelier_workflows::tickets::csv::NAME_MAX),
        "text": plain(atelier_workflows::tickets::csv::TEXT_MAX),
        "title": opt(plain(atelier_writer::tasks::TITLE_MAX)),
        "tagline": opt(plain(atelier_writer::tasks::TAGLINE_MAX)),
        "preset": opt(json!({"type": "string", "enum": presets})),
        "seed": seed64.clone(), "show_name": opt(json!({"type": "boolean"})),
        "webhook": opt(json!({"type": "string", "format": "uri"})),
    }), &["name", "text"]);
    let steps = atelier_workflows::tickets::steps::Step::ALL.map(|s| s.name());
    let rerun = object(json!({
        "from": opt(json!({"type": "string", "enum": steps})),
        "title": opt(plain(atelier_writer::tasks::TITLE_MAX)),
        "tagline": opt(plain(atelier_writer::tasks::TAGLINE_MAX)),
        "preset": opt(json!({"type": "string", "enum": presets})),
        "seed": seed64.clone(),
    }), &[]);

    // Storyboards: a brief and the cuts written by people (the language model writes them
    // when the server has one and `script` is left out).
    let storyboard = object(json!({
        "product": text(100, true), "category": {"type": "string", "enum": categories},
        "brief": text(3000, true), "tone": opt(text(60, true)), "style": opt(text(300, false)),
        // The total the cuts are scaled to: CUT_SECONDS per cut, so its range depends on the
        // number of cuts (a rule across fields a schema cannot state; this is the widest).
        "target_seconds": opt({
            let mut t = num((CUTS.0 as f32 * CUT_SECONDS.0) as f64, (CUTS.1 as f32 * CUT_SECONDS.1) as f64);
            t["description"] = json!(format!("between {} and {} seconds per cut", CUT_SECONDS.0, CUT_SECONDS.1));
            t
        }),
        "aspect": opt(json!({"type": "string", "enum": ["16:9", "9:16", "1:1"]})),
        "seed": seed32,
        "script": object(json!({
            "title": opt(text(TITLE_MAX, false)),
            "cuts": {"type": "array", "minItems": CUTS.0, "maxItems": CUTS.1, "items": object(json!({
                "scene": text(SCENE_MAX, true), "camera": text(CAMERA_MAX, false), "copy": text(COPY_MAX, false),
                "duration_s": duration, "image_prompt": opt(text(PROMPT_MAX, true))}), &["scene", "duration_s"])},
        }), &["cuts"]),
        "generation": object(json!({"model": model, "size": opt(int(64, 2048)), "steps": opt(int(1, 150)),
            "negative_prompt": opt(text(300, false))}), &[]),
        "animatic": object(json!({
            "formats": opt(json!({"type": "array", "minItems": 1, "maxItems": 3, "uniqueItems": true, "items": {"type": "string", "enum": ["mp4", "gif", "webp"]}})),
            "fps": opt(int(1, 60)), "size": opt(int(128, 1920))}), &[]),
    }), &["product", "category", "brief", "script"]);

    // OpenAI images: the prompt is screened and checked for length only.
    let images = object(json!({
        "prompt": plain(2000), "model": model, "n": opt(int(1, 4)),
        "size": opt(json!({"type": "string", "description": "WIDTHxHEIGHT, each a multiple of 8 in 64..2048, or auto", "pattern": size_pattern()})),
        "response_format": opt(json!({"type": "string", "enum": ["url", "b64_json"]})),
        "output_format": opt(json!({"type": "string", "enum": ["png", "jpeg", "jpg", "webp"]})),
        "quality": opt(json!({"type": "string", "description": "accepted and ignored"})),
        "style": opt(json!({"type": "string", "description": "accepted and ignored"})),
        "user": opt(json!({"type": "string", "description": "accepted and ignored"})),
        "seed": seed64.clone(), "steps": opt(int(1, 150)), "guidance_scale": opt(num(0.0, 30.0)),
        "negative_prompt": opt(json!({"type": "string", "maxLength": 2000})), "scheduler": scheduler,
        "label": opt(label),
    }), &["prompt"]);

    let prediction = |version_required: bool| {
        let version = json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}(:[A-Za-z0-9._-]{0,64})?$",
                             "description": "`owner/name` of the app (with /v1/predictions; ignored under /v1/models/…)"});
        let props = json!({
            "input": {"type": "object", "description": "the app's input; its schema is components.schemas.<app>Input"},
            "version": if version_required { version } else { opt(version) },
            // A host name that starts with a letter: IP literals and `localhost` are refused
            // unless the server allows private webhooks.
            "webhook": opt(json!({"type": "string", "format": "uri", "pattern": "^https?://[A-Za-z][A-Za-z0-9-]{0,30}(\\.[A-Za-z0-9-]{1,30}){1,3}(:[1-9][0-9]{1,3})?(/[A-Za-z0-9._~/-]{0,60})?$"})),
            "webhook_events_filter": opt(json!({"type": "array", "items": {"type": "string", "enum": atelier_platform::webhooks::EVENTS}, "uniqueItems": true})),
            "stream": opt(json!({"type": "boolean", "description": "accepted and ignored: every prediction streams"})),
        });
        let req: &[&str] = if version_required { &["input", "version"] } else { &["input"] };
        object(props, req)
    };
    vec![
        ("post", "/v1/predictions", prediction(true)),
        ("post", "/v1/models/{owner}/{name}/predictions", prediction(false)),
        ("post", "/v1/images/generations", images),
        ("post", "/v1/campaigns", campaign),
        ("patch", "/v1/campaigns/{id}", campaign_patch),
        ("post", "/v1/campaigns/{id}/tickets", ticket),
        ("post", "/v1/tickets/{id}/rerun", rerun),
        ("post", "/v1/storyboards", storyboard),
        ("post", "/v1/storyboards/{id}/versions", object(json!({"base": base, "ops": ops}), &["ops"])),
        ("patch", "/v1/storyboards/{id}/cuts/{cut}", {
            // At least one field to change.
            let mut e = object(with(&edit, json!({"base": base})), &[]);
            e["anyOf"] = some_edit;
            e
        }),
        ("post", "/v1/storyboards/{id}/cuts", object(with(&insert, json!({"base": base})), &["scene", "duration_s"])),
        ("post", "/v1/storyboards/{id}/cuts/{cut}/regenerate", object(with(&regenerate, json!({"base": base})), &[])),
        ("post", "/v1/storyboards/{id}/cuts/{cut}/move", object(json!({"base": base, "to": position}), &["to"])),
        ("post", "/v1/storyboards/{id}/cuts/{cut}/comments", object(json!({"author": text(AUTHOR_MAX, true), "text": text(COMMENT_MAX, true)}), &["author", "text"])),
        ("post", "/v1/storyboards/{id}/comments/{comment}/resolve", {
            // Resolving (the default) names who did; reopening ({"resolved": false}) does not.
            let mut r = object(json!({"resolved": {"type": "boolean"}, "by": opt(text(AUTHOR_MAX, true))}), &[]);
            r["anyOf"] = json!([
                {"required": ["by"], "properties": {"by": text(AUTHOR_MAX, true)}},
                {"required": ["resolved"], "properties": {"resolved": {"const": false}}},
            ]);
            r
        }),
    ]
}

/// Parameter limits the handlers check, by (method, path, name).
fn parameters() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let limit = |max: i64| json!({"type": "integer", "minimum": 1, "maximum": max});
    let statuses = json!({"type": "string", "enum": ["starting", "processing", "succeeded", "failed", "canceled"]});
    let cursor = json!({"type": "string", "pattern": "^(-?[0-9]{1,18})?$", "description": "`next`/`previous` of an earlier page"});
    // Whole seconds, minutes or milliseconds up to about a week; `1h30m`-style sums work too.
    let cancel_after = json!({"type": "string", "pattern": "^[1-9][0-9]{0,3}(ms|s|m)?$"});
    let prefer = json!({"type": "string", "pattern": "^wait(=([1-9]|[1-5][0-9]|60))?$"});
    let idem = json!({"type": "string", "minLength": 1, "maxLength": 256});
    let cut = json!({"type": "string", "pattern": "^([1-8]|cut_[0-9a-f]{8})$", "description": "1-based position or cut id"});
    let mut out = vec![
        (
            "get",
            "/v1/predictions/{id}/stream",
            "Last-Event-ID",
            json!({"type": "string", "pattern": "^[0-9]{1,18}$"}),
        ),
        ("get", "/v1/predictions", "limit", limit(100)),
        ("get", "/v1/predictions", "status", statuses),
        ("get", "/v1/predictions", "cursor", cursor),
        ("get", "/v1/audit", "limit", limit(1000)),
        (
            "post",
            "/v1/models/{owner}/{name}/predictions",
            "Cancel-After",
            cancel_after,
        ),
        (
            "post",
            "/v1/models/{owner}/{name}/predictions",
            "Prefer",
            prefer,
        ),
        (
            "post",
            "/v1/models/{owner}/{name}/predictions",
            "Idempotency-Key",
            idem,
        ),
    ];
    out.push((
        "post",
        "/v1/campaigns/{id}/batches",
        "encoding",
        json!({"type": "string", "enum": ["utf-8", "utf8", "cp949", "euc-kr", "euckr", "ms949", "windows-949", "uhc"],
               "description": "the file's text encoding; left out, it is detected (a UTF-8 BOM, UTF-8, else CP949)"}),
    ));
    for name in [
        "name_column",
        "text_column",
        "title_column",
        "tagline_column",
        "preset_column",
        "seed_column",
        "show_name_column",
    ] {
        out.push(("post", "/v1/campaigns/{id}/batches", name, json!({"type": "string", "minLength": 1, "pattern": "\\S", "description": "the header of the column to read this field from"})));
    }
    for (method, path) in [
        ("patch", "/v1/storyboards/{id}/cuts/{cut}"),
        ("delete", "/v1/storyboards/{id}/cuts/{cut}"),
        ("post", "/v1/storyboards/{id}/cuts/{cut}/regenerate"),
        ("post", "/v1/storyboards/{id}/cuts/{cut}/move"),
        ("post", "/v1/storyboards/{id}/cuts/{cut}/comments"),
    ] {
        out.push((method, path, "cut", cut.clone()));
    }
    out
}

/// Puts [`request_bodies`] and [`parameters`] into the document.
fn refine(doc: &mut Value, installed: &[String], presets: &[String], label: Value) {
    for (method, path, schema) in request_bodies(installed, presets, label) {
        if let Some(op) = doc.pointer_mut(&format!("/paths/{}/{method}", path.replace('/', "~1"))) {
            // A redraw may be asked for with no body at all (a new random seed).
            let required = path != "/v1/storyboards/{id}/cuts/{cut}/regenerate";
            op["requestBody"] =
                json!({"required": required, "content": {"application/json": {"schema": schema}}});
        }
    }
    // Chat integers: the exact ranges serde reads (utoipa leaves out the maxima).
    for (name, max) in [
        ("max_tokens", u32::MAX as u64),
        ("max_completion_tokens", u32::MAX as u64),
        ("top_k", u32::MAX as u64),
        ("n", u32::MAX as u64),
        ("seed", u64::MAX),
    ] {
        if let Some(p) = doc.pointer_mut(&format!(
            "/components/schemas/ChatCompletionRequest/properties/{name}"
        )) {
            *p = opt(json!({"type": "integer", "minimum": 0, "maximum": max}));
        }
    }
    // Uploads are raw bytes of a file, not JSON: say which files.
    let binary = json!({"schema": {"type": "string", "format": "binary"}});
    let uploads = [
        (
            "put",
            "/v1/storyboards/{id}/reference",
            vec!["image/png", "image/jpeg", "image/webp"],
        ),
        ("post", "/v1/campaigns/{id}/batches", vec!["text/csv"]),
    ];
    for (method, path, types) in uploads {
        if let Some(op) = doc.pointer_mut(&format!("/paths/{}/{method}", path.replace('/', "~1"))) {
            let content: serde_json::Map<String, Value> = types
                .into_iter()
                .map(|t| (t.to_owned(), binary.clone()))
                .collect();
            op["requestBody"] = json!({"required": true, "content": content});
        }
    }
    // Each server-sent event: its name, its JSON data as text, and its id (for Last-Event-ID).
    if let Some(c) = doc.pointer_mut(
        "/paths/~1v1~1predictions~1{id}~1stream/get/responses/200/content/text~1event-stream",
    ) {
        c["schema"] = json!({"type": "object", "properties": {
            "event": {"type": "string", "description": "status, progress, logs, output, error or done"},
            "data": {"type": "string", "description": "JSON"},
            "id": {"type": "string"},
        }});
    }
    for (method, path, name, schema) in parameters() {
        let ptr = format!("/paths/{}/{method}/parameters", path.replace('/', "~1"));
        if let Some(ps) = doc.pointer_mut(&ptr).and_then(Value::as_array_mut) {
            for p in ps.iter_mut().filter(|p| p["name"] == name) {
                p["schema"] = schema.clone();
            }
        }
    }
}

/// The document as JSON, with app input schemas under `components.schemas`.
pub fn document(state: &AppState) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    let installed: Vec<String> = state.models.list().into_iter().map(|m| m.name).collect();
    let presets: Vec<String> = state
        .tickets
        .as_ref()
        .map(|t| t.workflow.presets.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    // The visible-label settings as the text-to-image app reads them.
    let label = state
        .platform
        .app("atelier/text-to-image")
        .map(|a| a.input_schema()["properties"]["label"].clone())
        .filter(|l| !l.is_null())
        .unwrap_or_else(|| json!({"type": "boolean"}));
    refine(&mut doc, &installed, &presets, label);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_conflict_names_a_documented_operation_and_gets_its_409() {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        document_errors(&mut doc);
        for (method, path) in CONFLICTS {
            let op = doc
                .pointer(&format!("/paths/{}/{method}", path.replace('/', "~1")))
                .unwrap_or_else(|| panic!("{method} {path} is not in the document"));
            assert!(op["responses"].get("409").is_some(), "{method} {path}");
        }
        let other = &doc["paths"]["/v1/storyboards/{id}/diff"]["get"]["responses"];
        assert!(
            other.get("409").is_none(),
            "409 only where a state conflict can happen"
        );
    }
}
