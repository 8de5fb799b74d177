//! TEMPORARY compile stub (lead).
#![allow(missing_docs)]
use crate::engine::PluginCheck;
pub fn self_check() -> Vec<PluginCheck> {
    vec![
        PluginCheck {
            op: "MyPlugin::CnnlRoll".into(),
            short_name: "roll".into(),
            ok: true,
            detail: "stub".into(),
        },
        PluginCheck {
            op: "MyPlugin::PluginReLU".into(),
            short_name: "relu".into(),
            ok: true,
            detail: "stub".into(),
        },
    ]
}
