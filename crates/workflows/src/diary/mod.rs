//! Diary toons: a small social site where a diary post becomes a four-panel comic, read in a
//! lounge, commented on, liked, and linked to similar posts.
//!
//! - [`accounts`]: passwords (Argon2id), session and CSRF tokens, login throttle, avatars.
//! - [`store`]: users, sessions, posts, comments, likes, reports (SQLite, migration 1002).
//! - [`toon`]: the recorded steps of `atelier/diary-toon` (screen, panels, four pictures,
//!   comic layouts, provenance).
//! - [`recommend`]: similar posts with no extra model (TF-IDF over words and Hangul n-grams,
//!   co-engagement), plus sentence embeddings when a model is installed.
//! - [`app`]: the service the HTTP routes call, and the app the worker runs.

pub mod accounts;
pub mod app;
pub mod recommend;
pub mod seed;
pub mod store;
pub mod toon;

pub use app::{Diary, DiaryError, DiaryToonApp, NewSession, PostInput, TOON_APP};
pub use recommend::{Recommender, TextEmbedder};
pub use store::{Post, SqlDiary, User, Visibility};
pub use toon::{ToonSettings, ToonWorkflow};
