//! The apps atelier runs as jobs. Each app validates its input (naming the offending field),
//! then runs on the engine inside a blocking thread with progress, previews and cancel wired
//! to the platform.

pub mod db;
pub mod diary;
pub mod guard;
pub mod registry;
pub mod storyboards;
pub mod text_to_image;
pub mod tickets;
pub mod upload;

pub use guard::Guard;
pub use registry::ModelRegistry;
pub use text_to_image::TextToImage;
