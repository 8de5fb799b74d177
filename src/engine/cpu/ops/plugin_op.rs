//! What every plugin op is: a [`PluginOp`] (registered and short name) whose kernel refuses bad
//! input with an [`OpError`].

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
