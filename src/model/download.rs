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

use super::{ModelError, Weights};

/// The released SwinV2-T/8 @256 checkpoint.
pub const OFFICIAL_TINY_URL: &str =
    "https://github.com/SwinTransformer/storage/releases/download/v2.0.0/swinv2_tiny_patch4_window8_256.pth";

/// Environment variable naming the cache directory (see [`default_cache_dir`]).
pub const CACHE_DIR_ENV: &str = "SWIN_SERVE_CACHE";

/// What to do without network access; appended to every download error.
const OFFLINE_HINT: &str = "pass --model PATH (a local .pth or .safetensors checkpoint) or \
     --random-weights SEED (a deterministic random model) to start without downloading";

/// Default cache directory: `$SWIN_SERVE_CACHE`, else `$XDG_CACHE_HOME/swin-serve`, else `~/.cache/swin-serve`
/// (else `.cache/swin-serve` under the working directory when no home is known: never a shared,
/// world-writable directory such as `/tmp`, where another user could plant the checkpoint).
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
    PathBuf::from(".cache").join("swin-serve")
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

/// The absolute URL a `Location` header points to from `base` (absolute URLs, `//host/…` and
/// `/path`; anything else replaces the last path segment).
fn resolve_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    if let Some(network) = location.strip_prefix("//") {
        return format!("{scheme}://{network}");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = rest[authority.len()..]
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{scheme}://{authority}{dir}/{location}")
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

/// Most bytes a download may have (`Content-Length` above it is refused before the body is read).
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 4 << 30;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 10;

/// Limits and checks of a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Expected SHA-256 of the file (`--model-sha256`): a download or cached file with another
    /// digest is refused (and a cached one replaced). Without it, a file must load as a complete
    /// checkpoint before it is used or replaces anything.
    pub sha256: Option<[u8; 32]>,
    /// Largest download, in bytes.
    pub max_bytes: u64,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Time for the server to answer a request with its headers.
    pub response_timeout: Duration,
    /// Time for the whole body to arrive.
    pub body_timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            sha256: None,
            max_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            connect_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(3600),
        }
    }
}

/// Parse a SHA-256 digest written as 64 hex digits.
pub fn parse_sha256(hex: &str) -> Result<[u8; 32], String> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "a SHA-256 digest is 64 hex digits, got {} characters",
            hex.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `url` may be fetched: `https`, or plain `http` to a loopback address (127.0.0.0/8,
/// `localhost`, `[::1]`: local mirrors and tests). Applied to every redirect too.
pub(crate) fn check_scheme(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit('@').next().unwrap_or("");
        let host = if let Some(v6) = host_port.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            host_port.split(':').next().unwrap_or("")
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            return Ok(());
        }
        return Err(
            "plain http is refused (only https, or http to a loopback address); \
             a redirect to http is refused too"
                .into(),
        );
    }
    Err("only https URLs can be downloaded".into())
}

/// SHA-256 of the file at `path`.
pub(crate) fn file_sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().into())
}

/// Check a downloaded or cached file: its digest when one is expected, else that it loads as a
/// complete checkpoint (container, every tensor, CRCs) — then the loaded weights are returned, so
/// that the caller need not read the file a second time.
fn verify(url: &str, path: &Path, opts: &FetchOptions) -> Result<Option<Weights>, ModelError> {
    match opts.sha256 {
        Some(expected) => {
            let actual = file_sha256(path)
                .map_err(|e| download_error(url, format!("cannot read {}: {e}", path.display())))?;
            if actual != expected {
                return Err(download_error(
                    url,
                    format!(
                        "{} has SHA-256 {}, expected {} (--model-sha256)",
                        path.display(),
                        hex(&actual),
                        hex(&expected)
                    ),
                ));
            }
            Ok(None)
        }
        None => Weights::load(path)
            .map(Some)
            .map_err(|e| download_error(url, format!("the file is not a usable checkpoint: {e}"))),
    }
}

/// Return the cached file for `url` in `cache_dir`, downloading it first if absent
/// (to a temporary name, renamed when complete). Errors name `--model PATH` and `--random-weights`.
pub fn fetch(url: &str, cache_dir: &Path) -> Result<PathBuf, ModelError> {
    fetch_with(url, cache_dir, &FetchOptions::default())
}

/// [`fetch`] with explicit limits and checks: https only (loopback http allowed), every redirect
/// checked the same way, timeouts, a size cap; the cached file is verified before use (and
/// downloaded again when it fails), the download before it replaces anything.
pub fn fetch_with(url: &str, cache_dir: &Path, opts: &FetchOptions) -> Result<PathBuf, ModelError> {
    fetch_verified(url, cache_dir, opts).map(|(path, _)| path)
}

/// [`fetch_with`], also returning the weights when verifying meant loading them (no
/// `--model-sha256`), with `source` naming the cached file.
pub fn fetch_verified(
    url: &str,
    cache_dir: &Path,
    opts: &FetchOptions,
) -> Result<(PathBuf, Option<Weights>), ModelError> {
    check_scheme(url).map_err(|why| download_error(url, why))?;
    let target = cache_dir.join(cache_file_name(url));
    if target.is_file() {
        match verify(url, &target, opts) {
            Ok(weights) => {
                tracing::info!(path = %target.display(), "using cached checkpoint");
                return Ok((target, weights));
            }
            Err(e) => {
                tracing::warn!(path = %target.display(), error = %e, "cached checkpoint is bad: downloading it again");
                std::fs::remove_file(&target).map_err(|e| {
                    download_error(url, format!("cannot remove {}: {e}", target.display()))
                })?;
            }
        }
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| {
        download_error(
            url,
            format!("cannot create cache directory {}: {e}", cache_dir.display()),
        )
    })?;
    let partial = target.with_file_name(format!("{}.part", cache_file_name(url)));
    tracing::info!(url = %redact_url(url), path = %target.display(), "downloading checkpoint");
    let result = download_to(url, &partial, opts).and_then(|bytes| {
        let weights = verify(url, &partial, opts)?;
        std::fs::rename(&partial, &target).map_err(|e| {
            download_error(
                url,
                format!("cannot move the download into {}: {e}", target.display()),
            )
        })?;
        Ok((bytes, weights))
    });
    match result {
        Ok((bytes, mut weights)) => {
            tracing::info!(path = %target.display(), bytes, "checkpoint downloaded");
            if let Some(w) = &mut weights {
                w.source = target.display().to_string();
            }
            Ok((target, weights))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Download `url` into `path` (a new file: an old one is removed first, and a link there is not
/// followed), returning the byte count.
fn download_to(url: &str, path: &Path, opts: &FetchOptions) -> Result<u64, ModelError> {
    get_to_file(url, path, opts, None).map_err(|e| download_error(url, e))
}

/// Why a transfer failed: the HTTP status when the server answered with an error, and what
/// happened in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransferError {
    /// HTTP status of an error answer (none for network, size or file errors).
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for TransferError {
    fn from(message: String) -> Self {
        Self {
            status: None,
            message,
        }
    }
}

impl From<&str> for TransferError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// `scheme://authority` of a URL, lower-cased: a bearer token goes only to the origin it was
/// given for, never to a host a redirect points at.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

fn agent(opts: &FetchOptions) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.response_timeout))
        .timeout_recv_body(Some(opts.body_timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("swin-serve/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// One request of `method` with the bearer token when `url` is on `token_origin`.
fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    bearer: Option<(&str, &str)>,
) -> Result<ureq::http::Response<ureq::Body>, TransferError> {
    let token =
        bearer.and_then(|(token_origin, token)| (origin(url) == token_origin).then_some(token));
    let result = match (method, token) {
        ("HEAD", Some(t)) => agent
            .head(url)
            .header("authorization", format!("Bearer {t}"))
            .header("accept-encoding", "identity")
            .call(),
        ("HEAD", None) => agent.head(url).header("accept-encoding", "identity").call(),
        (_, Some(t)) => agent
            .get(url)
            .header("authorization", format!("Bearer {t}"))
            .call(),
        (_, None) => agent.get(url).call(),
    };
    result.map_err(|e| TransferError::from(e.to_string()))
}

fn status_error(code: u16) -> TransferError {
    TransferError {
        status: Some(code),
        message: format!("the server answered HTTP {code}"),
    }
}

/// The answer to a `HEAD` request: its status and headers, after the relative redirects (a
/// renamed repository) were followed and before any to another host (a CDN) were.
#[derive(Debug, Clone)]
pub(crate) struct HeadAnswer {
    /// HTTP status of the last answer.
    pub status: u16,
    /// Its headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl HeadAnswer {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `HEAD url` (scheme checked, `bearer` = (origin, token) sent to that origin only), following
/// redirects to paths on the same server and stopping at one to another.
pub(crate) fn head(
    url: &str,
    opts: &FetchOptions,
    bearer: Option<(&str, &str)>,
) -> Result<HeadAnswer, TransferError> {
    check_scheme(url)?;
    let agent = agent(opts);
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let r = send(&agent, "HEAD", &current, bearer)?;
        let headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter_map(|(n, v)| {
                Some((
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().ok()?.to_string(),
                ))
            })
            .collect();
        let answer = HeadAnswer {
            status: r.status().as_u16(),
            headers,
        };
        let relative = answer
            .header("location")
            .filter(|l| l.starts_with('/') && !l.starts_with("//"))
            .map(str::to_string);
        match relative {
            Some(location) if r.status().is_redirection() => {
                current = resolve_location(&current, &location);
            }
            _ => return Ok(answer),
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects").into())
}

/// `GET url` into `path` (a new file: an old one is removed first, and a link there is not
/// followed), redirects followed and each checked like `url`, the size bounded; `bearer` =
/// (origin, token) is sent to that origin only. Returns the byte count.
pub(crate) fn get_to_file(
    url: &str,
    path: &Path,
    opts: &FetchOptions,
    bearer: Option<(&str, &str)>,
) -> Result<u64, TransferError> {
    check_scheme(url)?;
    let agent = agent(opts);
    // Redirects by hand, so that each target is checked like the first URL.
    let mut current = url.to_string();
    let mut response = None;
    for _ in 0..=MAX_REDIRECTS {
        let r = send(&agent, "GET", &current, bearer)?;
        if !r.status().is_redirection() {
            if r.status().as_u16() >= 400 {
                return Err(status_error(r.status().as_u16()));
            }
            response = Some(r);
            break;
        }
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("a redirect without a Location header")?;
        current = resolve_location(&current, location);
        check_scheme(&current)
            .map_err(|why| format!("redirected to {}: {why}", redact_url(&current)))?;
    }
    let mut response = response.ok_or(format!("more than {MAX_REDIRECTS} redirects"))?;
    let total = response.body().content_length();
    if let Some(total) = total.filter(|&t| t > opts.max_bytes) {
        return Err(format!(
            "the file has {total} bytes, more than the {} allowed",
            opts.max_bytes
        )
        .into());
    }
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(opts.max_bytes.saturating_add(1))
        .reader();

    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {}: {e}", path.display()).into()),
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
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
                return Err(format!("the transfer failed after {received} bytes: {e}").into());
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        received += n as u64;
        if received > opts.max_bytes {
            progress.abandon();
            return Err(format!("the file exceeds the {} bytes allowed", opts.max_bytes).into());
        }
        progress.advance(received);
    }
    if let Some(total) = total {
        if received != total {
            progress.abandon();
            return Err(format!("the transfer ended after {received} of {total} bytes").into());
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| format!("cannot write {}: {}", path.display(), e.error()))?;
    file.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
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
