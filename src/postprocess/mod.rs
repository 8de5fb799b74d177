//! postprocess (to be written)
