//! The KServe v2 REST inference body and Triton's binary tensor data extension, converted to and
//! from the gRPC messages `inference.ModelInferRequest` / `ModelInferResponse` that the OIP
//! service answers.
//!
//! A request body is JSON, or, with `Inference-Header-Content-Length: N`, N bytes of JSON followed
//! by the binary data of the inputs whose `parameters.binary_data_size` says how many bytes are
//! theirs, in input order. JSON `data` is flattened row-major (nested arrays accepted); an element
//! of a `BYTES` input is a string: for the `IMAGE` input, the image file in base64 (standard or
//! URL-safe alphabet, padding optional). Every input goes to the OIP service as raw bytes (BYTES
//! elements with their 4-byte little-endian length prefix, as Triton's binary form has them).
//!
//! An output goes back as binary data when its `parameters.binary_data` is true, or, when it does
//! not say, when the request's `parameters.binary_data_output` is true; otherwise as JSON `data`
//! (FP32 numbers; BYTES strings — the classification extension's `"p:index:label"`).

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::errors::HttpError;
use crate::proto::inference as pb;
use crate::proto::inference::infer_parameter::ParameterChoice;
use crate::server::services::oip::bytes_codec::{join_raw_bytes, split_raw_bytes};

/// The request header giving the JSON part's length.
pub const HEADER_LENGTH: &str = "inference-header-content-length";
/// Input/output parameter: bytes of binary data (inputs), or in the answer.
pub const BINARY_DATA_SIZE: &str = "binary_data_size";
/// Output parameter: answer this output as binary data.
pub const BINARY_DATA: &str = "binary_data";
/// Request parameter: answer every output as binary data unless it says otherwise.
pub const BINARY_DATA_OUTPUT: &str = "binary_data_output";

/// Most elements a JSON `data` array may have (nested arrays included).
const MAX_JSON_ELEMENTS: usize = 1 << 26;

fn bad(message: impl Into<String>) -> HttpError {
    HttpError::bad_request(message)
}

/// A JSON parameter map as OIP parameters.
fn parameters_of(
    value: Option<&Value>,
    whose: &str,
) -> Result<HashMap<String, pb::InferParameter>, HttpError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(HashMap::new());
    };
    let object = value
        .as_object()
        .ok_or_else(|| bad(format!("{whose}: `parameters` is not an object")))?;
    let mut out = HashMap::new();
    for (key, v) in object {
        let choice = match v {
            Value::Bool(b) => ParameterChoice::BoolParam(*b),
            Value::String(s) => ParameterChoice::StringParam(s.clone()),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => ParameterChoice::Int64Param(i),
                (None, Some(u), _) => ParameterChoice::Uint64Param(u),
                (_, _, Some(f)) => ParameterChoice::DoubleParam(f),
                _ => return Err(bad(format!("{whose}: parameter `{key}` is not a number"))),
            },
            _ => {
                return Err(bad(format!(
                    "{whose}: parameter `{key}` is not a bool, number or string"
                )))
            }
        };
        out.insert(
            key.clone(),
            pb::InferParameter {
                parameter_choice: Some(choice),
            },
        );
    }
    Ok(out)
}

fn parameter_json(p: &pb::InferParameter) -> Value {
    match &p.parameter_choice {
        Some(ParameterChoice::BoolParam(b)) => json!(b),
        Some(ParameterChoice::Int64Param(i)) => json!(i),
        Some(ParameterChoice::Uint64Param(u)) => json!(u),
        Some(ParameterChoice::DoubleParam(d)) => json!(d),
        Some(ParameterChoice::StringParam(s)) => json!(s),
        None => Value::Null,
    }
}

fn bool_parameter(map: &HashMap<String, pb::InferParameter>, key: &str) -> Option<bool> {
    match map.get(key)?.parameter_choice {
        Some(ParameterChoice::BoolParam(b)) => Some(b),
        _ => None,
    }
}

/// The leaves of a (nested) JSON array, row-major.
fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>, name: &str) -> Result<(), HttpError> {
    match value {
        Value::Array(items) => {
            for item in items {
                flatten(item, out, name)?;
            }
        }
        leaf => {
            if out.len() >= MAX_JSON_ELEMENTS {
                return Err(bad(format!(
                    "input {name}: more than {MAX_JSON_ELEMENTS} elements"
                )));
            }
            out.push(leaf);
        }
    }
    Ok(())
}

fn base64_image(text: &str, name: &str, index: usize) -> Result<Vec<u8>, HttpError> {
    let trimmed = text.trim();
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(trimmed).ok())
        .ok_or_else(|| {
            bad(format!(
                "input {name}: element {index} is not base64 (in JSON an image is the file in base64)"
            ))
        })
}

/// The raw little-endian bytes of a JSON `data` array of `datatype`.
fn json_data_to_raw(name: &str, datatype: &str, data: &Value) -> Result<Vec<u8>, HttpError> {
    let mut leaves = Vec::new();
    flatten(data, &mut leaves, name)?;
    let number = |v: &Value, i: usize| {
        v.as_f64().ok_or_else(|| {
            bad(format!(
                "input {name}: element {i} of a {datatype} tensor is not a number"
            ))
        })
    };
    let mut raw = Vec::new();
    match datatype {
        "BYTES" => {
            let mut elements = Vec::with_capacity(leaves.len());
            for (i, v) in leaves.iter().enumerate() {
                let text = v.as_str().ok_or_else(|| {
                    bad(format!(
                        "input {name}: element {i} of a BYTES tensor is not a string"
                    ))
                })?;
                elements.push(base64_image(text, name, i)?);
            }
            return Ok(join_raw_bytes(elements.iter().map(Vec::as_slice)));
        }
        "FP32" => {
            for (i, v) in leaves.iter().enumerate() {
                raw.extend_from_slice(&(number(v, i)? as f32).to_le_bytes());
            }
        }
        "FP64" => {
            for (i, v) in leaves.iter().enumerate() {
                raw.extend_from_slice(&number(v, i)?.to_le_bytes());
            }
        }
        other => {
            // The OIP service names what it accepts; pass the elements as 8-byte integers.
            for (i, v) in leaves.iter().enumerate() {
                let n = v.as_i64().ok_or_else(|| {
                    bad(format!(
                        "input {name}: element {i} of a {other} tensor is not an integer"
                    ))
                })?;
                raw.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
    Ok(raw)
}

/// The OIP request of a REST body (`json` is its JSON part, `binary` what follows it).
pub fn infer_request(
    model: &str,
    version: &str,
    json: &[u8],
    binary: &[u8],
) -> Result<pb::ModelInferRequest, HttpError> {
    let body: Value = serde_json::from_slice(json)
        .map_err(|e| bad(format!("the inference request is not valid JSON: {e}")))?;
    let object = body
        .as_object()
        .ok_or_else(|| bad("the inference request is not a JSON object"))?;
    let id = match object.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("`id` is not a string")),
    };
    let parameters = parameters_of(object.get("parameters"), "the request")?;
    let inputs_json = object
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the inference request has no `inputs` array"))?;
    let mut inputs = Vec::with_capacity(inputs_json.len());
    let mut raw = Vec::with_capacity(inputs_json.len());
    let mut offset = 0usize;
    for (i, input) in inputs_json.iter().enumerate() {
        let input = input
            .as_object()
            .ok_or_else(|| bad(format!("inputs[{i}] is not an object")))?;
        let name = input
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("inputs[{i}] has no `name` string")))?
            .to_string();
        let datatype = input
            .get("datatype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("input {name} has no `datatype` string")))?
            .to_string();
        let shape = input
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("input {name} has no `shape` array")))?
            .iter()
            .map(|d| d.as_i64().filter(|&d| d >= 0))
            .collect::<Option<Vec<i64>>>()
            .ok_or_else(|| {
                bad(format!(
                    "input {name}: `shape` is not non-negative integers"
                ))
            })?;
        let mut params = parameters_of(input.get("parameters"), &format!("input {name}"))?;
        let size = params.remove(BINARY_DATA_SIZE);
        let data = match size {
            Some(p) => {
                let n = match p.parameter_choice {
                    Some(ParameterChoice::Int64Param(n)) if n >= 0 => n as usize,
                    Some(ParameterChoice::Uint64Param(n)) => n as usize,
                    _ => {
                        return Err(bad(format!(
                            "input {name}: `binary_data_size` is not a byte count"
                        )))
                    }
                };
                if input.get("data").is_some() {
                    return Err(bad(format!(
                        "input {name} has both `data` and `binary_data_size`"
                    )));
                }
                let end = offset
                    .checked_add(n)
                    .filter(|&e| e <= binary.len())
                    .ok_or_else(|| {
                        bad(format!(
                            "input {name}: binary_data_size {n} goes past the {} bytes of binary data",
                            binary.len()
                        ))
                    })?;
                let bytes = binary[offset..end].to_vec();
                offset = end;
                bytes
            }
            None => {
                let data = input.get("data").ok_or_else(|| {
                    bad(format!(
                        "input {name} has neither `data` nor `binary_data_size`"
                    ))
                })?;
                json_data_to_raw(&name, &datatype, data)?
            }
        };
        inputs.push(pb::model_infer_request::InferInputTensor {
            name,
            datatype,
            shape,
            parameters: params,
            contents: None,
        });
        raw.push(data);
    }
    if offset != binary.len() {
        return Err(bad(format!(
            "{} bytes of binary data follow the JSON, the inputs take {offset}",
            binary.len()
        )));
    }
    let binary_default = bool_parameter(&parameters, BINARY_DATA_OUTPUT).unwrap_or(false);
    let mut outputs = Vec::new();
    if let Some(list) = object.get("outputs").filter(|v| !v.is_null()) {
        let list = list
            .as_array()
            .ok_or_else(|| bad("`outputs` is not an array"))?;
        for (i, out) in list.iter().enumerate() {
            let name = out
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("outputs[{i}] has no `name` string")))?;
            let params = parameters_of(out.get("parameters"), &format!("output {name}"))?;
            outputs.push(pb::model_infer_request::InferRequestedOutputTensor {
                name: name.to_string(),
                parameters: params,
            });
        }
    }
    let _ = binary_default;
    Ok(pb::ModelInferRequest {
        model_name: model.to_string(),
        model_version: version.to_string(),
        id,
        parameters,
        inputs,
        outputs,
        raw_input_contents: raw,
    })
}

/// Which outputs of `request` are answered as binary data (by name; the rest as JSON).
pub fn binary_outputs(request: &pb::ModelInferRequest) -> (bool, HashMap<String, bool>) {
    let default = bool_parameter(&request.parameters, BINARY_DATA_OUTPUT).unwrap_or(false);
    let explicit = request
        .outputs
        .iter()
        .filter_map(|o| Some((o.name.clone(), bool_parameter(&o.parameters, BINARY_DATA)?)))
        .collect();
    (default, explicit)
}

/// Drop the HTTP-only output parameters before the OIP service sees them.
pub fn strip_http_parameters(request: &mut pb::ModelInferRequest) {
    request.parameters.remove(BINARY_DATA_OUTPUT);
    for out in &mut request.outputs {
        out.parameters.remove(BINARY_DATA);
    }
}

/// The elements of an output as JSON values.
fn output_data(
    tensor: &pb::model_infer_response::InferOutputTensor,
    raw: &[u8],
) -> Result<Value, HttpError> {
    let count: i64 = tensor.shape.iter().product();
    Ok(match tensor.datatype.as_str() {
        "FP32" => Value::Array(
            raw.chunks_exact(4)
                .map(|c| json!(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        "BYTES" => {
            let elements = split_raw_bytes(raw, count.max(0) as usize, &tensor.name)
                .map_err(HttpError::from)?;
            Value::Array(
                elements
                    .iter()
                    .map(|e| json!(String::from_utf8_lossy(e)))
                    .collect(),
            )
        }
        other => {
            return Err(HttpError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "output {} has datatype {other}, which has no JSON form here",
                    tensor.name
                ),
            ))
        }
    })
}

/// The raw bytes of an answered output (the service answers raw for raw requests; typed contents
/// are encoded the same way).
fn output_raw(tensor: &pb::model_infer_response::InferOutputTensor) -> Vec<u8> {
    let Some(contents) = &tensor.contents else {
        return Vec::new();
    };
    if !contents.bytes_contents.is_empty() {
        return join_raw_bytes(contents.bytes_contents.iter().map(Vec::as_slice));
    }
    contents
        .fp32_contents
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// The REST answer: the JSON part and the binary data that follows it (empty when none).
pub fn infer_response(
    response: pb::ModelInferResponse,
    binary_default: bool,
    binary_by_name: &HashMap<String, bool>,
) -> Result<(Vec<u8>, Vec<u8>), HttpError> {
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut binary = Vec::new();
    for (i, tensor) in response.outputs.iter().enumerate() {
        let raw = match response.raw_output_contents.get(i) {
            Some(r) => r.clone(),
            None => output_raw(tensor),
        };
        let as_binary = binary_by_name
            .get(&tensor.name)
            .copied()
            .unwrap_or(binary_default);
        let mut params: Map<String, Value> = tensor
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), parameter_json(v)))
            .collect();
        let mut out = json!({
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        });
        if as_binary {
            params.insert(BINARY_DATA_SIZE.into(), json!(raw.len()));
            binary.extend_from_slice(&raw);
        } else {
            out["data"] = output_data(tensor, &raw)?;
        }
        if !params.is_empty() {
            out["parameters"] = Value::Object(params);
        }
        outputs.push(out);
    }
    let mut answer = json!({
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    });
    if !response.id.is_empty() {
        answer["id"] = json!(response.id);
    }
    if !response.parameters.is_empty() {
        answer["parameters"] = Value::Object(
            response
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), parameter_json(v)))
                .collect(),
        );
    }
    Ok((answer.to_string().into_bytes(), binary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_binary_inputs_become_raw_contents() {
        let json = br#"{"id":"a","inputs":[
            {"name":"IMAGE","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}},
            {"name":"X","shape":[1,2],"datatype":"FP32","data":[[1.5,2]]}],
            "outputs":[{"name":"PROBABILITIES","parameters":{"classification":3,"binary_data":false}}]}"#;
        let binary = [3, 0, 0, 0, b'a', b'b', b'c'];
        let r = infer_request("m", "", json, &binary).unwrap();
        assert_eq!(r.id, "a");
        assert_eq!(r.raw_input_contents[0], binary);
        assert_eq!(
            r.raw_input_contents[1],
            [1.5f32.to_le_bytes(), 2f32.to_le_bytes()].concat()
        );
        assert!(r.inputs[0].parameters.is_empty());
        let (default, by_name) = binary_outputs(&r);
        assert!(!default);
        assert_eq!(by_name.get("PROBABILITIES"), Some(&false));

        // An image in JSON is base64.
        let json =
            br#"{"inputs":[{"name":"IMAGE","shape":[1],"datatype":"BYTES","data":["YWJj"]}]}"#;
        let r = infer_request("m", "", json, &[]).unwrap();
        assert_eq!(r.raw_input_contents[0], [3, 0, 0, 0, b'a', b'b', b'c']);
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        for (body, binary, says) in [
            (&b"{"[..], &[][..], "not valid JSON"),
            (b"[]", &[], "not a JSON object"),
            (b"{}", &[], "no `inputs`"),
            (br#"{"inputs":[{"name":"IMAGE","shape":[1],"datatype":"BYTES","data":["%%%"]}]}"#, &[], "base64"),
            (br#"{"inputs":[{"name":"X","shape":[-1],"datatype":"FP32","data":[1]}]}"#, &[], "shape"),
            (br#"{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":["a"]}]}"#, &[], "not a number"),
            (br#"{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#, &[0u8; 4], "goes past"),
            (br#"{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[1]}]}"#, &[0u8; 4], "follow the JSON"),
        ] {
            let err = infer_request("m", "", body, binary).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.contains(says), "{}: {}", String::from_utf8_lossy(body), err.message);
        }
    }
}
