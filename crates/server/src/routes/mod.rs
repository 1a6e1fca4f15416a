//! HTTP routes, grouped by concern.

pub mod chat;
pub mod diary;
pub mod files;
pub mod openai;
pub mod ops;
pub mod predictions;
pub mod storyboards;
pub mod tickets;

/// The error body every route returns on failure.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `invalid_input`, `not_found`, `queue_full`.
    pub code: String,
    pub message: String,
    /// The request field at fault, e.g. `input.width`.
    pub field: Option<String>,
}
