//! OIP tensors in and out: which input a request carries and its data (raw or typed), which outputs
//! it wants, and the output tensors (raw or typed, the classification extension).
//!
//! Wire rules (Open Inference Protocol v2, gRPC): `raw_input_contents` has one entry per input, in
//! `inputs` order, and when it is used no input carries typed `contents`. Raw data is flat,
//! row-major, little-endian; a BYTES element travels as a 4-byte little-endian length followed by
//! its bytes. An answer uses `raw_output_contents` when the request used raw inputs (as KServe's
//! servers do; Triton's clients send raw and read raw) and typed `contents` otherwise.

use std::collections::HashSet;

use tonic::Status;

use crate::postprocess::{softmax, top_k, Labels};
use crate::proto::inference::infer_parameter::ParameterChoice;
use crate::proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use crate::proto::inference::model_infer_response::InferOutputTensor;
use crate::proto::inference::{InferParameter, InferTensorContents};

/// Input of encoded image files, decoded and preprocessed as `swin.v1` Classify does.
pub const IMAGE_INPUT: &str = "IMAGE";
/// Input of preprocessed images (NCHW, normalised).
pub const TENSOR_INPUT: &str = "INPUT";
/// Output of raw model outputs.
pub const LOGITS_OUTPUT: &str = "LOGITS";
/// Output of `softmax(LOGITS)`.
pub const PROBABILITIES_OUTPUT: &str = "PROBABILITIES";
/// Output parameter of the classification extension (int64 k: the top k as strings).
pub const CLASSIFICATION_PARAMETER: &str = "classification";

/// OIP datatype names used here.
pub const BYTES: &str = "BYTES";
pub const FP32: &str = "FP32";

/// The images of one request.
#[derive(Debug)]
pub enum Images {
    /// Encoded files (input `IMAGE`).
    Encoded(Vec<Vec<u8>>),
    /// Preprocessed tensors, one per image (input `INPUT`).
    Preprocessed(Vec<Vec<f32>>),
}

impl Images {
    /// How many images.
    pub fn len(&self) -> usize {
        match self {
            Images::Encoded(v) => v.len(),
            Images::Preprocessed(v) => v.len(),
        }
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The input's name.
    pub fn input_name(&self) -> &'static str {
        match self {
            Images::Encoded(_) => IMAGE_INPUT,
            Images::Preprocessed(_) => TENSOR_INPUT,
        }
    }
}

/// The shape a preprocessed image has: `[channels, size, size]`.
#[derive(Debug, Clone, Copy)]
pub struct ImageShape {
    pub channels: usize,
    pub size: usize,
}

impl ImageShape {
    fn len(&self) -> usize {
        self.channels * self.size * self.size
    }
}

fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn has_contents(c: &Option<InferTensorContents>) -> bool {
    c.as_ref().is_some_and(|c| {
        !(c.bool_contents.is_empty()
            && c.int_contents.is_empty()
            && c.int64_contents.is_empty()
            && c.uint_contents.is_empty()
            && c.uint64_contents.is_empty()
            && c.fp32_contents.is_empty()
            && c.fp64_contents.is_empty()
            && c.bytes_contents.is_empty())
    })
}

fn invalid(message: String) -> Status {
    Status::invalid_argument(message)
}

/// What the model takes, for error messages.
fn accepted_inputs(shape: ImageShape) -> String {
    format!(
        "this model takes {IMAGE_INPUT} ({BYTES} [-1]: encoded image files) or {TENSOR_INPUT} ({FP32} [-1, {c}, {s}, {s}]: preprocessed, NCHW)",
        c = shape.channels,
        s = shape.size
    )
}

/// The batch size of `input` from its shape, checking the shape against what the input takes.
fn batch_of(
    input: &InferInputTensor,
    shape: ImageShape,
    max_images: usize,
) -> Result<usize, Status> {
    let dims = &input.shape;
    let expected = if input.name == IMAGE_INPUT {
        "[N] or [N, 1]".to_string()
    } else {
        format!("[N, {c}, {s}, {s}]", c = shape.channels, s = shape.size)
    };
    let wrong = || {
        invalid(format!(
            "input {} has shape {}; it must be {expected} with N images",
            input.name,
            shape_text(dims)
        ))
    };
    let fits = if input.name == IMAGE_INPUT {
        dims.len() == 1 || (dims.len() == 2 && dims[1] == 1)
    } else {
        dims.len() == 4
            && dims[1] == shape.channels as i64
            && dims[2] == shape.size as i64
            && dims[3] == shape.size as i64
    };
    if !fits || dims[0] < 0 {
        return Err(wrong());
    }
    let n = dims[0] as u64;
    if n == 0 {
        return Err(invalid(format!(
            "input {} has shape {}: a batch of 0 images",
            input.name,
            shape_text(dims)
        )));
    }
    if n > max_images as u64 {
        return Err(invalid(format!(
            "input {} carries {n} images; the limit is {max_images} per request",
            input.name
        )));
    }
    Ok(n as usize)
}

/// Split raw BYTES data into its `n` elements (4-byte little-endian length, then the bytes).
pub fn split_raw_bytes(raw: &[u8], n: usize, name: &str) -> Result<Vec<Vec<u8>>, Status> {
    let mut elements = Vec::with_capacity(n);
    let mut rest = raw;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(invalid(format!(
                "raw data of input {name} is malformed: {} byte(s) left after element {} where a 4-byte length was expected",
                rest.len(),
                elements.len()
            )));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(invalid(format!(
                "raw data of input {name} is malformed: element {} says {len} bytes but only {} remain",
                elements.len(),
                tail.len()
            )));
        }
        if elements.len() == n {
            return Err(invalid(format!(
                "raw data of input {name} holds more than the {n} element(s) its shape says"
            )));
        }
        elements.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    if elements.len() != n {
        return Err(invalid(format!(
            "raw data of input {name} holds {} element(s); its shape says {n}",
            elements.len()
        )));
    }
    Ok(elements)
}

/// Serialise BYTES elements as raw data.
pub fn join_raw_bytes<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// The images of `inputs` (with `raw`, the request's `raw_input_contents`, taken out of it).
/// Returns them and whether the request used raw data.
pub fn parse_inputs(
    inputs: Vec<InferInputTensor>,
    raw: Vec<Vec<u8>>,
    shape: ImageShape,
    max_images: usize,
) -> Result<(Images, bool), Status> {
    let used_raw = !raw.is_empty();
    if inputs.is_empty() {
        return Err(invalid(format!(
            "the request has no inputs: {}",
            accepted_inputs(shape)
        )));
    }
    let mut seen = HashSet::new();
    for input in &inputs {
        if input.name != IMAGE_INPUT && input.name != TENSOR_INPUT {
            return Err(invalid(format!(
                "unknown input {:?}: {}",
                super::super::untrusted(&input.name),
                accepted_inputs(shape)
            )));
        }
        if !seen.insert(input.name.as_str()) {
            return Err(invalid(format!("input {} is given twice", input.name)));
        }
    }
    if inputs.len() > 1 {
        return Err(invalid(format!(
            "send either {IMAGE_INPUT} or {TENSOR_INPUT}, not both"
        )));
    }
    if used_raw && raw.len() != inputs.len() {
        return Err(invalid(format!(
            "raw_input_contents has {} entries for {} input(s): it needs one per input, in order",
            raw.len(),
            inputs.len()
        )));
    }
    let input = inputs.into_iter().next().expect("one input");
    if used_raw && has_contents(&input.contents) {
        return Err(invalid(format!(
            "input {} has typed contents while the request uses raw_input_contents: use one or the other",
            input.name
        )));
    }
    let expected_type = if input.name == IMAGE_INPUT {
        BYTES
    } else {
        FP32
    };
    if input.datatype != expected_type {
        return Err(invalid(format!(
            "input {} has datatype {:?}; it must be {expected_type}",
            input.name,
            super::super::untrusted(&input.datatype)
        )));
    }
    let n = batch_of(&input, shape, max_images)?;
    let raw_data = raw.into_iter().next();
    let images = if input.name == IMAGE_INPUT {
        let files = match raw_data {
            Some(data) => split_raw_bytes(&data, n, IMAGE_INPUT)?,
            None => {
                let files = input.contents.map(|c| c.bytes_contents).unwrap_or_default();
                if files.len() != n {
                    return Err(invalid(format!(
                        "input {IMAGE_INPUT} has {} element(s) in contents.bytes_contents; its shape {} says {n}",
                        files.len(),
                        shape_text(&input.shape)
                    )));
                }
                files
            }
        };
        Images::Encoded(files)
    } else {
        let per_image = shape.len();
        let total = n * per_image;
        let values = match raw_data {
            Some(data) => {
                if data.len() != total * 4 {
                    return Err(invalid(format!(
                        "raw data of input {TENSOR_INPUT} has {} bytes; {FP32} {} needs {}",
                        data.len(),
                        shape_text(&input.shape),
                        total * 4
                    )));
                }
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect::<Vec<f32>>()
            }
            None => {
                let values = input.contents.map(|c| c.fp32_contents).unwrap_or_default();
                if values.len() != total {
                    return Err(invalid(format!(
                        "input {TENSOR_INPUT} has {} value(s) in contents.fp32_contents; {FP32} {} needs {total}",
                        values.len(),
                        shape_text(&input.shape)
                    )));
                }
                values
            }
        };
        Images::Preprocessed(
            values
                .chunks_exact(per_image)
                .map(<[f32]>::to_vec)
                .collect(),
        )
    };
    Ok((images, used_raw))
}

/// Which output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    Logits,
    Probabilities,
}

impl OutputKind {
    /// The output's name.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Logits => LOGITS_OUTPUT,
            OutputKind::Probabilities => PROBABILITIES_OUTPUT,
        }
    }
}

/// One output the request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRequest {
    pub kind: OutputKind,
    /// The classification extension: the top k (clamped to the class count, as Triton does).
    pub classification: Option<usize>,
}

fn integer_parameter(p: &InferParameter) -> Option<i128> {
    match p.parameter_choice {
        Some(ParameterChoice::Int64Param(v)) => Some(i128::from(v)),
        Some(ParameterChoice::Uint64Param(v)) => Some(i128::from(v)),
        _ => None,
    }
}

/// The outputs `requested` names (none: every output, plain).
pub fn parse_outputs(
    requested: &[InferRequestedOutputTensor],
    num_classes: usize,
) -> Result<Vec<OutputRequest>, Status> {
    if requested.is_empty() {
        return Ok([OutputKind::Logits, OutputKind::Probabilities]
            .map(|kind| OutputRequest {
                kind,
                classification: None,
            })
            .to_vec());
    }
    let mut seen = HashSet::new();
    requested
        .iter()
        .map(|out| {
            let kind = match out.name.as_str() {
                LOGITS_OUTPUT => OutputKind::Logits,
                PROBABILITIES_OUTPUT => OutputKind::Probabilities,
                other => {
                    return Err(invalid(format!(
                        "unknown output {:?}: this model has {LOGITS_OUTPUT} and {PROBABILITIES_OUTPUT} ({FP32} [-1, {num_classes}])",
                        super::super::untrusted(other)
                    )))
                }
            };
            if !seen.insert(kind) {
                return Err(invalid(format!("output {} is requested twice", kind.name())));
            }
            let classification = match out.parameters.get(CLASSIFICATION_PARAMETER) {
                None => None,
                Some(p) => match integer_parameter(p) {
                    Some(k) if k >= 1 => Some((k.min(num_classes as i128)) as usize),
                    Some(k) => {
                        return Err(invalid(format!(
                            "output {} asks for classification {k}; it must be at least 1",
                            kind.name()
                        )))
                    }
                    None => {
                        return Err(invalid(format!(
                            "output {} has a non-integer {CLASSIFICATION_PARAMETER} parameter; give int64 k (the top k classes)",
                            kind.name()
                        )))
                    }
                },
            };
            Ok(OutputRequest {
                kind,
                classification,
            })
        })
        .collect()
}

/// The output tensors for `logits` (one row per image), and their raw data when `raw`.
pub fn build_outputs(
    requested: &[OutputRequest],
    logits: &[Vec<f32>],
    labels: &Labels,
    raw: bool,
) -> (Vec<InferOutputTensor>, Vec<Vec<u8>>) {
    let n = logits.len() as i64;
    let num_classes = logits.first().map_or(0, Vec::len);
    let probabilities: Option<Vec<Vec<f32>>> = requested
        .iter()
        .any(|o| o.kind == OutputKind::Probabilities)
        .then(|| logits.iter().map(|row| softmax(row)).collect());
    let mut tensors = Vec::with_capacity(requested.len());
    let mut raw_data = Vec::new();
    for out in requested {
        let values: &[Vec<f32>] = match out.kind {
            OutputKind::Logits => logits,
            OutputKind::Probabilities => probabilities.as_deref().unwrap_or(&[]),
        };
        let mut tensor = InferOutputTensor {
            name: out.kind.name().into(),
            ..Default::default()
        };
        match out.classification {
            None => {
                tensor.datatype = FP32.into();
                tensor.shape = vec![n, num_classes as i64];
                let flat = values.iter().flatten().copied();
                if raw {
                    raw_data.push(flat.flat_map(f32::to_le_bytes).collect());
                } else {
                    tensor.contents = Some(InferTensorContents {
                        fp32_contents: flat.collect(),
                        ..Default::default()
                    });
                }
            }
            Some(k) => {
                // Ranked by logit (the exact order; softmax keeps it), reported with this output's
                // values, as Triton's "value:index:label".
                let strings: Vec<Vec<u8>> = logits
                    .iter()
                    .zip(values)
                    .flat_map(|(row_logits, row_values)| {
                        top_k(row_logits, k).into_iter().map(move |r| {
                            format!(
                                "{:.6}:{}:{}",
                                row_values[r.class_id],
                                r.class_id,
                                labels.name(r.class_id)
                            )
                            .into_bytes()
                        })
                    })
                    .collect();
                tensor.datatype = BYTES.into();
                tensor.shape = vec![n, k as i64];
                if raw {
                    raw_data.push(join_raw_bytes(strings.iter().map(Vec::as_slice)));
                } else {
                    tensor.contents = Some(InferTensorContents {
                        bytes_contents: strings,
                        ..Default::default()
                    });
                }
            }
        }
        tensors.push(tensor);
    }
    (tensors, raw_data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: ImageShape = ImageShape {
        channels: 3,
        size: 4,
    };

    fn input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            ..Default::default()
        }
    }

    fn err(r: Result<(Images, bool), Status>) -> Status {
        r.expect_err("must be refused")
    }

    #[test]
    fn raw_bytes_round_trip_and_refusals() {
        let files: Vec<&[u8]> = vec![b"abc", b"", b"\x00\x01"];
        let raw = join_raw_bytes(files.iter().copied());
        assert_eq!(raw.len(), 3 * 4 + 5);
        assert_eq!(&raw[..4], &3u32.to_le_bytes());
        let back = split_raw_bytes(&raw, 3, "IMAGE").unwrap();
        assert_eq!(back, vec![b"abc".to_vec(), vec![], vec![0, 1]]);
        // Every cut inside the data is refused, never read past the end.
        for cut in 1..raw.len() {
            assert!(
                split_raw_bytes(&raw[..cut], 3, "IMAGE").is_err(),
                "cut {cut}"
            );
        }
        assert!(split_raw_bytes(&raw, 2, "IMAGE").is_err());
        assert!(split_raw_bytes(&raw, 4, "IMAGE").is_err());
        // A length far past the end.
        let lying = [0xff, 0xff, 0xff, 0xff, 1, 2];
        let e = split_raw_bytes(&lying, 1, "IMAGE").unwrap_err();
        assert!(e.message().contains("4294967295 bytes"), "{e:?}");
    }

    #[test]
    fn image_input_raw_and_typed() {
        let raw = join_raw_bytes([b"x".as_slice(), b"yz"]);
        let (images, used_raw) = parse_inputs(
            vec![input("IMAGE", "BYTES", &[2])],
            vec![raw.clone()],
            SHAPE,
            8,
        )
        .unwrap();
        assert!(used_raw);
        match images {
            Images::Encoded(f) => assert_eq!(f, vec![b"x".to_vec(), b"yz".to_vec()]),
            other => panic!("{other:?}"),
        }
        let mut typed = input("IMAGE", "BYTES", &[2, 1]);
        typed.contents = Some(InferTensorContents {
            bytes_contents: vec![b"x".to_vec(), b"yz".to_vec()],
            ..Default::default()
        });
        let (images, used_raw) = parse_inputs(vec![typed.clone()], vec![], SHAPE, 8).unwrap();
        assert!(!used_raw);
        assert_eq!(images.len(), 2);
        // Both raw and typed at once.
        let e = err(parse_inputs(vec![typed], vec![raw], SHAPE, 8));
        assert!(e.message().contains("typed contents"), "{e:?}");
    }

    #[test]
    fn tensor_input_raw_and_typed_agree() {
        let values: Vec<f32> = (0..2 * 3 * 16).map(|i| i as f32 * 0.5 - 3.0).collect();
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let (a, _) = parse_inputs(
            vec![input("INPUT", "FP32", &[2, 3, 4, 4])],
            vec![raw],
            SHAPE,
            8,
        )
        .unwrap();
        let mut typed = input("INPUT", "FP32", &[2, 3, 4, 4]);
        typed.contents = Some(InferTensorContents {
            fp32_contents: values.clone(),
            ..Default::default()
        });
        let (b, _) = parse_inputs(vec![typed], vec![], SHAPE, 8).unwrap();
        match (a, b) {
            (Images::Preprocessed(a), Images::Preprocessed(b)) => {
                assert_eq!(a, b);
                assert_eq!(a.len(), 2);
                assert_eq!(a[1], values[48..].to_vec());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        type Case = (Vec<InferInputTensor>, Vec<Vec<u8>>, &'static str);
        let cases: Vec<Case> = vec![
            (vec![], vec![], "no inputs"),
            (
                vec![input("PIXELS", "FP32", &[1, 3, 4, 4])],
                vec![],
                "unknown input \"PIXELS\"",
            ),
            (
                vec![input("IMAGE", "FP32", &[1])],
                vec![vec![]],
                "datatype \"FP32\"; it must be BYTES",
            ),
            (
                vec![input("INPUT", "FP16", &[1, 3, 4, 4])],
                vec![vec![]],
                "it must be FP32",
            ),
            (
                vec![input("INPUT", "FP32", &[1, 3, 5, 5])],
                vec![vec![0; 300]],
                "shape [1, 3, 5, 5]",
            ),
            (
                vec![input("INPUT", "FP32", &[3, 4, 4])],
                vec![vec![0; 192]],
                "[N, 3, 4, 4]",
            ),
            (
                vec![input("IMAGE", "BYTES", &[1, 2])],
                vec![vec![]],
                "[N] or [N, 1]",
            ),
            (
                vec![input("IMAGE", "BYTES", &[-1])],
                vec![vec![]],
                "shape [-1]",
            ),
            (
                vec![input("IMAGE", "BYTES", &[0])],
                vec![vec![]],
                "batch of 0",
            ),
            (
                vec![input("IMAGE", "BYTES", &[9])],
                vec![vec![]],
                "limit is 8",
            ),
            (
                vec![input("INPUT", "FP32", &[1, 3, 4, 4])],
                vec![vec![0; 191]],
                "has 191 bytes",
            ),
            (
                vec![input("INPUT", "FP32", &[1, 3, 4, 4])],
                vec![],
                "0 value(s) in contents.fp32_contents",
            ),
            (
                vec![input("IMAGE", "BYTES", &[2])],
                vec![],
                "0 element(s) in contents.bytes_contents",
            ),
            (
                vec![
                    input("IMAGE", "BYTES", &[1]),
                    input("INPUT", "FP32", &[1, 3, 4, 4]),
                ],
                vec![],
                "not both",
            ),
            (
                vec![input("IMAGE", "BYTES", &[1]), input("IMAGE", "BYTES", &[1])],
                vec![],
                "twice",
            ),
            (
                vec![input("IMAGE", "BYTES", &[1])],
                vec![vec![], vec![]],
                "2 entries for 1 input",
            ),
        ];
        for (inputs, raw, expected) in cases {
            let e = err(parse_inputs(inputs, raw, SHAPE, 8));
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(
                e.message().contains(expected),
                "{expected:?} not in {:?}",
                e.message()
            );
        }
        // A huge declared batch is refused by its count, before any allocation.
        let e = err(parse_inputs(
            vec![input("INPUT", "FP32", &[i64::MAX, 3, 4, 4])],
            vec![vec![]],
            SHAPE,
            8,
        ));
        assert!(e.message().contains("limit is 8"), "{e:?}");
    }

    fn out(name: &str, k: Option<InferParameter>) -> InferRequestedOutputTensor {
        InferRequestedOutputTensor {
            name: name.into(),
            parameters: k
                .map(|p| [(CLASSIFICATION_PARAMETER.to_string(), p)].into())
                .unwrap_or_default(),
        }
    }

    fn int(v: i64) -> Option<InferParameter> {
        Some(InferParameter {
            parameter_choice: Some(ParameterChoice::Int64Param(v)),
        })
    }

    #[test]
    fn outputs_requested() {
        let all = parse_outputs(&[], 10).unwrap();
        assert_eq!(all.len(), 2);
        let r = parse_outputs(&[out("PROBABILITIES", int(3)), out("LOGITS", None)], 10).unwrap();
        assert_eq!(r[0].classification, Some(3));
        assert_eq!(r[1].kind, OutputKind::Logits);
        assert_eq!(
            parse_outputs(&[out("LOGITS", int(50))], 10).unwrap()[0].classification,
            Some(10)
        );
        for (outs, expected) in [
            (vec![out("SCORES", None)], "unknown output"),
            (vec![out("LOGITS", None), out("LOGITS", None)], "twice"),
            (vec![out("LOGITS", int(0))], "at least 1"),
            (
                vec![out(
                    "LOGITS",
                    Some(InferParameter {
                        parameter_choice: Some(ParameterChoice::StringParam("5".into())),
                    }),
                )],
                "non-integer",
            ),
        ] {
            let e = parse_outputs(&outs, 10).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains(expected), "{expected:?} not in {e:?}");
        }
    }

    #[test]
    fn outputs_built_raw_and_typed() {
        let logits = vec![vec![1.0f32, 3.0, 2.0], vec![0.0, 0.0, 5.0]];
        let labels = Labels::parse("cat\ndog\nfox\n");
        let requested =
            parse_outputs(&[out("LOGITS", None), out("PROBABILITIES", int(2))], 3).unwrap();
        let (typed, raw) = build_outputs(&requested, &logits, &labels, false);
        assert!(raw.is_empty());
        assert_eq!(typed[0].shape, vec![2, 3]);
        assert_eq!(
            typed[0].contents.as_ref().unwrap().fp32_contents,
            vec![1.0, 3.0, 2.0, 0.0, 0.0, 5.0]
        );
        // Probabilities computed here independently of softmax(): e^x / sum e^x.
        let p = |row: &[f32], i: usize| {
            let sum: f64 = row.iter().map(|&v| f64::from(v).exp()).sum();
            f64::from(row[i]).exp() / sum
        };
        let strings: Vec<String> = typed[1]
            .contents
            .as_ref()
            .unwrap()
            .bytes_contents
            .iter()
            .map(|b| String::from_utf8(b.clone()).unwrap())
            .collect();
        assert_eq!(typed[1].datatype, "BYTES");
        assert_eq!(typed[1].shape, vec![2, 2]);
        assert_eq!(
            strings,
            vec![
                format!("{:.6}:1:dog", p(&logits[0], 1)),
                format!("{:.6}:2:fox", p(&logits[0], 2)),
                format!("{:.6}:2:fox", p(&logits[1], 2)),
                format!("{:.6}:0:cat", p(&logits[1], 0)),
            ]
        );
        let (raw_tensors, raw) = build_outputs(&requested, &logits, &labels, true);
        assert!(raw_tensors.iter().all(|t| t.contents.is_none()));
        assert_eq!(raw.len(), 2);
        let floats: Vec<f32> = raw[0]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(floats, typed[0].contents.as_ref().unwrap().fp32_contents);
        let split = split_raw_bytes(&raw[1], 4, "x").unwrap();
        assert_eq!(split, typed[1].contents.as_ref().unwrap().bytes_contents);
    }
}
