//! [`Value`]: what the unpickler builds, and its iterative [`Drop`] (a value may be nested
//! arbitrarily deep).

use std::cell::RefCell;
use std::rc::Rc;

use crate::model::torch::strided::{StorageId, TensorRef};

/// A container shared by every reference to it (the memo, other containers), as in CPython.
pub(super) type SharedMut<T> = Rc<RefCell<T>>;

/// What the unpickler builds. Not `Debug`: values may be cyclic or nested arbitrarily deep; error
/// messages use [`Value::describe`].
#[derive(Clone)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes,
    Tuple(Rc<Vec<Value>>),
    List(SharedMut<Vec<Value>>),
    Dict(SharedMut<Vec<(Value, Value)>>),
    Class(String, String),
    Storage(StorageId),
    Tensor(Rc<TensorRef>),
    /// An instance of a class we do not interpret; absorbs items and state.
    Opaque(String),
    Mark,
}

impl Value {
    pub(super) fn key_string(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    pub(super) fn as_usize(&self) -> Option<usize> {
        match self {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        }
    }

    pub(super) fn usizes(&self) -> Option<Vec<usize>> {
        match self {
            Value::Tuple(items) => items.iter().map(Value::as_usize).collect(),
            Value::List(items) => items.borrow().iter().map(Value::as_usize).collect(),
            _ => None,
        }
    }

    /// A one-line description for error messages: scalars in full, containers by their length
    /// (their contents may be huge, deeply nested or cyclic).
    pub(super) fn describe(&self) -> String {
        match self {
            Value::Tuple(items) => format!("Tuple({} items)", items.len()),
            Value::List(items) => format!("List({} items)", items.borrow().len()),
            Value::Dict(items) => format!("Dict({} items)", items.borrow().len()),
            Value::Storage(s) => format!("Storage({:?})", s.key),
            Value::Tensor(t) => format!("Tensor({:?})", t.shape),
            Value::Bool(b) => format!("Bool({b})"),
            Value::Int(i) => format!("Int({i})"),
            Value::Float(f) => format!("Float({f:?})"),
            Value::Str(s) => format!("Str({s:?})"),
            Value::Class(m, n) => format!("Class({m:?}, {n:?})"),
            Value::Opaque(s) => format!("Opaque({s:?})"),
            Value::None => "None".into(),
            Value::Bytes => "Bytes".into(),
            Value::Mark => "Mark".into(),
        }
    }
}

impl Drop for Value {
    /// Iterative, so that dropping a deeply nested value (100 000 nested tuples are 100 kB of
    /// pickle) cannot overflow the stack: children this value owns alone are moved to a work list
    /// and dropped from there, each with no children left.
    fn drop(&mut self) {
        let mut pending = Vec::new();
        take_children(self, &mut pending);
        while let Some(mut v) = pending.pop() {
            take_children(&mut v, &mut pending);
        }
    }
}

/// Move the children of `v` out into `into`, when `v` is their only owner.
fn take_children(v: &mut Value, into: &mut Vec<Value>) {
    match v {
        Value::Tuple(items) => {
            if let Some(items) = Rc::get_mut(items) {
                into.append(items);
            }
        }
        Value::List(items) if Rc::strong_count(items) == 1 => {
            into.append(&mut items.borrow_mut());
        }
        Value::Dict(items) if Rc::strong_count(items) == 1 => {
            for (k, v) in items.borrow_mut().drain(..) {
                into.push(k);
                into.push(v);
            }
        }
        _ => {}
    }
}
