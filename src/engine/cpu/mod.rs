//! The native CPU engine: the SwinV2 forward pass on `gemm` + fused kernels, buffers planned at load.
//!
//! * [`SwinV2Model::new`] reads the official state-dict tensors and folds what does not depend on the
//!   image (CPB bias tables, logit scales, shift masks, roll/partition index maps, qkv bias); it is
//!   immutable and shared through `Arc` by all instances.
//! * [`CpuEngine::new`] makes one instance: its own rayon pool of `threads` threads and activation
//!   buffers for `max_batch` images; it implements [`crate::engine::Engine`].
//! * [`ops`] holds the lab's plugin ops (`MyPlugin::CnnlRoll`, `MyPlugin::PluginReLU`) and
//!   [`ops::self_check`].
//!
//! Module map, side by side with the official `models/swin_transformer_v2.py`:
//! [`model`] (module structs and load-time folding), [`tables`] (buffers of the `__init__`s),
//! [`engine`] (`forward` of each module), [`kernels`] (GEMM + epilogues, LayerNorm, GELU, attention).

pub mod engine;
pub mod kernels;
pub mod model;
pub mod ops;
pub mod tables;

pub use engine::{CpuEngine, Profile};
pub use model::SwinV2Model;
