//! The lab's plugin ops, as named ops with CPU kernels, all in one place.
//!
//! The MagicMind lab registers two custom ops for SwinV2 (see `../shared/seed`):
//!
//! | registered name       | short | attributes        | semantics            |
//! |-----------------------|-------|-------------------|----------------------|
//! | `MyPlugin::CnnlRoll`  | roll  | `shifts`, `dims`  | like `torch.roll`    |
//! | `MyPlugin::PluginReLU`| relu  | —                 | like `torch.relu`    |
//!
//! In the CPU engine:
//! * **ReLU** runs at load time, inside the continuous-position-bias MLP
//!   (`cpb_mlp = Linear → ReLU → Linear`), whose output does not depend on the image and is folded into a
//!   per-block bias table (see [`super::model`]). It therefore costs nothing per request.
//! * **Roll** (the cyclic shift of shifted-window attention) is folded, together with window partition
//!   and window reverse, into a (window, position) → token index map that the fused attention kernel
//!   gathers through ([`super::tables::window_token_index`]). The standalone kernel stays here; tests
//!   check that the index map equals roll → partition → reverse → roll back done with this kernel.
//!
//! [`self_check`] runs both kernels on random data against straightforward references; the server logs
//! the result at startup ("plugin roll: ok") and reports it in `GetModelInfo`.

mod relu;
mod roll;

pub use relu::{relu_reference, PluginRelu};
pub use roll::{roll_reference, CnnlRoll};

use crate::engine::PluginCheck;

/// Why a plugin op refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// Input/output lengths or attributes do not fit the shape.
    #[error("{op}: {message}")]
    Invalid {
        /// Registered op name.
        op: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A named plugin op: the registered name and the short name used in logs.
pub trait PluginOp {
    /// Registered name, e.g. `MyPlugin::CnnlRoll`.
    fn op_name(&self) -> &'static str;
    /// Short name used in logs, e.g. `roll`.
    fn short_name(&self) -> &'static str;
}

/// Small deterministic generator (SplitMix64) for self-check data; not for anything statistical.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub(crate) fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    /// Uniform in [0, n).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Run both plugin kernels on random shapes and data and compare them with straightforward references.
pub fn self_check() -> Vec<PluginCheck> {
    vec![roll::self_check(0x5EED_0001), relu::self_check(0x5EED_0002)]
}
