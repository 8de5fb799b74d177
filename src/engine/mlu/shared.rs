//! [`Shared`]: what the slots of one model share (runtime, plugin libraries, model, engine),
//! filled in by the setup steps ([`create_engines_with`](super::create_engines_with)) and torn
//! down in the order the MagicMind samples require when the last slot goes.

use std::path::PathBuf;
use std::sync::Arc;

use super::runtime::MluRuntime;

/// Model, engine and plugin libraries shared by the slots of one model. Dropped with the last
/// slot; tears down in the order the MagicMind samples require.
pub(super) struct Shared<R: MluRuntime> {
    pub(super) runtime: Arc<R>,
    pub(super) device_id: i32,
    pub(super) model_path: PathBuf,
    pub(super) plugins: Vec<(PathBuf, R::PluginLibrary)>,
    pub(super) model: Option<R::Model>,
    pub(super) engine: Option<R::Engine>,
}

impl<R: MluRuntime> Drop for Shared<R> {
    fn drop(&mut self) {
        if self.engine.is_some() || self.model.is_some() {
            if let Err(e) = self.runtime.set_device(self.device_id) {
                tracing::warn!(device = self.device_id, error = %e, "cannot select the MLU for teardown");
            }
        }
        if let Some(engine) = self.engine.take() {
            self.runtime.destroy_engine(engine);
        }
        if let Some(model) = self.model.take() {
            self.runtime.destroy_model(model);
            tracing::debug!(model = %self.model_path.display(), "MagicMind model destroyed");
        }
        while let Some((path, library)) = self.plugins.pop() {
            self.runtime.close_plugin_library(library);
            tracing::debug!(library = %path.display(), "MLU plugin library closed");
        }
    }
}
