//! OIP outputs: which outputs a request wants (`LOGITS`, `PROBABILITIES`, each optionally through
//! the classification extension) and the output tensors for its images.
//!
//! An answer uses `raw_output_contents` when the request used raw inputs (as KServe's servers do;
//! Triton's clients send raw and read raw) and typed `contents` otherwise.

use std::collections::HashSet;

use tonic::Status;

use super::bytes_codec::join_raw_bytes;
use super::tensor_names::{
    BYTES, CLASSIFICATION_PARAMETER, FP32, LOGITS_OUTPUT, PROBABILITIES_OUTPUT,
};
use crate::postprocess::{softmax, top_k, Labels};
use crate::proto::inference::infer_parameter::ParameterChoice;
use crate::proto::inference::model_infer_request::InferRequestedOutputTensor;
use crate::proto::inference::model_infer_response::InferOutputTensor;
use crate::proto::inference::{InferParameter, InferTensorContents};
use crate::server::log_text::untrusted;

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

fn invalid(message: String) -> Status {
    Status::invalid_argument(message)
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
            let kind = output_kind(&out.name, num_classes)?;
            if !seen.insert(kind) {
                return Err(invalid(format!(
                    "output {} is requested twice",
                    kind.name()
                )));
            }
            Ok(OutputRequest {
                kind,
                classification: classification_of(out, kind, num_classes)?,
            })
        })
        .collect()
}

/// The output called `name`.
fn output_kind(name: &str, num_classes: usize) -> Result<OutputKind, Status> {
    match name {
        LOGITS_OUTPUT => Ok(OutputKind::Logits),
        PROBABILITIES_OUTPUT => Ok(OutputKind::Probabilities),
        other => Err(invalid(format!(
            "unknown output {:?}: this model has {LOGITS_OUTPUT} and {PROBABILITIES_OUTPUT} ({FP32} [-1, {num_classes}])",
            untrusted(other)
        ))),
    }
}

/// The top k the output's `classification` parameter asks for, if any.
fn classification_of(
    out: &InferRequestedOutputTensor,
    kind: OutputKind,
    num_classes: usize,
) -> Result<Option<usize>, Status> {
    let Some(p) = out.parameters.get(CLASSIFICATION_PARAMETER) else {
        return Ok(None);
    };
    match integer_parameter(p) {
        Some(k) if k >= 1 => Ok(Some((k.min(num_classes as i128)) as usize)),
        Some(k) => Err(invalid(format!(
            "output {} asks for classification {k}; it must be at least 1",
            kind.name()
        ))),
        None => Err(invalid(format!(
            "output {} has a non-integer {CLASSIFICATION_PARAMETER} parameter; give int64 k (the top k classes)",
            kind.name()
        ))),
    }
}

/// The output tensors for `logits` (one row per image), and their raw data when `raw`.
pub fn build_outputs(
    requested: &[OutputRequest],
    logits: &[Vec<f32>],
    labels: &Labels,
    raw: bool,
) -> (Vec<InferOutputTensor>, Vec<Vec<u8>>) {
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
        let data = match out.classification {
            None => fill_values(&mut tensor, values, raw),
            Some(k) => fill_classification(&mut tensor, logits, values, k, labels, raw),
        };
        raw_data.extend(data);
        tensors.push(tensor);
    }
    (tensors, raw_data)
}

/// `values` (one row per image) as an FP32 `[n, classes]` tensor: in `tensor`'s typed contents,
/// or returned as its raw data when `raw`.
fn fill_values(tensor: &mut InferOutputTensor, values: &[Vec<f32>], raw: bool) -> Option<Vec<u8>> {
    let num_classes = values.first().map_or(0, Vec::len);
    tensor.datatype = FP32.into();
    tensor.shape = vec![values.len() as i64, num_classes as i64];
    let flat = values.iter().flatten().copied();
    if raw {
        return Some(flat.flat_map(f32::to_le_bytes).collect());
    }
    tensor.contents = Some(InferTensorContents {
        fp32_contents: flat.collect(),
        ..Default::default()
    });
    None
}

/// The classification extension: each image's top `k` classes as BYTES `"value:index:label"`
/// strings, a `[n, k]` tensor, typed or returned as raw data when `raw`.
fn fill_classification(
    tensor: &mut InferOutputTensor,
    logits: &[Vec<f32>],
    values: &[Vec<f32>],
    k: usize,
    labels: &Labels,
    raw: bool,
) -> Option<Vec<u8>> {
    // Ranked by logit (the exact order; softmax keeps it), reported with this output's values,
    // as Triton's "value:index:label".
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
    tensor.shape = vec![logits.len() as i64, k as i64];
    if raw {
        return Some(join_raw_bytes(strings.iter().map(Vec::as_slice)));
    }
    tensor.contents = Some(InferTensorContents {
        bytes_contents: strings,
        ..Default::default()
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::services::oip::bytes_codec::split_raw_bytes;

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
