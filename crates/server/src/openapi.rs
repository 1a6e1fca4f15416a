//! `/openapi.json`: every route, plus each app's input schema.

use serde_json::Value;
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

/// The document as JSON, with app input schemas under `components.schemas`.
pub fn document(state: &AppState) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
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
