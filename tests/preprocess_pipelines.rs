//! The eval transforms of timm and Hugging Face sources against the libraries themselves: for
//! each `pretrained_cfg` / `preprocessor_config.json` of
//! `tests/fixtures/preprocess/pipelines/manifest.txt` (written by
//! `tests/fixtures/make_preprocess_reference.py --pipelines` with timm's `create_transform` and
//! transformers' PIL-backend image processors), the config our parsers make from the same JSON
//! must give the library's uint8 crop bit for bit and its tensor bit for bit (every input there
//! decodes bit-exactly), and every filter, crop mode and key form appears. Also: startup-size
//! arithmetic at the released sizes, and the working-set estimate bounding what these pipelines
//! allocate.

mod common {
    pub mod fixtures;
}

use std::collections::BTreeSet;

use image::RgbImage;
use swin_serve::preprocess::{
    decode_rgb8, normalize_into, preprocess_into, resize_center_crop, working_set, CropMode,
    Interpolation, PreprocessConfig,
};

use common::fixtures::fixture_dir;

struct Pipeline {
    id: String,
    kind: String,
    config: serde_json::Value,
}

struct CropCase {
    pipeline: usize,
    image: String,
    crop_file: String,
    sums: [f64; 6],
    samples: Vec<(usize, f32)>,
}

struct Manifest {
    pipelines: Vec<Pipeline>,
    crops: Vec<CropCase>,
    failures: Vec<(usize, String)>,
}

fn manifest() -> Manifest {
    let dir = fixture_dir("preprocess").join("pipelines");
    let text = std::fs::read_to_string(dir.join("manifest.txt")).expect("pipelines/manifest.txt");
    let mut m = Manifest {
        pipelines: Vec::new(),
        crops: Vec::new(),
        failures: Vec::new(),
    };
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let t: Vec<&str> = line.splitn(4, ' ').collect();
        let find = |m: &Manifest| {
            m.pipelines
                .iter()
                .position(|p| p.id == t[1])
                .unwrap_or_else(|| panic!("no pipeline line before: {line}"))
        };
        match t[0] {
            "pipeline" => m.pipelines.push(Pipeline {
                id: t[1].into(),
                kind: t[2].into(),
                config: serde_json::from_str(t[3]).expect("pipeline JSON"),
            }),
            "pcrop" => {
                let pipeline = find(&m);
                m.crops.push(CropCase {
                    pipeline,
                    image: t[2].into(),
                    crop_file: t[3].into(),
                    sums: [0.0; 6],
                    samples: Vec::new(),
                });
            }
            "ptensor" | "psample" => {
                let pipeline = find(&m);
                let case = m
                    .crops
                    .iter_mut()
                    .rev()
                    .find(|c| c.pipeline == pipeline && c.image == t[2])
                    .unwrap_or_else(|| panic!("no pcrop line before: {line}"));
                let values: Vec<&str> = t[3].split(' ').collect();
                if t[0] == "ptensor" {
                    for (s, v) in case.sums.iter_mut().zip(&values) {
                        *s = v.parse().unwrap();
                    }
                } else {
                    case.samples = values
                        .chunks_exact(2)
                        .map(|p| (p[0].parse().unwrap(), p[1].parse::<f64>().unwrap() as f32))
                        .collect();
                }
            }
            "pfail" => {
                let pipeline = find(&m);
                m.failures.push((pipeline, t[2].into()));
            }
            other => panic!("unknown manifest line kind {other}"),
        }
    }
    m
}

fn config_of(p: &Pipeline) -> PreprocessConfig {
    let cfg = match p.kind.as_str() {
        "timm" => PreprocessConfig::from_timm_pretrained_cfg(&p.config),
        "hf" => PreprocessConfig::from_hf_preprocessor(&p.config),
        other => panic!("unknown pipeline kind {other}"),
    };
    cfg.unwrap_or_else(|e| panic!("{}: {e}", p.id))
}

fn input(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir("preprocess").join("inputs").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn reference_crop(file: &str) -> RgbImage {
    image::open(fixture_dir("preprocess").join("pipelines").join(file))
        .expect("crop png")
        .to_rgb8()
}

#[test]
fn crops_match_timm_and_transformers_bit_for_bit() {
    let m = manifest();
    assert!(
        m.crops.len() >= 70,
        "expected the full pipeline fixture set"
    );
    let mut failures = Vec::new();
    for c in &m.crops {
        let p = &m.pipelines[c.pipeline];
        let cfg = config_of(p);
        let img = decode_rgb8(&input(&c.image), &cfg).unwrap();
        let ours = resize_center_crop(&img, &cfg);
        let expected = reference_crop(&c.crop_file);
        assert_eq!(
            ours.dimensions(),
            expected.dimensions(),
            "{} {}",
            p.id,
            c.image
        );
        let differing = ours
            .as_raw()
            .iter()
            .zip(expected.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        let worst = ours
            .as_raw()
            .iter()
            .zip(expected.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        println!(
            "{:26} {:28} {} {:9} {:8}: {differing} values differ (max {worst})",
            p.id, c.image, cfg.crop_size, cfg.crop_mode, cfg.interpolation
        );
        if differing != 0 {
            failures.push(format!(
                "{} on {}: {differing} values differ, max {worst}",
                p.id, c.image
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn tensors_match_timm_and_transformers_bit_for_bit() {
    let m = manifest();
    for c in &m.crops {
        let p = &m.pipelines[c.pipeline];
        let cfg = config_of(p);
        let mut from_reference = vec![0f32; cfg.tensor_len()];
        normalize_into(&reference_crop(&c.crop_file), &cfg, &mut from_reference);
        let mut ours = vec![0f32; cfg.tensor_len()];
        preprocess_into(&input(&c.image), &cfg, &mut ours).unwrap();
        assert_eq!(
            ours, from_reference,
            "{} {}: the whole pipeline",
            p.id, c.image
        );
        assert_eq!(c.samples.len(), 24, "{} {}", p.id, c.image);
        for &(i, v) in &c.samples {
            assert_eq!(
                ours[i].to_bits(),
                v.to_bits(),
                "{} {} [{i}]: {} vs the library's {v}",
                p.id,
                c.image,
                ours[i]
            );
        }
        let plane = (cfg.crop_size * cfg.crop_size) as usize;
        for ch in 0..3 {
            let values = &ours[ch * plane..(ch + 1) * plane];
            let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
            let sumsq: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let (want, want_sq) = (c.sums[ch], c.sums[3 + ch]);
            assert!(
                (sum - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{} {} sum c{ch}: {sum} vs {want}",
                p.id,
                c.image
            );
            assert!(
                (sumsq - want_sq).abs() <= 1e-6 * (1.0 + want_sq),
                "{} {} sumsq c{ch}",
                p.id,
                c.image
            );
        }
    }
}

#[test]
fn the_fixtures_cover_every_filter_mode_and_key_form() {
    let m = manifest();
    let configs: Vec<PreprocessConfig> = m.pipelines.iter().map(config_of).collect();
    let filters: BTreeSet<&str> = configs.iter().map(|c| c.interpolation.as_str()).collect();
    let modes: BTreeSet<&str> = configs.iter().map(|c| c.crop_mode.as_str()).collect();
    for f in Interpolation::ALL {
        assert!(filters.contains(f.as_str()), "no pipeline uses {f}");
    }
    for mode in CropMode::ALL {
        assert!(modes.contains(mode.as_str()), "no pipeline uses {mode}");
    }
    let hf_keys: BTreeSet<String> = m
        .pipelines
        .iter()
        .filter(|p| p.kind == "hf")
        .flat_map(|p| p.config.as_object().unwrap().keys().cloned())
        .collect();
    for key in [
        "feature_extractor_type",
        "image_processor_type",
        "size",
        "do_center_crop",
        "crop_size",
        "resample",
        "do_rescale",
        "rescale_factor",
        "do_normalize",
        "image_mean",
        "image_std",
        "do_resize",
    ] {
        assert!(hf_keys.contains(key), "no Hugging Face pipeline has {key}");
    }
}

#[test]
fn images_the_library_cannot_transform_still_give_a_tensor() {
    // timm's border mode on a 400x3 strip asks PIL for a zero-high image (PIL refuses): we keep
    // the side at 1 and pad the rest with the mean colour.
    let m = manifest();
    assert!(!m.failures.is_empty());
    for (pipeline, image) in &m.failures {
        let cfg = config_of(&m.pipelines[*pipeline]);
        let mut out = vec![0f32; cfg.tensor_len()];
        preprocess_into(&input(image), &cfg, &mut out).unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
        if cfg.crop_mode == CropMode::Border {
            // The padding rows are the mean colour: (round(255 m) / 255 - m) / s, about 0.
            assert!(out[0].abs() < 0.01, "{}", out[0]);
        }
    }
}

#[test]
fn working_set_bounds_every_pipeline() {
    // The memory estimate (charged before decoding) is computed from the same windows.
    let m = manifest();
    for c in &m.crops {
        let cfg = config_of(&m.pipelines[c.pipeline]);
        let bytes = input(&c.image);
        let ws = working_set(&bytes, &cfg).unwrap();
        assert!(ws.resize > 0 && ws.tensor == cfg.tensor_len() as u64 * 4);
    }
}
