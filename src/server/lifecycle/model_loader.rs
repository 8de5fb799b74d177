//! Builds a [`ServingModel`] from startup options ([`ModelOptions`]): the engines (chosen and
//! built by [`crate::engine::build`]), their queue, the labels and the eval transform (from the
//! checkpoint's metadata and the flags, [`super::model_metadata`]), and what GetModelInfo says.
//! [`load_serving_model`] is the loader the binary hands to [`crate::server::serve`], which runs it
//! on a blocking thread while health says NOT_SERVING; [`serving_model_from`] does the same for
//! engines built elsewhere (tests).

use std::path::PathBuf;

use super::model_metadata::{log_pipeline, serving_labels, serving_preprocess};
use crate::engine::cpu::CpuOptions;
use crate::engine::{self, BackendOptions, Engines};
use crate::model::WeightsSource;
use crate::preprocess::{PreprocessOverrides, PIL_MAX_IMAGE_PIXELS};
use crate::scheduler::{EnginePool, DEFAULT_QUEUE_CAPACITY};
use crate::server::log_text::untrusted;
use crate::server::services::model_info::model_info;
use crate::server::serving_model::{ModelLoadError, ServingModel};

/// Everything needed to load and serve a model.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The backend and its own options.
    pub backend: BackendOptions,
    /// Images allowed to wait for an instance (`--queue-capacity`).
    pub queue_capacity: usize,
    /// Labels file (`--labels`; default: the checkpoint's names, else the embedded ImageNet-1k
    /// names for 1000 classes, else `class_<id>`).
    pub labels: Option<PathBuf>,
    /// Flags that override parts of the checkpoint's eval transform (`--resize-size`,
    /// `--crop-pct`, `--crop-mode`, `--interpolation`, `--mean`, `--std`).
    pub preprocess: PreprocessOverrides,
    /// Decode limit in pixels (`--max-image-pixels`).
    pub max_image_pixels: u64,
    /// Longest a free instance waits for more images to fill its batch (`--max-queue-delay`).
    pub max_queue_delay: std::time::Duration,
    /// Refuse an image whose estimated wait for an instance is longer (`--max-queue-wait`; `None`:
    /// only the queue capacity bounds the wait).
    pub max_queue_wait: Option<std::time::Duration>,
    /// The name the model is served under (`--model-name`; OIP clients address it by this name).
    /// `None`: the model's own name (e.g. `swinv2_tiny_patch4_window8_256`).
    pub model_name: Option<String>,
}

impl ModelOptions {
    /// The server-side defaults around `backend`.
    pub fn new(backend: BackendOptions) -> Self {
        Self {
            backend,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            labels: None,
            preprocess: PreprocessOverrides::default(),
            max_image_pixels: PIL_MAX_IMAGE_PIXELS,
            model_name: None,
            max_queue_delay: crate::scheduler::DEFAULT_MAX_QUEUE_DELAY,
            max_queue_wait: Some(crate::scheduler::DEFAULT_MAX_QUEUE_WAIT),
        }
    }

    /// Every default, on the CPU backend with the given weights.
    pub fn cpu(weights: WeightsSource) -> Self {
        Self::new(BackendOptions::Cpu(CpuOptions::new(weights)))
    }
}

/// Most characters of a served model name.
pub const MODEL_NAME_MAX_CHARS: usize = 128;

/// Check a `--model-name`: 1 to [`MODEL_NAME_MAX_CHARS`] ASCII letters, digits, `.`, `_` or `-`,
/// not starting with `.` (it travels in URLs of KServe's REST twin and in metric labels).
pub fn check_model_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MODEL_NAME_MAX_CHARS {
        return Err(format!(
            "model name must have 1 to {MODEL_NAME_MAX_CHARS} characters (got {})",
            name.chars().count()
        ));
    }
    if name.starts_with('.') || !name.chars().all(ok_char) {
        return Err(format!(
            "model name {:?} may hold only ASCII letters, digits, '.', '_' and '-', and must not start with '.'",
            untrusted(name)
        ));
    }
    Ok(())
}

/// Build the engines, queue them, and pair them with their labels, eval transform and description.
pub fn load_serving_model(opts: &ModelOptions) -> Result<ServingModel, ModelLoadError> {
    serving_model_from(engine::build(&opts.backend)?, opts)
}

/// Queue `engines` and pair them with their labels, eval transform and description under `opts`
/// (its `backend` is not read: the engines are built).
pub fn serving_model_from(
    engines: Engines,
    opts: &ModelOptions,
) -> Result<ServingModel, ModelLoadError> {
    let description = &engines.info.description;
    let checkpoint = &engines.info.checkpoint;
    if description.channels != crate::preprocess::CHANNELS {
        return Err(format!(
            "the model takes {} input channels; preprocessing produces {} (RGB)",
            description.channels,
            crate::preprocess::CHANNELS
        )
        .into());
    }
    let img_size = u32::try_from(description.input_size).map_err(|_| {
        format!(
            "the model's input size {} is too large",
            description.input_size
        )
    })?;
    let mut preprocess = serving_preprocess(&checkpoint.preprocessing, img_size, &opts.preprocess)?;
    preprocess.max_image_pixels = opts.max_image_pixels;
    let labels = serving_labels(
        opts.labels.as_deref(),
        checkpoint.labels.as_deref(),
        description.num_classes,
    )?;
    log_pipeline(&preprocess, &labels, &checkpoint.format);
    let mut info = model_info(
        &engines.info,
        &preprocess,
        &labels.source,
        engines.instances.len(),
    );
    if let Some(name) = &opts.model_name {
        check_model_name(name)?;
        info.model = name.clone();
    }
    Ok(ServingModel {
        pool: EnginePool::with_queue_delay(
            engines.instances,
            opts.queue_capacity,
            opts.max_queue_delay,
        )
        .with_max_queue_wait(opts.max_queue_wait),
        preprocess,
        labels: labels.labels,
        info,
        stats: Default::default(),
        max_queue_delay: opts.max_queue_delay,
    })
}

#[cfg(test)]
mod tests {
    use super::check_model_name;

    #[test]
    fn model_names() {
        for good in [
            "swinv2_tiny_patch4_window8_256",
            "swin",
            "a.b-c_1",
            &"x".repeat(128),
        ] {
            assert!(check_model_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a b",
            "naïve",
            "x\ny",
            &"x".repeat(129),
        ] {
            assert!(check_model_name(bad).is_err(), "{bad:?}");
        }
    }
}
