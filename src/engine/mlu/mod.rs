//! Cambricon MLU370 backend through MagicMind (cargo feature `mlu`).
//!
//! One serialized MagicMind model (built by `models/generate_magicmind.py`, with the
//! `MyPlugin::CnnlRoll` / `MyPlugin::PluginReLU` plugin ops of `plugins/`) is opened once per
//! process; [`create_engines`] turns it into `instances` engine slots, one [`MluEngine`] each, that
//! the scheduler pool hands requests to:
//!
//! 1. `dlopen` every plugin library (before the model: the model refers to their ops);
//! 2. check the device exists, `cnrtSetDevice`;
//! 3. `CreateIModel` + `DeserializeFromFile`, validate its input (`[B, 3, S, S]` float32, `B`
//!    fixed or mutable) and output;
//! 4. `CreateIEngine` once;
//! 5. run each plugin library's device self-test (`swin_plugin_self_test`) → [`PluginCheck`](crate::engine::PluginCheck)s;
//! 6. per slot: `IContext` + `cnrtQueue` + tensors + device and pinned host buffers for the largest
//!    batch (`InferOutputShape` at that batch gives the number of classes).
//!
//! Each `infer` call of an [`MluEngine`] makes the slot's device current on the calling thread,
//! then runs host → device copy, `InferOutputShape`, `Enqueue`, device → host copy and `cnrtQueueSync`
//! (models with a fixed batch get their batch padded). Teardown runs in the order the samples
//! require: every slot (contexts) first — when its engine is dropped —, then, with the last one,
//! the engine, the model, and finally `dlclose` of the plugin libraries in reverse order.
//!
//! The MagicMind calls sit behind the [`runtime::MluRuntime`] trait: the real implementation is a
//! thin `extern "C"` C++ shim (`mm_shim.h`/`mm_shim.cc`, bindgen bindings) compiled when the crate
//! is built with `--features mlu` and `NEUWARE_HOME` set; tests drive the same setup and slot logic with an
//! in-process fake runtime ([`create_engines_with`]).
//!
//! Files: `entry.rs` ([`create_engines`], [`build`]), `options.rs` ([`MluOptions`]), `setup.rs`
//! (the setup steps above, in order), `shared.rs` (what the slots share, and its teardown),
//! `plugins.rs` (plugin libraries and their self-tests), `geometry.rs` (model input/output
//! validation, batch sizes, padding), `slot.rs` ([`MluEngine`]), `runtime.rs` (the
//! [`runtime::MluRuntime`] seam), `ffi.rs` (the real runtime over the C++ shim), `error.rs`
//! (every error is an `EngineError::Backend` of the MLU).
//!
//! Status: built and tested against stand-in headers and a fake runtime; **not run on an MLU370**.

pub mod runtime;

mod entry;
mod error;
#[cfg(feature = "mlu")]
mod ffi;
mod geometry;
mod options;
mod plugins;
mod setup;
mod shared;
mod slot;

pub use entry::{build, create_engines};
pub use geometry::{DEFAULT_INPUT_SIZE, DEFAULT_MUTABLE_MAX_BATCH};
pub use options::{MluOptions, DEFAULT_DEVICE};
pub use plugins::PLUGIN_OPS;
pub use setup::{create_engines_with, MluEngines};
pub use slot::MluEngine;
