//! OIP inputs: which input a request carries (`IMAGE`: encoded files, or `INPUT`: preprocessed
//! tensors) and its data, raw or typed.
//!
//! Wire rules (Open Inference Protocol v2, gRPC): `raw_input_contents` has one entry per input, in
//! `inputs` order, and when it is used no input carries typed `contents`. Raw data is flat,
//! row-major, little-endian; a BYTES element travels as a 4-byte little-endian length followed by
//! its bytes ([`super::bytes_codec`]).

use std::collections::HashSet;

use tonic::Status;

use super::bytes_codec::split_raw_bytes;
use super::tensor_names::{shape_text, BYTES, FP32, IMAGE_INPUT, TENSOR_INPUT};
use crate::proto::inference::model_infer_request::InferInputTensor;
use crate::proto::inference::InferTensorContents;
use crate::server::log_text::untrusted;

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

/// The images of `inputs` (with `raw`, the request's `raw_input_contents`, taken out of it).
/// Returns them and whether the request used raw data.
pub fn parse_inputs(
    inputs: Vec<InferInputTensor>,
    raw: Vec<Vec<u8>>,
    shape: ImageShape,
    max_images: usize,
) -> Result<(Images, bool), Status> {
    let used_raw = !raw.is_empty();
    let input = the_one_input(inputs, raw.len(), shape)?;
    check_datatype(&input, used_raw)?;
    let n = batch_of(&input, shape, max_images)?;
    let raw_data = raw.into_iter().next();
    let images = if input.name == IMAGE_INPUT {
        Images::Encoded(encoded_files(input, raw_data, n)?)
    } else {
        Images::Preprocessed(preprocessed_tensors(input, raw_data, n, shape)?)
    };
    Ok((images, used_raw))
}

/// The request's one input: known names only, each once, not both, and one raw entry per input
/// when `raw_entries` is not 0.
fn the_one_input(
    inputs: Vec<InferInputTensor>,
    raw_entries: usize,
    shape: ImageShape,
) -> Result<InferInputTensor, Status> {
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
                untrusted(&input.name),
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
    if raw_entries != 0 && raw_entries != inputs.len() {
        return Err(invalid(format!(
            "raw_input_contents has {raw_entries} entries for {} input(s): it needs one per input, in order",
            inputs.len()
        )));
    }
    Ok(inputs.into_iter().next().expect("one input"))
}

/// Raw and typed data are not mixed, and the datatype is the input's.
fn check_datatype(input: &InferInputTensor, used_raw: bool) -> Result<(), Status> {
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
            untrusted(&input.datatype)
        )));
    }
    Ok(())
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

/// The `n` encoded files of input `IMAGE`, from its raw data or its `bytes_contents`.
fn encoded_files(
    input: InferInputTensor,
    raw_data: Option<Vec<u8>>,
    n: usize,
) -> Result<Vec<Vec<u8>>, Status> {
    if let Some(data) = raw_data {
        return split_raw_bytes(&data, n, IMAGE_INPUT);
    }
    let files = input.contents.map(|c| c.bytes_contents).unwrap_or_default();
    if files.len() != n {
        return Err(invalid(format!(
            "input {IMAGE_INPUT} has {} element(s) in contents.bytes_contents; its shape {} says {n}",
            files.len(),
            shape_text(&input.shape)
        )));
    }
    Ok(files)
}

/// The `n` tensors of input `INPUT`, from its raw data (little-endian FP32) or its
/// `fp32_contents`.
fn preprocessed_tensors(
    input: InferInputTensor,
    raw_data: Option<Vec<u8>>,
    n: usize,
    shape: ImageShape,
) -> Result<Vec<Vec<f32>>, Status> {
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
    Ok(values
        .chunks_exact(per_image)
        .map(<[f32]>::to_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::services::oip::bytes_codec::join_raw_bytes;

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
}
