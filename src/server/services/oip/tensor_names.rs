//! The names OIP clients use for this model's tensors, parameters and datatypes (ModelMetadata and
//! ModelConfig announce them; [`super::inputs`] and [`super::outputs`] read and write them).

/// Input of encoded image files, decoded and preprocessed as `swin.v1` Classify does.
pub const IMAGE_INPUT: &str = "IMAGE";
/// Input of preprocessed images (NCHW, normalised).
pub const TENSOR_INPUT: &str = "INPUT";
/// Output of raw model outputs.
pub const LOGITS_OUTPUT: &str = "LOGITS";
/// Output of `softmax(LOGITS)`.
pub const PROBABILITIES_OUTPUT: &str = "PROBABILITIES";
/// Output parameter of the classification extension (int64 k: the top k as strings).
pub const CLASSIFICATION_PARAMETER: &str = "classification";

/// OIP datatype names used here.
pub const BYTES: &str = "BYTES";
pub const FP32: &str = "FP32";

/// The text of a tensor shape in error messages: `[2, 3, 256, 256]`.
pub fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(", "))
}
