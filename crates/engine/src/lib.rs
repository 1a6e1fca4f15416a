//! atelier's inference engine: diffusers-format Stable Diffusion pipelines on candle.
//!
//! The engine knows nothing of HTTP or databases. It loads a model folder
//! ([`model::DiffusionModel::load`]), runs a typed [`pipeline::GenerateRequest`] with progress,
//! previews and cancellation, and can replay a diffusers reference trace ([`parity`]).

pub mod config;
pub mod conv_algo;
pub mod error;
pub mod image;
pub mod layers;
pub mod model;
pub mod models;
pub mod parity;
pub mod pipeline;
pub mod preview;
pub mod profile;
pub mod schedulers;
pub mod tokenizer;
pub mod weights;

pub use error::{EngineError, Result};
pub use model::{inspect, CallCounts, DiffusionModel, Family, LoadOptions, ModelInfo};
pub use pipeline::{
    BatchItem, CancelToken, GenerateOutput, GenerateRequest, NoiseSource, Progress,
};
pub use schedulers::SchedulerKind;
