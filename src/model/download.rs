//! Fetch the released SwinV2-T checkpoint into a cache directory, with a progress bar.
//!
//! [`fetch`] returns `<cache_dir>/<last URL path segment>` when it exists (no network access at
//! all); otherwise it downloads the URL (redirects followed, as GitHub release URLs redirect to
//! their storage) into `<name>.part`, flushes it to disk and renames it into place, so a cached
//! file is always complete. Progress is drawn on stderr when it is a terminal, and logged through
//! `tracing` at every 10 % either way.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ModelError;

/// The released SwinV2-T/8 @256 checkpoint.
pub const OFFICIAL_TINY_URL: &str =
    "https://github.com/SwinTransformer/storage/releases/download/v2.0.0/swinv2_tiny_patch4_window8_256.pth";

/// Environment variable naming the cache directory (see [`default_cache_dir`]).
pub const CACHE_DIR_ENV: &str = "SWIN_SERVE_CACHE";

/// What to do without network access; appended to every download error.
const OFFLINE_HINT: &str = "pass --model PATH (a local .pth or .safetensors checkpoint) or \
     --random-weights SEED (a deterministic random model) to start without downloading";

/// Default cache directory: `$SWIN_SERVE_CACHE`, else `$XDG_CACHE_HOME/swin-serve`, else `~/.cache/swin-serve`
/// (else `swin-serve` under the system temporary directory when no home is known).
pub fn default_cache_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty(CACHE_DIR_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("swin-serve");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".cache").join("swin-serve");
    }
    std::env::temp_dir().join("swin-serve")
}

/// File name under which `url` is cached: its last path segment (query and fragment dropped),
/// restricted to `[A-Za-z0-9._-]`; `model.pth` when that leaves nothing usable.
pub fn cache_file_name(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = without_query
        .split_once("://")
        .map_or(without_query, |(_, rest)| rest);
    let Some((_host, path)) = after_scheme.split_once('/') else {
        return "model.pth".to_string();
    };
    let last = path.rsplit('/').next().unwrap_or("");
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        "model.pth".to_string()
    } else {
        name
    }
}

fn download_error(url: &str, why: impl std::fmt::Display) -> ModelError {
    ModelError::Download(format!(
        "could not fetch the model checkpoint from {}: {why}; {OFFLINE_HINT}",
        redact_url(url)
    ))
}

/// `url` as logs, errors and GetModelInfo may show it: without credentials (`user:password@`) and
/// without its query string or fragment (signed URLs carry their signature there), each replaced
/// by `…`.
pub fn redact_url(url: &str) -> String {
    let (base, had_query) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], true),
        None => (url, false),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rfind('@') {
                Some(at) => format!("{scheme}://…@{}{path}", &authority[at + 1..]),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if had_query {
        out.push_str("?…");
    }
    out
}

/// Return the cached file for `url` in `cache_dir`, downloading it first if absent
/// (to a temporary name, renamed when complete). Errors name `--model PATH` and `--random-weights`.
pub fn fetch(url: &str, cache_dir: &Path) -> Result<PathBuf, ModelError> {
    let target = cache_dir.join(cache_file_name(url));
    if target.is_file() {
        tracing::info!(path = %target.display(), "using cached checkpoint");
        return Ok(target);
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| {
        download_error(
            url,
            format!("cannot create cache directory {}: {e}", cache_dir.display()),
        )
    })?;
    let partial = target.with_file_name(format!("{}.part", cache_file_name(url)));
    tracing::info!(url = %redact_url(url), path = %target.display(), "downloading checkpoint");
    match download_to(url, &partial) {
        Ok(bytes) => {
            std::fs::rename(&partial, &target).map_err(|e| {
                let _ = std::fs::remove_file(&partial);
                download_error(
                    url,
                    format!("cannot move the download into {}: {e}", target.display()),
                )
            })?;
            tracing::info!(path = %target.display(), bytes, "checkpoint downloaded");
            Ok(target)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Download `url` into `path` (created or truncated), returning the byte count.
fn download_to(url: &str, path: &Path) -> Result<u64, ModelError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .max_redirects(10)
        .user_agent(concat!("swin-serve/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(code) => {
            download_error(url, format!("the server answered HTTP {code}"))
        }
        other => download_error(url, other),
    })?;
    let total = response.body().content_length();
    let mut reader = response.body_mut().as_reader();

    let file = File::create(path)
        .map_err(|e| download_error(url, format!("cannot create {}: {e}", path.display())))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let progress = Progress::new(url, total);
    let mut buf = vec![0u8; 1 << 16];
    let mut received: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                progress.abandon();
                return Err(download_error(
                    url,
                    format!("the transfer failed after {received} bytes: {e}"),
                ));
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| download_error(url, format!("cannot write {}: {e}", path.display())))?;
        received += n as u64;
        progress.advance(received);
    }
    if let Some(total) = total {
        if received != total {
            progress.abandon();
            return Err(download_error(
                url,
                format!("the transfer ended after {received} of {total} bytes"),
            ));
        }
    }
    let file = out.into_inner().map_err(|e| {
        download_error(
            url,
            format!("cannot write {}: {}", path.display(), e.error()),
        )
    })?;
    file.sync_all()
        .map_err(|e| download_error(url, format!("cannot write {}: {e}", path.display())))?;
    progress.finish(received);
    Ok(received)
}

/// A progress bar on stderr (when it is a terminal) plus a log line at every 10 %.
struct Progress {
    bar: ProgressBar,
    total: Option<u64>,
    started: Instant,
    logged_decile: std::cell::Cell<u64>,
}

impl Progress {
    fn new(url: &str, total: Option<u64>) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), target).with_style(
                ProgressStyle::with_template(
                    "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                    .expect("valid template"),
            ),
        };
        bar.set_message(format!("downloading {}", cache_file_name(url)));
        Self {
            bar,
            total,
            started: Instant::now(),
            logged_decile: std::cell::Cell::new(0),
        }
    }

    fn advance(&self, received: u64) {
        self.bar.set_position(received);
        let Some(total) = self.total.filter(|&t| t > 0) else {
            return;
        };
        let decile = received.saturating_mul(10) / total;
        if decile > self.logged_decile.get() && decile < 10 {
            self.logged_decile.set(decile);
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(
                percent = decile * 10,
                received,
                total,
                mib_per_s = format!("{:.1}", received as f64 / secs / (1 << 20) as f64),
                "download progress"
            );
        }
    }

    fn finish(&self, received: u64) {
        self.bar.finish_and_clear();
        let secs = self.started.elapsed().as_secs_f64();
        tracing::info!(
            received,
            seconds = format!("{secs:.1}"),
            "download complete"
        );
    }

    fn abandon(&self) {
        self.bar.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials_or_signatures() {
        for (url, shown) in [
            (OFFICIAL_TINY_URL, OFFICIAL_TINY_URL),
            (
                "https://user:secret@host.example/m/model.pth",
                "https://…@host.example/m/model.pth",
            ),
            (
                "https://host.example/model.pth?X-Amz-Signature=abc&X-Amz-Credential=k",
                "https://host.example/model.pth?…",
            ),
            (
                "http://a:b@127.0.0.1:8080/x.pth#frag",
                "http://…@127.0.0.1:8080/x.pth?…",
            ),
            ("https://host.example", "https://host.example"),
            ("not a url?token=1", "not a url?…"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("secret") && !redact_url(url).contains("abc"));
        }
    }

    #[test]
    fn cache_names_come_from_the_last_path_segment() {
        assert_eq!(
            cache_file_name(OFFICIAL_TINY_URL),
            "swinv2_tiny_patch4_window8_256.pth"
        );
        assert_eq!(
            cache_file_name("http://h/a/b/model.safetensors?x=1#y"),
            "model.safetensors"
        );
        assert_eq!(cache_file_name("http://h/a/we ird$.pth"), "we_ird_.pth");
        assert_eq!(cache_file_name("http://h/"), "model.pth");
        assert_eq!(cache_file_name("http://h/.."), "model.pth");
        assert_eq!(cache_file_name("http://host"), "model.pth");
        assert_eq!(cache_file_name("http://h/dir/"), "model.pth");
    }
}
