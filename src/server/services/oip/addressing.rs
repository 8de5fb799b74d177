//! Which model an OIP request addresses: its name and version must be the served model's.

use std::sync::Arc;

use tonic::Status;

use super::describe::MODEL_VERSION;
use crate::server::log_text::untrusted;
use crate::server::serving_model::ServingModel;

/// `model` if `name` / `version` address it, else NOT_FOUND.
pub fn addressed(
    model: Arc<ServingModel>,
    name: &str,
    version: &str,
) -> Result<Arc<ServingModel>, Status> {
    if name != model.info.model {
        return Err(Status::not_found(format!(
            "unknown model {:?}: this server serves {:?}",
            untrusted(name),
            model.info.model
        )));
    }
    if !(version.is_empty() || version == MODEL_VERSION) {
        return Err(Status::not_found(format!(
            "model {:?} has no version {:?}: its only version is \"{MODEL_VERSION}\"",
            model.info.model,
            untrusted(version)
        )));
    }
    Ok(model)
}
