//! The native CPU engine: SwinV2 forward pass on `gemm` + fused kernels, buffers planned at load.
//! OWNER: cpu-engine helper — to be written.
//!
//! Public API fixed for the rest of the crate:
//! * `SwinV2Model::new(&Weights, &SwinV2Config) -> Result<SwinV2Model, ModelError>` (folds CPB tables,
//!   masks, qkv bias at load; shareable through `Arc` between instances);
//! * `CpuEngine::new(Arc<SwinV2Model>, threads: usize, max_batch: usize) -> CpuEngine`, implementing
//!   [`crate::engine::Engine`];
//! * `ops::self_check() -> Vec<crate::engine::PluginCheck>` for `MyPlugin::CnnlRoll` and `MyPlugin::PluginReLU`.

pub mod ops;
