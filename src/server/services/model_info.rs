//! The edge conversion of what the engines report ([`BackendInfo`]) into `swin.v1.ModelInfo`.

use crate::engine::BackendInfo;
use crate::model::SwinConfig;
use crate::preprocess::PreprocessConfig;
use crate::proto;

fn config_message(c: &SwinConfig) -> proto::ModelConfig {
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

/// The `Preprocessing` message of the transform in force.
pub fn preprocessing_message(preprocess: &PreprocessConfig) -> proto::Preprocessing {
    proto::Preprocessing {
        resize_size: preprocess.resize_size,
        crop_size: preprocess.crop_size,
        interpolation: preprocess.interpolation.as_str().into(),
        mean: preprocess.mean.to_vec(),
        std: preprocess.std.to_vec(),
        layout: "NCHW".into(),
        crop_mode: preprocess.crop_mode.as_str().into(),
        source: preprocess.source.clone(),
        rescale_factor: preprocess.rescale_factor,
        crop_rounding: preprocess.crop_rounding.as_str().into(),
    }
}

/// GetModelInfo's answer for `instances` engines described by `backend`, fed by `preprocess`,
/// with labels from `labels_source` (`--labels FILE`, `checkpoint`, `imagenet-1k`, `generic`).
pub fn model_info(
    backend: &BackendInfo,
    preprocess: &PreprocessConfig,
    labels_source: &str,
    instances: usize,
) -> proto::ModelInfo {
    let description = &backend.description;
    proto::ModelInfo {
        model: backend.model_name.clone(),
        config: backend.config.as_ref().map(config_message),
        input_size: preprocess.crop_size,
        preprocessing: Some(preprocessing_message(preprocess)),
        num_classes: description.num_classes as u32,
        backend: backend.kind.as_str().into(),
        plugin_ops: backend
            .plugin_checks
            .iter()
            .map(|c| proto::PluginOp {
                name: c.op.clone(),
                short_name: c.short_name.clone(),
                ok: c.ok,
                detail: c.detail.clone(),
            })
            .collect(),
        engine_instances: instances as u32,
        threads_per_instance: backend.threads_per_instance.unwrap_or(0) as u32,
        max_batch: description.max_batch as u32,
        weights_source: backend.weights_source.clone(),
        random_weights: backend.random_weights,
        server_version: env!("CARGO_PKG_VERSION").into(),
        max_image_pixels: preprocess.max_image_pixels,
        engine_detail: description.detail.clone(),
        checkpoint_format: backend.checkpoint.format.clone(),
        labels_source: labels_source.into(),
        precision: description.precision.name().into(),
    }
}
