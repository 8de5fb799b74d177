//! The backend's entry points: [`create_engines`] (the real MagicMind runtime, or an error that
//! says what the binary lacks) and [`build`] (called by [`crate::engine::build`]).

use super::error::backend_error;
use super::options::MluOptions;
use super::setup::MluEngines;
use crate::engine::{require_plugin_checks, BackendInfo, BackendKind, EngineError, Engines};

/// Open the model once and create `opts.instances` slots on `opts.device_id`.
///
/// Needs a binary built with `--features mlu` and `NEUWARE_HOME` pointing at a Neuware SDK;
/// otherwise it returns an error that says which of the two is missing.
pub fn create_engines(opts: &MluOptions) -> Result<MluEngines, EngineError> {
    #[cfg(feature = "mlu")]
    {
        sdk::create_engines(opts)
    }
    #[cfg(not(feature = "mlu"))]
    {
        let _ = opts;
        Err(backend_error(
            "this binary was built without --features mlu; rebuild with \
             `NEUWARE_HOME=/usr/local/neuware cargo build --release --features mlu` on a Cambricon host",
        ))
    }
}

/// `cfg(neuware)` (set by build.rs when it linked the shim) only exists with the `mlu` feature.
#[cfg(feature = "mlu")]
mod sdk {
    use crate::engine::mlu::options::MluOptions;
    use crate::engine::mlu::setup::MluEngines;
    use crate::engine::EngineError;

    #[cfg(neuware)]
    pub(super) fn create_engines(opts: &MluOptions) -> Result<MluEngines, EngineError> {
        use crate::engine::mlu::ffi::FfiRuntime;
        use crate::engine::mlu::setup::create_engines_with;
        create_engines_with(std::sync::Arc::new(FfiRuntime::new()), opts)
    }

    #[cfg(not(neuware))]
    pub(super) fn create_engines(opts: &MluOptions) -> Result<MluEngines, EngineError> {
        let _ = opts;
        Err(crate::engine::mlu::error::backend_error(
            "this binary was built with --features mlu but without the Neuware SDK \
             (set NEUWARE_HOME when building): the MagicMind runtime is not linked in",
        ))
    }
}

/// The backend's entry point (called by [`crate::engine::build`]): [`create_engines`], its plugin
/// self-checks required to pass, described like every backend.
pub fn build(opts: &MluOptions) -> Result<Engines, EngineError> {
    let mlu = create_engines(opts)?;
    require_plugin_checks(&mlu.plugin_checks)?;
    let description = mlu
        .engines
        .first()
        .map(|e| e.describe())
        .ok_or_else(|| backend_error("no engine slot was created"))?;
    let model_name = opts
        .model_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "magicmind".into());
    Ok(Engines {
        instances: mlu.engines,
        info: BackendInfo {
            kind: BackendKind::Mlu,
            model_name,
            config: None,
            description,
            threads_per_instance: None,
            plugin_checks: mlu.plugin_checks,
            weights_source: opts.model_path.display().to_string(),
            random_weights: false,
            checkpoint: Default::default(),
        },
    })
}
