//! TEMPORARY compile stub (lead); replaced by the preprocess helper's module at merge.
#![allow(missing_docs, clippy::all)]
pub struct PreprocessConfig { pub crop_size: u32, pub resize_size: u32, pub mean: [f32;3], pub std: [f32;3], pub max_image_pixels: u64, pub max_decode_alloc: u64 }
impl PreprocessConfig { pub fn for_image_size(img_size: u32) -> Self { Self { crop_size: img_size, resize_size: (256.0/224.0*img_size as f64) as u32, mean: [0.485,0.456,0.406], std: [0.229,0.224,0.225], max_image_pixels: 89_478_485, max_decode_alloc: 512<<20 } } }
#[derive(Debug, thiserror::Error)] pub enum PreprocessError { #[error("image is empty")] Empty }
pub struct ImageInfo { pub width: u32, pub height: u32, pub format: &'static str }
pub fn preprocess_into(bytes: &[u8], _cfg: &PreprocessConfig, out: &mut [f32]) -> Result<ImageInfo, PreprocessError> { if bytes.is_empty() { return Err(PreprocessError::Empty) } out.fill(0.0); Ok(ImageInfo{width:1,height:1,format:"png"}) }
