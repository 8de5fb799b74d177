//! Helpers shared by the integration tests (`mod common;` in each test file). Each test binary
//! uses a subset, hence `dead_code` is allowed here.
#![allow(dead_code)]

pub mod bombs;
pub mod fake_mlu;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use swin_serve::engine::cpu::CpuOptions;
use swin_serve::engine::BackendOptions;
use swin_serve::model::{SwinV2Config, WeightsSource};
use swin_serve::server::ModelOptions;

/// A small random SwinV2-T (64×64 input, window 4, seed 3) on one thread: the real engine, fast
/// enough for serving tests.
pub fn tiny_model_options() -> ModelOptions {
    let mut config = SwinV2Config::tiny_window8_256();
    config.img_size = 64;
    config.window_size = 4;
    let mut cpu = CpuOptions::new(WeightsSource::Random { seed: 3, config });
    cpu.threads = 1;
    ModelOptions::new(BackendOptions::Cpu(cpu))
}

/// `GET /metrics` on `addr` (the `--metrics-listen` endpoint): the whole HTTP response as text,
/// asserted to be `200`.
pub fn scrape_metrics(addr: SocketAddr) -> String {
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

/// `tests/fixtures/<name>` (e.g. `parity`, `preprocess`).
pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A little-endian FLOAT32 tensor of a safetensors file: (shape, values). Panics with the tensor's
/// name when it is missing, and when it is not F32.
pub fn f32s(st: &safetensors::SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("tensor {name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    let data = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), data)
}

/// CRC-32 (IEEE 802.3, reflected, as PNG chunks use it), bit by bit.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
