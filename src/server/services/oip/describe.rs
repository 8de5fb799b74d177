//! What OIP and Triton clients are told about the served model: metadata, configuration,
//! statistics, repository index.

use std::sync::atomic::Ordering;

use super::tensor_names::{
    BYTES, FP32, IMAGE_INPUT, LOGITS_OUTPUT, PROBABILITIES_OUTPUT, TENSOR_INPUT,
};
use crate::proto::inference as pb;
use crate::server::config::ServerConfig;
use crate::server::serving_model::ServingModel;
use crate::server::statistics::DurationTotal;

/// The one version a model has.
pub const MODEL_VERSION: &str = "1";

/// Name of this server (ServerMetadata).
pub const SERVER_NAME: &str = "swin-serve";

/// Protocol extensions served (ServerMetadata).
pub const EXTENSIONS: [&str; 3] = ["classification", "model_configuration", "statistics"];

/// Backend name in the model configuration.
pub const BACKEND_NAME: &str = "swin-serve";

/// Platform string: what runs the model (`swin-serve_cpu`, `swin-serve_mlu`).
pub fn platform(model: &ServingModel) -> String {
    format!("{SERVER_NAME}_{}", model.info.backend)
}

fn input_size(model: &ServingModel) -> i64 {
    i64::from(model.preprocess.crop_size)
}

/// ModelMetadata's answer.
pub fn metadata(model: &ServingModel) -> pb::ModelMetadataResponse {
    use pb::model_metadata_response::TensorMetadata;
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>| TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape,
    };
    let s = input_size(model);
    let c = i64::from(model.info.num_classes);
    pb::ModelMetadataResponse {
        name: model.info.model.clone(),
        versions: vec![MODEL_VERSION.into()],
        platform: platform(model),
        inputs: vec![
            tensor(IMAGE_INPUT, BYTES, vec![-1]),
            tensor(
                TENSOR_INPUT,
                FP32,
                vec![-1, crate::preprocess::CHANNELS as i64, s, s],
            ),
        ],
        outputs: vec![
            tensor(LOGITS_OUTPUT, FP32, vec![-1, c]),
            tensor(PROBABILITIES_OUTPUT, FP32, vec![-1, c]),
        ],
    }
}

/// ModelConfig's answer, in Triton's terms: the batch dimension is implicit (`max_batch_size`).
pub fn config(model: &ServingModel, server: &ServerConfig) -> pb::ModelConfig {
    use pb::model_input::Format;
    use pb::model_instance_group::Kind;
    let s = input_size(model);
    let c = i64::from(model.info.num_classes);
    let info = &model.info;
    let output = |name: &str| pb::ModelOutput {
        name: name.into(),
        data_type: pb::DataType::TypeFp32 as i32,
        dims: vec![c],
        reshape: None,
        label_filename: String::new(),
    };
    let preprocessing = info.preprocessing.clone().unwrap_or_default();
    let floats = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    let parameters = [
        ("backend", info.backend.clone()),
        ("weights_source", info.weights_source.clone()),
        ("random_weights", info.random_weights.to_string()),
        ("resize_size", preprocessing.resize_size.to_string()),
        ("crop_size", preprocessing.crop_size.to_string()),
        ("interpolation", preprocessing.interpolation.clone()),
        ("crop_mode", preprocessing.crop_mode.clone()),
        ("crop_rounding", preprocessing.crop_rounding.clone()),
        ("rescale_factor", preprocessing.rescale_factor.to_string()),
        ("mean", floats(&preprocessing.mean)),
        ("std", floats(&preprocessing.std)),
        ("preprocessing_source", preprocessing.source.clone()),
        ("checkpoint_format", info.checkpoint_format.clone()),
        ("labels_source", info.labels_source.clone()),
        ("max_image_pixels", info.max_image_pixels.to_string()),
        ("engine_detail", info.engine_detail.clone()),
        ("precision", info.precision.clone()),
        ("server_version", info.server_version.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), pb::ModelParameter { string_value: v }))
    .collect();
    pb::ModelConfig {
        name: info.model.clone(),
        platform: platform(model),
        backend: BACKEND_NAME.into(),
        max_batch_size: i32::try_from(server.max_batch_images).unwrap_or(i32::MAX),
        input: vec![
            pb::ModelInput {
                name: IMAGE_INPUT.into(),
                data_type: pb::DataType::TypeString as i32,
                format: Format::None as i32,
                // One encoded file per batch entry: Triton's idiom for a batch of scalars.
                dims: vec![1],
                reshape: Some(pb::ModelTensorReshape { shape: vec![] }),
                optional: true,
            },
            pb::ModelInput {
                name: TENSOR_INPUT.into(),
                data_type: pb::DataType::TypeFp32 as i32,
                format: Format::Nchw as i32,
                dims: vec![crate::preprocess::CHANNELS as i64, s, s],
                reshape: None,
                optional: true,
            },
        ],
        output: vec![output(LOGITS_OUTPUT), output(PROBABILITIES_OUTPUT)],
        scheduling_choice: Some(pb::model_config::SchedulingChoice::DynamicBatching(
            pb::ModelDynamicBatching {
                preferred_batch_size: vec![i32::try_from(info.max_batch).unwrap_or(i32::MAX)],
                max_queue_delay_microseconds: u64::try_from(model.max_queue_delay.as_micros())
                    .unwrap_or(u64::MAX),
            },
        )),
        instance_group: vec![pb::ModelInstanceGroup {
            name: format!("{}_{}", info.model, info.backend),
            kind: if info.backend == "cpu" {
                Kind::Cpu as i32
            } else {
                Kind::Model as i32
            },
            count: i32::try_from(info.engine_instances).unwrap_or(i32::MAX),
        }],
        parameters,
    }
}

fn duration(total: &DurationTotal) -> Option<pb::StatisticDuration> {
    let (count, ns) = total.get();
    Some(pb::StatisticDuration { count, ns })
}

/// ModelStatistics' entry for the model.
pub fn statistics(model: &ServingModel) -> pb::ModelStatistics {
    let stats = &model.stats;
    pb::ModelStatistics {
        name: model.info.model.clone(),
        version: MODEL_VERSION.into(),
        last_inference: stats.last_inference_ms.load(Ordering::Relaxed),
        inference_count: stats.images.load(Ordering::Relaxed),
        execution_count: model.pool.stats().batches_run.load(Ordering::Relaxed),
        inference_stats: Some(pb::InferStatistics {
            success: duration(&stats.success),
            fail: duration(&stats.fail),
            queue: duration(&stats.queue),
            compute_input: duration(&stats.compute_input),
            compute_infer: duration(&stats.compute_infer),
            compute_output: duration(&stats.compute_output),
            cache_hit: Some(Default::default()),
            cache_miss: Some(Default::default()),
        }),
        batch_stats: vec![],
        memory_usage: vec![],
    }
}
