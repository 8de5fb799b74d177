//! [`PluginCheck`]: the load-time self-check of one plugin op, and [`require_plugin_checks`].

use super::error::EngineError;

/// The result of one plugin op's self-check (run at load time, reported in logs and GetModelInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCheck {
    /// Registered op name, e.g. `MyPlugin::CnnlRoll`.
    pub op: String,
    /// Short name used in logs: `roll`, `relu`.
    pub short_name: String,
    /// Whether the check passed.
    pub ok: bool,
    /// What was checked, or why it failed.
    pub detail: String,
}

/// Log every plugin self-check; the first failure is an error.
pub fn require_plugin_checks(checks: &[PluginCheck]) -> Result<(), EngineError> {
    for c in checks {
        if c.ok {
            tracing::info!(op = %c.op, detail = %c.detail, "plugin {}: ok", c.short_name);
        } else {
            tracing::error!(op = %c.op, detail = %c.detail, "plugin {}: FAILED", c.short_name);
        }
    }
    match checks.iter().find(|c| !c.ok) {
        Some(bad) => Err(EngineError::PluginCheck {
            op: bad.op.clone(),
            detail: bad.detail.clone(),
        }),
        None => Ok(()),
    }
}
