//! A tolerant unpickler for the `data.pkl` of a torch checkpoint.
//!
//! Checkpoints saved by the official training script (`utils.save_checkpoint`) hold
//! `'config': yacs.config.CfgNode`, a `dict` subclass the pickle rebuilds with `NEWOBJ` followed
//! by `SETITEMS`. Here every object of a class we do not know becomes an
//! opaque container that accepts items and state and is otherwise ignored; only tensors
//! (`torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` over a persistent-id storage) and the
//! plain containers around them (dict, `collections.OrderedDict`, list, tuple) are interpreted.
//!
//! Containers are shared (`Rc<RefCell<…>>`) as in CPython, so a memoized dict that is filled after
//! being memoized reads back filled.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::strided::{StorageDtype, StorageId, TensorRef};
use super::TorchFileError;

// Opcodes, named as Python's `pickletools` names them.
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const POP: u8 = b'0';
const POP_MARK: u8 = b'1';
const DUP: u8 = b'2';
const FLOAT: u8 = b'F';
const INT: u8 = b'I';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const LONG: u8 = b'L';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const PERSID: u8 = b'P';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const STRING: u8 = b'S';
const BINSTRING: u8 = b'T';
const SHORT_BINSTRING: u8 = b'U';
const UNICODE: u8 = b'V';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const BUILD: u8 = b'b';
const GLOBAL: u8 = b'c';
const DICT: u8 = b'd';
const EMPTY_DICT: u8 = b'}';
const APPENDS: u8 = b'e';
const GET: u8 = b'g';
const BINGET: u8 = b'h';
const INST: u8 = b'i';
const LONG_BINGET: u8 = b'j';
const LIST: u8 = b'l';
const EMPTY_LIST: u8 = b']';
const OBJ: u8 = b'o';
const PUT: u8 = b'p';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const EMPTY_TUPLE: u8 = b')';
const SETITEMS: u8 = b'u';
const BINFLOAT: u8 = b'G';
// Protocol 2.
const PROTO: u8 = 0x80;
const NEWOBJ: u8 = 0x81;
const EXT1: u8 = 0x82;
const EXT2: u8 = 0x83;
const EXT4: u8 = 0x84;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const LONG4: u8 = 0x8b;
// Protocol 3.
const BINBYTES: u8 = b'B';
const SHORT_BINBYTES: u8 = b'C';
// Protocol 4.
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const BINBYTES8: u8 = 0x8e;
const EMPTY_SET: u8 = 0x8f;
const ADDITEMS: u8 = 0x90;
const FROZENSET: u8 = 0x91;
const NEWOBJ_EX: u8 = 0x92;
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const FRAME: u8 = 0x95;
// Protocol 5.
const BYTEARRAY8: u8 = 0x96;
const NEXT_BUFFER: u8 = 0x97;
const READONLY_BUFFER: u8 = 0x98;

/// The `pickletools` name of an opcode, `None` for a byte that is no opcode.
fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        MARK => "MARK",
        STOP => "STOP",
        POP => "POP",
        POP_MARK => "POP_MARK",
        DUP => "DUP",
        FLOAT => "FLOAT",
        INT => "INT",
        BININT => "BININT",
        BININT1 => "BININT1",
        LONG => "LONG",
        BININT2 => "BININT2",
        NONE => "NONE",
        PERSID => "PERSID",
        BINPERSID => "BINPERSID",
        REDUCE => "REDUCE",
        STRING => "STRING",
        BINSTRING => "BINSTRING",
        SHORT_BINSTRING => "SHORT_BINSTRING",
        UNICODE => "UNICODE",
        BINUNICODE => "BINUNICODE",
        APPEND => "APPEND",
        BUILD => "BUILD",
        GLOBAL => "GLOBAL",
        DICT => "DICT",
        EMPTY_DICT => "EMPTY_DICT",
        APPENDS => "APPENDS",
        GET => "GET",
        BINGET => "BINGET",
        INST => "INST",
        LONG_BINGET => "LONG_BINGET",
        LIST => "LIST",
        EMPTY_LIST => "EMPTY_LIST",
        OBJ => "OBJ",
        PUT => "PUT",
        BINPUT => "BINPUT",
        LONG_BINPUT => "LONG_BINPUT",
        SETITEM => "SETITEM",
        TUPLE => "TUPLE",
        EMPTY_TUPLE => "EMPTY_TUPLE",
        SETITEMS => "SETITEMS",
        BINFLOAT => "BINFLOAT",
        PROTO => "PROTO",
        NEWOBJ => "NEWOBJ",
        EXT1 => "EXT1",
        EXT2 => "EXT2",
        EXT4 => "EXT4",
        TUPLE1 => "TUPLE1",
        TUPLE2 => "TUPLE2",
        TUPLE3 => "TUPLE3",
        NEWTRUE => "NEWTRUE",
        NEWFALSE => "NEWFALSE",
        LONG1 => "LONG1",
        LONG4 => "LONG4",
        BINBYTES => "BINBYTES",
        SHORT_BINBYTES => "SHORT_BINBYTES",
        SHORT_BINUNICODE => "SHORT_BINUNICODE",
        BINUNICODE8 => "BINUNICODE8",
        BINBYTES8 => "BINBYTES8",
        EMPTY_SET => "EMPTY_SET",
        ADDITEMS => "ADDITEMS",
        FROZENSET => "FROZENSET",
        NEWOBJ_EX => "NEWOBJ_EX",
        STACK_GLOBAL => "STACK_GLOBAL",
        MEMOIZE => "MEMOIZE",
        FRAME => "FRAME",
        BYTEARRAY8 => "BYTEARRAY8",
        NEXT_BUFFER => "NEXT_BUFFER",
        READONLY_BUFFER => "READONLY_BUFFER",
        _ => return None,
    })
}

type Shared<T> = Rc<RefCell<T>>;

/// What the unpickler builds. Not `Debug`: values may be cyclic or nested arbitrarily deep; error
/// messages use [`Value::describe`].
#[derive(Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes,
    Tuple(Rc<Vec<Value>>),
    List(Shared<Vec<Value>>),
    Dict(Shared<Vec<(Value, Value)>>),
    Class(String, String),
    Storage(StorageId),
    Tensor(Rc<TensorRef>),
    /// An instance of a class we do not interpret; absorbs items and state.
    Opaque(String),
    Mark,
}

impl Value {
    fn key_string(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    fn as_usize(&self) -> Option<usize> {
        match self {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        }
    }

    fn usizes(&self) -> Option<Vec<usize>> {
        match self {
            Value::Tuple(items) => items.iter().map(Value::as_usize).collect(),
            Value::List(items) => items.borrow().iter().map(Value::as_usize).collect(),
            _ => None,
        }
    }

    /// A one-line description for error messages: scalars in full, containers by their length
    /// (their contents may be huge, deeply nested or cyclic).
    fn describe(&self) -> String {
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

/// Reads the opcodes' arguments.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
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

#[derive(Default)]
struct Unpickler {
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

    fn run(mut self, data: &[u8]) -> Result<Value, TorchFileError> {
        let mut r = Cursor { data, pos: 0 };
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Opcodes of the protocol this unpickler refuses.
    const UNSUPPORTED: [u8; 8] = [
        PERSID,
        EXT1,
        EXT2,
        EXT4,
        INST,
        OBJ,
        NEXT_BUFFER,
        READONLY_BUFFER,
    ];

    fn run(bytes: &[u8]) -> Result<Value, TorchFileError> {
        Unpickler::default().run(bytes)
    }

    /// A Python-like rendering of what the unpickler built (nesting cut at 8 levels).
    fn show(v: &Value) -> String {
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

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// `SHORT_BINUNICODE` of `s`.
    fn su(s: &str) -> Vec<u8> {
        let mut b = vec![SHORT_BINUNICODE, s.len() as u8];
        b.extend(s.as_bytes());
        b
    }

    /// `GLOBAL module\nname\n`.
    fn global(module: &str, name: &str) -> Vec<u8> {
        let mut b = vec![GLOBAL];
        b.extend(format!("{module}\n{name}\n").bytes());
        b
    }

    /// `BINPERSID` of `('storage', torch.<class>, key, 'cpu', numel)`, as torch.save writes it.
    fn storage(class: &str, key: &str, numel: u8) -> Vec<u8> {
        cat(&[
            &[MARK],
            &su("storage"),
            &global("torch", class),
            &su(key),
            &su("cpu"),
            &[BININT1, numel, TUPLE, BINPERSID],
        ])
    }

    /// A tuple of small ints: `MARK BININT1… TUPLE`.
    fn ints(values: &[u8]) -> Vec<u8> {
        let mut b = vec![MARK];
        for &v in values {
            b.extend([BININT1, v]);
        }
        b.push(TUPLE);
        b
    }

    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    fn tensor_v2(storage_pid: &[u8], offset: u8, size: &[u8], stride: &[u8]) -> Vec<u8> {
        cat(&[
            &global("torch._utils", "_rebuild_tensor_v2"),
            &[MARK],
            storage_pid,
            &[BININT1, offset],
            &ints(size),
            &ints(stride),
            &[NEWFALSE],
            &global("collections", "OrderedDict"),
            &[EMPTY_TUPLE, REDUCE, TUPLE, REDUCE],
        ])
    }

    /// One accepted opcode each: `(opcode, pickle, what it builds)`.
    fn accepted_cases() -> Vec<(u8, Vec<u8>, &'static str)> {
        let k = |v: u8| [BININT1, v];
        vec![
            (PROTO, vec![PROTO, 2, NONE, STOP], "None"),
            (
                FRAME,
                cat(&[&[PROTO, 4, FRAME], &2u64.to_le_bytes(), &[NONE, STOP]]),
                "None",
            ),
            (STOP, vec![NEWTRUE, NONE, STOP], "None"),
            (
                MARK,
                cat(&[&[MARK], &k(1), &k(2), &[TUPLE, STOP]]),
                "(1, 2)",
            ),
            (EMPTY_DICT, vec![EMPTY_DICT, STOP], "{}"),
            (EMPTY_LIST, vec![EMPTY_LIST, STOP], "[]"),
            (EMPTY_TUPLE, vec![EMPTY_TUPLE, STOP], "()"),
            (EMPTY_SET, vec![EMPTY_SET, STOP], "<set>"),
            (
                ADDITEMS,
                cat(&[&[EMPTY_SET, MARK], &k(1), &k(2), &[ADDITEMS, STOP]]),
                "<set>",
            ),
            (TUPLE, vec![MARK, TUPLE, STOP], "()"),
            (TUPLE1, cat(&[&k(1), &[TUPLE1, STOP]]), "(1,)"),
            (TUPLE2, cat(&[&k(1), &k(2), &[TUPLE2, STOP]]), "(1, 2)"),
            (
                TUPLE3,
                cat(&[&k(1), &k(2), &k(3), &[TUPLE3, STOP]]),
                "(1, 2, 3)",
            ),
            (LIST, cat(&[&[MARK], &k(1), &k(2), &[LIST, STOP]]), "[1, 2]"),
            (
                DICT,
                cat(&[&[MARK], &su("a"), &k(1), &su("b"), &k(2), &[DICT, STOP]]),
                "{'a': 1, 'b': 2}",
            ),
            (
                FROZENSET,
                cat(&[&[MARK], &k(1), &[FROZENSET, STOP]]),
                "<frozenset>",
            ),
            (APPEND, cat(&[&[EMPTY_LIST], &k(1), &[APPEND, STOP]]), "[1]"),
            (
                APPENDS,
                cat(&[&[EMPTY_LIST, MARK], &k(1), &k(2), &[APPENDS, STOP]]),
                "[1, 2]",
            ),
            (
                SETITEM,
                cat(&[&[EMPTY_DICT], &su("a"), &k(1), &[SETITEM, STOP]]),
                "{'a': 1}",
            ),
            (
                SETITEMS,
                cat(&[
                    &[EMPTY_DICT, MARK],
                    &su("a"),
                    &k(1),
                    &su("b"),
                    &k(2),
                    &[SETITEMS, STOP],
                ]),
                "{'a': 1, 'b': 2}",
            ),
            (POP, cat(&[&k(1), &k(2), &[POP, STOP]]), "1"),
            (
                POP_MARK,
                cat(&[&k(1), &[MARK], &k(2), &k(3), &[POP_MARK, STOP]]),
                "1",
            ),
            (DUP, cat(&[&k(7), &[DUP, TUPLE2, STOP]]), "(7, 7)"),
            (NONE, vec![NONE, STOP], "None"),
            (NEWTRUE, vec![NEWTRUE, STOP], "True"),
            (NEWFALSE, vec![NEWFALSE, STOP], "False"),
            (BININT, vec![BININT, 0xfe, 0xff, 0xff, 0xff, STOP], "-2"),
            (BININT1, vec![BININT1, 0xff, STOP], "255"),
            (BININT2, vec![BININT2, 0x01, 0x02, STOP], "513"),
            (LONG1, vec![LONG1, 2, 0x00, 0x80, STOP], "-32768"),
            (
                LONG4,
                vec![LONG4, 3, 0, 0, 0, 0x01, 0x00, 0x01, STOP],
                "65537",
            ),
            (INT, b"I-42\n.".to_vec(), "-42"),
            (LONG, b"L123L\n.".to_vec(), "123"),
            (
                BINFLOAT,
                vec![BINFLOAT, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, STOP],
                "1.5",
            ),
            (FLOAT, b"F-0.25\n.".to_vec(), "-0.25"),
            (
                BINUNICODE,
                cat(&[&[BINUNICODE, 6, 0, 0, 0], "héllo".as_bytes(), &[STOP]]),
                "'héllo'",
            ),
            (SHORT_BINUNICODE, cat(&[&su("ab"), &[STOP]]), "'ab'"),
            (
                BINUNICODE8,
                cat(&[&[BINUNICODE8], &3u64.to_le_bytes(), b"xyz", &[STOP]]),
                "'xyz'",
            ),
            (UNICODE, b"Vabc\n.".to_vec(), "'abc'"),
            (STRING, b"S'abc'\n.".to_vec(), "<bytes>"),
            (
                BINSTRING,
                cat(&[&[BINSTRING, 3, 0, 0, 0], b"abc", &[STOP]]),
                "<bytes>",
            ),
            (
                SHORT_BINSTRING,
                cat(&[&[SHORT_BINSTRING, 2], b"ab", &[STOP]]),
                "<bytes>",
            ),
            (
                BINBYTES,
                cat(&[&[BINBYTES, 1, 0, 0, 0], b"a", &[STOP]]),
                "<bytes>",
            ),
            (SHORT_BINBYTES, vec![SHORT_BINBYTES, 0, STOP], "<bytes>"),
            (
                BINBYTES8,
                cat(&[&[BINBYTES8], &2u64.to_le_bytes(), b"ab", &[STOP]]),
                "<bytes>",
            ),
            (
                BYTEARRAY8,
                cat(&[&[BYTEARRAY8], &1u64.to_le_bytes(), b"a", &[STOP]]),
                "<bytes>",
            ),
            (
                GLOBAL,
                cat(&[&global("torch", "FloatStorage"), &[STOP]]),
                "<class torch.FloatStorage>",
            ),
            (
                STACK_GLOBAL,
                cat(&[
                    &su("collections"),
                    &su("OrderedDict"),
                    &[STACK_GLOBAL, STOP],
                ]),
                "<class collections.OrderedDict>",
            ),
            (
                BINPERSID,
                cat(&[&storage("HalfStorage", "17", 4), &[STOP]]),
                "<storage 17 F16>",
            ),
            (
                REDUCE,
                cat(&[
                    &global("collections", "OrderedDict"),
                    &[EMPTY_TUPLE, REDUCE, STOP],
                ]),
                "{}",
            ),
            (
                NEWOBJ,
                cat(&[
                    &global("yacs.config", "CfgNode"),
                    &[EMPTY_TUPLE, NEWOBJ, STOP],
                ]),
                "<yacs.config.CfgNode>",
            ),
            (
                NEWOBJ_EX,
                cat(&[
                    &global("a", "B"),
                    &[EMPTY_TUPLE, EMPTY_DICT, NEWOBJ_EX, STOP],
                ]),
                "<a.B>",
            ),
            (
                BUILD,
                cat(&[&[EMPTY_DICT], &su("state"), &[BUILD, STOP]]),
                "{}",
            ),
            // Memo: a list memoized empty, then filled, reads back filled.
            (
                BINPUT,
                cat(&[
                    &[EMPTY_LIST, BINPUT, 3],
                    &k(1),
                    &[APPEND, POP, BINGET, 3, STOP],
                ]),
                "[1]",
            ),
            (
                BINGET,
                cat(&[&k(5), &[BINPUT, 0, BINGET, 0, TUPLE2, STOP]]),
                "(5, 5)",
            ),
            (
                LONG_BINPUT,
                cat(&[
                    &[EMPTY_DICT, LONG_BINPUT, 0x70, 0x11, 0x01, 0x00],
                    &su("k"),
                    &k(2),
                    &[SETITEM, POP, LONG_BINGET, 0x70, 0x11, 0x01, 0x00, STOP],
                ]),
                "{'k': 2}",
            ),
            (
                LONG_BINGET,
                cat(&[
                    &k(9),
                    &[LONG_BINPUT, 0xff, 0xff, 0xff, 0xff],
                    &[LONG_BINGET, 0xff, 0xff, 0xff, 0xff, TUPLE2, STOP],
                ]),
                "(9, 9)",
            ),
            (PUT, cat(&[&k(4), b"p12\n0g12\n."]), "4"),
            (GET, cat(&[&k(4), b"p0\ng0\n\x86."]), "(4, 4)"),
            // MEMOIZE numbers slots 0, 1, … in order.
            (
                MEMOIZE,
                cat(&[
                    &[EMPTY_DICT, MEMOIZE, NONE, MEMOIZE, POP, POP],
                    &[BINGET, 1, BINGET, 0, TUPLE2, STOP],
                ]),
                "(None, {})",
            ),
        ]
    }

    #[test]
    fn opcode_constants_cover_the_protocol() {
        let named: Vec<u8> = (0..=255u8)
            .filter(|&op| opcode_name(op).is_some())
            .collect();
        // pickletools.opcodes has 68 entries (protocols 0 to 5).
        assert_eq!(named.len(), 68);
        assert_eq!(opcode_name(PROTO), Some("PROTO"));
        assert_eq!(opcode_name(EMPTY_DICT), Some("EMPTY_DICT"));
        assert_eq!(opcode_name(b'}'), Some("EMPTY_DICT"));
        assert_eq!(opcode_name(0x99), None);
        assert_eq!(opcode_name(0), None);
    }

    #[test]
    fn every_opcode_is_either_accepted_and_tested_or_refused() {
        let tested: HashSet<u8> = accepted_cases().iter().map(|c| c.0).collect();
        for op in 0..=255u8 {
            if let Some(name) = opcode_name(op) {
                assert!(
                    tested.contains(&op) != UNSUPPORTED.contains(&op),
                    "{name}: tested {}, refused {}",
                    tested.contains(&op),
                    UNSUPPORTED.contains(&op)
                );
            }
        }
    }

    #[test]
    fn accepted_opcodes_build_what_python_would() {
        for (op, pickle, expected) in accepted_cases() {
            let name = opcode_name(op).unwrap();
            assert!(pickle.contains(&op), "{name}: case does not use it");
            match run(&pickle) {
                Ok(v) => assert_eq!(show(&v), expected, "{name}"),
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }

    #[test]
    fn integer_and_text_variants() {
        for (pickle, expected) in [
            (vec![LONG1, 0, STOP], "0"),
            (vec![LONG1, 1, 0xff, STOP], "-1"),
            (vec![LONG1, 1, 0x7f, STOP], "127"),
            (
                cat(&[&[LONG1, 8], &i64::MIN.to_le_bytes(), &[STOP]]),
                "-9223372036854775808",
            ),
            // Beyond 8 bytes: an int we do not represent.
            (cat(&[&[LONG1, 9], &[0; 9], &[STOP]]), "<int>"),
            (cat(&[&[LONG4, 9, 0, 0, 0], &[1; 9], &[STOP]]), "<int>"),
            (vec![BININT, 0xff, 0xff, 0xff, 0x7f, STOP], "2147483647"),
            (b"I00\n.".to_vec(), "False"),
            (b"I01\n.".to_vec(), "True"),
            (b"I7\n.".to_vec(), "7"),
            (b"L-5\n.".to_vec(), "-5"),
            (b"L99999999999999999999999L\n.".to_vec(), "<int>"),
            (b"F1e3\n.".to_vec(), "1000.0"),
            (b"V\n.".to_vec(), "''"),
            (cat(&[&su(""), &[STOP]]), "''"),
        ] {
            assert_eq!(show(&run(&pickle).unwrap()), expected, "{pickle:02x?}");
        }
    }

    #[test]
    fn reduce_and_newobj_of_known_and_unknown_callables() {
        for (pickle, expected) in [
            (
                cat(&[&global("builtins", "dict"), &[EMPTY_TUPLE, REDUCE, STOP]]),
                "{}",
            ),
            (
                cat(&[&global("__builtin__", "dict"), &[EMPTY_TUPLE, REDUCE, STOP]]),
                "{}",
            ),
            (
                cat(&[
                    &global("some.module", "Thing"),
                    &[EMPTY_TUPLE, REDUCE, STOP],
                ]),
                "<some.module.Thing>",
            ),
            // A callable that is not a class: opaque.
            (cat(&[&k1(3), &[EMPTY_TUPLE, REDUCE, STOP]]), "<reduce>"),
            (
                cat(&[
                    &global("collections", "OrderedDict"),
                    &[EMPTY_TUPLE, NEWOBJ, STOP],
                ]),
                "{}",
            ),
            // Opaque objects absorb items, appends and state.
            (
                cat(&[
                    &global("yacs.config", "CfgNode"),
                    &[EMPTY_TUPLE, NEWOBJ, MARK],
                    &su("a"),
                    &k1(1),
                    &[SETITEMS],
                    &su("b"),
                    &k1(2),
                    &[SETITEM, MARK],
                    &k1(3),
                    &[APPENDS],
                    &k1(4),
                    &[APPEND, EMPTY_DICT, BUILD, STOP],
                ]),
                "<yacs.config.CfgNode>",
            ),
        ] {
            assert_eq!(show(&run(&pickle).unwrap()), expected);
        }
    }

    fn k1(v: u8) -> [u8; 2] {
        [BININT1, v]
    }

    #[test]
    fn tensors_are_found_by_dotted_path() {
        // {'model': OrderedDict(w=tensor, b=Parameter(tensor), idx=…), 'epoch': 5,
        //  'config': CfgNode(…), 'optimizer': {'state': {0: tensor}}, 'buffers': [tensor]}
        let w = tensor_v2(&storage("FloatStorage", "0", 6), 0, &[2, 3], &[3, 1]);
        let b = cat(&[
            &global("torch._utils", "_rebuild_parameter"),
            &[MARK],
            &tensor_v2(&storage("HalfStorage", "1", 3), 1, &[2], &[1]),
            &[NEWTRUE],
            &global("collections", "OrderedDict"),
            &[EMPTY_TUPLE, REDUCE, TUPLE, REDUCE],
        ]);
        // Old-style `_rebuild_tensor` (no requires_grad / hooks).
        let idx = cat(&[
            &global("torch._utils", "_rebuild_tensor"),
            &[MARK],
            &storage("LongStorage", "2", 4),
            &[BININT1, 0],
            &ints(&[2, 2]),
            &ints(&[1, 2]),
            &[TUPLE, REDUCE],
        ]);
        let state_dict = cat(&[
            &global("collections", "OrderedDict"),
            &[EMPTY_TUPLE, REDUCE, BINPUT, 1, MARK],
            &su("w"),
            &w,
            &su("b"),
            &b,
            &su("idx"),
            &idx,
            &[SETITEMS],
            // OrderedDict._metadata
            &[EMPTY_DICT, BUILD],
        ]);
        let pickle = cat(&[
            &[PROTO, 2, EMPTY_DICT, BINPUT, 0, MARK],
            &su("model"),
            &state_dict,
            &su("epoch"),
            &k1(5),
            &su("config"),
            &global("yacs.config", "CfgNode"),
            &[EMPTY_TUPLE, NEWOBJ, MARK],
            &su("X"),
            &k1(1),
            &[SETITEMS, EMPTY_DICT, BUILD],
            &su("optimizer"),
            &[EMPTY_DICT],
            &su("state"),
            &[EMPTY_DICT, BININT1, 0],
            &tensor_v2(&storage("FloatStorage", "3", 1), 0, &[], &[]),
            &[SETITEM, SETITEM],
            &su("buffers"),
            &[EMPTY_LIST],
            &tensor_v2(&storage("BoolStorage", "4", 2), 0, &[2], &[1]),
            &[APPEND],
            // A non-string key is skipped, with what it holds.
            &k1(1),
            &[TUPLE1],
            &tensor_v2(&storage("FloatStorage", "5", 1), 0, &[], &[]),
            &[SETITEMS, STOP],
        ]);
        let tensors = parse_tensors(&pickle).unwrap();
        let got: Vec<String> = tensors
            .iter()
            .map(|(name, t)| {
                format!(
                    "{name} {} {:?} +{} {:?} {:?}",
                    t.storage.key, t.storage.dtype, t.offset, t.shape, t.stride
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "model.w 0 F32 +0 [2, 3] [3, 1]",
                "model.b 1 F16 +1 [2] [1]",
                "model.idx 2 I64 +0 [2, 2] [1, 2]",
                "optimizer.state.0 3 F32 +0 [] []",
                "buffers.0 4 Bool +0 [2] [1]",
            ]
        );
    }

    #[test]
    fn tensor_subclasses_are_unwrapped() {
        // _rebuild_from_type_v2(func, new_type, args, state) = func(*args), nested.
        let inner = cat(&[
            &[MARK],
            &storage("FloatStorage", "0", 4),
            &[BININT1, 1],
            &ints(&[3]),
            &ints(&[1]),
            &[TUPLE],
        ]);
        let levels = 1000;
        let mut pickle = cat(&[
            &global("torch._tensor", "_rebuild_from_type_v2"),
            &[BINPUT, 0],
            &global("torch._utils", "_rebuild_tensor_v2"),
            &[BINPUT, 1, POP],
        ]);
        // Stack: from_type; then `levels` tuples (from_type | tensor_v2, None, inner, None).
        for level in (0..levels).rev() {
            pickle.extend([MARK, BINGET, u8::from(level == 0), NONE]);
        }
        pickle.extend(&inner);
        for _ in 0..levels {
            pickle.extend([NONE, TUPLE]);
        }
        pickle.extend([REDUCE, STOP]);
        assert_eq!(show(&run(&pickle).unwrap()), "<tensor 0 F32 +1 [3] [1]>");
        // Also under torch._utils, and as the argument of _rebuild_parameter.
        let pickle = cat(&[
            &global("torch._utils", "_rebuild_parameter_with_state"),
            &[MARK],
            &global("torch._utils", "_rebuild_from_type_v2"),
            &[MARK],
            &global("torch._utils", "_rebuild_tensor_v2"),
            &global("torch", "Tensor"),
            &inner,
            &[
                EMPTY_DICT, TUPLE, REDUCE, NEWFALSE, EMPTY_DICT, EMPTY_DICT, TUPLE,
            ],
            &[REDUCE, STOP],
        ]);
        assert_eq!(show(&run(&pickle).unwrap()), "<tensor 0 F32 +1 [3] [1]>");
    }

    #[test]
    fn tensors_nested_deeper_than_the_walk_limit_are_ignored() {
        let tensor = tensor_v2(&storage("FloatStorage", "0", 1), 0, &[], &[]);
        for (depth, found) in [(0, true), (200, true), (201, false), (1000, false)] {
            let mut pickle = tensor.clone();
            pickle.extend(std::iter::repeat_n(TUPLE1, depth));
            pickle.push(STOP);
            let tensors = parse_tensors(&pickle).unwrap();
            assert_eq!(tensors.len(), usize::from(found), "depth {depth}");
            if found {
                assert_eq!(tensors[0].0, vec!["0"; depth].join("."));
            }
        }
    }

    fn err(pickle: &[u8]) -> TorchFileError {
        match run(pickle) {
            Ok(v) => panic!("{pickle:02x?} accepted: {}", show(&v)),
            Err(e) => e,
        }
    }

    #[test]
    fn unknown_and_unsupported_opcodes_are_refused_with_their_offset() {
        let e = err(&[PROTO, 2, 0xff]);
        assert!(
            matches!(
                e,
                TorchFileError::UnknownOpcode {
                    opcode: 0xff,
                    offset: 2
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "unsupported pickle opcode 0xff at byte 2");
        for op in UNSUPPORTED {
            let e = err(&[NONE, POP, op, 0, 0, 0, 0, b'\n', STOP]);
            match e {
                TorchFileError::UnsupportedOpcode {
                    name,
                    opcode,
                    offset: 2,
                } if opcode == op => assert_eq!(Some(name), opcode_name(op)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            err(&[EXT1, 1]).to_string(),
            "unsupported pickle opcode 0x82 (EXT1) at byte 0"
        );
    }

    #[test]
    fn truncated_pickles_are_refused_at_every_cut() {
        let full = cat(&[
            &[PROTO, 4, FRAME],
            &100u64.to_le_bytes(),
            &[EMPTY_DICT, MEMOIZE],
            &su("model"),
            &tensor_v2(&storage("FloatStorage", "0", 6), 0, &[2, 3], &[3, 1]),
            &[
                SETITEM, MARK, BININT, 1, 2, 3, 4, BININT2, 1, 2, LONG1, 1, 5,
            ],
            &[
                BINFLOAT, 0, 0, 0, 0, 0, 0, 0, 0, BINUNICODE, 1, 0, 0, 0, b'x',
            ],
            &[
                BINUNICODE8,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                b'y',
                BINBYTES,
                0,
                0,
                0,
                0,
            ],
            &[LONG4, 1, 0, 0, 0, 7, BINPUT, 1, LONG_BINPUT, 2, 0, 0, 0],
            b"I3\nL4L\nF1.0\nVz\nS'w'\np3\ng3\n",
            &[BINGET, 1, LONG_BINGET, 2, 0, 0, 0, TUPLE, POP, STOP],
        ]);
        assert_eq!(parse_tensors(&full).unwrap().len(), 1);
        for cut in 0..full.len() {
            match run(&full[..cut]) {
                Err(TorchFileError::Truncated { offset }) => assert!(offset <= cut),
                Err(TorchFileError::UnterminatedLine { offset }) => assert!(offset <= cut),
                other => panic!("cut at {cut}: {:?}", other.map(|v| show(&v))),
            }
        }
        assert!(matches!(err(&[]), TorchFileError::Truncated { offset: 0 }));
        assert!(matches!(
            err(&[NONE]),
            TorchFileError::Truncated { offset: 1 }
        ));
        assert_eq!(
            err(&[NONE, BININT, 1, 2]).to_string(),
            "pickle ends unexpectedly (reading at byte 2)"
        );
        // Lengths far beyond the data, up to u64::MAX (the offset is that of the payload).
        for (pickle, at) in [
            (cat(&[&[BINUNICODE8], &u64::MAX.to_le_bytes()]), 9),
            (
                cat(&[&[BINBYTES8], &(u64::MAX / 2).to_le_bytes(), b"abc"]),
                9,
            ),
            (vec![BINUNICODE, 0xff, 0xff, 0xff, 0xff, b'a'], 5),
            (vec![LONG4, 0xff, 0xff, 0xff, 0xff, 1], 5),
            (vec![SHORT_BINBYTES, 10, 1, 2], 2),
        ] {
            let e = err(&pickle);
            assert!(
                matches!(e, TorchFileError::Truncated { offset } if offset == at),
                "{pickle:02x?}: {e:?}"
            );
        }
        assert!(matches!(
            err(b"cmodule\nname"),
            TorchFileError::UnterminatedLine { offset: 8 }
        ));
    }

    #[test]
    fn stack_underflow_is_refused() {
        for pickle in [
            vec![STOP],
            vec![MARK, STOP],
            vec![BININT1, 1, TUPLE2, STOP],
            // A mark among a TUPLEn's items.
            vec![MARK, BININT1, 1, TUPLE2, STOP],
            vec![TUPLE1],
            vec![APPEND],
            vec![EMPTY_LIST, MARK, APPEND],
            vec![NONE, SETITEM],
            vec![POP],
            vec![DUP],
            vec![MARK, DUP],
            vec![NONE, REDUCE],
            vec![NONE, NEWOBJ],
            vec![NONE, NONE, NEWOBJ_EX],
            vec![NONE, BUILD],
            vec![BINPERSID],
            vec![NONE, STACK_GLOBAL],
            vec![MEMOIZE],
            vec![MARK, BINPUT, 0],
            vec![LONG_BINPUT, 0, 0, 0, 0],
            b"p0\n".to_vec(),
            vec![MARK, SETITEMS],
            vec![MARK, APPENDS],
        ] {
            let e = err(&pickle);
            assert!(
                matches!(e, TorchFileError::StackUnderflow),
                "{pickle:02x?}: {e:?}"
            );
        }
        assert_eq!(err(&[STOP]).to_string(), "pickle stack underflow");
    }

    #[test]
    fn missing_mark_is_refused() {
        for op in [
            TUPLE, LIST, DICT, FROZENSET, APPENDS, ADDITEMS, SETITEMS, POP_MARK,
        ] {
            let e = err(&[EMPTY_LIST, BININT1, 1, op, STOP]);
            assert!(
                matches!(e, TorchFileError::MarkMissing),
                "{:?}: {e:?}",
                opcode_name(op)
            );
        }
        assert_eq!(err(&[TUPLE]).to_string(), "pickle MARK missing");
    }

    #[test]
    fn memo_reads_of_unknown_slots_are_refused() {
        for (pickle, index) in [
            (vec![BINGET, 7], 7),
            (vec![NONE, BINPUT, 1, BINGET, 0], 0),
            (vec![LONG_BINGET, 0, 1, 0, 0], 256),
            (b"g9\n".to_vec(), 9),
        ] {
            let e = err(&pickle);
            assert!(
                matches!(e, TorchFileError::MemoMissing { index: i } if i == index),
                "{pickle:02x?}: {e:?}"
            );
        }
        assert_eq!(err(&[BINGET, 7]).to_string(), "pickle memo 7 missing");
    }

    #[test]
    fn bad_text_arguments_and_strings_are_refused() {
        for (pickle, what) in [
            (&b"Iabc\n."[..], "INT"),
            (b"I\n.", "INT"),
            (b"Fx\n.", "FLOAT"),
            (b"NpX\n.", "PUT index"),
            (b"Np-1\n.", "PUT index"),
            (b"g4294967296\n.", "GET index"),
        ] {
            let e = err(pickle);
            assert!(
                matches!(e, TorchFileError::BadTextArgument { what: w } if w == what),
                "{pickle:?}: {e:?}"
            );
            assert_eq!(e.to_string(), format!("bad {what}"));
        }
        for pickle in [
            vec![SHORT_BINUNICODE, 1, 0xff, STOP],
            vec![BINUNICODE, 2, 0, 0, 0, 0xc3, 0x28, STOP],
        ] {
            assert!(matches!(err(&pickle), TorchFileError::InvalidUtf8));
        }
        let e = err(&[BININT1, 1, BININT1, 2, STACK_GLOBAL, STOP]);
        assert!(matches!(e, TorchFileError::StackGlobalNotStrings), "{e:?}");
    }

    #[test]
    fn items_on_the_wrong_container_are_refused() {
        let e = err(&cat(&[&[EMPTY_LIST], &su("a"), &k1(1), &[SETITEM, STOP]]));
        assert_eq!(e.to_string(), "SETITEMS on List(0 items)");
        let e = err(&[EMPTY_TUPLE, MARK, BININT1, 1, APPENDS, STOP]);
        assert_eq!(e.to_string(), "APPENDS on Tuple(0 items)");
        let e = err(&[EMPTY_DICT, NONE, APPEND, STOP]);
        assert_eq!(e.to_string(), "APPENDS on Dict(0 items)");
        let e = err(&[BININT1, 3, MARK, SETITEMS, STOP]);
        assert_eq!(e.to_string(), "SETITEMS on Int(3)");
        // A list holding itself is described without following the cycle.
        let e = err(&[
            EMPTY_LIST, BINPUT, 0, BINGET, 0, APPEND, NONE, NONE, SETITEM,
        ]);
        assert_eq!(e.to_string(), "SETITEMS on List(1 items)");
    }

    #[test]
    fn persistent_ids_other_than_torch_storages_are_refused() {
        let e = err(&cat(&[&su("x"), &[BINPERSID, STOP]]));
        assert!(matches!(e, TorchFileError::PersistentIdNotTuple { .. }));
        assert_eq!(e.to_string(), "unexpected persistent id Str(\"x\")");
        let e = err(&[EMPTY_LIST, BINPUT, 0, BINGET, 0, APPEND, BINPERSID]);
        assert_eq!(e.to_string(), "unexpected persistent id List(1 items)");
        for pid in [
            // Too short.
            cat(&[&su("storage"), &[TUPLE1]]),
            // Not a storage.
            cat(&[
                &su("module"),
                &global("torch", "FloatStorage"),
                &su("0"),
                &[TUPLE3],
            ]),
            // The class not a GLOBAL.
            cat(&[&su("storage"), &su("FloatStorage"), &su("0"), &[TUPLE3]]),
        ] {
            let e = err(&cat(&[&pid, &[BINPERSID, STOP]]));
            assert!(matches!(e, TorchFileError::PersistentIdLayout), "{e:?}");
        }
        let e = err(&cat(&[&storage("ComplexFloatStorage", "0", 1), &[STOP]]));
        assert_eq!(
            e.to_string(),
            "unsupported storage type torch.ComplexFloatStorage"
        );
        // Keys: a string or an int (as a string), nothing else.
        let with_key = |key: &[u8]| {
            cat(&[
                &[MARK],
                &su("storage"),
                &global("torch", "FloatStorage"),
                key,
                &su("cpu"),
                &[BININT1, 1, TUPLE, BINPERSID, STOP],
            ])
        };
        assert_eq!(show(&run(&with_key(&k1(7))).unwrap()), "<storage 7 F32>");
        let e = err(&with_key(&[NONE]));
        assert!(matches!(e, TorchFileError::StorageKeyNotString), "{e:?}");
    }

    #[test]
    fn bad_tensor_rebuild_arguments_are_refused() {
        let call = |func: (&str, &str), args: &[u8]| {
            cat(&[
                &global(func.0, func.1),
                &[MARK],
                args,
                &[TUPLE, REDUCE, STOP],
            ])
        };
        let pid = storage("FloatStorage", "0", 4);
        let v2 = ("torch._utils", "_rebuild_tensor_v2");
        // Not a storage first.
        let e = err(&call(v2, &cat(&[&k1(0), &k1(0), &ints(&[1]), &ints(&[1])])));
        assert_eq!(
            e.to_string(),
            "unexpected arguments to torch._utils._rebuild_tensor_v2"
        );
        // Too few arguments.
        let e = err(&call(v2, &cat(&[&pid, &k1(0), &ints(&[1])])));
        assert!(
            matches!(e, TorchFileError::BadRebuildArguments { .. }),
            "{e:?}"
        );
        // Negative offset, size not a tuple, negative stride.
        let minus_one = [BININT, 0xff, 0xff, 0xff, 0xff];
        for (args, what) in [
            (
                cat(&[&pid, &minus_one, &ints(&[1]), &ints(&[1])]),
                "storage offset",
            ),
            (cat(&[&pid, &k1(0), &k1(1), &ints(&[1])]), "tensor size"),
            (
                cat(&[&pid, &k1(0), &ints(&[1]), &[MARK], &minus_one, &[TUPLE]]),
                "tensor stride",
            ),
        ] {
            let e = err(&call(v2, &args));
            assert!(
                matches!(e, TorchFileError::BadTensorArgument { what: w } if w == what),
                "{e:?}"
            );
        }
        // Sizes and strides may be lists too.
        let ok = call(
            v2,
            &cat(&[
                &pid,
                &k1(0),
                &[MARK, BININT1, 2, LIST],
                &[EMPTY_LIST, BININT1, 1, APPEND],
            ]),
        );
        assert_eq!(show(&run(&ok).unwrap()), "<tensor 0 F32 +0 [2] [1]>");
        // _rebuild_parameter of something that is not a tensor.
        let e = err(&call(
            ("torch._utils", "_rebuild_parameter"),
            &[NONE, NEWFALSE],
        ));
        assert!(
            matches!(e, TorchFileError::BadRebuildArguments { .. }),
            "{e:?}"
        );
        // _rebuild_from_type_v2 whose args are not a tuple.
        let e = err(&call(
            ("torch._tensor", "_rebuild_from_type_v2"),
            &cat(&[
                &global("torch._utils", "_rebuild_tensor_v2"),
                &[NONE, EMPTY_LIST, NONE],
            ]),
        ));
        assert_eq!(
            e.to_string(),
            "unexpected arguments to torch._tensor._rebuild_from_type_v2"
        );
    }

    #[test]
    fn odd_numbers_of_dict_items_are_refused() {
        // As CPython: "odd number of items for DICT" / "... for SETITEMS", whatever the target.
        let e = err(&[MARK, BININT1, 1, DICT, STOP]);
        assert!(
            matches!(
                e,
                TorchFileError::OddItems {
                    opcode: "DICT",
                    items: 1
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "odd number of items for DICT (1)");
        let e = err(&[
            EMPTY_DICT, MARK, BININT1, 1, BININT1, 2, BININT1, 3, SETITEMS, STOP,
        ]);
        assert_eq!(e.to_string(), "odd number of items for SETITEMS (3)");
        // On an opaque object (yacs CfgNode) too.
        let e = err(&cat(&[
            &global("yacs.config", "CfgNode"),
            &[EMPTY_TUPLE, NEWOBJ, MARK, BININT1, 1, SETITEMS, STOP],
        ]));
        assert!(
            matches!(
                e,
                TorchFileError::OddItems {
                    opcode: "SETITEMS",
                    items: 1
                }
            ),
            "{e:?}"
        );
        // A key without its value no longer hides a tensor-less pair: even counts read as before.
        assert_eq!(
            show(&run(&[MARK, BININT1, 1, BININT1, 2, DICT, STOP]).unwrap()),
            "{1: 2}"
        );
        assert_eq!(show(&run(&[MARK, DICT, STOP]).unwrap()), "{}");
        assert_eq!(
            show(&run(&[EMPTY_DICT, MARK, SETITEMS, STOP]).unwrap()),
            "{}"
        );
    }

    #[test]
    fn newobj_of_dict_classes_makes_a_dict_others_an_opaque_object() {
        let tensor = tensor_v2(&storage("FloatStorage", "0", 3), 0, &[3], &[1]);
        for (module, name, opcode) in [
            ("builtins", "dict", NEWOBJ),
            ("__builtin__", "dict", NEWOBJ),
            ("collections", "OrderedDict", NEWOBJ),
            ("builtins", "dict", NEWOBJ_EX),
            ("collections", "OrderedDict", NEWOBJ_EX),
        ] {
            let new = if opcode == NEWOBJ {
                vec![EMPTY_TUPLE, NEWOBJ]
            } else {
                vec![EMPTY_TUPLE, EMPTY_DICT, NEWOBJ_EX]
            };
            let pickle = cat(&[
                &global(module, name),
                &new,
                &su("w"),
                &tensor,
                &[SETITEM, STOP],
            ]);
            assert_eq!(
                show(&run(&pickle).unwrap()),
                "{'w': <tensor 0 F32 +0 [3] [1]>}",
                "{module}.{name}"
            );
            let found = parse_tensors(&pickle).unwrap();
            assert_eq!(found.len(), 1, "{module}.{name}");
            assert_eq!(found[0].0, "w");
        }
        // A dict subclass we do not know (yacs CfgNode): opaque, its items ignored.
        let pickle = cat(&[
            &global("yacs.config", "CfgNode"),
            &[EMPTY_TUPLE, NEWOBJ],
            &su("w"),
            &tensor,
            &[SETITEM, STOP],
        ]);
        assert_eq!(show(&run(&pickle).unwrap()), "<yacs.config.CfgNode>");
        assert!(parse_tensors(&pickle).unwrap().is_empty());
        // As CPython: the class must be a class, the arguments a tuple.
        for (pickle, message) in [
            (
                vec![BININT1, 3, EMPTY_TUPLE, NEWOBJ, STOP],
                "NEWOBJ class argument isn't a class: Int(3)",
            ),
            (
                vec![NONE, EMPTY_TUPLE, EMPTY_DICT, NEWOBJ_EX, STOP],
                "NEWOBJ_EX class argument isn't a class: None",
            ),
            (
                cat(&[&global("builtins", "dict"), &[NONE, NEWOBJ, STOP]]),
                "NEWOBJ expected an argument tuple: None",
            ),
            (
                cat(&[
                    &global("a", "B"),
                    &[EMPTY_LIST, EMPTY_DICT, NEWOBJ_EX, STOP],
                ]),
                "NEWOBJ_EX expected an argument tuple: List(0 items)",
            ),
        ] {
            let e = err(&pickle);
            assert!(matches!(e, TorchFileError::BadNewObject { .. }), "{e:?}");
            assert_eq!(e.to_string(), message);
        }
    }

    #[test]
    fn storage_classes_must_be_torch_ones() {
        let with_class = |module: &str, class: &str| {
            cat(&[
                &[MARK],
                &su("storage"),
                &global(module, class),
                &su("0"),
                &su("cpu"),
                &[BININT1, 1, TUPLE, BINPERSID, STOP],
            ])
        };
        assert_eq!(
            show(&run(&with_class("torch", "FloatStorage")).unwrap()),
            "<storage 0 F32>"
        );
        // Files of old versions name CUDA storages; torch.load accepts them (and so do we).
        assert_eq!(
            show(&run(&with_class("torch.cuda", "HalfStorage")).unwrap()),
            "<storage 0 F16>"
        );
        for (module, class) in [
            ("os", "FloatStorage"),
            ("torch.storage", "FloatStorage"),
            ("", "FloatStorage"),
            ("torch", "UntypedStorage"),
        ] {
            let e = err(&with_class(module, class));
            assert!(
                matches!(&e, TorchFileError::UnsupportedStorageType { class: c } if *c == format!("{module}.{class}")),
                "{module}.{class}: {e:?}"
            );
        }
        assert_eq!(
            err(&with_class("os", "FloatStorage")).to_string(),
            "unsupported storage type os.FloatStorage"
        );
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // A cheap deterministic fuzz: random bytes, and a valid pickle with bytes flipped.
        let valid = cat(&[
            &[PROTO, 2, EMPTY_DICT, BINPUT, 0],
            &su("model"),
            &tensor_v2(&storage("FloatStorage", "0", 6), 0, &[2, 3], &[3, 1]),
            &[SETITEM, STOP],
        ]);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_tensors(&bytes);
            let mut flipped = valid.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % flipped.len();
                flipped[at] = next() as u8;
            }
            let _ = parse_tensors(&flipped);
        }
    }
}
