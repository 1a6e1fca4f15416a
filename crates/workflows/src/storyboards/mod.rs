//! Ad storyboards: a product brief becomes 4–8 cuts (scene, camera, copy, duration), a picture
//! per cut, a printable sheet (PNG + PDF) and an animatic; any cut can be revised without
//! redoing the rest, every save is a numbered version that can be viewed, diffed and restored,
//! and reviewers comment on cuts.
//!
//! - [`spec`]: the brief, cuts, edit operations and the version diff (pure data).
//! - [`store`]: boards, versions and comments (SQLite next to the platform's tables).
//! - [`steps`]: the recorded steps that draw one version (`atelier/storyboard`).
//! - [`app`]: the service the routes call and the app.

pub mod app;
pub mod spec;
pub mod steps;
pub mod store;

pub use app::{StoryboardApp, StoryboardError, Storyboards, STORYBOARD_APP};
pub use steps::{StoryboardSettings, StoryboardWorkflow};
pub use store::{Board, Comment, SqlStoryboards, Version};
