//! Decode + official eval transform (resize shorter side, center crop, normalize) → NCHW f32.
//! OWNER: preprocess helper — to be written.
