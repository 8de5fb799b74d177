//! [`parse_tensors`]: the tensors of an unpickled `data.pkl`, by dotted path.

use std::collections::HashSet;
use std::rc::Rc;

use super::unpickler::Unpickler;
use super::value::Value;
use crate::model::torch::strided::TensorRef;
use crate::model::torch::TorchFileError;

/// Parse a torch pickle (`data.pkl`) and return its tensors by dotted path
/// (`model.layers.0.blocks.0.attn.qkv.weight`), ignoring everything else.
pub(crate) fn parse_tensors(pickle: &[u8]) -> Result<Vec<(String, TensorRef)>, TorchFileError> {
    let root = Unpickler::default().run(pickle)?;
    let mut out = Vec::new();
    walk(&root, &mut Vec::new(), &mut out, 0, &mut HashSet::new());
    Ok(out)
}

/// Containers nested deeper than this are not searched for tensors.
const MAX_WALK_DEPTH: usize = 200;

/// Collect the tensors under `v` with their dotted paths. Each container is entered once (`seen`
/// holds their addresses): a pickle can make a container hold itself many times (memo references),
/// which would otherwise make the walk exponential. A container reached again is skipped; a real
/// state dict never holds one container under two keys.
fn walk(
    v: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<(String, TensorRef)>,
    depth: usize,
    seen: &mut HashSet<usize>,
) {
    if depth > MAX_WALK_DEPTH {
        return;
    }
    match v {
        Value::Dict(items) => {
            if !seen.insert(Rc::as_ptr(items) as *const () as usize) {
                return;
            }
            for (k, v) in items.borrow().iter() {
                if let Some(k) = k.key_string() {
                    path.push(k);
                    walk(v, path, out, depth + 1, seen);
                    path.pop();
                }
            }
        }
        Value::List(items) => {
            if !seen.insert(Rc::as_ptr(items) as *const () as usize) {
                return;
            }
            for (i, v) in items.borrow().iter().enumerate() {
                path.push(i.to_string());
                walk(v, path, out, depth + 1, seen);
                path.pop();
            }
        }
        Value::Tuple(items) => {
            if !seen.insert(Rc::as_ptr(items) as *const () as usize) {
                return;
            }
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                walk(v, path, out, depth + 1, seen);
                path.pop();
            }
        }
        Value::Tensor(t) => out.push((path.join("."), (**t).clone())),
        _ => {}
    }
}
