//! Network definitions. Each module builds its graph from the folder's own config and names its
//! parameters exactly as the diffusers/transformers checkpoints do.

pub mod blocks;
pub mod clip;
pub mod unet;
pub mod vae;
