//! `--model hf://ORG/NAME[@REVISION]`: a model repository on the Hugging Face Hub, fetched the way
//! `huggingface_hub.hf_hub_download` fetches it and cached in its layout, so that a model Python
//! already downloaded is used as it is and the other way round.
//!
//! For each file, a `HEAD {endpoint}/{repo}/resolve/{revision}/{file}` gives the commit
//! (`X-Repo-Commit`) and the blob's ETag (`X-Linked-Etag` for LFS files: their SHA-256); the first
//! file pins the commit and every other file is asked for at that commit. A blob is downloaded
//! only when the cache lacks it (through the checked downloader of [`super::download`]: https or
//! loopback http, redirects checked, size bounded), verified against its SHA-256 when the ETag is
//! one, and renamed into place complete. The cache:
//!
//! ```text
//! $HF_HUB_CACHE/models--ORG--NAME/blobs/<etag>
//!                                /snapshots/<commit>/<file> -> ../../blobs/<etag>
//!                                /refs/<revision>            (the commit it last resolved to)
//! ```
//!
//! Files, in order: `config.json` (required), `preprocessor_config.json` (when present), then the
//! weights: `model.safetensors`, else the shards of `model.safetensors.index.json`, else
//! `pytorch_model.bin`, else the shards of `pytorch_model.bin.index.json`. The snapshot directory
//! is then read like any local model directory ([`super::formats::load_local`]).
//!
//! The environment, as `huggingface_hub` reads it: `HF_ENDPOINT` (default
//! `https://huggingface.co`), `HF_TOKEN` (else the file at `HF_TOKEN_PATH`, else
//! `$HF_HOME/token`; sent to the endpoint only, never to a host a redirect points at, never
//! logged), `HF_HUB_OFFLINE` (`1`/`true`/`yes`/`on`: the cache only), `HF_HUB_CACHE` (else
//! `$HF_HOME/hub`; `HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`, else
//! `~/.cache/huggingface`). When the hub cannot be reached, a snapshot already cached for the
//! revision is used, with a warning.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::download::{self, FetchOptions, TransferError};
use super::ModelError;

/// The `--model` prefix naming a Hub repository.
pub const HUB_SCHEME: &str = "hf://";

/// The Hub's public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Largest JSON file fetched (config, preprocessor config, shard index).
const MAX_JSON_BYTES: u64 = 16 << 20;

/// Most shards an index may name.
const MAX_SHARDS: usize = 4096;

/// A repository and revision on the Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRepo {
    /// `ORG/NAME` (or a legacy single `NAME`).
    pub repo_id: String,
    /// Branch, tag or commit (`main` when none is given).
    pub revision: String,
}

impl std::fmt::Display for HubRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{HUB_SCHEME}{}@{}", self.repo_id, self.revision)
    }
}

impl HubRepo {
    /// `None` when `model` does not start with `hf://`; else the repository it names, or why it
    /// names none.
    pub fn parse(model: &str) -> Option<Result<HubRepo, String>> {
        let rest = model.strip_prefix(HUB_SCHEME)?;
        Some(Self::parse_rest(rest).map_err(|why| {
            format!("--model {model}: {why} (the form is hf://ORG/NAME or hf://ORG/NAME@REVISION)")
        }))
    }

    fn parse_rest(rest: &str) -> Result<HubRepo, String> {
        let (repo_id, revision) = match rest.split_once('@') {
            Some((r, rev)) => (r, rev),
            None => (rest, "main"),
        };
        let repo_id = repo_id.trim_end_matches('/');
        let parts: Vec<&str> = repo_id.split('/').collect();
        if parts.is_empty() || parts.len() > 2 {
            return Err(format!("`{repo_id}` is not a repository id"));
        }
        for part in &parts {
            let valid = !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !part.starts_with(['-', '.'])
                && !part.ends_with(['-', '.'])
                && !part.contains("--")
                && !part.contains("..");
            if !valid {
                return Err(format!(
                    "`{part}` is not a valid repository name (letters, digits, '-', '_' and '.', \
                     no '--' or '..', not starting or ending with '-' or '.')"
                ));
            }
        }
        if repo_id.len() > 96 {
            return Err("a repository id has at most 96 characters".into());
        }
        let revision_ok = !revision.is_empty()
            && revision.len() <= 255
            && revision
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '\\' && c != '?' && c != '#')
            && revision
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if !revision_ok {
            return Err(format!("`{revision}` is not a revision"));
        }
        Ok(HubRepo {
            repo_id: repo_id.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The repository's folder in the cache: `models--ORG--NAME`.
    pub fn cache_folder_name(&self) -> String {
        format!("models--{}", self.repo_id.replace('/', "--"))
    }
}

/// Where and how to reach the Hub.
#[derive(Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// Base URL (`HF_ENDPOINT`), without a trailing `/`.
    pub endpoint: String,
    /// Access token (`HF_TOKEN` or the token file).
    pub token: Option<String>,
    /// Use the cache only (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// The hub cache (`HF_HUB_CACHE`).
    pub cache_dir: PathBuf,
}

impl std::fmt::Debug for HubSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSettings")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("offline", &self.offline)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

impl HubSettings {
    /// The settings `huggingface_hub` would use in this environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`Self::from_env`] over any variable lookup (tests).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let hf_home =
            var("HF_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| match var("XDG_CACHE_HOME") {
                    Some(xdg) => PathBuf::from(xdg).join("huggingface"),
                    None => match var("HOME") {
                        Some(home) => PathBuf::from(home).join(".cache").join("huggingface"),
                        None => PathBuf::from(".cache").join("huggingface"),
                    },
                });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let path = var("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| hf_home.join("token"));
                std::fs::read_to_string(path).ok()
            })
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        let endpoint = var("HF_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        Self {
            endpoint,
            token,
            offline,
            cache_dir,
        }
    }
}

/// A revision of a repository, complete in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `…/snapshots/<commit>`: a model directory.
    pub dir: PathBuf,
    /// The commit it holds.
    pub commit: String,
}

fn hub_error(repo: &HubRepo, why: impl std::fmt::Display) -> ModelError {
    ModelError::Download(format!(
        "cannot fetch {repo} from the Hugging Face Hub: {why}; set HF_HUB_OFFLINE=1 to use the \
         cache only, or pass --model PATH (a local model directory or checkpoint)"
    ))
}

/// Percent-encode what a URL path segment cannot hold as it is (`/` in `refs/pr/1` included).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `W/"abc"` → `abc`.
fn normalize_etag(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// Fetch `repo` into the cache (or find it there, offline) and return its snapshot directory.
pub fn fetch_snapshot(
    repo: &HubRepo,
    settings: &HubSettings,
    opts: &FetchOptions,
) -> Result<Snapshot, ModelError> {
    let storage = settings.cache_dir.join(repo.cache_folder_name());
    if settings.offline {
        return cached_snapshot(repo, &storage).ok_or_else(|| {
            hub_error(
                repo,
                format!(
                    "HF_HUB_OFFLINE is set and the revision is not in the cache {}",
                    storage.display()
                ),
            )
        });
    }
    let mut fetcher = Fetcher {
        repo,
        settings,
        opts,
        storage: &storage,
        commit: None,
    };
    match fetcher.file("config.json", true) {
        Ok(_) => {}
        // The hub cannot be reached: what the cache holds for this revision, as huggingface_hub does.
        Err(FileError::Network(why)) => {
            return match cached_snapshot(repo, &storage) {
                Some(snapshot) => {
                    tracing::warn!(repo = %repo, commit = %snapshot.commit, error = %why,
                        "the Hugging Face Hub cannot be reached: using the cached snapshot");
                    Ok(snapshot)
                }
                None => Err(hub_error(repo, why)),
            };
        }
        Err(e) => return Err(fetcher.error(e)),
    }
    fetcher
        .file("preprocessor_config.json", false)
        .map_err(|e| fetcher.error(e))?;
    let mut found_weights = false;
    for (file, index) in [
        ("model.safetensors", false),
        ("model.safetensors.index.json", true),
        ("pytorch_model.bin", false),
        ("pytorch_model.bin.index.json", true),
    ] {
        let Some(path) = fetcher.file(file, false).map_err(|e| fetcher.error(e))? else {
            continue;
        };
        if index {
            for shard in shard_names(&path).map_err(|why| hub_error(repo, why))? {
                fetcher.file(&shard, true).map_err(|e| fetcher.error(e))?;
            }
        }
        found_weights = true;
        break;
    }
    let commit = fetcher
        .commit
        .clone()
        .expect("config.json pinned the commit");
    if !found_weights {
        return Err(hub_error(
            repo,
            format!(
                "commit {commit} has none of model.safetensors, model.safetensors.index.json, \
                 pytorch_model.bin, pytorch_model.bin.index.json"
            ),
        ));
    }
    if repo.revision != commit {
        let ref_path = storage.join("refs").join(&repo.revision);
        let written = ref_path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&ref_path, &commit));
        if let Err(e) = written {
            tracing::warn!(path = %ref_path.display(), error = %e, "cannot record the revision's commit in the cache");
        }
    }
    Ok(Snapshot {
        dir: storage.join("snapshots").join(&commit),
        commit,
    })
}

/// The snapshot the cache holds for `repo`'s revision (a commit hash, or a ref recorded in
/// `refs/`), when it has a `config.json`.
fn cached_snapshot(repo: &HubRepo, storage: &Path) -> Option<Snapshot> {
    let commit = if is_commit_hash(&repo.revision)
        && storage.join("snapshots").join(&repo.revision).is_dir()
    {
        repo.revision.clone()
    } else {
        let text = std::fs::read_to_string(storage.join("refs").join(&repo.revision)).ok()?;
        let commit = text.trim().to_string();
        is_commit_hash(&commit).then_some(commit)?
    };
    let dir = storage.join("snapshots").join(&commit);
    dir.join("config.json")
        .is_file()
        .then_some(Snapshot { dir, commit })
}

/// The file names an `*.index.json` maps tensors to (each a plain file name).
fn shard_names(index: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read(index).map_err(|e| format!("cannot read {}: {e}", index.display()))?;
    let json: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{} has no `weight_map` object", index.display()))?;
    let mut names: Vec<String> = Vec::new();
    for value in map.values() {
        let name = value
            .as_str()
            .ok_or_else(|| format!("{}: a `weight_map` value is not a string", index.display()))?;
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(format!(
                "{}: shard `{name}` is not a plain file name",
                index.display()
            ));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    if names.len() > MAX_SHARDS {
        return Err(format!(
            "{} names more than {MAX_SHARDS} shards",
            index.display()
        ));
    }
    names.sort();
    Ok(names)
}

/// Why one file could not be fetched.
enum FileError {
    /// No answer from the hub (connection, TLS, timeout).
    Network(String),
    /// An answer that refuses, or a file that cannot be stored or verified.
    Other(String),
}

struct Fetcher<'a> {
    repo: &'a HubRepo,
    settings: &'a HubSettings,
    opts: &'a FetchOptions,
    storage: &'a Path,
    /// The commit the first file resolved to; every later file is asked for at it.
    commit: Option<String>,
}

impl Fetcher<'_> {
    fn error(&self, e: FileError) -> ModelError {
        match e {
            FileError::Network(why) | FileError::Other(why) => hub_error(self.repo, why),
        }
    }

    fn url(&self, file: &str) -> String {
        let revision = self.commit.as_deref().unwrap_or(&self.repo.revision);
        format!(
            "{}/{}/resolve/{}/{}",
            self.settings.endpoint,
            self.repo.repo_id,
            encode_segment(revision),
            file
        )
    }

    fn bearer(&self) -> Option<(String, String)> {
        let token = self.settings.token.clone()?;
        let endpoint = &self.settings.endpoint;
        let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", endpoint));
        let authority = rest.split('/').next().unwrap_or("");
        Some((
            format!("{scheme}://{authority}").to_ascii_lowercase(),
            token,
        ))
    }

    /// Make `file` of the pinned commit present in the snapshot; `Ok(None)` when the repository
    /// has no such file and it is not `required`.
    fn file(&mut self, file: &str, required: bool) -> Result<Option<PathBuf>, FileError> {
        let url = self.url(file);
        let bearer = self.bearer();
        let bearer = bearer.as_ref().map(|(o, t)| (o.as_str(), t.as_str()));
        let answer = download::head(&url, self.opts, bearer).map_err(|e| self.transfer(e))?;
        match answer.status {
            200..=399 => {}
            404 if !required => return Ok(None),
            code => return Err(FileError::Other(self.refusal(file, code))),
        }
        let commit = answer
            .header("x-repo-commit")
            .map(str::trim)
            .filter(|c| is_commit_hash(c))
            .ok_or_else(|| {
                FileError::Other(format!(
                    "{} answered without an X-Repo-Commit header: not a Hugging Face Hub \
                     (check HF_ENDPOINT)",
                    download::redact_url(&url)
                ))
            })?
            .to_ascii_lowercase();
        match &self.commit {
            None => self.commit = Some(commit.clone()),
            Some(pinned) if *pinned != commit => {
                return Err(FileError::Other(format!(
                    "{file} resolved to commit {commit}, not the pinned {pinned}"
                )))
            }
            Some(_) => {}
        }
        let etag = answer
            .header("x-linked-etag")
            .or_else(|| answer.header("etag"))
            .map(normalize_etag)
            .filter(|e| {
                !e.is_empty()
                    && e.len() <= 128
                    && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .ok_or_else(|| {
                FileError::Other(format!(
                    "{} answered without a usable ETag",
                    download::redact_url(&url)
                ))
            })?;
        let size: Option<u64> = answer
            .header("x-linked-size")
            .or_else(|| answer.header("content-length"))
            .and_then(|s| s.trim().parse().ok());
        let json = file.ends_with(".json");
        let limit = if json {
            MAX_JSON_BYTES
        } else {
            self.opts.max_bytes
        };
        if let Some(size) = size.filter(|&s| s > limit) {
            return Err(FileError::Other(format!(
                "{file} has {size} bytes, more than the {limit} allowed"
            )));
        }
        let blobs = self.storage.join("blobs");
        let blob = blobs.join(&etag);
        if blob.is_file() {
            tracing::info!(repo = %self.repo, file, "using the cached blob");
        } else {
            std::fs::create_dir_all(&blobs)
                .map_err(|e| FileError::Other(format!("cannot create {}: {e}", blobs.display())))?;
            let partial = blobs.join(format!("{etag}.{}.incomplete", std::process::id()));
            let opts = FetchOptions {
                max_bytes: limit,
                ..self.opts.clone()
            };
            tracing::info!(repo = %self.repo, file, bytes = size, "downloading from the Hugging Face Hub");
            let result = download::get_to_file(&url, &partial, &opts, bearer)
                .map_err(|e| self.transfer(e))
                .and_then(|received| self.check_blob(file, &partial, &etag, size, received))
                .and_then(|()| {
                    std::fs::rename(&partial, &blob).map_err(|e| {
                        FileError::Other(format!(
                            "cannot move the download into {}: {e}",
                            blob.display()
                        ))
                    })
                });
            if let Err(e) = result {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        }
        let snapshot = self.storage.join("snapshots").join(&commit);
        std::fs::create_dir_all(&snapshot)
            .map_err(|e| FileError::Other(format!("cannot create {}: {e}", snapshot.display())))?;
        let link = snapshot.join(file);
        link_blob(&blob, &etag, &link)
            .map_err(|e| FileError::Other(format!("cannot create {}: {e}", link.display())))?;
        Ok(Some(link))
    }

    /// A downloaded blob has the announced size and, when its ETag is a SHA-256 (LFS files),
    /// that digest.
    fn check_blob(
        &self,
        file: &str,
        path: &Path,
        etag: &str,
        size: Option<u64>,
        received: u64,
    ) -> Result<(), FileError> {
        if let Some(size) = size.filter(|&s| s != received) {
            return Err(FileError::Other(format!(
                "{file}: received {received} bytes, the hub announced {size}"
            )));
        }
        if etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit()) {
            let actual = download::file_sha256(path)
                .map_err(|e| FileError::Other(format!("cannot read {}: {e}", path.display())))?;
            let actual = download::hex(&actual);
            if !actual.eq_ignore_ascii_case(etag) {
                return Err(FileError::Other(format!(
                    "{file} has SHA-256 {actual}, the hub's ETag says {etag}"
                )));
            }
        }
        Ok(())
    }

    fn transfer(&self, e: TransferError) -> FileError {
        match e.status {
            Some(code) => FileError::Other(format!("{e} (HTTP {code})")),
            None => FileError::Network(e.message),
        }
    }

    fn refusal(&self, file: &str, code: u16) -> String {
        match code {
            401 | 403 => format!(
                "{file}: HTTP {code}: the repository is private or gated{}",
                if self.settings.token.is_some() {
                    " and HF_TOKEN does not give access to it"
                } else {
                    ": set HF_TOKEN (or log in with `hf auth login`)"
                }
            ),
            404 => format!(
                "{file}: HTTP 404: no repository {} with revision {} on {} (a private repository \
                 also answers 404 without a token)",
                self.repo.repo_id, self.repo.revision, self.settings.endpoint
            ),
            code => format!("{file}: the hub answered HTTP {code}"),
        }
    }
}

/// `link` → `../../blobs/<etag>` (a copy where links cannot be made).
fn link_blob(blob: &Path, etag: &str, link: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(_) => std::fs::remove_file(link)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    #[cfg(unix)]
    {
        let _ = blob;
        std::os::unix::fs::symlink(Path::new("../../blobs").join(etag), link)
    }
    #[cfg(not(unix))]
    {
        let _ = etag;
        std::fs::copy(blob, link).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_parse_as_the_hub_accepts_them() {
        assert_eq!(HubRepo::parse("/models/x"), None);
        assert_eq!(HubRepo::parse("model.pth"), None);
        let r = HubRepo::parse("hf://microsoft/swinv2-tiny-patch4-window8-256")
            .unwrap()
            .unwrap();
        assert_eq!(r.repo_id, "microsoft/swinv2-tiny-patch4-window8-256");
        assert_eq!(r.revision, "main");
        assert_eq!(
            r.cache_folder_name(),
            "models--microsoft--swinv2-tiny-patch4-window8-256"
        );
        let r = HubRepo::parse("hf://timm/swinv2_tiny_window8_256.ms_in1k@refs/pr/3")
            .unwrap()
            .unwrap();
        assert_eq!(r.revision, "refs/pr/3");
        assert_eq!(encode_segment(&r.revision), "refs%2Fpr%2F3");
        for bad in [
            "hf://",
            "hf://a/b/c",
            "hf://a--b/c",
            "hf://../x",
            "hf://a/.x",
            "hf://a/b@",
            "hf://a/b@../../etc",
            "hf://a/b@x y",
            "hf://a b/c",
        ] {
            let err = HubRepo::parse(bad).unwrap().unwrap_err();
            assert!(err.contains("hf://ORG/NAME"), "{bad}: {err}");
        }
    }

    #[test]
    fn settings_follow_huggingface_hub_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = HubSettings::from_lookup(env(&[("HOME", "/home/u")]));
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert!(!s.offline);
        let s = HubSettings::from_lookup(env(&[
            ("HOME", "/home/u"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
            ("HF_HUB_OFFLINE", "True"),
            ("HF_TOKEN", " hf_abc\n"),
        ]));
        assert_eq!(s.cache_dir, PathBuf::from("/xdg/huggingface/hub"));
        assert_eq!(s.endpoint, "http://127.0.0.1:9");
        assert!(s.offline);
        assert_eq!(s.token.as_deref(), Some("hf_abc"));
        assert!(!format!("{s:?}").contains("hf_abc"));
        let s = HubSettings::from_lookup(env(&[
            ("HF_HOME", "/hf"),
            ("HF_HUB_OFFLINE", "0"),
            ("HF_TOKEN_PATH", "/nonexistent/token"),
        ]));
        assert_eq!(s.cache_dir, PathBuf::from("/hf/hub"));
        assert!(!s.offline && s.token.is_none());
        let s = HubSettings::from_lookup(env(&[("HF_HUB_CACHE", "/c")]));
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
    }

    #[test]
    fn etags_are_normalized() {
        assert_eq!(normalize_etag("W/\"abc-1\""), "abc-1");
        assert_eq!(normalize_etag("\"0123\""), "0123");
    }
}
