//! Typed errors for composition.

/// Why a layout or an encode failed. Messages name the field or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A request or preset field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// Dotted path of the field, e.g. `slots[2].box` or `cuts`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No preset has this name.
    #[error("unknown preset {0:?}")]
    UnknownPreset(String),
    /// A preset file could not be parsed.
    #[error("preset {name}: {message}")]
    Preset {
        /// Preset name or path.
        name: String,
        /// Parser message.
        message: String,
    },
    /// The canvas size is zero or too large.
    #[error("cannot allocate a {width}x{height} canvas")]
    Size {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// PDF writing failed.
    #[error("pdf: {0}")]
    Pdf(String),
    /// Video or image encoding failed.
    #[error("{format} encoder: {message}")]
    Encode {
        /// gif, webp or mp4.
        format: &'static str,
        /// Encoder message.
        message: String,
    },
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ComposeError {
    /// A field error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ComposeError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
