//! Checkpoints as people hold them, brought into the official layout so that the engines keep one
//! model per Swin version: timm state dicts (both of its layouts) and hub directories
//! ([`timm`]), Hugging Face `transformers` directories and files ([`hugging_face`]), and the
//! directory and file detection that picks the reader ([`local_files`]). The key mappings only
//! rename, concatenate (q/k/v into qkv) and move tensors; the non-persistent buffers the libraries
//! leave out are recomputed by the engines from the configuration.

pub mod declared_config;
pub mod hugging_face;
pub mod key_layout;
pub mod local_files;
pub mod timm;

pub use local_files::load_local;
