//! `swin-serve info`: what GetModelInfo says, as `key: value` lines or (`--json`) one JSON
//! object. The keys are the fields of `swin.v1.ModelInfo` under their `.proto` names
//! (snake_case), nested ones written `config.img_size` in the text and nested objects in JSON.

use serde_json::{json, Value};

use super::args::InfoArgs;
use super::output::{print_stdout, printable, rpc_failed};
use crate::client::connection::{connect_classifier, ConnectionOptions};
use crate::proto;

/// An `f32` as the JSON number its shortest decimal is (0.485, not 0.48500001430511475).
fn json_f32(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .map_or(Value::Null, Value::from)
}

/// `info` as one JSON object (`jq .config.img_size`).
pub fn info_json(info: &proto::ModelInfo) -> Value {
    let floats = |values: &[f32]| values.iter().copied().map(json_f32).collect::<Vec<_>>();
    let config = info.config.clone().unwrap_or_default();
    let pre = info.preprocessing.clone().unwrap_or_default();
    json!({
        "model": info.model,
        "server_version": info.server_version,
        "backend": info.backend,
        "engine_detail": info.engine_detail,
        "precision": info.precision,
        "weights_source": info.weights_source,
        "random_weights": info.random_weights,
        "input_size": info.input_size,
        "num_classes": info.num_classes,
        "engine_instances": info.engine_instances,
        "threads_per_instance": info.threads_per_instance,
        "max_batch": info.max_batch,
        "max_image_pixels": info.max_image_pixels,
        "checkpoint_format": info.checkpoint_format,
        "labels_source": info.labels_source,
        "config": {
            "img_size": config.img_size,
            "patch_size": config.patch_size,
            "in_chans": config.in_chans,
            "embed_dim": config.embed_dim,
            "depths": config.depths,
            "num_heads": config.num_heads,
            "window_size": config.window_size,
            "mlp_ratio": json_f32(config.mlp_ratio),
            "qkv_bias": config.qkv_bias,
            "ape": config.ape,
            "patch_norm": config.patch_norm,
            "pretrained_window_sizes": config.pretrained_window_sizes,
        },
        "preprocessing": {
            "resize_size": pre.resize_size,
            "crop_size": pre.crop_size,
            "interpolation": pre.interpolation,
            "mean": floats(&pre.mean),
            "std": floats(&pre.std),
            "layout": pre.layout,
            "crop_mode": pre.crop_mode,
            "crop_rounding": pre.crop_rounding,
            "rescale_factor": pre.rescale_factor,
            "source": pre.source,
        },
        "plugin_ops": info.plugin_ops.iter().map(|op| json!({
            "name": op.name,
            "short_name": op.short_name,
            "ok": op.ok,
            "detail": op.detail,
        })).collect::<Vec<_>>(),
    })
}

/// `info` as `key: value` lines, in the order a reader wants them: the model, where it runs,
/// its limits, then its configuration and preprocessing (strings escaped for the terminal).
pub fn info_text(info: &proto::ModelInfo) -> String {
    let list = |values: &[u32]| {
        let items: Vec<String> = values.iter().map(u32::to_string).collect();
        format!("[{}]", items.join(", "))
    };
    let floats = |values: &[f32]| {
        let items: Vec<String> = values.iter().map(f32::to_string).collect();
        format!("[{}]", items.join(", "))
    };
    let config = info.config.clone().unwrap_or_default();
    let pre = info.preprocessing.clone().unwrap_or_default();
    let mut lines: Vec<(String, String)> = vec![
        ("model".into(), printable(&info.model)),
        ("server_version".into(), printable(&info.server_version)),
        ("backend".into(), printable(&info.backend)),
        ("engine_detail".into(), printable(&info.engine_detail)),
        ("precision".into(), printable(&info.precision)),
        ("weights_source".into(), printable(&info.weights_source)),
        ("random_weights".into(), info.random_weights.to_string()),
        ("input_size".into(), info.input_size.to_string()),
        ("num_classes".into(), info.num_classes.to_string()),
        ("engine_instances".into(), info.engine_instances.to_string()),
        (
            "threads_per_instance".into(),
            info.threads_per_instance.to_string(),
        ),
        ("max_batch".into(), info.max_batch.to_string()),
        ("max_image_pixels".into(), info.max_image_pixels.to_string()),
        (
            "checkpoint_format".into(),
            printable(&info.checkpoint_format),
        ),
        ("labels_source".into(), printable(&info.labels_source)),
        ("config.img_size".into(), config.img_size.to_string()),
        ("config.patch_size".into(), config.patch_size.to_string()),
        ("config.in_chans".into(), config.in_chans.to_string()),
        ("config.embed_dim".into(), config.embed_dim.to_string()),
        ("config.depths".into(), list(&config.depths)),
        ("config.num_heads".into(), list(&config.num_heads)),
        ("config.window_size".into(), config.window_size.to_string()),
        ("config.mlp_ratio".into(), config.mlp_ratio.to_string()),
        ("config.qkv_bias".into(), config.qkv_bias.to_string()),
        ("config.ape".into(), config.ape.to_string()),
        ("config.patch_norm".into(), config.patch_norm.to_string()),
        (
            "config.pretrained_window_sizes".into(),
            list(&config.pretrained_window_sizes),
        ),
        (
            "preprocessing.resize_size".into(),
            pre.resize_size.to_string(),
        ),
        ("preprocessing.crop_size".into(), pre.crop_size.to_string()),
        (
            "preprocessing.interpolation".into(),
            printable(&pre.interpolation),
        ),
        ("preprocessing.mean".into(), floats(&pre.mean)),
        ("preprocessing.std".into(), floats(&pre.std)),
        ("preprocessing.layout".into(), printable(&pre.layout)),
        ("preprocessing.crop_mode".into(), printable(&pre.crop_mode)),
        (
            "preprocessing.crop_rounding".into(),
            printable(&pre.crop_rounding),
        ),
        (
            "preprocessing.rescale_factor".into(),
            pre.rescale_factor.to_string(),
        ),
        ("preprocessing.source".into(), printable(&pre.source)),
    ];
    for (i, op) in info.plugin_ops.iter().enumerate() {
        let key = |field: &str| format!("plugin_ops[{i}].{field}");
        lines.push((key("name"), printable(&op.name)));
        lines.push((key("short_name"), printable(&op.short_name)));
        lines.push((key("ok"), op.ok.to_string()));
        lines.push((key("detail"), printable(&op.detail)));
    }
    lines
        .iter()
        .map(|(key, value)| format!("{key}: {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `info`: ask GetModelInfo and print it.
pub async fn run_info(args: InfoArgs) -> anyhow::Result<()> {
    let mut client = connect_classifier(&ConnectionOptions::from(&args.connection)).await?;
    let info = client
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .map_err(|s| rpc_failed("GetModelInfo", &s))?
        .into_inner();
    if args.json {
        print_stdout(&info_json(&info).to_string());
    } else {
        print_stdout(&info_text(&info));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> proto::ModelInfo {
        proto::ModelInfo {
            model: "swinv2_tiny_patch4_window8_256".into(),
            config: Some(proto::ModelConfig {
                img_size: 256,
                patch_size: 4,
                in_chans: 3,
                embed_dim: 96,
                depths: vec![2, 2, 6, 2],
                num_heads: vec![3, 6, 12, 24],
                window_size: 8,
                mlp_ratio: 4.0,
                qkv_bias: true,
                ape: false,
                patch_norm: true,
                pretrained_window_sizes: vec![0, 0, 0, 0],
            }),
            input_size: 256,
            preprocessing: Some(proto::Preprocessing {
                resize_size: 292,
                crop_size: 256,
                interpolation: "bicubic".into(),
                mean: vec![0.485, 0.456, 0.406],
                std: vec![0.229, 0.224, 0.225],
                layout: "NCHW".into(),
                crop_mode: "center".into(),
                source: "timm pretrained_cfg + --crop-pct 0.9".into(),
                rescale_factor: 1.0 / 255.0,
                crop_rounding: "torchvision".into(),
            }),
            num_classes: 1000,
            backend: "cpu".into(),
            plugin_ops: vec![proto::PluginOp {
                name: "MyPlugin::CnnlRoll".into(),
                short_name: "roll".into(),
                ok: true,
                detail: "bit-exact\x1b[0m".into(),
            }],
            engine_instances: 2,
            threads_per_instance: 4,
            max_batch: 8,
            weights_source: "random(seed=0)".into(),
            random_weights: true,
            server_version: "0.1.0".into(),
            max_image_pixels: 89_478_485,
            engine_detail: "cpu x2, 4 threads".into(),
            checkpoint_format: "timm hub directory (swinv2_tiny_window8_256)".into(),
            labels_source: "checkpoint".into(),
            precision: "bf16".into(),
        }
    }

    #[test]
    fn text_is_key_value_lines() {
        let text = info_text(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "model: swinv2_tiny_patch4_window8_256");
        for line in [
            "server_version: 0.1.0",
            "backend: cpu",
            "precision: bf16",
            "random_weights: true",
            "input_size: 256",
            "num_classes: 1000",
            "engine_instances: 2",
            "threads_per_instance: 4",
            "max_batch: 8",
            "max_image_pixels: 89478485",
            "config.depths: [2, 2, 6, 2]",
            "config.mlp_ratio: 4",
            "preprocessing.mean: [0.485, 0.456, 0.406]",
            "preprocessing.interpolation: bicubic",
            "preprocessing.crop_mode: center",
            "preprocessing.rescale_factor: 0.00392156862745098",
            "preprocessing.source: timm pretrained_cfg + --crop-pct 0.9",
            "checkpoint_format: timm hub directory (swinv2_tiny_window8_256)",
            "labels_source: checkpoint",
            "plugin_ops[0].short_name: roll",
            "plugin_ops[0].detail: bit-exact\\u{1b}[0m",
        ] {
            assert!(lines.contains(&line), "{line:?} missing from\n{text}");
        }
    }

    #[test]
    fn json_has_the_proto_field_names() {
        let value = info_json(&sample());
        assert_eq!(value["model"], "swinv2_tiny_patch4_window8_256");
        assert_eq!(value["num_classes"], 1000);
        assert_eq!(value["max_image_pixels"], 89_478_485);
        assert_eq!(value["random_weights"], true);
        assert_eq!(value["config"]["depths"], json!([2, 2, 6, 2]));
        assert_eq!(value["config"]["window_size"], 8);
        assert_eq!(value["preprocessing"]["layout"], "NCHW");
        assert_eq!(value["preprocessing"]["mean"], json!([0.485, 0.456, 0.406]));
        assert_eq!(value["config"]["mlp_ratio"], 4.0);
        assert_eq!(value["preprocessing"]["crop_mode"], "center");
        assert_eq!(value["preprocessing"]["rescale_factor"], 1.0 / 255.0);
        assert_eq!(value["labels_source"], "checkpoint");
        assert_eq!(value["plugin_ops"][0]["ok"], true);
        // Control characters are JSON escapes, and the text parses back.
        let text = value.to_string();
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("\"mean\":[0.485,0.456,0.406]"), "{text}");
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["plugin_ops"][0]["detail"], "bit-exact\x1b[0m");
    }

    #[test]
    fn every_text_key_is_a_json_path() {
        let value = info_json(&sample());
        for line in info_text(&sample()).lines() {
            let key = line.split(": ").next().unwrap();
            let mut node = &value;
            for part in key.split('.') {
                node = match part.split_once('[') {
                    Some((name, index)) => {
                        &node[name][index.trim_end_matches(']').parse::<usize>().unwrap()]
                    }
                    None => &node[part],
                };
            }
            assert!(!node.is_null(), "{key} is not in the JSON");
        }
    }

    #[test]
    fn a_server_without_config_still_prints() {
        let info = proto::ModelInfo::default();
        assert!(info_text(&info).contains("config.img_size: 0"));
        assert_eq!(info_json(&info)["plugin_ops"], json!([]));
    }
}
