//! [`PreprocessError`]: why an image could not be preprocessed.

/// Why an image could not be preprocessed. Messages are meant for the client that sent it.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// Zero bytes were sent.
    #[error("the image is empty (0 bytes)")]
    Empty,
    /// The bytes start with no signature of a known image format.
    #[error("the data is not a recognised image: expected JPEG, PNG, BMP, GIF, WebP or TIFF")]
    UnknownFormat,
    /// A known image format that this service does not decode (e.g. ICO, AVIF).
    #[error("{format} images are not supported: send JPEG, PNG, BMP, GIF, WebP or TIFF")]
    UnsupportedFormat {
        /// The format recognised from the signature.
        format: String,
    },
    /// The file is damaged, truncated or uses a feature the decoder does not handle.
    #[error("cannot decode the {format} image: {message}")]
    Decode {
        /// `jpeg`, `png`, `bmp`, `gif`, `webp` or `tiff`.
        format: String,
        /// What the decoder reported.
        message: String,
    },
    /// The header announces a width or a height of zero.
    #[error("the {format} image has no pixels ({width}x{height})")]
    ZeroSize {
        /// Format of the image.
        format: String,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// More pixels than `max_image_pixels` (refused from the header, before decoding).
    #[error(
        "the image is {width}x{height} = {} pixels, over the limit of {max_pixels} pixels",
        u64::from(*width) * u64::from(*height)
    )]
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit in force.
        max_pixels: u64,
    },
    /// Decoding would allocate more than `max_decode_alloc` bytes.
    #[error("decoding the {format} image needs more memory than the limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// Format of the image.
        format: String,
        /// The limit in force.
        limit_bytes: u64,
    },
    /// The output slice does not have `3 × crop_size × crop_size` elements (a caller bug).
    #[error("output buffer has {actual} floats, expected {expected}")]
    OutputLength {
        /// `3 × crop_size × crop_size`.
        expected: usize,
        /// Length of the slice passed.
        actual: usize,
    },
    /// The configuration cannot be used.
    #[error("invalid preprocessing configuration: {0}")]
    InvalidConfig(String),
    /// A checkpoint's description of its eval transform (timm `pretrained_cfg`, Hugging Face
    /// `preprocessor_config.json`) has a value of the wrong type, out of range, or one this
    /// service does not reproduce.
    #[error("{origin}: {message}")]
    InvalidSource {
        /// What was read: `timm pretrained_cfg`, `Hugging Face preprocessor_config.json`.
        origin: &'static str,
        /// Which key, what it holds and what was expected.
        message: String,
    },
    /// Preprocessing flags (`--resize-size`, `--crop-pct`, ...) that cannot be applied.
    #[error("preprocessing flags: {0}")]
    InvalidOverride(String),
}
