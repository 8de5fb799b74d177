//! Checkpoint loading, configuration inference and random weights, checked against what PyTorch
//! and the official `SwinTransformerV2` say (tests/fixtures/make_checkpoints.py wrote the
//! checkpoints and `expected.json`).

use std::path::{Path, PathBuf};

use serde_json::Value;
use swin_serve::model::layout::{official_state_dict, EntryKind};
use swin_serve::model::{ConfigHints, ModelError, SwinConfig, Weights};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/weights")
        .join(name)
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

/// A config from the official constructor arguments recorded by the script.
fn config_from_json(v: &Value) -> SwinConfig {
    SwinConfig {
        version: swin_serve::model::SwinVersion::V2,
        img_size: v["img_size"].as_u64().unwrap() as usize,
        patch_size: v["patch_size"].as_u64().unwrap() as usize,
        in_chans: v["in_chans"].as_u64().unwrap() as usize,
        num_classes: v["num_classes"].as_u64().unwrap() as usize,
        embed_dim: v["embed_dim"].as_u64().unwrap() as usize,
        depths: usizes(&v["depths"]),
        num_heads: usizes(&v["num_heads"]),
        window_size: v["window_size"].as_u64().unwrap() as usize,
        mlp_ratio: v["mlp_ratio"].as_f64().unwrap(),
        qkv_bias: v["qkv_bias"].as_bool().unwrap(),
        ape: v["ape"].as_bool().unwrap(),
        patch_norm: v["patch_norm"].as_bool().unwrap(),
        pretrained_window_sizes: usizes(&v["pretrained_window_sizes"]),
    }
}

/// Every tensor of `file` matches PyTorch's float32 view of it: same key set, shapes, first values
/// (bit-exact) and sums.
fn check_against_torch(file: &str) -> Weights {
    let exp = &expected()["files"][file];
    let weights = Weights::load(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let tensors = exp["tensors"].as_object().unwrap();
    let mut want: Vec<&String> = tensors.keys().collect();
    want.sort();
    let got: Vec<&String> = weights.tensors.keys().collect();
    assert_eq!(got, want, "{file}: key set");
    for (name, e) in tensors {
        let t = &weights.tensors[name];
        assert_eq!(t.shape, usizes(&e["shape"]), "{file}: {name} shape");
        assert_eq!(t.data.len(), t.shape.iter().product::<usize>(), "{name}");
        for (i, f) in e["first"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                t.data[i],
                f.as_f64().unwrap() as f32,
                "{file}: {name}[{i}] ({})",
                e["dtype"]
            );
        }
        let sum: f64 = t.data.iter().map(|&x| x as f64).sum();
        let abs_sum: f64 = t.data.iter().map(|&x| (x as f64).abs()).sum();
        let (es, ea) = (e["sum"].as_f64().unwrap(), e["abs_sum"].as_f64().unwrap());
        assert!(
            (sum - es).abs() <= 1e-9 * ea.max(1.0),
            "{file}: {name} sum {sum} vs {es}"
        );
        assert!(
            (abs_sum - ea).abs() <= 1e-9 * ea.max(1.0),
            "{file}: {name} abs sum {abs_sum} vs {ea}"
        );
    }
    weights
}

fn expected_config(file: &str) -> SwinConfig {
    config_from_json(&expected()["files"][file]["config"])
}

#[test]
fn official_checkpoint_with_optimizer_and_config_loads_model_only() {
    let w = check_against_torch("official.pth");
    assert!(w.source.ends_with("official.pth"));
    assert!(!w.tensors.keys().any(|k| k.starts_with("optimizer")));
    let config = w.infer_config(&ConfigHints::default()).unwrap();
    assert_eq!(config, expected_config("official.pth"));
}

#[test]
fn bare_state_dict_with_ape_pretrained_windows_and_no_qkv_bias() {
    let w = check_against_torch("bare.pth");
    let config = w.infer_config(&ConfigHints::default()).unwrap();
    let want = expected_config("bare.pth");
    assert_eq!(config.pretrained_window_sizes, vec![3, 2]);
    assert!(config.ape && !config.qkv_bias && !config.patch_norm);
    assert_eq!(config, want);
}

#[test]
fn float16_checkpoint_is_converted_like_torch() {
    let w = check_against_torch("half.pth");
    assert_eq!(
        w.infer_config(&ConfigHints::default()).unwrap(),
        expected_config("half.pth")
    );
}

#[test]
fn ddp_module_prefix_is_stripped() {
    let w = check_against_torch("ddp.pth");
    assert!(w.tensors.contains_key("patch_embed.proj.weight"));
    assert_eq!(
        w.infer_config(&ConfigHints::default()).unwrap(),
        expected_config("ddp.pth")
    );
}

#[test]
fn legacy_container_is_read_by_pytorch_reader() {
    let w = check_against_torch("legacy.pth");
    let hints = ConfigHints {
        window_size: Some(4),
        img_size: Some(16),
        ..Default::default()
    };
    assert_eq!(
        w.infer_config(&hints).unwrap(),
        expected_config("legacy.pth")
    );
}

#[test]
fn safetensors_with_mixed_dtypes() {
    let w = check_against_torch("model.safetensors");
    assert_eq!(
        w.infer_config(&ConfigHints::default()).unwrap(),
        expected_config("model.safetensors")
    );
}

#[test]
fn own_zip_reader_agrees_with_pytorch_reader() {
    // Weights::load reads ZIP checkpoints with our own reader (checked against torch above);
    // pytorch-reader must agree where it can read the file (it refuses official.pth's CfgNode).
    use swin_serve::model::checkpoint::read_with_pytorch_reader;
    for file in ["bare.pth", "half.pth", "ddp.pth", "no_buffers.pth"] {
        let a = Weights::load(&fixture(file)).unwrap();
        let b = read_with_pytorch_reader(&fixture(file)).unwrap();
        assert_eq!(a.tensors, b, "{file}");
    }
    let err = read_with_pytorch_reader(&fixture("official.pth")).unwrap_err();
    assert!(err.to_string().contains("SetItems"), "{err}");
}

#[test]
fn format_is_detected_from_content_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("weights.bin");
    let b = dir.path().join("weights.pth");
    std::fs::copy(fixture("official.pth"), &a).unwrap();
    std::fs::copy(fixture("model.safetensors"), &b).unwrap();
    let wa = Weights::load(&a).unwrap();
    let wb = Weights::load(&b).unwrap();
    assert_eq!(wa.tensors.len(), wb.tensors.len());
    let name = "layers.1.blocks.1.attn.qkv.weight";
    assert_eq!(wa.tensors[name], wb.tensors[name]);
}

#[test]
fn without_buffers_the_window_and_image_size_come_from_hints() {
    let w = check_against_torch("no_buffers.pth");
    let err = w.infer_config(&ConfigHints::default()).unwrap_err();
    assert!(err.to_string().contains("--window-size"), "{err}");
    let hints = ConfigHints {
        window_size: Some(4),
        ..Default::default()
    };
    let err = w.infer_config(&hints).unwrap_err();
    assert!(err.to_string().contains("--img-size"), "{err}");
    let hints = ConfigHints {
        window_size: Some(4),
        img_size: Some(16),
        ..Default::default()
    };
    assert_eq!(
        w.infer_config(&hints).unwrap(),
        expected_config("no_buffers.pth")
    );
}

#[test]
fn hints_override_inference_and_are_checked_against_tensors() {
    let w = Weights::load(&fixture("official.pth")).unwrap();
    let hints = ConfigHints {
        num_classes: Some(5),
        ..Default::default()
    };
    match w.infer_config(&hints).unwrap_err() {
        ModelError::ShapeMismatch {
            name,
            actual,
            expected,
        } => {
            assert_eq!(name, "head.weight");
            assert_eq!(actual, vec![10, 16]);
            assert_eq!(expected, vec![5, 16]);
        }
        other => panic!("unexpected {other}"),
    }
    // A window that disagrees with the stored position buffers is named too.
    let hints = ConfigHints {
        window_size: Some(2),
        ..Default::default()
    };
    let err = w.infer_config(&hints).unwrap_err();
    assert!(
        matches!(&err, ModelError::ShapeMismatch { name, .. } if name.ends_with("relative_coords_table") || name.ends_with("attn_mask")),
        "{err}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let w = Weights::load(&fixture("missing_tensor.pth")).unwrap();
    let hints = ConfigHints {
        window_size: Some(4),
        img_size: Some(16),
        ..Default::default()
    };
    let err = w.infer_config(&hints).unwrap_err();
    match &err {
        ModelError::MissingTensor { name, expected } => {
            assert_eq!(name, "layers.1.blocks.0.mlp.fc1.weight");
            assert_eq!(expected, &vec![32, 16]);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err
        .to_string()
        .contains("`layers.1.blocks.0.mlp.fc1.weight`"));
}

#[test]
fn misshaped_tensor_is_named_with_both_shapes() {
    let w = Weights::load(&fixture("misshaped.pth")).unwrap();
    let hints = ConfigHints {
        window_size: Some(4),
        img_size: Some(16),
        ..Default::default()
    };
    let err = w.infer_config(&hints).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, ModelError::ShapeMismatch { name, actual, expected }
            if name == "layers.0.blocks.1.attn.proj.weight" && actual == &vec![8, 4] && expected == &vec![8, 8]),
        "{msg}"
    );
    assert!(
        msg.contains("[8, 4]") && msg.contains("[8, 8]") && msg.contains("proj.weight"),
        "{msg}"
    );
}

#[test]
fn checkpoint_without_state_dict_is_refused() {
    let err = Weights::load(&fixture("no_model.pth")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Format { .. }), "{msg}");
    assert!(
        msg.contains("'model'") && msg.contains("no_model.pth"),
        "{msg}"
    );
}

#[test]
fn garbage_empty_and_truncated_files_are_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pth");
    std::fs::write(
        &garbage,
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let empty = dir.path().join("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    let bytes = std::fs::read(fixture("official.pth")).unwrap();
    let truncated = dir.path().join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // A safetensors header promising more data than the file holds.
    let st = std::fs::read(fixture("model.safetensors")).unwrap();
    let short_st = dir.path().join("short.safetensors");
    std::fs::write(&short_st, &st[..st.len() - 100]).unwrap();
    let missing = dir.path().join("does-not-exist.pth");

    for (path, what) in [
        (&garbage, "not a PyTorch checkpoint"),
        (&empty, "empty"),
        (&truncated, "truncated"),
        (&short_st, "safetensors"),
        (&missing, "No such file"),
    ] {
        let err = Weights::load(path).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()),
            "{msg} should name the file"
        );
        assert!(msg.contains(what), "{msg} should say {what:?}");
    }
}

#[test]
fn layout_matches_the_official_state_dict() {
    let exp = expected();
    let layouts = exp["layouts"].as_object().unwrap();
    assert!(layouts.len() >= 4);
    for (name, layout) in layouts {
        let config = config_from_json(&layout["config"]);
        let ours: Vec<(String, Vec<usize>, bool)> = official_state_dict(&config)
            .into_iter()
            .map(|e| (e.name, e.shape, e.kind == EntryKind::Buffer))
            .collect();
        let theirs: Vec<(String, Vec<usize>, bool)> = layout["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e[0].as_str().unwrap().to_string(),
                    usizes(&e[1]),
                    e[2].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn random_weights_have_every_official_parameter() {
    let exp = expected();
    for (name, layout) in exp["layouts"].as_object().unwrap() {
        let config = config_from_json(&layout["config"]);
        let w = Weights::random(&config, 5);
        let mut want: Vec<(String, Vec<usize>)> = layout["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !e[2].as_bool().unwrap())
            .map(|e| (e[0].as_str().unwrap().to_string(), usizes(&e[1])))
            .collect();
        want.sort();
        let got: Vec<(String, Vec<usize>)> = w
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.shape.clone()))
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(w.source, "random(seed=5)");
        assert_eq!(
            w.num_parameters() as u64,
            layout["num_parameters"].as_u64().unwrap(),
            "{name}"
        );
        assert!(w
            .tensors
            .values()
            .all(|t| t.data.iter().all(|x| x.is_finite())));
        // Round trip: the shapes give the config back once the buffer-borne values are hinted.
        let hints = ConfigHints {
            img_size: Some(config.img_size),
            window_size: Some(config.window_size),
            pretrained_window_sizes: Some(config.pretrained_window_sizes.clone()),
            ..Default::default()
        };
        assert_eq!(w.infer_config(&hints).unwrap(), config, "{name}");
    }
}

#[test]
fn random_weights_are_deterministic_and_match_the_reference_generator() {
    let tiny = SwinConfig::tiny_window8_256();
    let a = Weights::random(&tiny, 42);
    let b = Weights::random(&tiny, 42);
    let c = Weights::random(&tiny, 43);
    assert_eq!(a.tensors, b.tensors);
    let name = "layers.0.blocks.0.attn.qkv.weight";
    assert_ne!(a.tensors[name], c.tensors[name]);
    for stream in expected()["random_streams"].as_array().unwrap() {
        let seed = stream["seed"].as_u64().unwrap();
        let name = stream["name"].as_str().unwrap();
        let w = Weights::random(&tiny, seed);
        let got = &w.tensors[name].data[..6];
        let want: Vec<f32> = stream["first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got, &want[..], "seed {seed} {name}");
    }
}

#[test]
fn random_weights_have_useful_magnitudes() {
    let w = Weights::random(&SwinConfig::tiny_window8_256(), 1);
    let stats = |name: &str| {
        let d = &w.tensors[name].data;
        let mean = d.iter().map(|&x| x as f64).sum::<f64>() / d.len() as f64;
        let var = d.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / d.len() as f64;
        (mean, var.sqrt())
    };
    let (m, s) = stats("layers.2.blocks.0.attn.qkv.weight");
    assert!(m.abs() < 1e-3 && (s - 0.02).abs() < 1e-3, "{m} {s}");
    let (m, s) = stats("layers.2.blocks.0.norm1.weight");
    assert!((m - 1.0).abs() < 0.05 && s > 0.05 && s < 0.15, "{m} {s}");
    let ls = &w.tensors["layers.3.blocks.1.attn.logit_scale"].data;
    assert!(ls.iter().all(|&x| (x - 10f32.ln()).abs() < 1e-6));
}

#[test]
#[ignore = "needs SWIN_FULL_CHECKPOINT=/path/to/full-size swinv2_tiny .pth (make_checkpoints.py --full-size)"]
fn full_size_tiny_checkpoint_loads_quickly() {
    let path = std::env::var("SWIN_FULL_CHECKPOINT").expect("SWIN_FULL_CHECKPOINT");
    let start = std::time::Instant::now();
    let w = Weights::load(Path::new(&path)).unwrap();
    let load = start.elapsed();
    let config = w.infer_config(&ConfigHints::default()).unwrap();
    eprintln!(
        "loaded {} tensors, {} parameters in {load:?} (+ infer/check {:?})",
        w.tensors.len(),
        w.num_parameters(),
        start.elapsed() - load
    );
    assert_eq!(config, SwinConfig::tiny_window8_256());
}

#[test]
fn window_and_image_size_are_inferred_from_buffer_shapes_for_official_configs() {
    // A state dict with the official module's keys and shapes (values irrelevant here) gives the
    // configuration back, including clipped stage windows (small w16 @256: stage 3 window 8;
    // base w24 @384: stage 3 window 12, stage 2 unshifted).
    let exp = expected();
    for (name, layout) in exp["layouts"].as_object().unwrap() {
        let config = config_from_json(&layout["config"]);
        let mut weights = Weights::default();
        for e in layout["entries"].as_array().unwrap() {
            let shape = usizes(&e[1]);
            weights.tensors.insert(
                e[0].as_str().unwrap().to_string(),
                swin_serve::model::Tensor {
                    data: vec![0.0; shape.iter().product()],
                    shape,
                },
            );
        }
        // Zero-filled position tables carry no pre-training window: hint it.
        let hints = ConfigHints {
            pretrained_window_sizes: Some(config.pretrained_window_sizes.clone()),
            ..Default::default()
        };
        assert_eq!(weights.infer_config(&hints).unwrap(), config, "{name}");
    }
}

/// Loads a hostile checkpoint on a thread with a small stack (a recursion that grows with the
/// file would overflow it) and a hang guard; returns the error message.
fn hostile_load_error(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hostile")
        .join(name);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let result = Weights::load(&path)
                .and_then(|w| w.infer_config(&ConfigHints::default()).map(|_| ()));
            let _ = tx.send(result.map_err(|e| e.to_string()));
        })
        .unwrap();
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{name}: no answer within 60 s (hang) or the thread died"));
    result.expect_err("a hostile checkpoint must be refused")
}

#[test]
fn hostile_checkpoints_are_refused_with_an_error() {
    // Made by tests/fixtures/make_hostile_checkpoints.py (no torch needed).
    for (name, expected) in [
        // A list appended to itself 200 times: the walk used to be exponential.
        ("self_append_list.pth", "no Swin state dict found"),
        // torch.zeros(1).expand(2**40): used to allocate 4 TiB and abort.
        ("expand_2_40.pth", "refusing to expand broadcast views"),
        // A stage index of 2^40: used to size a Vec by it and abort.
        ("huge_layer_index.pth", "layers.1099511627776"),
        // 200 000 nested tuples: dropping them used to recurse once per level.
        ("deep_tuples.pth", "no Swin state dict found"),
    ] {
        let message = hostile_load_error(name);
        assert!(
            message.contains(expected),
            "{name}: expected `{expected}` in: {message}"
        );
    }
}
