//! [`self_check`]: the plugin ops' startup self-check.

use super::{relu, roll};
use crate::engine::PluginCheck;

/// Run both plugin kernels on random shapes and data and compare them with straightforward references.
pub fn self_check() -> Vec<PluginCheck> {
    vec![roll::self_check(0x5EED_0001), relu::self_check(0x5EED_0002)]
}
