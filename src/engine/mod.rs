//! Inference backends behind one trait: a batch of preprocessed images in, logits out.
//!
//! * [`cpu`]: the native SwinV2 forward pass (default, embedded).
//! * [`mlu`]: Cambricon MLU370 through MagicMind (cargo feature `mlu`).
//!
//! Backend selection lives in one place: [`build`] turns [`BackendOptions`] into [`Engines`], the
//! same shape for every backend (the instances, plus a plain [`BackendInfo`] that the server
//! converts into its GetModelInfo message), after the plugin self-checks and a warm-up.
//!
//! Files: `instance.rs` (the [`Engine`] trait and [`EngineDescription`]), `backend_kind.rs`
//! ([`BackendKind`]), `selection.rs` ([`BackendOptions`], [`build`], the warm-up), `engines.rs`
//! (what a build yields), `plugin_check.rs` ([`PluginCheck`]), `precision.rs` ([`Precision`]), `error.rs` ([`EngineError`]), and,
//! for tests only, `fake.rs` (`fake::FakeEngine`, a test double: unit tests and feature
//! `test-util`).

pub mod cpu;
pub mod mlu;

mod backend_kind;
mod engines;
mod error;
mod instance;
mod plugin_check;
mod precision;
mod selection;

#[cfg(any(test, feature = "test-util"))]
pub mod fake;

pub use backend_kind::BackendKind;
pub use engines::{BackendInfo, Engines, DEFAULT_INSTANCES, DEFAULT_MAX_BATCH};
pub use error::EngineError;
pub use instance::{Engine, EngineDescription};
pub use plugin_check::{require_plugin_checks, PluginCheck};
pub use precision::Precision;
pub use selection::{build, BackendOptions};
