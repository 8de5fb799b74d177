//! `--model hf://ORG/NAME[@REVISION]` against a loopback server that answers as the Hugging Face
//! Hub does: `HEAD`/`GET /{repo}/resolve/{revision}/{file}` with `X-Repo-Commit`, the weights
//! (LFS files) redirected to a second server (the "CDN", another origin) with `X-Linked-Etag`
//! (their SHA-256) and `X-Linked-Size`, JSON files answered in place with a git ETag, 401 for a
//! private repository without the token, 404 for anything else. The repositories are the
//! library fixtures of `tests/fixtures/library/` (written by transformers and timm themselves).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use swin_serve::model::download::FetchOptions;
use swin_serve::model::hub::{fetch_snapshot, HubRepo, HubSettings};
use swin_serve::model::{ConfigHints, ModelError, WeightsSource};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TOKEN: &str = "hf_loopback_secret";

fn library(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/library")
        .join(dir)
}

/// Repository id → (fixture directory, private).
fn repos() -> HashMap<&'static str, (&'static str, bool)> {
    HashMap::from([
        ("test/hf-swinv2", ("hf_swinv2", false)),
        ("test/hf-swinv2-sharded", ("hf_swinv2_sharded", false)),
        ("test/timm-swinv2", ("timm_swinv2", false)),
        ("test/private-swin", ("hf_swin_bin", true)),
    ])
}

#[derive(Default)]
struct Log {
    /// (method, path, had an Authorization header) of every request.
    hub: Vec<(String, String, bool)>,
    cdn: Vec<(String, String, bool)>,
}

struct Hub {
    endpoint: String,
    log: Arc<Mutex<Log>>,
    /// Files of the CDN served with a byte flipped.
    corrupt: Arc<Mutex<Vec<String>>>,
}

struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
}

fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let mut parts = line.split_whitespace();
    Ok(Request {
        method: parts.next().unwrap_or("").to_string(),
        path: parts.next().unwrap_or("").to_string(),
        authorization,
    })
}

fn respond(
    mut stream: &TcpStream,
    status: &str,
    headers: &[(String, String)],
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let mut text = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (n, v) in headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(text.as_bytes())?;
    if !head {
        stream.write_all(body)?;
    }
    stream.flush()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_lfs(file: &str) -> bool {
    file.ends_with(".safetensors") || file.ends_with(".bin")
}

fn serve_in_thread(listener: TcpListener, handler: impl Fn(TcpStream) + Send + Sync + 'static) {
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || handler(stream));
        }
    });
}

impl Hub {
    fn start() -> Self {
        let hub_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let cdn_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", hub_listener.local_addr().unwrap());
        let cdn = format!("http://{}", cdn_listener.local_addr().unwrap());
        let log: Arc<Mutex<Log>> = Arc::default();
        let corrupt: Arc<Mutex<Vec<String>>> = Arc::default();

        // The CDN: /{repo fixture}/{file}, the bytes themselves.
        let (cdn_log, cdn_corrupt) = (log.clone(), corrupt.clone());
        serve_in_thread(cdn_listener, move |stream| {
            let Ok(req) = read_request(&stream) else {
                return;
            };
            cdn_log.lock().unwrap().cdn.push((
                req.method.clone(),
                req.path.clone(),
                req.authorization.is_some(),
            ));
            let rel = req.path.trim_start_matches('/');
            let Some((fixture, file)) = rel.split_once('/') else {
                let _ = respond(&stream, "404 Not Found", &[], b"", false);
                return;
            };
            match std::fs::read(library(fixture).join(file)) {
                Ok(mut bytes) => {
                    if cdn_corrupt.lock().unwrap().iter().any(|f| f == file) {
                        let last = bytes.len() - 1;
                        bytes[last] ^= 0xff;
                    }
                    let _ = respond(&stream, "200 OK", &[], &bytes, req.method == "HEAD");
                }
                Err(_) => {
                    let _ = respond(&stream, "404 Not Found", &[], b"", false);
                }
            }
        });

        let hub_log = log.clone();
        serve_in_thread(hub_listener, move |stream| {
            let Ok(req) = read_request(&stream) else {
                return;
            };
            hub_log.lock().unwrap().hub.push((
                req.method.clone(),
                req.path.clone(),
                req.authorization.is_some(),
            ));
            let head = req.method == "HEAD";
            let not_found = |why: &str| {
                let _ = respond(
                    &stream,
                    "404 Not Found",
                    &[("X-Error-Code".into(), why.into())],
                    b"",
                    head,
                );
            };
            // /{org}/{name}/resolve/{revision}/{file}
            let parts: Vec<&str> = req.path.trim_start_matches('/').splitn(5, '/').collect();
            let [org, name, "resolve", revision, file] = parts[..] else {
                return not_found("EntryNotFound");
            };
            let repo_id = format!("{org}/{name}");
            let Some(&(fixture, private)) = repos().get(repo_id.as_str()) else {
                return not_found("RepoNotFound");
            };
            if private && req.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
                let _ = respond(&stream, "401 Unauthorized", &[], b"", head);
                return;
            }
            if revision != "main" && revision != COMMIT {
                return not_found("RevisionNotFound");
            }
            let Ok(bytes) = std::fs::read(library(fixture).join(file)) else {
                return not_found("EntryNotFound");
            };
            let mut headers = vec![("X-Repo-Commit".to_string(), COMMIT.to_string())];
            if is_lfs(file) {
                headers.push((
                    "X-Linked-Etag".into(),
                    format!("\"{}\"", sha256_hex(&bytes)),
                ));
                headers.push(("X-Linked-Size".into(), bytes.len().to_string()));
                headers.push(("Location".into(), format!("{cdn}/{fixture}/{file}")));
                let _ = respond(&stream, "302 Found", &headers, b"", head);
            } else {
                headers.push(("ETag".into(), format!("\"{}\"", &sha256_hex(&bytes)[..40])));
                let _ = respond(&stream, "200 OK", &headers, &bytes, head);
            }
        });
        Self {
            endpoint,
            log,
            corrupt,
        }
    }

    fn settings(&self, cache: &Path) -> HubSettings {
        HubSettings {
            endpoint: self.endpoint.clone(),
            token: None,
            offline: false,
            cache_dir: cache.to_path_buf(),
        }
    }

    fn cdn_gets(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .cdn
            .iter()
            .filter(|(m, _, _)| m == "GET")
            .count()
    }
}

fn repo(spec: &str) -> HubRepo {
    HubRepo::parse(spec).unwrap().unwrap()
}

fn load(repo: HubRepo, settings: HubSettings) -> Result<swin_serve::model::Weights, ModelError> {
    WeightsSource::Hub { repo, settings }
        .load(&ConfigHints::default())
        .map(|(w, _)| w)
}

/// The same tensors, bit for bit, as loading the fixture directory from the disk.
fn assert_same_as_local(weights: &swin_serve::model::Weights, fixture: &str) {
    let (local, _) = WeightsSource::File(library(fixture))
        .load(&ConfigHints::default())
        .unwrap();
    assert_eq!(
        weights.tensors.keys().collect::<Vec<_>>(),
        local.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &local.tensors {
        let got = &weights.tensors[name];
        assert_eq!(got.shape, t.shape, "{name}");
        assert!(
            got.data
                .iter()
                .zip(&t.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}"
        );
    }
    assert_eq!(weights.metadata, local.metadata);
}

#[test]
fn a_hub_model_is_fetched_into_huggingface_hubs_cache_layout_and_loads_like_the_local_dir() {
    let hub = Hub::start();
    let cache = tempfile::tempdir().unwrap();
    let weights = load(repo("hf://test/hf-swinv2"), hub.settings(cache.path())).unwrap();
    assert_same_as_local(&weights, "hf_swinv2");
    assert!(weights.source.contains(COMMIT), "{}", weights.source);

    let storage = cache.path().join("models--test--hf-swinv2");
    assert_eq!(
        std::fs::read_to_string(storage.join("refs/main")).unwrap(),
        COMMIT
    );
    let snapshot = storage.join("snapshots").join(COMMIT);
    let safetensors = std::fs::read(library("hf_swinv2").join("model.safetensors")).unwrap();
    let link = std::fs::read_link(snapshot.join("model.safetensors")).unwrap();
    assert_eq!(
        link,
        Path::new("../../blobs").join(sha256_hex(&safetensors))
    );
    for file in [
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ] {
        assert_eq!(
            std::fs::read(snapshot.join(file)).unwrap(),
            std::fs::read(library("hf_swinv2").join(file)).unwrap(),
            "{file}"
        );
    }
    // Nothing half-written is left, and the weights came from the CDN once.
    let blobs: Vec<String> = std::fs::read_dir(storage.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(blobs.iter().all(|b| !b.contains("incomplete")), "{blobs:?}");
    assert_eq!(hub.cdn_gets(), 1);

    // Again: every blob is in the cache, so nothing is downloaded.
    let again = load(repo("hf://test/hf-swinv2@main"), hub.settings(cache.path())).unwrap();
    assert_same_as_local(&again, "hf_swinv2");
    assert_eq!(hub.cdn_gets(), 1);
    let log = hub.log.lock().unwrap();
    // After config.json pinned the commit, every file was asked for at it.
    let later: Vec<&String> = log.hub.iter().map(|(_, p, _)| p).skip(1).collect();
    assert!(
        later
            .iter()
            .all(|p| p.contains(COMMIT) || p.ends_with("/config.json")),
        "{later:?}"
    );
}

#[test]
fn offline_and_unreachable_hubs_use_the_cache_and_say_so_when_it_is_empty() {
    let hub = Hub::start();
    let cache = tempfile::tempdir().unwrap();
    load(repo("hf://test/timm-swinv2"), hub.settings(cache.path())).unwrap();

    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut settings = hub.settings(cache.path());
    settings.endpoint = unreachable.clone();
    // Unreachable: the cached snapshot of `main`, and of its commit.
    let w = load(repo("hf://test/timm-swinv2"), settings.clone()).unwrap();
    assert_same_as_local(&w, "timm_swinv2");
    settings.offline = true;
    let w = load(
        repo(&format!("hf://test/timm-swinv2@{COMMIT}")),
        settings.clone(),
    )
    .unwrap();
    assert_same_as_local(&w, "timm_swinv2");

    // Offline with nothing cached: a clear error, and no request made.
    let empty = tempfile::tempdir().unwrap();
    settings.cache_dir = empty.path().to_path_buf();
    let err = load(repo("hf://test/timm-swinv2"), settings.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    // Unreachable with nothing cached: the network error.
    settings.offline = false;
    let err = load(repo("hf://test/timm-swinv2"), settings)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hf://test/timm-swinv2@main"), "{err}");
}

#[test]
fn a_private_repository_needs_the_token_which_never_leaves_the_endpoint() {
    let hub = Hub::start();
    let cache = tempfile::tempdir().unwrap();
    let err = load(repo("hf://test/private-swin"), hub.settings(cache.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("401") && err.contains("HF_TOKEN"), "{err}");

    let mut settings = hub.settings(cache.path());
    settings.token = Some(TOKEN.to_string());
    let w = load(repo("hf://test/private-swin"), settings.clone()).unwrap();
    assert_same_as_local(&w, "hf_swin_bin");
    let log = hub.log.lock().unwrap();
    assert!(!log.cdn.is_empty());
    assert!(
        log.cdn.iter().all(|(_, _, auth)| !auth),
        "the token went to the CDN: {:?}",
        log.cdn
    );
    drop(log);

    settings.token = Some("wrong".into());
    settings.cache_dir = tempfile::tempdir().unwrap().keep();
    let err = load(repo("hf://test/private-swin"), settings)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not give access"), "{err}");
    assert!(!err.contains("wrong"), "the token is in the error: {err}");
}

#[test]
fn missing_repositories_revisions_and_weights_are_named() {
    let hub = Hub::start();
    let cache = tempfile::tempdir().unwrap();
    for spec in ["hf://test/nothing-here", "hf://test/hf-swinv2@v9"] {
        let err = load(repo(spec), hub.settings(cache.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP 404"), "{spec}: {err}");
    }
    // An endpoint that is not a hub (no X-Repo-Commit).
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_url = format!("http://{}", plain.local_addr().unwrap());
    serve_in_thread(plain, |stream| {
        if read_request(&stream).is_ok() {
            let _ = respond(&stream, "200 OK", &[], b"{}", false);
        }
    });
    let mut settings = hub.settings(cache.path());
    settings.endpoint = plain_url;
    let err = load(repo("hf://test/hf-swinv2"), settings)
        .unwrap_err()
        .to_string();
    assert!(err.contains("X-Repo-Commit"), "{err}");
}

#[test]
fn shards_are_fetched_through_the_index() {
    let hub = Hub::start();
    let cache = tempfile::tempdir().unwrap();
    let snapshot = fetch_snapshot(
        &repo("hf://test/hf-swinv2-sharded"),
        &hub.settings(cache.path()),
        &FetchOptions::default(),
    )
    .unwrap();
    assert_eq!(snapshot.commit, COMMIT);
    let mut files: Vec<String> = std::fs::read_dir(&snapshot.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = std::fs::read_dir(library("hf_swinv2_sharded"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(files, expected);
    let w = load(
        repo("hf://test/hf-swinv2-sharded"),
        hub.settings(cache.path()),
    )
    .unwrap();
    assert_same_as_local(&w, "hf_swinv2_sharded");
}

#[test]
fn a_blob_that_does_not_match_its_sha256_etag_is_refused_and_not_cached() {
    let hub = Hub::start();
    hub.corrupt
        .lock()
        .unwrap()
        .push("model.safetensors".to_string());
    let cache = tempfile::tempdir().unwrap();
    let err = load(repo("hf://test/hf-swinv2"), hub.settings(cache.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SHA-256"), "{err}");
    let blobs = cache.path().join("models--test--hf-swinv2/blobs");
    let names: Vec<String> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let safetensors = std::fs::read(library("hf_swinv2").join("model.safetensors")).unwrap();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with(&sha256_hex(&safetensors))),
        "{names:?}"
    );
    // The next try, with the CDN fixed, downloads it again.
    hub.corrupt.lock().unwrap().clear();
    let w = load(repo("hf://test/hf-swinv2"), hub.settings(cache.path())).unwrap();
    assert_same_as_local(&w, "hf_swinv2");
}

/// The binary reads `HF_ENDPOINT` and `HF_HUB_CACHE` as huggingface_hub does: `convert` of an
/// `hf://` model writes the same file as `convert` of the local directory.
#[test]
fn the_cli_takes_hf_urls_with_the_environment_of_huggingface_hub() {
    let hub = Hub::start();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = |source: &str, dest: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_swin-serve"))
            .args(["convert", source])
            .arg(dest)
            .env("HF_ENDPOINT", &hub.endpoint)
            .env("HF_HUB_CACHE", cache.path())
            .env_remove("HF_TOKEN")
            .env_remove("HF_HUB_OFFLINE")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let from_hub = out.path().join("hub.safetensors");
    let from_disk = out.path().join("disk.safetensors");
    run("hf://test/timm-swinv2", &from_hub);
    run(library("timm_swinv2").to_str().unwrap(), &from_disk);
    let (a, b) = (
        std::fs::read(&from_hub).unwrap(),
        std::fs::read(&from_disk).unwrap(),
    );
    assert!(a.len() > 1000);
    // The metadata names the source differently; the tensors are the same bytes.
    let tail = |bytes: &[u8]| {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        bytes[8 + n..].to_vec()
    };
    assert_eq!(tail(&a), tail(&b));
    assert!(cache
        .path()
        .join("models--test--timm-swinv2/snapshots")
        .join(COMMIT)
        .join("config.json")
        .is_file());

    let output = Command::new(env!("CARGO_BIN_EXE_swin-serve"))
        .args(["convert", "hf://test/x/y"])
        .arg(out.path().join("bad.safetensors"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hf://ORG/NAME"), "{stderr}");
}
