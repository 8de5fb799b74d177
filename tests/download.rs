//! The checkpoint download path against a loopback HTTP/1.1 server (hand-written, one thread):
//! redirects, caching, HTTP errors, an unreachable server, a transfer cut short.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use swin_serve::model::download::{
    default_cache_dir, fetch, fetch_with, FetchOptions, CACHE_DIR_ENV,
};
use swin_serve::model::{ConfigHints, ModelError, Weights};

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/weights/official.pth"))
        .unwrap()
}

/// A loopback server: `/files/model.pth` serves the checkpoint, `/redirect/model.pth` answers 302
/// to it, `/cut/model.pth` announces the full length but closes halfway, anything else is 404.
/// Counts requests per path.
struct Server {
    base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let body = fixture_bytes();
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                // A thread per connection: `/stall/` holds its connection open.
                let (body, counter) = (body.clone(), counter.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &body, &counter);
                });
            }
        });
        Self { base, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn serve(
    mut stream: TcpStream,
    body: &[u8],
    hits: &Mutex<HashMap<String, usize>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    match path.as_str() {
        "/files/model.pth" => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
        "/redirect/model.pth" => {
            stream.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: /files/model.pth\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
        }
        "/cut/model.pth" => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body[..body.len() / 2])?;
        }
        "/to-http/model.pth" => {
            stream.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: http://example.invalid/model.pth\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
        }
        "/stall/model.pth" => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body[..100])?;
            stream.flush()?;
            std::thread::sleep(std::time::Duration::from_secs(30));
        }
        _ => {
            stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            )?;
        }
    }
    stream.flush()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn assert_offline_hint(err: &ModelError, url: &str) {
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, ModelError::Download(_)), "{msg}");
    assert!(msg.contains(url), "{msg} should name the URL");
    assert!(msg.contains("--model PATH"), "{msg}");
    assert!(msg.contains("--random-weights"), "{msg}");
}

#[test]
fn download_follows_redirect_caches_and_is_not_repeated() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("nested/cache"); // created on demand
    let url = format!("{}/redirect/model.pth", server.base);

    let path = fetch(&url, &dir).unwrap();
    assert_eq!(path, dir.join("model.pth"));
    assert_eq!(std::fs::read(&path).unwrap(), fixture_bytes());
    assert_eq!(server.hits("/redirect/model.pth"), 1);
    assert_eq!(server.hits("/files/model.pth"), 1);
    assert_eq!(files_in(&dir), vec![dir.join("model.pth")], "no .part left");

    // Cached: the server is not contacted again.
    let again = fetch(&url, &dir).unwrap();
    assert_eq!(again, path);
    assert_eq!(server.hits("/redirect/model.pth"), 1);
    assert_eq!(server.hits("/files/model.pth"), 1);

    // And the file is a usable checkpoint.
    let weights = Weights::load(&path).unwrap();
    let config = weights.infer_config(&ConfigHints::default()).unwrap();
    assert_eq!(config.num_classes, 10);
}

#[test]
fn http_404_fails_with_the_offline_hint_and_leaves_nothing() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("{}/nothing/here.pth", server.base);
    let err = fetch(&url, cache.path()).unwrap_err();
    assert_offline_hint(&err, &url);
    assert!(err.to_string().contains("404"), "{err}");
    assert_eq!(server.hits("/nothing/here.pth"), 1);
    assert!(files_in(cache.path()).is_empty());
}

#[test]
fn unreachable_server_fails_with_the_offline_hint() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/swinv2_tiny_patch4_window8_256.pth");
    let err = fetch(&url, cache.path()).unwrap_err();
    assert_offline_hint(&err, &url);
    assert!(files_in(cache.path()).is_empty());
}

#[test]
fn transfer_cut_short_is_an_error_and_the_partial_file_is_removed() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("{}/cut/model.pth", server.base);
    let err = fetch(&url, cache.path()).unwrap_err();
    assert_offline_hint(&err, &url);
    assert_eq!(server.hits("/cut/model.pth"), 1);
    assert!(
        files_in(cache.path()).is_empty(),
        "{:?}",
        files_in(cache.path())
    );
    // A later attempt downloads again rather than trusting a partial file.
    let _ = fetch(&url, cache.path());
    assert_eq!(server.hits("/cut/model.pth"), 2);
}

#[test]
fn cache_dir_comes_from_the_environment() {
    // The only test in this binary touching the environment.
    std::env::set_var(CACHE_DIR_ENV, "/some/where");
    assert_eq!(default_cache_dir(), PathBuf::from("/some/where"));
    std::env::remove_var(CACHE_DIR_ENV);
    std::env::set_var("XDG_CACHE_HOME", "/xdg");
    assert_eq!(default_cache_dir(), PathBuf::from("/xdg/swin-serve"));
}

#[test]
fn plain_http_is_refused_unless_loopback_and_so_are_redirects_to_it() {
    let cache = tempfile::tempdir().unwrap();
    let err = fetch("http://example.com/model.pth", cache.path()).unwrap_err();
    assert!(err.to_string().contains("plain http is refused"), "{err}");
    let err = fetch("ftp://example.com/model.pth", cache.path()).unwrap_err();
    assert!(err.to_string().contains("only https"), "{err}");

    let server = Server::start();
    let url = format!("{}/to-http/model.pth", server.base);
    let err = fetch(&url, cache.path()).unwrap_err();
    assert_offline_hint(&err, &url);
    assert!(
        err.to_string()
            .contains("redirected to http://example.invalid"),
        "{err}"
    );
    assert!(files_in(cache.path()).is_empty());
}

#[test]
fn a_stalled_body_times_out_and_leaves_nothing() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("{}/stall/model.pth", server.base);
    let opts = FetchOptions {
        body_timeout: std::time::Duration::from_millis(500),
        ..FetchOptions::default()
    };
    let started = std::time::Instant::now();
    let err = fetch_with(&url, cache.path(), &opts).unwrap_err();
    assert_offline_hint(&err, &url);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "not bounded by the timeout"
    );
    assert!(files_in(cache.path()).is_empty());
}

#[test]
fn an_oversized_body_is_refused_before_it_is_read() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("{}/files/model.pth", server.base);
    let opts = FetchOptions {
        max_bytes: 1000,
        ..FetchOptions::default()
    };
    let err = fetch_with(&url, cache.path(), &opts).unwrap_err();
    assert_offline_hint(&err, &url);
    assert!(
        err.to_string().contains("more than the 1000 allowed"),
        "{err}"
    );
    assert!(files_in(cache.path()).is_empty());
}

#[test]
fn a_wrong_digest_is_refused_and_the_right_one_accepted() {
    use sha2::Digest;
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("{}/files/model.pth", server.base);
    let wrong = FetchOptions {
        sha256: Some([0u8; 32]),
        ..FetchOptions::default()
    };
    let err = fetch_with(&url, cache.path(), &wrong).unwrap_err();
    assert!(err.to_string().contains("--model-sha256"), "{err}");
    assert!(files_in(cache.path()).is_empty(), "nothing kept");

    let right = FetchOptions {
        sha256: Some(sha2::Sha256::digest(fixture_bytes()).into()),
        ..FetchOptions::default()
    };
    let path = fetch_with(&url, cache.path(), &right).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), fixture_bytes());
}

#[test]
fn a_bad_cached_file_is_downloaded_again() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("{}/files/model.pth", server.base);
    // A truncated checkpoint left in the cache (an interrupted copy, a full disk).
    std::fs::write(cache.path().join("model.pth"), &fixture_bytes()[..500]).unwrap();
    let path = fetch(&url, cache.path()).unwrap();
    assert_eq!(server.hits("/files/model.pth"), 1);
    assert_eq!(std::fs::read(&path).unwrap(), fixture_bytes());
    // A good cached file is used as it is.
    fetch(&url, cache.path()).unwrap();
    assert_eq!(server.hits("/files/model.pth"), 1);
}
