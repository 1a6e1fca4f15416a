//! atelier's safety layer: prompts are screened before any compute, images after generation,
//! under policies set per tenant and per campaign.
//!
//! - [`screen`]: Korean and English word lists (data files in `lists/`) matched on
//!   normalised text, with exceptions and context rules, returning category, term and span.
//! - [`policy`]: what to do with a match (`reject`, `blur`, `flag`) and the lists a tenant or
//!   campaign layers on top.
//! - [`checker`]: the Stable Diffusion safety checker (CLIP vision tower + concept
//!   embeddings) on candle, when its weights are installed.

pub mod checker;
pub mod lists;
pub mod normalize;
pub mod policy;
pub mod screen;

pub use checker::{ImageScreening, SafetyChecker};
pub use policy::{Action, Policy, PolicySet};
pub use screen::{Decision, Match, Screener};

/// Errors of the safety layer.
#[derive(Debug, thiserror::Error)]
pub enum SafetyError {
    /// A list file does not parse.
    #[error("word list {at}: {message}")]
    List { at: String, message: String },
    /// A policy file does not parse or names something unknown.
    #[error("policy {at}: {message}")]
    Policy { at: String, message: String },
    /// The safety checker's files are missing or malformed.
    #[error("safety checker {path}: {message}")]
    Checker { path: String, message: String },
    /// The engine failed while running the checker.
    #[error(transparent)]
    Engine(#[from] atelier_engine::EngineError),
    /// A tensor operation failed.
    #[error("safety checker: {0}")]
    Candle(#[from] candle_core::Error),
}
