//! A tolerant reader for the ZIP checkpoints `torch.save` writes (see [`super::checkpoint`] for
//! why `pytorch-reader` is not used for them).
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
use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Debug, Clone)]
pub(crate) struct StorageId {
    pub key: String,
    pub dtype: StorageDtype,
}

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageDtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageDtype {
    fn from_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Decode one little-endian element.
    pub fn decode(self, b: &[u8]) -> f32 {
        match self {
            Self::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Self::F32 => f32::from_le_bytes(b.try_into().expect("4 bytes")),
            Self::F16 => half::f16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32(),
            Self::BF16 => half::bf16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32(),
            Self::I64 => i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Self::I32 => i32::from_le_bytes(b.try_into().expect("4 bytes")) as f32,
            Self::I16 => i16::from_le_bytes(b.try_into().expect("2 bytes")) as f32,
            Self::I8 => b[0] as i8 as f32,
            Self::U8 | Self::Bool => b[0] as f32,
        }
    }
}

/// A tensor as the pickle describes it: a strided view of a storage.
#[derive(Debug, Clone)]
pub(crate) struct TensorRef {
    pub storage: StorageId,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

type Shared<T> = Rc<RefCell<T>>;

/// What the unpickler builds (scalar payloads are kept for the `Debug` text of error messages).
#[derive(Debug, Clone)]
#[allow(dead_code)]
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
}

/// Parse a torch pickle (`data.pkl`) and return its tensors by dotted path
/// (`model.layers.0.blocks.0.attn.qkv.weight`), ignoring everything else.
pub(crate) fn parse_tensors(pickle: &[u8]) -> Result<Vec<(String, TensorRef)>, String> {
    let root = Unpickler::default().run(pickle)?;
    let mut out = Vec::new();
    walk(&root, &mut Vec::new(), &mut out, 0);
    Ok(out)
}

fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(String, TensorRef)>, depth: usize) {
    if depth > 200 {
        return;
    }
    match v {
        Value::Dict(items) => {
            for (k, v) in items.borrow().iter() {
                if let Some(k) = k.key_string() {
                    path.push(k);
                    walk(v, path, out, depth + 1);
                    path.pop();
                }
            }
        }
        Value::List(items) => {
            for (i, v) in items.borrow().iter().enumerate() {
                path.push(i.to_string());
                walk(v, path, out, depth + 1);
                path.pop();
            }
        }
        Value::Tuple(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                walk(v, path, out, depth + 1);
                path.pop();
            }
        }
        Value::Tensor(t) => out.push((path.join("."), (**t).clone())),
        _ => {}
    }
}

#[derive(Default)]
struct Unpickler {
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("pickle ends unexpectedly")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("pickle ends inside a text line")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "invalid UTF-8 string in pickle".to_string())
}

impl Unpickler {
    fn pop(&mut self) -> Result<Value, String> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err("pickle stack underflow".into()),
            Some(v) => Ok(v),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("pickle MARK missing")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&self) -> Result<&Value, String> {
        match self.stack.last() {
            Some(Value::Mark) | None => Err("pickle stack underflow".into()),
            Some(v) => Ok(v),
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        match self.top()? {
            Value::Dict(d) => {
                let mut d = d.borrow_mut();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
                Ok(())
            }
            Value::Opaque(_) => Ok(()),
            other => Err(format!("SETITEMS on {other:?}")),
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), String> {
        match self.top()? {
            Value::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            Value::Opaque(_) => Ok(()),
            other => Err(format!("APPENDS on {other:?}")),
        }
    }

    fn global(module: &str, name: &str) -> Value {
        Value::Class(module.to_string(), name.to_string())
    }

    fn persistent_load(pid: Value) -> Result<Value, String> {
        let Value::Tuple(items) = pid else {
            return Err(format!("unexpected persistent id {pid:?}"));
        };
        match &items[..] {
            [Value::Str(kind), Value::Class(_, class), key, ..] if kind == "storage" => {
                let dtype = StorageDtype::from_storage_class(class)
                    .ok_or_else(|| format!("unsupported storage type {class}"))?;
                let key = key.key_string().ok_or("storage key is not a string")?;
                Ok(Value::Storage(StorageId { key, dtype }))
            }
            _ => Err("unexpected persistent id layout".into()),
        }
    }

    fn reduce(callable: Value, args: Value) -> Result<Value, String> {
        let Value::Class(module, name) = &callable else {
            return Ok(Value::Opaque("reduce".into()));
        };
        let args_vec: Vec<Value> = match &args {
            Value::Tuple(t) => t.to_vec(),
            _ => Vec::new(),
        };
        match (module.as_str(), name.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                let [Value::Storage(storage), offset, shape, stride, ..] = &args_vec[..] else {
                    return Err(format!("unexpected arguments to {module}.{name}"));
                };
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: storage.clone(),
                    offset: offset.as_usize().ok_or("bad storage offset")?,
                    shape: shape.usizes().ok_or("bad tensor size")?,
                    stride: stride.usizes().ok_or("bad tensor stride")?,
                })))
            }
            // Tensor subclasses: `(func, new_type, args, state)`; the tensor is `func(*args)`.
            ("torch._tensor", "_rebuild_from_type_v2")
            | ("torch._utils", "_rebuild_from_type_v2") => match &args_vec[..] {
                [func, _, inner @ Value::Tuple(_), ..] => Self::reduce(func.clone(), inner.clone()),
                _ => Err(format!("unexpected arguments to {module}.{name}")),
            },
            ("torch._utils", "_rebuild_parameter")
            | ("torch._utils", "_rebuild_parameter_with_state") => match args_vec.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(format!("unexpected arguments to {module}.{name}")),
            },
            ("collections", "OrderedDict") | ("builtins", "dict") | ("__builtin__", "dict") => {
                Ok(Value::Dict(Rc::default()))
            }
            _ => Ok(Value::Opaque(format!("{module}.{name}"))),
        }
    }

    fn run(mut self, data: &[u8]) -> Result<Value, String> {
        let mut r = Cursor { data, pos: 0 };
        loop {
            let op = r.u8()?;
            match op {
                0x80 => {
                    r.u8()?;
                } // PROTO
                0x95 => {
                    r.u64()?;
                } // FRAME
                b'.' => return self.pop(), // STOP
                b'(' => self.stack.push(Value::Mark),
                b'}' => self.stack.push(Value::Dict(Rc::default())),
                b']' => self.stack.push(Value::List(Rc::default())),
                b')' => self.stack.push(Value::Tuple(Rc::default())),
                0x8f => self.stack.push(Value::Opaque("set".into())), // EMPTY_SET
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    if items.iter().any(|v| matches!(v, Value::Mark)) {
                        return Err("pickle stack underflow".into());
                    }
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = items
                        .chunks_exact(2)
                        .map(|p| (p[0].clone(), p[1].clone()))
                        .collect();
                    self.stack.push(Value::Dict(Rc::new(RefCell::new(pairs))));
                }
                0x91 => {
                    self.pop_mark()?;
                    self.stack.push(Value::Opaque("frozenset".into()));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                0x90 => {
                    self.pop_mark()?; // ADDITEMS (to a set: ignored)
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'0' => {
                    self.stack.pop().ok_or("pickle stack underflow")?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = r.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = r.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = r.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        r.u8()? as usize
                    } else {
                        r.u32()? as usize
                    };
                    let bytes = r.take(n)?;
                    let v = if n <= 8 {
                        let mut buf = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                            [0xFF; 8]
                        } else {
                            [0; 8]
                        };
                        buf[..n].copy_from_slice(bytes);
                        Value::Int(i64::from_le_bytes(buf))
                    } else {
                        Value::Opaque("int".into())
                    };
                    self.stack.push(v);
                }
                b'I' => {
                    let line = r.line()?;
                    self.stack.push(match line.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(s.parse().map_err(|_| "bad INT")?),
                    });
                }
                b'L' => {
                    let line = r.line()?;
                    self.stack.push(
                        line.trim_end_matches('L')
                            .parse()
                            .map(Value::Int)
                            .unwrap_or(Value::Opaque("int".into())),
                    );
                }
                b'G' => {
                    let v = f64::from_be_bytes(r.take(8)?.try_into().unwrap());
                    self.stack.push(Value::Float(v));
                }
                b'F' => {
                    let line = r.line()?;
                    self.stack
                        .push(Value::Float(line.parse().map_err(|_| "bad FLOAT")?));
                }
                b'X' => {
                    let n = r.u32()? as usize;
                    self.stack.push(Value::Str(text(r.take(n)?)?));
                }
                0x8c => {
                    let n = r.u8()? as usize;
                    self.stack.push(Value::Str(text(r.take(n)?)?));
                }
                0x8d => {
                    let n = r.u64()? as usize;
                    self.stack.push(Value::Str(text(r.take(n)?)?));
                }
                b'V' => {
                    let line = r.line()?;
                    self.stack.push(Value::Str(line));
                }
                b'T' | b'B' => {
                    let n = r.u32()? as usize;
                    r.take(n)?;
                    self.stack.push(Value::Bytes);
                }
                b'U' | b'C' => {
                    let n = r.u8()? as usize;
                    r.take(n)?;
                    self.stack.push(Value::Bytes);
                }
                0x8e | 0x96 => {
                    let n = r.u64()? as usize;
                    r.take(n)?;
                    self.stack.push(Value::Bytes);
                }
                b'S' => {
                    r.line()?;
                    self.stack.push(Value::Bytes);
                }
                b'c' => {
                    let module = r.line()?;
                    let name = r.line()?;
                    self.stack.push(Self::global(&module, &name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Self::global(&m, &n)),
                        _ => return Err("STACK_GLOBAL expects two strings".into()),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(Self::persistent_load(pid)?);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack.push(Self::reduce(callable, args)?);
                }
                0x81 => {
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack.push(match cls {
                        Value::Class(m, n) if n == "OrderedDict" && m == "collections" => {
                            Value::Dict(Rc::default())
                        }
                        Value::Class(m, n) => Value::Opaque(format!("{m}.{n}")),
                        _ => Value::Opaque("object".into()),
                    });
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack.push(match cls {
                        Value::Class(m, n) => Value::Opaque(format!("{m}.{n}")),
                        _ => Value::Opaque("object".into()),
                    });
                }
                b'b' => {
                    // BUILD: the state of a dict (OrderedDict `_metadata`) or of an opaque
                    // object is irrelevant to the tensors; a tensor's state too.
                    self.pop()?;
                    self.top()?;
                }
                b'q' => {
                    let i = r.u8()? as u32;
                    self.memo.insert(i, self.top()?.clone());
                }
                b'r' => {
                    let i = r.u32()?;
                    self.memo.insert(i, self.top()?.clone());
                }
                b'p' => {
                    let i: u32 = r.line()?.parse().map_err(|_| "bad PUT index")?;
                    self.memo.insert(i, self.top()?.clone());
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo.insert(i, self.top()?.clone());
                }
                b'h' | b'j' | b'g' => {
                    let i = match op {
                        b'h' => r.u8()? as u32,
                        b'j' => r.u32()?,
                        _ => r.line()?.parse().map_err(|_| "bad GET index")?,
                    };
                    let v = self
                        .memo
                        .get(&i)
                        .cloned()
                        .ok_or_else(|| format!("pickle memo {i} missing"))?;
                    self.stack.push(v);
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {}",
                        r.pos - 1
                    ))
                }
            }
        }
    }
}

/// A storage's bytes: borrowed from the file when stored uncompressed (as `torch.save` writes
/// them), with the CRC-32 the archive records for them still to be checked; else inflated.
pub(crate) enum StorageBytes<'a> {
    /// Uncompressed entry: the file's bytes, and the CRC-32 they must have.
    Stored(&'a [u8], u32),
    /// Compressed entry, inflated (and checked) by the zip reader.
    Inflated(Vec<u8>),
}

impl StorageBytes<'_> {
    /// The bytes, after checking the recorded CRC-32 of a stored entry.
    pub fn verified(&self) -> Result<&[u8], String> {
        match self {
            StorageBytes::Stored(bytes, crc) => {
                let actual = crc32fast::hash(bytes);
                if actual != *crc {
                    return Err(format!(
                        "CRC-32 mismatch ({actual:08x}, archive says {crc:08x}): corrupted file"
                    ));
                }
                Ok(bytes)
            }
            StorageBytes::Inflated(bytes) => Ok(bytes),
        }
    }
}

/// A torch ZIP checkpoint held in memory: its pickle and storages.
pub(crate) struct TorchZip<'a> {
    bytes: &'a [u8],
    archive: zip::ZipArchive<std::io::Cursor<&'a [u8]>>,
    /// Directory holding `data.pkl` and `data/` (the archive's root folder, e.g. `archive/`).
    prefix: String,
}

impl<'a> TorchZip<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self, String> {
        // torch.save never prepends data: a known offset of 0 avoids the zip crate's offset
        // detection, which rejects some valid torch archives.
        let config = zip::read::Config {
            archive_offset: zip::read::ArchiveOffset::Known(0),
        };
        let archive = zip::ZipArchive::with_config(config, std::io::Cursor::new(bytes))
            .map_err(|e| format!("not a ZIP archive: {e}"))?;
        let prefix = archive
            .file_names()
            .filter_map(Result::ok)
            .find_map(|n| n.strip_suffix("data.pkl").map(str::to_string))
            .ok_or("ZIP archive has no data.pkl: not a torch.save checkpoint")?;
        Ok(Self {
            bytes,
            archive,
            prefix,
        })
    }

    fn entry(&mut self, name: &str) -> Result<StorageBytes<'a>, String> {
        let full = format!("{}{name}", self.prefix);
        let mut f = self
            .archive
            .by_name(&full)
            .map_err(|e| format!("entry {full}: {e}"))?;
        if f.compression() == zip::CompressionMethod::Stored && !f.encrypted() {
            if let Some(start) = f.data_start() {
                let end = start
                    .checked_add(f.size())
                    .filter(|&end| end <= self.bytes.len() as u64)
                    .ok_or_else(|| format!("entry {full} extends past the end of the file"))?;
                return Ok(StorageBytes::Stored(
                    &self.bytes[start as usize..end as usize],
                    f.crc32(),
                ));
            }
        }
        let mut buf = Vec::with_capacity(f.size().min(1 << 30) as usize);
        f.read_to_end(&mut buf)
            .map_err(|e| format!("entry {full}: {e}"))?;
        Ok(StorageBytes::Inflated(buf))
    }

    /// Contents of the `byteorder` entry (`little` / `big`), absent in old files.
    pub fn byteorder(&mut self) -> Result<Option<String>, String> {
        let full = format!("{}byteorder", self.prefix);
        if self.archive.index_for_name(&full).is_none() {
            return Ok(None);
        }
        let entry = self.entry("byteorder")?;
        Ok(Some(
            String::from_utf8_lossy(entry.verified()?)
                .trim()
                .to_string(),
        ))
    }

    /// The pickled object (`data.pkl`).
    pub fn pickle(&mut self) -> Result<Vec<u8>, String> {
        Ok(self.entry("data.pkl")?.verified()?.to_vec())
    }

    /// Bytes of storage `key` (`data/{key}`).
    pub fn storage(&mut self, key: &str) -> Result<StorageBytes<'a>, String> {
        self.entry(&format!("data/{key}"))
    }
}

/// Gather the elements of the strided view `t` from its storage bytes, as f32.
pub(crate) fn materialize(t: &TensorRef, storage: &[u8]) -> Result<Vec<f32>, String> {
    let size = t.storage.dtype.size();
    let numel: usize = t.shape.iter().product();
    if t.shape.len() != t.stride.len() {
        return Err("size and stride lengths differ".into());
    }
    if numel == 0 {
        return Ok(Vec::new());
    }
    let last = t.offset
        + t.shape
            .iter()
            .zip(&t.stride)
            .map(|(&n, &s)| (n - 1) * s)
            .sum::<usize>();
    if (last + 1) * size > storage.len() {
        return Err(format!(
            "view reaches element {last} but the storage holds {}",
            storage.len() / size
        ));
    }
    let contiguous = {
        let mut expect = 1;
        let mut ok = true;
        for (&n, &s) in t.shape.iter().zip(&t.stride).rev() {
            ok &= n == 1 || s == expect;
            expect *= n;
        }
        ok
    };
    if contiguous {
        let bytes = &storage[t.offset * size..(t.offset + numel) * size];
        return Ok(bytes
            .chunks_exact(size)
            .map(|b| t.storage.dtype.decode(b))
            .collect());
    }
    let mut out = Vec::with_capacity(numel);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let e = t.offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        out.push(t.storage.dtype.decode(&storage[e * size..(e + 1) * size]));
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}
