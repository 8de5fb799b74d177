//! The lab's plugin ops, as named ops with CPU kernels, all in one place.
//!
//! The MagicMind lab registers two custom ops for SwinV2:
//!
//! | registered name       | short | attributes        | semantics            |
//! |-----------------------|-------|-------------------|----------------------|
//! | `MyPlugin::CnnlRoll`  | roll  | `shifts`, `dims`  | like `torch.roll`    |
//! | `MyPlugin::PluginReLU`| relu  | —                 | like `torch.relu`    |
//!
//! In the CPU engine:
//! * **ReLU** runs at load time, inside the continuous-position-bias MLP
//!   (`cpb_mlp = Linear → ReLU → Linear`), whose output does not depend on the image and is folded into a
//!   per-block bias table (see [`super::modules`]). It therefore costs nothing per request.
//! * **Roll** (the cyclic shift of shifted-window attention) is folded, together with window partition
//!   and window reverse, into a (window, position) → token index map that the fused attention kernel
//!   gathers through ([`super::tables::window_token_index`]). The standalone kernel stays here; tests
//!   check that the index map equals roll → partition → reverse → roll back done with this kernel.
//!
//! [`self_check`] runs both kernels on random data against straightforward references; the server logs
//! the result at startup ("plugin roll: ok") and reports it in `GetModelInfo`.
//!
//! Files: `plugin_op.rs` ([`PluginOp`], [`OpError`]), `roll.rs`, `relu.rs` (one op each, with its
//! reference and self-check), `self_check.rs`, `split_mix.rs` (the self-checks' random data).

mod plugin_op;
mod relu;
mod roll;
mod self_check;
mod split_mix;

pub use plugin_op::{OpError, PluginOp};
pub use relu::{relu_reference, PluginRelu};
pub use roll::{roll_reference, CnnlRoll};
pub use self_check::self_check;
