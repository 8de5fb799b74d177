//! Builders of the files `torch.save` writes, for tests and the fuzz corpus (`cfg(test)` or the
//! `test-util` feature): pickle byte streams made of [`opcodes`] (small pieces concatenated with
//! [`cat`]: a string, a class, a storage's persistent id, a tensor) and the ZIP archives around
//! them ([`zip_entries`], [`zip_archive`]). The pieces are the opcodes `torch.save` writes for
//! these objects, without its memo writes; anything else (including what no pickler writes) is
//! spelled out with [`opcodes`].

use std::io::Write;

use zip::write::SimpleFileOptions;
pub use zip::CompressionMethod;

pub use super::pickle::opcodes;
use super::pickle::opcodes::{
    BININT1, BINPERSID, EMPTY_TUPLE, GLOBAL, MARK, NEWFALSE, REDUCE, SHORT_BINUNICODE, TUPLE,
};

/// The pieces one after the other.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `SHORT_BINUNICODE` of `s` (at most 255 bytes).
pub fn su(s: &str) -> Vec<u8> {
    let mut b = vec![SHORT_BINUNICODE, s.len() as u8];
    b.extend(s.as_bytes());
    b
}

/// `BININT1 v`: a small int.
pub fn k1(v: u8) -> [u8; 2] {
    [BININT1, v]
}

/// `GLOBAL module\nname\n`: the class or function `module.name`.
pub fn global(module: &str, name: &str) -> Vec<u8> {
    let mut b = vec![GLOBAL];
    b.extend(format!("{module}\n{name}\n").bytes());
    b
}

/// `BINPERSID` of `('storage', torch.<class>, key, 'cpu', numel)`, as `torch.save` writes it.
pub fn storage(class: &str, key: &str, numel: u8) -> Vec<u8> {
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
pub fn ints(values: &[u8]) -> Vec<u8> {
    let mut b = vec![MARK];
    for &v in values {
        b.extend([BININT1, v]);
    }
    b.push(TUPLE);
    b
}

/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` over
/// the storage `storage_pid` pushes (a [`storage`], or a memo read of one).
pub fn tensor_v2(storage_pid: &[u8], offset: u8, size: &[u8], stride: &[u8]) -> Vec<u8> {
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

/// A ZIP archive of `(name, contents, method)` entries, written in this order.
pub fn zip_entries(entries: &[(&str, &[u8], CompressionMethod)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for &(name, data, method) in entries {
        w.start_file(
            name,
            SimpleFileOptions::default().compression_method(method),
        )
        .expect("zip entry");
        w.write_all(data).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// A ZIP archive of `(name, contents)` entries, all compressed with `method`, written in this
/// order (a `torch.save` file: `archive/data.pkl`, `archive/byteorder`, `archive/data/{key}`).
pub fn zip_archive(entries: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let entries: Vec<(&str, &[u8], CompressionMethod)> = entries
        .iter()
        .map(|&(name, data)| (name, data, method))
        .collect();
    zip_entries(&entries)
}
