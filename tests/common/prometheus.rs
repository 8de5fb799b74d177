//! The Prometheus endpoint (`--metrics-listen`) read as a scraper does, for `tests/metrics.rs` and
//! `tests/memory_budget.rs` (`mod common { pub mod prometheus; }`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// `GET /metrics` on `addr`: the whole HTTP response as text, asserted to be `200`.
pub fn scrape(addr: SocketAddr) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// The value of the sample `name{labels}` in `text` (labels written exactly as the exporter does).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
