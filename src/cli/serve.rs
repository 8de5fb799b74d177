//! `swin-serve serve`: the flags ([`ServeArgs`]) become [`ServeSettings`] — the server's
//! [`ServerConfig`], the model's [`ModelOptions`] and the address — and the server runs.

use std::net::SocketAddr;

use anyhow::Context as _;

use super::serve_args::ServeArgs;
use crate::engine::cpu::{default_threads, CpuOptions};
use crate::engine::mlu::MluOptions;
use crate::engine::{BackendKind, BackendOptions, Precision};
use crate::model::source::{model_file_in, ModelPathError};
use crate::model::{download, ConfigHints, SwinConfig, WeightsSource};
use crate::preprocess::PreprocessOverrides;
use crate::server::TlsFiles;
use crate::server::{self, ServerConfig};
use crate::server::{check_model_name, load_serving_model, ModelOptions};

/// What `serve`'s flags say.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// `--listen`.
    pub listen: SocketAddr,
    /// Everything that does not depend on the model.
    pub server: ServerConfig,
    /// The model, its backend and its queue.
    pub model: ModelOptions,
}

/// Flags that do not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ServeArgsError {
    #[error("--model-name: {0}")]
    ModelName(String),
    #[error("--backend mlu needs --model FILE.magicmind (generate it with models/generate_magicmind.py)")]
    MluNeedsModel,
    #[error("--precision {0} is for the CPU engine: a MagicMind model has the precision it was built with (FP32)")]
    MluPrecision(Precision),
    /// `--model` names a directory without exactly one model file, or cannot be read.
    #[error(transparent)]
    ModelPath(#[from] ModelPathError),
}

impl TryFrom<ServeArgs> for ServeSettings {
    type Error = ServeArgsError;

    fn try_from(args: ServeArgs) -> Result<Self, ServeArgsError> {
        let model = model_options(&args)?;
        let server = ServerConfig {
            max_message_bytes: args.max_message_bytes,
            max_batch_images: args.max_batch_images,
            max_concurrent_decodes: args
                .max_concurrent_decodes
                .unwrap_or_else(server::default_max_concurrent_decodes),
            drain_delay: args.drain_delay.duration(),
            shutdown_timeout: args.shutdown_timeout.duration(),
            max_concurrent_streams: args.max_concurrent_streams,
            max_connection_age: args.max_connection_age.limit(),
            metrics_listen: args.metrics_listen,
            auth_token_file: args.auth_token_file,
            request_timeout: args.request_timeout.limit(),
            tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| TlsFiles {
                cert,
                key,
                client_ca: args.tls_client_ca,
            }),
            health_listen: args.health_listen,
            http_listen: args.http_listen,
            reflection: !args.no_reflection,
            max_in_flight: args.max_in_flight,
            max_refusal_rate: (args.max_refusal_rate > 0).then_some(args.max_refusal_rate),
            memory_budget: args.memory_budget,
            message_timeout: args.message_timeout.limit(),
            idle_timeout: args.idle_timeout.limit(),
            engine_hang_timeout: args.engine_hang_timeout.limit(),
        };
        Ok(Self {
            listen: args.listen,
            server,
            model,
        })
    }
}

fn model_options(args: &ServeArgs) -> Result<ModelOptions, ServeArgsError> {
    if let Some(name) = &args.model_name {
        check_model_name(name).map_err(ServeArgsError::ModelName)?;
    }
    let backend = match args.backend {
        BackendKind::Cpu => BackendOptions::Cpu(CpuOptions {
            weights: weights_source(args)?,
            hints: ConfigHints {
                img_size: args.img_size,
                window_size: args.window_size,
                yacs_config: args.config.clone(),
                ..Default::default()
            },
            instances: args.instances,
            threads: args
                .threads
                .unwrap_or_else(|| (default_threads() / args.instances.max(1)).max(1)),
            max_batch: args.max_batch,
            precision: args.precision,
        }),
        BackendKind::Mlu => {
            if args.precision != Precision::Fp32 {
                return Err(ServeArgsError::MluPrecision(args.precision));
            }
            let model_path = args.model.as_ref().ok_or(ServeArgsError::MluNeedsModel)?;
            BackendOptions::Mlu(MluOptions {
                model_path: model_file_in(model_path, &["magicmind"])?,
                plugin_libs: args.plugin_libs.clone(),
                device_id: args.device,
                instances: args.instances,
                max_batch: args.max_batch,
            })
        }
    };
    Ok(ModelOptions {
        backend,
        queue_capacity: args.queue_capacity,
        labels: args.labels.clone(),
        preprocess: PreprocessOverrides {
            resize_size: args.resize_size,
            crop_pct: args.crop_pct,
            crop_mode: args.crop_mode,
            interpolation: args.interpolation,
            mean: args.mean,
            std: args.std,
        },
        max_image_pixels: args.max_image_pixels,
        model_name: args.model_name.clone(),
        max_queue_delay: args.max_queue_delay.duration(),
        max_queue_wait: args.max_queue_wait.limit(),
    })
}

/// CPU: `--random-weights`, else `--model`, else the download of `--model-url`.
fn weights_source(args: &ServeArgs) -> Result<WeightsSource, ServeArgsError> {
    if let Some(seed) = args.random_weights {
        let mut config = SwinConfig::tiny_window8_256();
        if let Some(s) = args.img_size {
            config.img_size = s;
        }
        if let Some(w) = args.window_size {
            config.window_size = w;
        }
        Ok(WeightsSource::Random { seed, config })
    } else if let Some(path) = &args.model {
        Ok(WeightsSource::from_model_arg(path)?)
    } else {
        Ok(WeightsSource::Download {
            url: args.model_url.clone(),
            cache_dir: args
                .cache_dir
                .clone()
                .unwrap_or_else(download::default_cache_dir),
            sha256: args.model_sha256,
        })
    }
}

/// `serve`: bind, load the model in the background, serve until SIGTERM / Ctrl-C.
pub async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = ServeSettings::try_from(args)?;
    let listener = server::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let model = settings.model;
    server::serve(
        listener,
        settings.server,
        move || load_serving_model(&model),
        server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
