//! The unpickler proper: a [`PickleCursor`] over the bytes, and the [`Unpickler`]'s stack and memo,
//! one arm per opcode. Objects of classes it does not know become opaque values; only the tensor
//! rebuild functions and the plain containers are interpreted.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::opcodes::*;
use super::value::Value;
use crate::model::torch::strided::{StorageDtype, StorageId, TensorRef};
use crate::model::torch::TorchFileError;

/// Reads the opcodes' arguments.
struct PickleCursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> PickleCursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TorchFileError> {
        let offset = self.pos;
        let s = offset
            .checked_add(n)
            .and_then(|end| self.data.get(offset..end))
            .ok_or(TorchFileError::Truncated { offset })?;
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TorchFileError> {
        let offset = self.pos;
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| TorchFileError::Truncated { offset })
    }

    fn u8(&mut self) -> Result<u8, TorchFileError> {
        let [b] = self.array()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, TorchFileError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, TorchFileError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A u64 length; one beyond `usize` cannot be satisfied by the data either.
    fn len8(&mut self) -> Result<usize, TorchFileError> {
        let offset = self.pos;
        usize::try_from(u64::from_le_bytes(self.array()?))
            .map_err(|_| TorchFileError::Truncated { offset })
    }

    /// A newline-terminated text argument (the newline consumed, not returned).
    fn line(&mut self) -> Result<String, TorchFileError> {
        let offset = self.pos;
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(TorchFileError::UnterminatedLine { offset })?;
        let s = String::from_utf8_lossy(rest.get(..n).unwrap_or_default()).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
}

fn text(bytes: &[u8]) -> Result<String, TorchFileError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| TorchFileError::InvalidUtf8)
}

/// A `LONG1` / `LONG4` payload: little-endian two's complement; beyond 8 bytes, an opaque int.
fn long_le(bytes: &[u8]) -> Value {
    if bytes.len() > 8 {
        return Value::Opaque("int".into());
    }
    let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
        0xFF
    } else {
        0
    };
    let mut buf = [fill; 8];
    for (d, &s) in buf.iter_mut().zip(bytes) {
        *d = s;
    }
    Value::Int(i64::from_le_bytes(buf))
}

/// Pairs of consecutive items, for `DICT` / `SETITEMS` (`opcode`): an odd number of items is
/// refused, as CPython's unpickler refuses it ("odd number of items for DICT").
fn pairs(items: Vec<Value>, opcode: &'static str) -> Result<Vec<(Value, Value)>, TorchFileError> {
    if !items.len().is_multiple_of(2) {
        return Err(TorchFileError::OddItems {
            opcode,
            items: items.len(),
        });
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// `dict` and `collections.OrderedDict`: the containers a state dict is made of.
fn is_dict_class(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        ("collections", "OrderedDict") | ("builtins", "dict") | ("__builtin__", "dict")
    )
}

/// Modules of the storage classes `torch.load` accepts in a persistent id (`torch.FloatStorage`;
/// `torch.cuda.FloatStorage` in files of old versions, loaded onto the CPU here).
const STORAGE_MODULES: [&str; 2] = ["torch", "torch.cuda"];

/// The pickle machine: its stack and its memo.
#[derive(Default)]
pub(super) struct Unpickler {
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl Unpickler {
    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Value, TorchFileError> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err(TorchFileError::StackUnderflow),
            Some(v) => Ok(v),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, TorchFileError> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or(TorchFileError::MarkMissing)?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&self) -> Result<&Value, TorchFileError> {
        match self.stack.last() {
            Some(Value::Mark) | None => Err(TorchFileError::StackUnderflow),
            Some(v) => Ok(v),
        }
    }

    fn memoize(&mut self, index: u32) -> Result<(), TorchFileError> {
        let v = self.top()?.clone();
        self.memo.insert(index, v);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), TorchFileError> {
        let v = self
            .memo
            .get(&index)
            .cloned()
            .ok_or(TorchFileError::MemoMissing { index })?;
        self.push(v);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), TorchFileError> {
        let target = self.top()?;
        // SETITEM always brings two items.
        let items = pairs(items, "SETITEMS")?;
        match target {
            Value::Dict(d) => {
                d.borrow_mut().extend(items);
                Ok(())
            }
            Value::Opaque(_) => Ok(()),
            other => Err(TorchFileError::NotADict {
                target: other.describe(),
            }),
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), TorchFileError> {
        match self.top()? {
            Value::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            Value::Opaque(_) => Ok(()),
            other => Err(TorchFileError::NotAList {
                target: other.describe(),
            }),
        }
    }

    /// `cls.__new__(cls, *args)` (`NEWOBJ`, `NEWOBJ_EX`): a dict for `dict` and
    /// `collections.OrderedDict` (as `REDUCE` of them gives), an opaque object for any other class
    /// (a `dict` subclass such as yacs' `CfgNode` included: its items are not tensors we read).
    /// As in CPython, `cls` must be a class and `args` a tuple.
    fn new_object(
        opcode: &'static str,
        cls: &Value,
        args: &Value,
    ) -> Result<Value, TorchFileError> {
        let Value::Class(module, name) = cls else {
            return Err(TorchFileError::BadNewObject {
                opcode,
                what: "class argument isn't a class",
                found: cls.describe(),
            });
        };
        if !matches!(args, Value::Tuple(_)) {
            return Err(TorchFileError::BadNewObject {
                opcode,
                what: "expected an argument tuple",
                found: args.describe(),
            });
        }
        Ok(if is_dict_class(module, name) {
            Value::Dict(Rc::default())
        } else {
            Value::Opaque(format!("{module}.{name}"))
        })
    }

    fn global(module: &str, name: &str) -> Value {
        Value::Class(module.to_string(), name.to_string())
    }

    fn persistent_load(pid: Value) -> Result<Value, TorchFileError> {
        let Value::Tuple(items) = &pid else {
            return Err(TorchFileError::PersistentIdNotTuple {
                pid: pid.describe(),
            });
        };
        match items.as_slice() {
            [Value::Str(kind), Value::Class(module, class), key, ..] if kind == "storage" => {
                let dtype = STORAGE_MODULES
                    .contains(&module.as_str())
                    .then(|| StorageDtype::from_storage_class(class))
                    .flatten()
                    .ok_or_else(|| TorchFileError::UnsupportedStorageType {
                        class: format!("{module}.{class}"),
                    })?;
                let key = key
                    .key_string()
                    .ok_or(TorchFileError::StorageKeyNotString)?;
                Ok(Value::Storage(StorageId { key, dtype }))
            }
            _ => Err(TorchFileError::PersistentIdLayout),
        }
    }

    /// `callable(*args)` for the callables that matter; an opaque object for the others.
    fn reduce(mut callable: Value, mut args: Value) -> Result<Value, TorchFileError> {
        // A loop, not recursion: `_rebuild_from_type_v2` calls may nest as deep as the pickle's
        // tuples.
        loop {
            let Value::Class(module, name) = &callable else {
                return Ok(Value::Opaque("reduce".into()));
            };
            let args_vec: &[Value] = match &args {
                Value::Tuple(t) => t,
                _ => &[],
            };
            let bad_arguments = || TorchFileError::BadRebuildArguments {
                function: format!("{module}.{name}"),
            };
            let (func, inner) = match (module.as_str(), name.as_str()) {
                ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                    let [Value::Storage(storage), offset, shape, stride, ..] = args_vec else {
                        return Err(bad_arguments());
                    };
                    let bad = |what| TorchFileError::BadTensorArgument { what };
                    return Ok(Value::Tensor(Rc::new(TensorRef {
                        storage: storage.clone(),
                        offset: offset.as_usize().ok_or(bad("storage offset"))?,
                        shape: shape.usizes().ok_or(bad("tensor size"))?,
                        stride: stride.usizes().ok_or(bad("tensor stride"))?,
                    })));
                }
                // Tensor subclasses: `(func, new_type, args, state)`; the tensor is `func(*args)`.
                ("torch._tensor", "_rebuild_from_type_v2")
                | ("torch._utils", "_rebuild_from_type_v2") => match args_vec {
                    [func, _, inner @ Value::Tuple(_), ..] => (func.clone(), inner.clone()),
                    _ => return Err(bad_arguments()),
                },
                ("torch._utils", "_rebuild_parameter")
                | ("torch._utils", "_rebuild_parameter_with_state") => {
                    return match args_vec.first() {
                        Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                        _ => Err(bad_arguments()),
                    };
                }
                (m, n) if is_dict_class(m, n) => return Ok(Value::Dict(Rc::default())),
                _ => return Ok(Value::Opaque(format!("{module}.{name}"))),
            };
            callable = func;
            args = inner;
        }
    }

    /// Run the opcodes of `data` up to `STOP`; the value `STOP` pops.
    pub(super) fn run(mut self, data: &[u8]) -> Result<Value, TorchFileError> {
        let mut r = PickleCursor { data, pos: 0 };
        loop {
            let offset = r.pos;
            let op = r.u8()?;
            match op {
                PROTO => {
                    r.u8()?;
                }
                FRAME => {
                    r.array::<8>()?; // the frame's length: frames are not needed to read
                }
                STOP => return self.pop(),
                MARK => self.push(Value::Mark),
                EMPTY_DICT => self.push(Value::Dict(Rc::default())),
                EMPTY_LIST => self.push(Value::List(Rc::default())),
                EMPTY_TUPLE => self.push(Value::Tuple(Rc::default())),
                EMPTY_SET => self.push(Value::Opaque("set".into())),
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(Rc::new(items)));
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1) + 1;
                    let at = self
                        .stack
                        .len()
                        .checked_sub(n)
                        .ok_or(TorchFileError::StackUnderflow)?;
                    let items = self.stack.split_off(at);
                    if items.iter().any(|v| matches!(v, Value::Mark)) {
                        return Err(TorchFileError::StackUnderflow);
                    }
                    self.push(Value::Tuple(Rc::new(items)));
                }
                LIST => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(Rc::new(RefCell::new(items))));
                }
                DICT => {
                    let items = self.pop_mark()?;
                    self.push(Value::Dict(Rc::new(RefCell::new(pairs(items, "DICT")?))));
                }
                FROZENSET => {
                    self.pop_mark()?;
                    self.push(Value::Opaque("frozenset".into()));
                }
                APPEND => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                ADDITEMS => {
                    self.pop_mark()?; // to a set: ignored
                }
                SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                POP => {
                    self.stack.pop().ok_or(TorchFileError::StackUnderflow)?;
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                NONE => self.push(Value::None),
                NEWTRUE => self.push(Value::Bool(true)),
                NEWFALSE => self.push(Value::Bool(false)),
                BININT => {
                    let v = i32::from_le_bytes(r.array()?);
                    self.push(Value::Int(v.into()));
                }
                BININT1 => {
                    let v = r.u8()?;
                    self.push(Value::Int(v.into()));
                }
                BININT2 => {
                    let v = r.u16()?;
                    self.push(Value::Int(v.into()));
                }
                LONG1 => {
                    let n = usize::from(r.u8()?);
                    let v = long_le(r.take(n)?);
                    self.push(v);
                }
                LONG4 => {
                    let n = r.u32()? as usize;
                    let v = long_le(r.take(n)?);
                    self.push(v);
                }
                INT => {
                    let line = r.line()?;
                    self.push(match line.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(
                            s.parse()
                                .map_err(|_| TorchFileError::BadTextArgument { what: "INT" })?,
                        ),
                    });
                }
                LONG => {
                    let line = r.line()?;
                    self.push(
                        line.trim_end_matches('L')
                            .parse()
                            .map(Value::Int)
                            .unwrap_or(Value::Opaque("int".into())),
                    );
                }
                BINFLOAT => {
                    let v = f64::from_be_bytes(r.array()?);
                    self.push(Value::Float(v));
                }
                FLOAT => {
                    let line = r.line()?;
                    let v = line
                        .parse()
                        .map_err(|_| TorchFileError::BadTextArgument { what: "FLOAT" })?;
                    self.push(Value::Float(v));
                }
                BINUNICODE => {
                    let n = r.u32()? as usize;
                    let s = text(r.take(n)?)?;
                    self.push(Value::Str(s));
                }
                SHORT_BINUNICODE => {
                    let n = usize::from(r.u8()?);
                    let s = text(r.take(n)?)?;
                    self.push(Value::Str(s));
                }
                BINUNICODE8 => {
                    let n = r.len8()?;
                    let s = text(r.take(n)?)?;
                    self.push(Value::Str(s));
                }
                UNICODE => {
                    let line = r.line()?;
                    self.push(Value::Str(line));
                }
                BINSTRING | BINBYTES => {
                    let n = r.u32()? as usize;
                    r.take(n)?;
                    self.push(Value::Bytes);
                }
                SHORT_BINSTRING | SHORT_BINBYTES => {
                    let n = usize::from(r.u8()?);
                    r.take(n)?;
                    self.push(Value::Bytes);
                }
                BINBYTES8 | BYTEARRAY8 => {
                    let n = r.len8()?;
                    r.take(n)?;
                    self.push(Value::Bytes);
                }
                STRING => {
                    r.line()?;
                    self.push(Value::Bytes);
                }
                GLOBAL => {
                    let module = r.line()?;
                    let name = r.line()?;
                    self.push(Self::global(&module, &name));
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&module, &name) {
                        (Value::Str(m), Value::Str(n)) => self.push(Self::global(m, n)),
                        _ => return Err(TorchFileError::StackGlobalNotStrings),
                    }
                }
                BINPERSID => {
                    let pid = self.pop()?;
                    self.push(Self::persistent_load(pid)?);
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.push(Self::reduce(callable, args)?);
                }
                NEWOBJ => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.push(Self::new_object("NEWOBJ", &cls, &args)?);
                }
                NEWOBJ_EX => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.push(Self::new_object("NEWOBJ_EX", &cls, &args)?);
                }
                BUILD => {
                    // The state of a dict (OrderedDict `_metadata`) or of an opaque object is
                    // irrelevant to the tensors; a tensor's state too.
                    self.pop()?;
                    self.top()?;
                }
                BINPUT => {
                    let i = r.u8()?;
                    self.memoize(i.into())?;
                }
                LONG_BINPUT => {
                    let i = r.u32()?;
                    self.memoize(i)?;
                }
                PUT => {
                    let i = r
                        .line()?
                        .parse()
                        .map_err(|_| TorchFileError::BadTextArgument { what: "PUT index" })?;
                    self.memoize(i)?;
                }
                MEMOIZE => {
                    let i = self.memo.len() as u32;
                    self.memoize(i)?;
                }
                BINGET => {
                    let i = r.u8()?;
                    self.memo_get(i.into())?;
                }
                LONG_BINGET => {
                    let i = r.u32()?;
                    self.memo_get(i)?;
                }
                GET => {
                    let i = r
                        .line()?
                        .parse()
                        .map_err(|_| TorchFileError::BadTextArgument { what: "GET index" })?;
                    self.memo_get(i)?;
                }
                other => {
                    return Err(match opcode_name(other) {
                        Some(name) => TorchFileError::UnsupportedOpcode {
                            name,
                            opcode: other,
                            offset,
                        },
                        None => TorchFileError::UnknownOpcode {
                            opcode: other,
                            offset,
                        },
                    })
                }
            }
        }
    }
}
