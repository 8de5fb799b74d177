//! The source tree's shape, checked (docs/architecture.md explains it; tests/docs_configuration.rs
//! checks that its module map matches the tree):
//!
//! * no file under `src/` is over 800 lines (kernels and `#[cfg(test)]` modules included), and
//!   `src/main.rs` stays a thin edge over the library (≤ 150 lines);
//! * no two files under `src/` import each other, a `mod.rs` and its children included: imports run
//!   one way. An import is any `crate::` / `super::` / `self::` path (or a path starting with a child
//!   module's name) in a `use` tree or in code, resolved to the file that defines the module it names;
//!   a name a module merely re-exports (`pub use sibling::Name`) resolves to the file it comes from;
//!
//! Comments and string literals are blanked before paths are read, and inline `mod name { … }` blocks
//! (unit-test modules) resolve `super::` from their own position, so `use super::*` in a test module
//! is not an import of the parent file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;
const MAX_MAIN_LINES: usize = 150;

type ModPath = Vec<String>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` → `[a, b]`, `src/a/mod.rs` → `[a]`, `src/lib.rs` → `[]`; `None` for `src/main.rs`
/// (the binary: its own crate).
fn module_path(src: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: ModPath = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [only] if only == "main" => return None,
        [only] if only == "lib" => return Some(Vec::new()),
        _ => {}
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// The text with comments, string literals and char literals blanked (lengths and newlines kept
/// irrelevant: only paths are read from it).
fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let word_before = |i: usize| i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if (b[i] == b'r' || (b[i] == b'b' && b.get(i + 1) == Some(&b'r')))
            && !word_before(i)
            && {
                let mut j = i + if b[i] == b'b' { 2 } else { 1 };
                while j < b.len() && b[j] == b'#' {
                    j += 1;
                }
                j < b.len() && b[j] == b'"'
            }
        {
            let mut j = i + if b[i] == b'b' { 2 } else { 1 };
            let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
            j += hashes + 1;
            let mut end = b"\"".to_vec();
            end.extend(std::iter::repeat_n(b'#', hashes));
            while j < b.len() && !b[j..].starts_with(&end) {
                j += 1;
            }
            i = (j + end.len()).min(b.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            i = (j + 1).min(b.len());
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the former is skipped.
            let close = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                // a multi-byte char: find a quote within 5 bytes
                let limit = (i + 6).min(b.len());
                let found = b[i + 1..limit].iter().position(|&c| c == b'\'');
                found.filter(|_| !b[i + 1].is_ascii()).map(|p| i + 1 + p)
            };
            match close {
                Some(c) => {
                    out.push_str("' '");
                    i = c + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The text outside inline `mod name { … }` blocks, and each block's body with its module path.
fn module_blocks(text: &str, module: &ModPath, out: &mut Vec<(String, ModPath)>) {
    let b = text.as_bytes();
    let mut outside = String::new();
    let mut pos = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("mod ") {
        let start = search + found;
        search = start + 4;
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
            continue;
        }
        let rest = &text[start + 4..];
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after_name = rest.trim_start()[name.len()..].trim_start();
        if name.is_empty() || !after_name.starts_with('{') {
            continue;
        }
        let open = start + 4 + (rest.len() - after_name.len());
        let mut depth = 0;
        let mut close = open;
        for (k, &c) in b[open..].iter().enumerate() {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        outside.push_str(&text[pos..start]);
        let mut inner = module.clone();
        inner.push(name);
        module_blocks(&text[open + 1..close], &inner, out);
        pos = close + 1;
        search = pos;
    }
    outside.push_str(&text[pos..]);
    out.push((outside, module.clone()));
}

/// `a::{b, c::{d, e as f}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_use_tree(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim();
    if let Some(brace) = tree.find('{') {
        let prefix = tree[..brace].trim_end_matches("::").trim();
        let body = &tree[brace + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut parts = Vec::new();
        let (mut depth, mut current) = (0, String::new());
        for ch in body.chars() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if ch == ',' && depth == 0 {
                parts.push(std::mem::take(&mut current));
            } else {
                current.push(ch);
            }
        }
        parts.push(current);
        return parts
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .flat_map(|p| {
                let joined = if prefix.is_empty() {
                    p.to_string()
                } else {
                    format!("{prefix}::{p}")
                };
                expand_use_tree(&joined)
            })
            .collect();
    }
    let path = tree.split(" as ").next().unwrap().trim();
    vec![path.to_string()]
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every `use` tree's paths and every `crate::`/`super::`/`self::` path written in code.
fn paths_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut paths = Vec::new();
    let mut i = 0;
    while let Some(found) = text[i..].find("use ") {
        let start = i + found;
        i = start + 4;
        if start > 0 && is_ident_byte(b[start - 1]) {
            continue;
        }
        if let Some(end) = text[start..].find(';') {
            paths.extend(expand_use_tree(&text[start + 4..start + end]));
        }
    }
    for root in ["crate::", "super::", "self::"] {
        let mut i = 0;
        while let Some(found) = text[i..].find(root) {
            let start = i + found;
            i = start + root.len();
            if start > 0 && (is_ident_byte(b[start - 1]) || b[start - 1] == b':') {
                continue;
            }
            let mut end = start;
            while end < b.len() && (is_ident_byte(b[end]) || b[end] == b':') {
                end += 1;
            }
            let path = text[start..end].trim_end_matches(':');
            // `super::{a, b}` is a use tree, read above; a bare root names no module.
            if path.len() > root.len() {
                paths.push(path.to_string());
            }
        }
    }
    paths
}

struct Tree {
    files: BTreeMap<ModPath, PathBuf>,
}

impl Tree {
    /// The file a path leads to, and the path's remaining segments (the item's name first).
    fn resolve(&self, from: &ModPath, path: &str) -> Option<(ModPath, Vec<String>)> {
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let (mut base, mut rest): (ModPath, &[&str]) = (from.clone(), &segs[..]);
        match segs.first().copied() {
            Some("crate") => {
                base.clear();
                rest = &segs[1..];
            }
            Some("super") | Some("self") => {
                while let Some(&first) = rest.first() {
                    match first {
                        "super" => {
                            base.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
            Some(first) => {
                let mut child = from.clone();
                child.push(first.to_string());
                if !self.files.contains_key(&child) {
                    return None;
                }
            }
            None => return None,
        }
        let mut full = base;
        full.extend(
            rest.iter()
                .filter(|s| **s != "*" && **s != "self")
                .map(|s| s.to_string()),
        );
        (0..=full.len())
            .rev()
            .find(|&n| self.files.contains_key(&full[..n]))
            .map(|n| (full[..n].to_vec(), full[n..].to_vec()))
    }
}

#[test]
fn no_file_under_src_is_too_long_and_main_rs_is_thin() {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut too_long = Vec::new();
    for file in &files {
        let lines = fs::read_to_string(file).unwrap().lines().count();
        let limit = if file.ends_with("src/main.rs") {
            MAX_MAIN_LINES
        } else {
            MAX_LINES
        };
        if lines > limit {
            too_long.push(format!("{} ({lines} lines, limit {limit})", file.display()));
        }
    }
    assert!(
        too_long.is_empty(),
        "files over their line limit:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn no_two_files_under_src_import_each_other() {
    let src = root().join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let tree = Tree {
        files: paths
            .iter()
            .filter_map(|p| Some((module_path(&src, p)?, p.clone())))
            .collect(),
    };
    let texts: BTreeMap<ModPath, String> = tree
        .files
        .iter()
        .map(|(m, p)| {
            (
                m.clone(),
                strip_comments_and_strings(&fs::read_to_string(p).unwrap()),
            )
        })
        .collect();

    // (re-exporting module, name) → the module the name comes from.
    let mut reexports: BTreeMap<(ModPath, String), ModPath> = BTreeMap::new();
    for (module, text) in &texts {
        for line in text.split(';') {
            let Some(at) = line.find("pub") else { continue };
            let decl = line[at + 3..].trim_start();
            let decl = if decl.starts_with('(') {
                decl[decl.find(')').map_or(0, |p| p + 1)..].trim_start()
            } else {
                decl
            };
            let Some(tree_text) = decl.strip_prefix("use ") else {
                continue;
            };
            for path in expand_use_tree(tree_text) {
                if let Some((target, _)) = tree.resolve(module, &path) {
                    let name = path.rsplit("::").next().unwrap().to_string();
                    if &target != module {
                        reexports.insert((module.clone(), name), target);
                    }
                }
            }
        }
    }

    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (file_module, text) in &texts {
        let mut blocks = Vec::new();
        module_blocks(text, file_module, &mut blocks);
        for (piece, module) in &blocks {
            for path in paths_in(piece) {
                let Some((mut target, rest)) = tree.resolve(module, &path) else {
                    continue;
                };
                if let Some(first) = rest.first() {
                    if let Some(origin) = reexports.get(&(target.clone(), first.clone())) {
                        target = origin.clone();
                    }
                }
                if &target != file_module && !target.is_empty() {
                    edges.entry(file_module.clone()).or_default().insert(target);
                }
            }
        }
    }

    let name = |m: &ModPath| {
        tree.files[m]
            .strip_prefix(root())
            .unwrap()
            .display()
            .to_string()
    };
    let mut mutual = BTreeSet::new();
    for (a, targets) in &edges {
        for b in targets {
            if edges.get(b).is_some_and(|back| back.contains(a)) {
                let (x, y) = if a < b { (a, b) } else { (b, a) };
                mutual.insert(format!("{} <-> {}", name(x), name(y)));
            }
        }
    }
    assert!(
        mutual.is_empty(),
        "files that import each other:\n{}",
        mutual.into_iter().collect::<Vec<_>>().join("\n")
    );
}
