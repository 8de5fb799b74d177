//! Builds a [`ServingModel`] from startup options: weights (file, download cache or random),
//! configuration, engine instances (CPU or MLU), plugin self-check, warm-up, and what GetModelInfo says.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::{LoadError, ServingModel};
use crate::engine::cpu::{CpuEngine, SwinV2Model};
use crate::engine::{Engine, PluginCheck};
use crate::model::{download, SwinV2Config, Weights};
use crate::postprocess::Labels;
use crate::preprocess::PreprocessConfig;
use crate::proto;
use crate::scheduler::EnginePool;

/// Which backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The native CPU engine (default).
    Cpu,
    /// Cambricon MLU370 through MagicMind (needs a build with `--features mlu`).
    Mlu,
}

/// Where the weights come from (CPU backend).
#[derive(Debug, Clone)]
pub enum WeightsSource {
    /// A local `.pth` or `.safetensors` file.
    File(PathBuf),
    /// The released checkpoint at `url`, cached in `cache_dir`.
    Download {
        /// Checkpoint URL.
        url: String,
        /// Cache directory.
        cache_dir: PathBuf,
    },
    /// Deterministic random weights of the given config (smoke tests, benchmarks).
    Random {
        /// Seed.
        seed: u64,
        /// Architecture.
        config: SwinV2Config,
    },
}

/// Everything needed to load and serve a model.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Backend.
    pub backend: Backend,
    /// CPU: where the weights come from. MLU: ignored (see `mlu_model`).
    pub weights: WeightsSource,
    /// Image size when it cannot be inferred from the checkpoint.
    pub img_size: Option<usize>,
    /// Window size when it cannot be inferred from the checkpoint.
    pub window_size: Option<usize>,
    /// Engine instances in the pool.
    pub instances: usize,
    /// Threads per CPU instance.
    pub threads: usize,
    /// Largest batch an instance runs at once.
    pub max_batch: usize,
    /// Images allowed to wait for an instance.
    pub queue_capacity: usize,
    /// Labels file (default: the embedded ImageNet-1k names).
    pub labels: Option<PathBuf>,
    /// Decode limit in pixels.
    pub max_image_pixels: u64,
    /// MLU: serialized MagicMind model.
    pub mlu_model: Option<PathBuf>,
    /// MLU: plugin libraries to load before deserializing.
    pub plugin_libs: Vec<PathBuf>,
    /// MLU: device id.
    pub device_id: i32,
}

impl ModelOptions {
    /// Defaults for a CPU server with the given weights.
    pub fn cpu(weights: WeightsSource) -> Self {
        Self {
            backend: Backend::Cpu,
            weights,
            img_size: None,
            window_size: None,
            instances: 1,
            threads: 2,
            max_batch: 8,
            queue_capacity: 256,
            labels: None,
            max_image_pixels: PreprocessConfig::for_image_size(256).max_image_pixels,
            mlu_model: None,
            plugin_libs: Vec::new(),
            device_id: 0,
        }
    }
}

fn err(message: impl Into<String>) -> LoadError {
    message.into().into()
}

/// Labels for a model with `num_classes` outputs.
fn labels_for(opts: &ModelOptions, num_classes: usize) -> Result<Labels, LoadError> {
    match &opts.labels {
        Some(path) => {
            let labels = Labels::from_file(path)?;
            if labels.len() != num_classes {
                return Err(err(format!(
                    "labels file {} has {} names but the model has {num_classes} classes",
                    path.display(),
                    labels.len()
                )));
            }
            Ok(labels)
        }
        None => {
            let imagenet = Labels::imagenet();
            if imagenet.len() == num_classes {
                Ok(imagenet)
            } else {
                tracing::warn!(
                    num_classes,
                    "model is not ImageNet-1k and no --labels file was given: labels are class_<id>"
                );
                Ok(Labels::generic(num_classes))
            }
        }
    }
}

fn log_plugin_checks(checks: &[PluginCheck]) -> Result<(), LoadError> {
    for c in checks {
        if c.ok {
            tracing::info!(op = %c.op, detail = %c.detail, "plugin {}: ok", c.short_name);
        } else {
            tracing::error!(op = %c.op, detail = %c.detail, "plugin {}: FAILED", c.short_name);
        }
    }
    if let Some(bad) = checks.iter().find(|c| !c.ok) {
        return Err(err(format!(
            "plugin op {} failed its self-check: {}",
            bad.op, bad.detail
        )));
    }
    Ok(())
}

fn config_message(c: &SwinV2Config) -> proto::ModelConfig {
    let u = |v: &[usize]| v.iter().map(|&x| x as u32).collect();
    proto::ModelConfig {
        img_size: c.img_size as u32,
        patch_size: c.patch_size as u32,
        in_chans: c.in_chans as u32,
        embed_dim: c.embed_dim as u32,
        depths: u(&c.depths),
        num_heads: u(&c.num_heads),
        window_size: c.window_size as u32,
        mlp_ratio: c.mlp_ratio as f32,
        qkv_bias: c.qkv_bias,
        ape: c.ape,
        patch_norm: c.patch_norm,
        pretrained_window_sizes: u(&c.pretrained_window_sizes),
    }
}

/// Run one zero batch through every instance so first requests do not pay for page faults.
fn warm_up(engines: &mut [Box<dyn Engine>]) -> Result<(), LoadError> {
    for (i, engine) in engines.iter_mut().enumerate() {
        let d = engine.describe();
        let input = vec![0f32; 3 * d.input_size * d.input_size];
        let mut logits = vec![0f32; d.num_classes];
        let started = Instant::now();
        engine.infer(&input, 1, &mut logits)?;
        if logits.iter().any(|v| !v.is_finite()) {
            return Err(err(format!(
                "warm-up of instance {i} produced non-finite logits: the weights are broken"
            )));
        }
        tracing::info!(
            instance = i,
            ms = started.elapsed().as_secs_f32() * 1e3,
            "warm-up done"
        );
    }
    Ok(())
}

/// Load weights, build the engines, self-check the plugin ops, warm up, and describe the result.
pub fn load_model(opts: &ModelOptions) -> Result<ServingModel, LoadError> {
    if opts.instances == 0 || opts.max_batch == 0 {
        return Err(err("--instances and --max-batch must be at least 1"));
    }
    match opts.backend {
        Backend::Cpu => load_cpu(opts),
        Backend::Mlu => load_mlu(opts),
    }
}

fn load_cpu(opts: &ModelOptions) -> Result<ServingModel, LoadError> {
    if opts.threads == 0 {
        return Err(err("--threads must be at least 1"));
    }
    let started = Instant::now();
    let random_weights = matches!(opts.weights, WeightsSource::Random { .. });
    let weights = match &opts.weights {
        WeightsSource::File(path) => Weights::load(path)?,
        WeightsSource::Download { url, cache_dir } => {
            Weights::load(&download::fetch(url, cache_dir)?)?
        }
        WeightsSource::Random { seed, config } => {
            tracing::warn!(
                seed,
                "serving RANDOM weights (--random-weights): predictions are meaningless"
            );
            Weights::random(config, *seed)
        }
    };
    let config = match &opts.weights {
        WeightsSource::Random { config, .. } => config.clone(),
        _ => weights.infer_config(&crate::model::ConfigHints {
            img_size: opts.img_size,
            window_size: opts.window_size,
            ..Default::default()
        })?,
    };
    config.validate()?;
    tracing::info!(
        model = %config.name(),
        source = %weights.source,
        seconds = started.elapsed().as_secs_f32(),
        "weights read"
    );

    let checks = crate::engine::cpu::ops::self_check();
    log_plugin_checks(&checks)?;

    let model = Arc::new(SwinV2Model::new(&weights, &config)?);
    drop(weights);
    let mut engines = (0..opts.instances)
        .map(|_| {
            CpuEngine::new(Arc::clone(&model), opts.threads, opts.max_batch)
                .map(|e| Box::new(e) as Box<dyn Engine>)
        })
        .collect::<Result<Vec<_>, _>>()?;
    warm_up(&mut engines)?;

    let labels = labels_for(opts, config.num_classes)?;
    let mut preprocess = PreprocessConfig::for_image_size(config.img_size as u32);
    preprocess.max_image_pixels = opts.max_image_pixels;
    let detail = engines[0].describe().detail;
    let info = model_info(
        &config.name(),
        Some(&config),
        &preprocess,
        "cpu",
        &checks,
        opts,
        &detail,
        &source_of(&opts.weights),
        random_weights,
        config.num_classes,
    );
    Ok(ServingModel {
        pool: EnginePool::new(engines, opts.queue_capacity),
        preprocess,
        labels,
        info,
    })
}

fn source_of(w: &WeightsSource) -> String {
    match w {
        WeightsSource::File(p) => p.display().to_string(),
        WeightsSource::Download { url, cache_dir } => {
            format!("{url} (cached in {})", cache_dir.display())
        }
        WeightsSource::Random { seed, .. } => format!("random(seed={seed})"),
    }
}

fn load_mlu(opts: &ModelOptions) -> Result<ServingModel, LoadError> {
    let model_path = opts
        .mlu_model
        .clone()
        .ok_or_else(|| err("--backend mlu needs --model FILE.magicmind"))?;
    let mlu = crate::engine::mlu::create_engines(&crate::engine::mlu::MluOptions {
        model_path: model_path.clone(),
        plugin_libs: opts.plugin_libs.clone(),
        device_id: opts.device_id,
        instances: opts.instances,
        max_batch: opts.max_batch,
    })?;
    log_plugin_checks(&mlu.plugin_checks)?;
    let mut engines = mlu.engines;
    warm_up(&mut engines)?;
    let labels = labels_for(opts, mlu.num_classes)?;
    let mut preprocess = PreprocessConfig::for_image_size(mlu.input_size as u32);
    preprocess.max_image_pixels = opts.max_image_pixels;
    let name = model_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "magicmind".into());
    let detail = engines[0].describe().detail;
    let info = model_info(
        &name,
        None,
        &preprocess,
        "mlu",
        &mlu.plugin_checks,
        opts,
        &detail,
        &model_path.display().to_string(),
        false,
        mlu.num_classes,
    );
    Ok(ServingModel {
        pool: EnginePool::new(engines, opts.queue_capacity),
        preprocess,
        labels,
        info,
    })
}

#[allow(clippy::too_many_arguments)]
fn model_info(
    name: &str,
    config: Option<&SwinV2Config>,
    preprocess: &PreprocessConfig,
    backend: &str,
    checks: &[PluginCheck],
    opts: &ModelOptions,
    engine_detail: &str,
    weights_source: &str,
    random_weights: bool,
    num_classes: usize,
) -> proto::ModelInfo {
    proto::ModelInfo {
        model: name.to_string(),
        config: config.map(config_message),
        input_size: preprocess.crop_size,
        preprocessing: Some(proto::Preprocessing {
            resize_size: preprocess.resize_size,
            crop_size: preprocess.crop_size,
            interpolation: "bicubic".into(),
            mean: preprocess.mean.to_vec(),
            std: preprocess.std.to_vec(),
            layout: "NCHW".into(),
        }),
        num_classes: num_classes as u32,
        backend: backend.into(),
        plugin_ops: checks
            .iter()
            .map(|c| proto::PluginOp {
                name: c.op.clone(),
                short_name: c.short_name.clone(),
                ok: c.ok,
                detail: c.detail.clone(),
            })
            .collect(),
        engine_instances: opts.instances as u32,
        threads_per_instance: if backend == "cpu" {
            opts.threads as u32
        } else {
            0
        },
        max_batch: opts.max_batch as u32,
        weights_source: weights_source.into(),
        random_weights,
        server_version: env!("CARGO_PKG_VERSION").into(),
        max_image_pixels: preprocess.max_image_pixels,
        engine_detail: engine_detail.into(),
    }
}
