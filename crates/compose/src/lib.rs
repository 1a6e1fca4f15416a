//! Every word a person reads is drawn here, not by the image model: ticket, storyboard and comic
//! layouts with Korean typography, and animatics encoded as GIF, WebP and MP4.
//!
//! Independent of the engine: everything works on plain RGB(A) images.

pub mod error;
pub mod fonts;
pub mod geom;
pub mod scene;
pub mod text;

pub use error::ComposeError;
pub use fonts::{Face, Fonts};
pub use geom::{Rect, Rgba};
pub use scene::{Fit, Op, RasterOptions, Scene, Shape};
pub use text::{Align, Layout, TextStyle, VAlign};
pub mod animatic;
pub mod comic;
pub mod storyboard;
pub mod template;
pub mod ticket;
