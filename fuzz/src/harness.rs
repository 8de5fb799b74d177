//! The bodies of the fuzz targets, shared by the AFL++ binaries (`fuzz/src/bin/*.rs`) and the
//! corpus replay test of the main crate (`tests/fuzz_corpus.rs` includes this file with `#[path]`,
//! so it may use only `swin_serve`, `zip` and `std`).
//!
//! Each function takes one fuzz input, runs it through swin-serve's real entry points and checks
//! what can be checked cheaply about a success (`assert!`: a failure is a crash to AFL++ and a
//! test failure to the replay). Errors are the expected outcome of most inputs and are ignored.

use std::path::Path;
use std::time::Duration;

use swin_serve::model::checkpoint::read_torch_zip_bytes;
use swin_serve::postprocess::Labels;
use swin_serve::preprocess::{preprocess_into, PreprocessConfig, PreprocessError};
use swin_serve::proto::inference::infer_parameter::ParameterChoice;
use swin_serve::proto::inference::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use swin_serve::proto::inference::{InferParameter, InferTensorContents};
use swin_serve::server::call::deadline::parse_grpc_timeout;
use swin_serve::server::services::oip::bytes_codec::{join_raw_bytes, split_raw_bytes};
use swin_serve::server::services::oip::inputs::{parse_inputs, ImageShape, Images};
use swin_serve::server::services::oip::outputs::{build_outputs, parse_outputs};

/// The targets, by the names of their binaries and corpus folders.
pub const TARGETS: [&str; 3] = ["preprocess", "checkpoint", "request_parsers"];

/// Run `data` through the target called `name` (one of [`TARGETS`]).
pub fn run_target(name: &str, data: &[u8]) {
    match name {
        "preprocess" => preprocess(data),
        "checkpoint" => checkpoint(data),
        "request_parsers" => request_parsers(data),
        other => panic!("no fuzz target {other}"),
    }
}

// --- (a) decode + preprocess -------------------------------------------------------------------

/// The eval transform with a tiny crop and tight limits, so that each execution is fast: at most
/// 256 × 256 pixels and 4 MiB of decoder allocations.
pub fn preprocess_config() -> PreprocessConfig {
    PreprocessConfig {
        crop_size: 8,
        resize_size: 9,
        max_image_pixels: 1 << 16,
        max_decode_alloc: 4 << 20,
        ..PreprocessConfig::for_image_size(8)
    }
}

/// Decode `data` as an image file and preprocess it (`preprocess_into`).
pub fn preprocess(data: &[u8]) {
    let cfg = preprocess_config();
    let mut out = vec![f32::NAN; cfg.tensor_len()];
    match preprocess_into(data, &cfg, &mut out) {
        Ok(info) => {
            assert!(info.width >= 1 && info.height >= 1);
            assert!(u64::from(info.width) * u64::from(info.height) <= cfg.max_image_pixels);
            // Every output element written, from 8-bit samples: finite.
            assert!(out.iter().all(|v| v.is_finite()), "non-finite output");
        }
        // A decoder panic, caught by `decode_rgb8` (under AFL the aborting panic hook fires first;
        // this makes the replay test see it too).
        Err(PreprocessError::Decode { message, .. })
            if message == "the decoder failed on malformed data" =>
        {
            panic!("the decoder panicked")
        }
        Err(_) => {}
    }
}

// --- (b) the checkpoint reader -----------------------------------------------------------------

/// Contents of the storages a fuzzed pickle may name (`archive/data/0` … `3`): 16 f32 (0.0 … 15.0),
/// 3 bytes, nothing, and 8 bytes.
fn storages() -> [(&'static str, Vec<u8>); 4] {
    [
        (
            "0",
            (0..16u8).flat_map(|i| f32::from(i).to_le_bytes()).collect(),
        ),
        ("1", vec![1, 2, 3]),
        ("2", Vec::new()),
        ("3", vec![0x3c; 8]),
    ]
}

/// A `torch.save`-like ZIP (`archive/data.pkl` = `pickle`, `archive/byteorder`, storages
/// `archive/data/0` … `3`), entries stored as torch stores them.
pub fn wrap_pickle(pickle: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut put = |name: &str, data: &[u8]| {
        w.start_file(name, stored).expect("zip entry");
        w.write_all(data).expect("zip write");
    };
    put("archive/data.pkl", pickle);
    put("archive/byteorder", b"little");
    for (key, data) in storages() {
        put(&format!("archive/data/{key}"), &data);
    }
    put("archive/version", b"3\n");
    w.finish().expect("zip finish").into_inner()
}

/// Read a checkpoint with `read_torch_zip_bytes`: a ZIP (`PK…`) as it is, anything else as the
/// `data.pkl` of a well-formed archive ([`wrap_pickle`]), so that mutations of the pickle are not
/// all stopped by the archive's CRC-32.
pub fn checkpoint(data: &[u8]) {
    let wrapped;
    let bytes = if data.starts_with(b"PK") {
        data
    } else {
        wrapped = wrap_pickle(data);
        &wrapped
    };
    if let Ok(tensors) = read_torch_zip_bytes(bytes, Path::new("fuzz.pth")) {
        for (name, t) in &tensors {
            let numel = t.shape.iter().try_fold(1usize, |a, &n| a.checked_mul(n));
            assert_eq!(numel, Some(t.data.len()), "tensor {name}: shape vs data");
        }
    }
}

// --- (c) the request handlers' parsers ---------------------------------------------------------

/// Reads the fuzz input as a sequence of choices; an exhausted input reads as zeros.
struct Choices<'a>(&'a [u8]);

impl<'a> Choices<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A shape dimension: mostly small or boundary values.
    fn dim(&mut self) -> i64 {
        const DIMS: [i64; 12] = [
            -1,
            0,
            1,
            2,
            3,
            4,
            5,
            8,
            i64::MAX,
            i64::MIN,
            1 << 32,
            1 << 62,
        ];
        DIMS[usize::from(self.byte()) % DIMS.len()]
    }

    /// A logit: mostly special values (NaN, infinities, extremes), else 4 raw bytes.
    fn float(&mut self) -> f32 {
        const FLOATS: [f32; 10] = [
            0.0,
            1.0,
            -1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -0.0,
        ];
        let b = self.byte();
        if b < 200 {
            FLOATS[usize::from(b) % FLOATS.len()]
        } else {
            let bytes = self.take(4);
            let mut le = [0u8; 4];
            le[..bytes.len()].copy_from_slice(bytes);
            f32::from_le_bytes(le)
        }
    }

    /// A requested output, maybe with a `classification` parameter of any type.
    fn output(&mut self) -> InferRequestedOutputTensor {
        const NAMES: [&str; 3] = ["LOGITS", "PROBABILITIES", "x\u{7f}"];
        let name = NAMES[usize::from(self.byte()) % NAMES.len()].to_string();
        let choice = match self.byte() % 6 {
            0 => None,
            1 => Some(ParameterChoice::Int64Param(self.dim())),
            2 => Some(ParameterChoice::Uint64Param(
                u64::MAX - u64::from(self.byte()),
            )),
            3 => Some(ParameterChoice::BoolParam(true)),
            4 => Some(ParameterChoice::StringParam("3".into())),
            _ => Some(ParameterChoice::Int64Param(i64::from(self.byte()))),
        };
        let mut out = InferRequestedOutputTensor {
            name,
            ..Default::default()
        };
        if let Some(choice) = choice {
            let key = if self.byte().is_multiple_of(8) {
                "classificatio"
            } else {
                "classification"
            };
            out.parameters.insert(
                key.to_string(),
                InferParameter {
                    parameter_choice: Some(choice),
                },
            );
        }
        out
    }

    fn input(&mut self) -> InferInputTensor {
        const NAMES: [&str; 4] = ["IMAGE", "INPUT", "x\u{1b}[31m", ""];
        const TYPES: [&str; 4] = ["BYTES", "FP32", "INT64", "bytes"];
        let name = NAMES[usize::from(self.byte()) % NAMES.len()].to_string();
        let datatype = TYPES[usize::from(self.byte()) % TYPES.len()].to_string();
        let ndims = usize::from(self.byte() % 6);
        let shape = (0..ndims).map(|_| self.dim()).collect();
        let contents = match self.byte() % 4 {
            0 => None,
            1 => {
                let n = usize::from(self.byte() % 6);
                let bytes_contents = (0..n)
                    .map(|_| {
                        let len = usize::from(self.byte());
                        self.take(len).to_vec()
                    })
                    .collect();
                Some(InferTensorContents {
                    bytes_contents,
                    ..Default::default()
                })
            }
            2 => {
                let n = usize::from(self.byte());
                let fp32_contents = self
                    .take(4 * n)
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                Some(InferTensorContents {
                    fp32_contents,
                    ..Default::default()
                })
            }
            _ => Some(InferTensorContents {
                int64_contents: vec![i64::from(self.byte())],
                ..Default::default()
            }),
        };
        InferInputTensor {
            name,
            datatype,
            shape,
            contents,
            ..Default::default()
        }
    }
}

/// Preprocessed images in the parser target are `[3, 2, 2]`; at most this many per request.
const SHAPE: ImageShape = ImageShape {
    channels: 3,
    size: 2,
};
const MAX_IMAGES: usize = 4;

/// Classes of the model the output parser answers for.
const CLASSES: usize = 5;

/// The first byte picks the parser (% 4): `grpc-timeout` values, raw BYTES splitting, whole OIP
/// inputs (`parse_inputs`, its inputs and `raw_input_contents` built from the rest), or requested
/// outputs (`parse_outputs`, then `build_outputs` of logits that may be NaN or infinite, as a
/// client's `INPUT` tensor can make them).
pub fn request_parsers(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        3 => outputs(&mut Choices(rest)),
        0 => {
            if let Ok(d) = parse_grpc_timeout(rest) {
                assert!(d <= Duration::from_secs(99_999_999 * 3600));
            }
        }
        1 => {
            let Some((&n, raw)) = rest.split_first() else {
                return;
            };
            let n = usize::from(n % 8);
            if let Ok(elements) = split_raw_bytes(raw, n, "IMAGE") {
                assert_eq!(elements.len(), n);
                assert_eq!(join_raw_bytes(elements.iter().map(Vec::as_slice)), raw);
            }
        }
        _ => {
            let mut c = Choices(rest);
            let inputs = (0..c.byte() % 3).map(|_| c.input()).collect();
            let mut raw: Vec<Vec<u8>> = (0..c.byte() % 3)
                .map(|_| {
                    let len = usize::from(c.byte());
                    c.take(len).to_vec()
                })
                .collect();
            // The rest of the input is the last raw entry's tail (room for big BYTES elements).
            if let Some(last) = raw.last_mut() {
                last.extend_from_slice(c.0);
            }
            if let Ok((images, _raw)) = parse_inputs(inputs, raw, SHAPE, MAX_IMAGES) {
                assert!((1..=MAX_IMAGES).contains(&images.len()));
                if let Images::Preprocessed(t) = &images {
                    let per_image = SHAPE.channels * SHAPE.size * SHAPE.size;
                    assert!(t.iter().all(|t| t.len() == per_image));
                }
            }
        }
    }
}

fn outputs(c: &mut Choices<'_>) {
    let requested: Vec<InferRequestedOutputTensor> =
        (0..c.byte() % 4).map(|_| c.output()).collect();
    let Ok(outputs) = parse_outputs(&requested, CLASSES) else {
        return;
    };
    assert!(!outputs.is_empty() && outputs.len() <= 2);
    let n = 1 + usize::from(c.byte() % 3);
    let logits: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..CLASSES).map(|_| c.float()).collect())
        .collect();
    let raw = c.byte() % 2 == 1;
    let (tensors, raw_data) = build_outputs(&outputs, &logits, &Labels::generic(CLASSES), raw);
    assert_eq!(tensors.len(), outputs.len());
    assert_eq!(raw_data.len(), if raw { outputs.len() } else { 0 });
    for (i, (tensor, out)) in tensors.iter().zip(&outputs).enumerate() {
        let per_image = out.classification.unwrap_or(CLASSES);
        assert!((1..=CLASSES).contains(&per_image));
        assert_eq!(tensor.shape, [n as i64, per_image as i64]);
        let elements = match (&tensor.contents, out.classification, raw) {
            (_, Some(_), true) => split_raw_bytes(&raw_data[i], n * per_image, "out")
                .expect("raw strings")
                .len(),
            (_, None, true) => raw_data[i].len() / 4,
            (Some(c), Some(_), false) => c.bytes_contents.len(),
            (Some(c), None, false) => c.fp32_contents.len(),
            (None, _, false) => panic!("typed output without contents"),
        };
        assert_eq!(elements, n * per_image);
    }
}
