//! What the unpickler tests share: running a pickle, showing what it built, and the opcodes it
//! refuses.

use crate::model::torch::pickle::opcodes::*;
use crate::model::torch::pickle::unpickler::Unpickler;
use crate::model::torch::pickle::value::Value;
use crate::model::torch::TorchFileError;

/// Opcodes of the protocol this unpickler refuses.
pub(super) const UNSUPPORTED: [u8; 8] = [
    PERSID,
    EXT1,
    EXT2,
    EXT4,
    INST,
    OBJ,
    NEXT_BUFFER,
    READONLY_BUFFER,
];

pub(super) fn run(bytes: &[u8]) -> Result<Value, TorchFileError> {
    Unpickler::default().run(bytes)
}

/// A Python-like rendering of what the unpickler built (nesting cut at 8 levels).
pub(super) fn show(v: &Value) -> String {
    fn go(v: &Value, depth: usize) -> String {
        if depth > 8 {
            return "…".into();
        }
        let join = |items: &[Value]| {
            items
                .iter()
                .map(|v| go(v, depth + 1))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match v {
            Value::None => "None".into(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Str(s) => format!("'{s}'"),
            Value::Bytes => "<bytes>".into(),
            Value::Tuple(items) if items.len() == 1 => format!("({},)", join(items)),
            Value::Tuple(items) => format!("({})", join(items)),
            Value::List(items) => format!("[{}]", join(&items.borrow())),
            Value::Dict(items) => format!(
                "{{{}}}",
                items
                    .borrow()
                    .iter()
                    .map(|(k, v)| format!("{}: {}", go(k, depth + 1), go(v, depth + 1)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Class(m, n) => format!("<class {m}.{n}>"),
            Value::Storage(s) => format!("<storage {} {:?}>", s.key, s.dtype),
            Value::Tensor(t) => format!(
                "<tensor {} {:?} +{} {:?} {:?}>",
                t.storage.key, t.storage.dtype, t.offset, t.shape, t.stride
            ),
            Value::Opaque(s) => format!("<{s}>"),
            Value::Mark => "<mark>".into(),
        }
    }
    go(v, 0)
}

/// The error `pickle` is refused with (a panic if it is accepted).
pub(super) fn err(pickle: &[u8]) -> TorchFileError {
    match run(pickle) {
        Ok(v) => panic!("{pickle:02x?} accepted: {}", show(&v)),
        Err(e) => e,
    }
}
