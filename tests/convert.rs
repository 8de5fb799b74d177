//! `swin-serve convert`: a Hugging Face directory and an official V1 checkpoint written as
//! official-layout safetensors; the file carries the configuration, labels and preprocessing, and
//! loads back (with no hint) to the same tensors and the same logits.

mod common {
    pub mod fixtures;
}

use std::process::Command;

use swin_serve::model::config_json::{config_from_json, METADATA_CONFIG_KEY};
use swin_serve::model::formats::load_local;
use swin_serve::model::{ConfigHints, PreprocessingSpec};

fn convert(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_swin-serve"))
        .arg("convert")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn converted_files_load_back_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    for (source, name) in [
        (
            common::fixtures::fixture_dir("library").join("hf_swinv2"),
            "hf.safetensors",
        ),
        (
            common::fixtures::fixture_dir("parity").join("v1_w12_clamped_ape.pth"),
            "v1.safetensors",
        ),
    ] {
        let dst = tmp.path().join(name);
        let out = convert(&[source.as_os_str(), dst.as_os_str()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("wrote"));
        let (original, original_config) = load_local(&source, &ConfigHints::default()).unwrap();
        let (converted, config) = load_local(&dst, &ConfigHints::default()).unwrap();
        assert_eq!(config, original_config, "{name}");
        assert_eq!(converted.metadata.labels, original.metadata.labels);
        assert_eq!(
            converted.metadata.preprocessing,
            original.metadata.preprocessing
        );
        for (key, tensor) in &converted.tensors {
            let want = &original.tensors[key];
            assert_eq!(
                (&tensor.shape, &tensor.data),
                (&want.shape, &want.data),
                "{key}"
            );
        }
        // The metadata's config is the official constructor's arguments.
        let bytes = std::fs::read(&dst).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap();
        let json: serde_json::Value = serde_json::from_str(&meta[METADATA_CONFIG_KEY]).unwrap();
        assert_eq!(config_from_json(&json).unwrap(), config);
        // Not overwritten without --force.
        let again = convert(&[source.as_os_str(), dst.as_os_str()]);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
        let forced = convert(&[source.as_os_str(), dst.as_os_str(), "--force".as_ref()]);
        assert!(forced.status.success());
    }
    let (hf, _) = load_local(&tmp.path().join("hf.safetensors"), &ConfigHints::default()).unwrap();
    assert!(matches!(
        hf.metadata.preprocessing,
        PreprocessingSpec::HuggingFace(_)
    ));
    // A source it cannot read: an error, no file.
    let dst = tmp.path().join("none.safetensors");
    let out = convert(&[tmp.path().join("missing.pth").as_os_str(), dst.as_os_str()]);
    assert!(!out.status.success());
    assert!(!dst.exists());
}
