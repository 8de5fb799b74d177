//! The documentation keeps up with the code:
//!
//! * every long flag (and alias) and every `[env: ...]` variable that `swin-serve <command> --help`
//!   prints, for every command and subcommand, appears in `docs/configuration.md`;
//! * every `SWIN_*` environment variable the code, tests, benchmarks and scripts read appears there;
//! * `README.md` stays an entry page (at most 200 lines), no Markdown file points outside the
//!   repository, every page under `docs/` is linked from the README, and the relative links of the
//!   README and `docs/` resolve (files and `#anchors`).
//! * the module map of `docs/architecture.md` names every source file under `src/`, and nothing
//!   that is not there.
//!
//! The flags are read from `--help`, not listed here, so renaming or adding a flag only needs the
//! documentation to follow.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Longest the README may be: an entry page, the rest lives in `docs/`.
const README_MAX_LINES: usize = 200;

/// Prefix of the environment variables this project reads.
const ENV_PREFIX: &str = "SWIN_";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn configuration_md() -> String {
    read(&root().join("docs/configuration.md"))
}

/// `swin-serve <args> --help`.
fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_swin-serve"))
        .args(args)
        .arg("--help")
        .env_remove("SWIN_SERVE_URL")
        .output()
        .expect("run swin-serve --help");
    assert!(
        out.status.success(),
        "swin-serve {} --help failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("--help is UTF-8")
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help_text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_commands = false;
    for line in help_text.lines() {
        if line.trim_end() == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            if line.trim().is_empty() || !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap_or_default();
            if name != "help" && !name.is_empty() {
                names.push(name.to_string());
            }
        }
    }
    names
}

fn is_flag_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// `--name` at the start of `s` (after the dashes): the name, if any.
fn flag_at(s: &str) -> Option<String> {
    let rest = s.strip_prefix("--")?;
    let name: String = rest.chars().take_while(|&c| is_flag_char(c)).collect();
    (!name.is_empty() && !name.starts_with('-')).then(|| format!("--{name}"))
}

/// The long options a help text defines: the first long flag of each option line
/// (`  -h, --help`, `      --model <MODEL>`: indented 2 to 6 spaces, where descriptions are
/// indented 10), and every `[alias: --x]` / `[aliases: --x, --y]`. Flags merely mentioned in
/// descriptions are not options of this command.
fn options(help_text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for line in help_text.lines() {
        let trimmed = line.trim_start();
        if (2..=6).contains(&(line.len() - trimmed.len())) {
            let first = trimmed
                .strip_prefix('-')
                .filter(|r| !r.starts_with('-'))
                .and_then(|r| r.split_once(", "))
                .map_or(trimmed, |(_, rest)| rest);
            if let Some(flag) = flag_at(first) {
                flags.insert(flag);
            }
        }
        for marker in ["[alias: ", "[aliases: "] {
            if let Some(start) = trimmed.find(marker) {
                let list = &trimmed[start + marker.len()..];
                let list = list.split(']').next().unwrap_or_default();
                for alias in list.split(',') {
                    if let Some(flag) = flag_at(alias.trim()) {
                        flags.insert(flag);
                    }
                }
            }
        }
    }
    flags
}

/// The `[env: NAME=...]` variables a help text names.
fn help_env_vars(help_text: &str) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    for piece in help_text.split("[env: ").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            .collect();
        if !name.is_empty() {
            vars.insert(name);
        }
    }
    vars
}

/// Whether `doc` mentions the flag as `` `--flag`` `` or `` `--flag VALUE` `` (not merely a longer
/// flag it is a prefix of).
fn doc_has_flag(doc: &str, flag: &str) -> bool {
    let needle = format!("`{flag}");
    doc.match_indices(&needle).any(|(i, _)| {
        doc[i + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_flag_char(c))
    })
}

fn is_env_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
}

/// Whether `doc` names the variable as a whole word (not only a longer variable it is a prefix of).
fn doc_has_env_var(doc: &str, name: &str) -> bool {
    doc.match_indices(name).any(|(i, _)| {
        let before_ok = doc[..i].chars().next_back().is_none_or(|c| !is_env_char(c));
        let after_ok = doc[i + name.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_env_char(c));
        before_ok && after_ok
    })
}

#[test]
fn every_flag_and_env_var_in_help_is_in_configuration_md() {
    let doc = configuration_md();
    let mut missing = Vec::new();
    let mut commands: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen_serve = false;
    while let Some(path) = commands.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        seen_serve |= args == ["serve"];
        let where_ = format!(
            "swin-serve {}--help",
            path.iter().map(|p| format!("{p} ")).collect::<String>()
        );
        for flag in options(&text) {
            if !doc_has_flag(&doc, &flag) {
                missing.push(format!("flag `{flag}` (from `{where_}`)"));
            }
        }
        for var in help_env_vars(&text) {
            if !doc_has_env_var(&doc, &var) {
                missing.push(format!("environment variable {var} (from `{where_}`)"));
            }
        }
        for sub in subcommands(&text) {
            let mut next = path.clone();
            next.push(sub);
            commands.push(next);
        }
    }
    assert!(seen_serve, "swin-serve --help lists no `serve` command");
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not document:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn serve_help_lists_the_flags_this_test_expects_to_parse() {
    // Guards the parser above: if clap's layout changed and nothing was extracted, the test
    // above would pass vacuously.
    let flags = options(&help(&["serve"]));
    for flag in ["--model", "--listen", "--max-batch", "--help"] {
        assert!(
            flags.contains(flag),
            "{flag} not parsed from serve --help: {flags:?}"
        );
    }
    assert!(
        !flags.contains("--features"),
        "a flag from a description was taken as an option"
    );
    assert!(help_env_vars(&help(&["serve"])).contains("SWIN_SERVE_MODEL"));
}

/// Every file under `dir` (recursively) whose name ends with one of `suffixes`.
fn files_under(dir: &Path, suffixes: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            // Build outputs, venvs and fuzzer output are not the project's own files.
            let skipped = name.starts_with('.')
                || matches!(
                    name.as_str(),
                    "target" | "out" | "build" | "venv" | "node_modules" | "__pycache__"
                );
            if !skipped {
                files_under(&path, suffixes, out);
            }
        } else if suffixes.iter().any(|s| name.ends_with(s)) {
            out.push(path);
        }
    }
}

/// Every `SWIN_*` name in `text` (a maximal run of `[A-Z0-9_]` starting with the prefix; a run
/// ending in `_` is a prefix being composed, not a name).
fn env_names(text: &str, require_dollar: bool) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices(ENV_PREFIX) {
        let before = text[..i].chars().next_back();
        if before.is_some_and(is_env_char) {
            continue;
        }
        if require_dollar && !(text[..i].ends_with('$') || text[..i].ends_with("${")) {
            continue;
        }
        let name: String = text[i..].chars().take_while(|&c| is_env_char(c)).collect();
        if !name.ends_with('_') {
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_swin_env_var_read_is_in_configuration_md() {
    let root = root();
    let doc = configuration_md();
    let this_file = root.join("tests/docs_configuration.rs");
    let mut found: BTreeSet<(String, String)> = BTreeSet::new();

    // Rust: every name anywhere in the code (string literals, `env = "..."`, constants, comments).
    let mut rust = vec![root.join("build.rs")];
    for dir in ["src", "tests", "benches", "fuzz/src"] {
        files_under(&root.join(dir), &[".rs"], &mut rust);
    }
    // Shell scripts: the variables they expand (`$NAME`, `${NAME...}`).
    let mut shell = Vec::new();
    files_under(&root.join(".ci"), &[""], &mut shell);
    files_under(&root.join("benches"), &[".sh"], &mut shell);
    files_under(&root.join("tests/oip_clients"), &[".sh"], &mut shell);
    // Python test harness: every name (they are read with os.environ).
    let mut python = Vec::new();
    files_under(&root.join("tests/oip_clients"), &[".py"], &mut python);

    for (files, require_dollar) in [(rust, false), (shell, true), (python, false)] {
        for file in files {
            if file == this_file {
                continue;
            }
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            let shown = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            for name in env_names(&text, require_dollar) {
                found.insert((name, shown.clone()));
            }
        }
    }
    assert!(
        found.iter().any(|(n, _)| n == "SWIN_SERVE_ISA"),
        "the scan found no SWIN_SERVE_ISA: is it looking in the right place?"
    );
    let missing: Vec<String> = found
        .iter()
        .filter(|(name, _)| !doc_has_env_var(&doc, name))
        .map(|(name, file)| format!("{name} (read in {file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not list these environment variables:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn readme_is_an_entry_page() {
    let readme = read(&root().join("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move detail into docs/"
    );
    assert!(
        readme.contains("\ncargo test\n"),
        "README.md must give the test command exactly as `cargo test` (CI runs what it says)"
    );
}

#[test]
fn no_markdown_file_points_outside_the_repository() {
    let root = root();
    let mut md = Vec::new();
    files_under(&root, &[".md"], &mut md);
    let mut bad = Vec::new();
    for file in &md {
        let text = read(file);
        for (n, line) in text.lines().enumerate() {
            if line.contains("../shared") || line.contains("/work/") {
                bad.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(&root).unwrap_or(file).display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "Markdown files point outside the repository:\n  {}",
        bad.join("\n  ")
    );
}

/// GitHub's anchor for a heading: lower-cased, punctuation dropped (letters, digits, `_`, `-`
/// kept), spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks), with GitHub's `-1`, `-2`
/// suffixes for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(&line[hashes..]);
            let mut name = base.clone();
            let mut n = 0;
            while out.contains(&name) {
                n += 1;
                name = format!("{base}-{n}");
            }
            out.insert(name);
        }
    }
    out
}

/// The targets of the inline links `[text](target)` of a Markdown text, outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for piece in line.split("](").skip(1) {
            if let Some(end) = piece.find(')') {
                let target = &piece[..end];
                if !target.contains(' ') {
                    targets.push(target.to_string());
                }
            }
        }
    }
    targets
}

#[test]
fn readme_links_every_docs_page_and_links_resolve() {
    let root = root();
    let readme_path = root.join("README.md");
    let readme = read(&readme_path);
    let mut pages = Vec::new();
    files_under(&root.join("docs"), &[".md"], &mut pages);
    pages.sort();
    assert!(!pages.is_empty(), "docs/ has no pages");

    let mut problems = Vec::new();
    for page in &pages {
        let rel = page.strip_prefix(&root).unwrap().display().to_string();
        let linked = [")", "#"]
            .iter()
            .any(|end| readme.contains(&format!("]({rel}{end}")));
        if !linked {
            problems.push(format!("README.md does not link {rel}"));
        }
    }
    for file in std::iter::once(readme_path.clone()).chain(pages.iter().cloned()) {
        let text = read(&file);
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !resolved.exists() {
                problems.push(format!("{shown}: link to {target}: no such file"));
                continue;
            }
            if !anchor.is_empty()
                && resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&resolved)).contains(anchor)
            {
                problems.push(format!("{shown}: link to {target}: no such heading"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn slugs_follow_github() {
    assert_eq!(
        slug(" `swin-serve classify` and `info`"),
        "swin-serve-classify-and-info"
    );
    assert_eq!(
        slug(" Decoding on the engine's threads"),
        "decoding-on-the-engines-threads"
    );
    assert_eq!(
        slug(" Network, limits and protection"),
        "network-limits-and-protection"
    );
    assert_eq!(slug(" swin.v1"), "swinv1");
}

/// The backticked paths under `src/` that a line of `docs/architecture.md` names (`` `src/x/` ``,
/// `` `src/x/y.rs` ``).
fn src_paths_in(line: &str) -> Vec<&str> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|p| p.starts_with("src/") && !p.contains(' '))
        .collect()
}

#[test]
fn architecture_map_matches_src() {
    let root = root();
    let doc = read(&root.join("docs/architecture.md"));
    let mut problems = Vec::new();
    // Every path the map names exists.
    for line in doc.lines() {
        for path in src_paths_in(line) {
            if !root.join(path).exists() {
                problems.push(format!(
                    "docs/architecture.md names {path}, which does not exist"
                ));
            }
        }
    }
    // Every source file is in the map: by its path, or by its name on the line of a path in its
    // folder (`src/model/torch/` … `pickle.rs`); a `mod.rs` by its folder.
    let mut sources = Vec::new();
    files_under(&root.join("src"), &[".rs", ".h", ".cc"], &mut sources);
    for file in sources {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let (dir, name) = rel.rsplit_once('/').unwrap();
        let dir = format!("{dir}/");
        let listed = doc.lines().any(|line| {
            let paths = src_paths_in(line);
            paths.contains(&rel.as_str())
                || (name == "mod.rs" && paths.contains(&dir.as_str()))
                || (paths.iter().any(|p| p.starts_with(&dir))
                    && line.contains(&format!("`{name}`")))
        });
        if !listed {
            problems.push(format!("docs/architecture.md does not list {rel}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
