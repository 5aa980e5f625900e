//! Why an image cannot be checked or rendered.

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("not a JPEG, PNG or WebP image")]
    Unsupported,
    #[error("the image is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error(
        "the image has too many pixels ({width} x {height}; at most {max} pixels are accepted)"
    )]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error(
        "decoding the image would take {} MiB of memory; at most {} MiB are allowed",
        needed >> 20,
        max >> 20
    )]
    TooMuchMemory { needed: u64, max: u64 },
    #[error("the image's metadata is too large: {0}")]
    Metadata(String),
    /// Decoding it would take more CPU than any image's decode may.
    #[error("decoding the image would take too long: {0}")]
    TooSlow(String),
    #[error("the image cannot be rendered {width} pixels wide: {reason}")]
    Unrenderable { width: u32, reason: String },
    #[error("cannot encode the rendition: {0}")]
    Encode(String),
    /// Reading the original failed (not a fault of the image).
    #[error("cannot read the original: {0}")]
    Read(String),
}
