//! Preprocessing parity with PIL + torchvision (the official Swin eval transform), decode limits,
//! and robustness against malformed input.
//!
//! Fixtures: `tests/fixtures/preprocess/`, written by `tests/fixtures/make_preprocess_reference.py`
//! (see its docstring for the manifest format). Run with `--nocapture` to see the per-image figures.

mod common {
    pub mod fixtures;
}

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use image::RgbImage;
use swin_serve::preprocess::{
    decode_rgb8, normalize_into, preprocess_into, resize_center_crop, resized_size,
    PreprocessConfig, PreprocessError,
};

use common::fixtures::fixture_dir;

// ---------------------------------------------------------------------------------------------
// A per-thread allocation meter, to show that refused images cost (almost) no memory.

struct MeteredAllocator;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn meter(delta: isize) {
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the meter only updates
// const-initialised thread-local counters, which never allocate.
unsafe impl GlobalAlloc for MeteredAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        meter(layout.size() as isize);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        meter(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        meter(layout.size() as isize);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        meter(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller guarantees `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: MeteredAllocator = MeteredAllocator;

/// Runs `f` and returns its result with the peak of bytes this thread held above the start.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|p| p.set(start));
    let out = f();
    let peak = PEAK_BYTES.with(Cell::get);
    (out, (peak - start).max(0) as usize)
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn read_input(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir("preprocess").join("inputs").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[derive(Debug, Default)]
struct Decoded {
    format: String,
    lossless: bool,
    width: u32,
    height: u32,
    pil_mode: String,
    fnv: u64,
}

#[derive(Debug)]
struct CropRef {
    name: String,
    img_size: u32,
    resized: (u64, u64),
    crop_file: String,
    sums: [f64; 3],
    sumsq: [f64; 3],
    samples: Vec<(usize, f32)>,
}

struct Manifest {
    decoded: BTreeMap<String, Decoded>,
    crops: Vec<CropRef>,
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixture_dir("preprocess").join("manifest.txt"))
        .expect("manifest.txt");
    let mut decoded = BTreeMap::new();
    let mut crops: Vec<CropRef> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let t: Vec<&str> = line.split_whitespace().collect();
        let find = |crops: &mut Vec<CropRef>| -> usize {
            let size: u32 = t[2].parse().unwrap();
            crops
                .iter()
                .position(|c| c.name == t[1] && c.img_size == size)
                .unwrap_or_else(|| panic!("no crop line before: {line}"))
        };
        match t[0] {
            "decoded" => {
                decoded.insert(
                    t[1].to_string(),
                    Decoded {
                        format: t[2].to_string(),
                        lossless: t[3] == "1",
                        width: t[4].parse().unwrap(),
                        height: t[5].parse().unwrap(),
                        pil_mode: t[6].to_string(),
                        fnv: u64::from_str_radix(t[7], 16).unwrap(),
                    },
                );
            }
            "crop" => crops.push(CropRef {
                name: t[1].to_string(),
                img_size: t[2].parse().unwrap(),
                resized: (t[3].parse().unwrap(), t[4].parse().unwrap()),
                crop_file: t[7].to_string(),
                sums: [0.0; 3],
                sumsq: [0.0; 3],
                samples: Vec::new(),
            }),
            "tensor" => {
                let i = find(&mut crops);
                let v: Vec<f64> = t[3..9].iter().map(|s| s.parse().unwrap()).collect();
                crops[i].sums = [v[0], v[1], v[2]];
                crops[i].sumsq = [v[3], v[4], v[5]];
            }
            "sample" => {
                let i = find(&mut crops);
                crops[i].samples = t[3..]
                    .chunks_exact(2)
                    .map(|p| (p[0].parse().unwrap(), p[1].parse::<f64>().unwrap() as f32))
                    .collect();
            }
            other => panic!("unknown manifest line kind {other}"),
        }
    }
    Manifest { decoded, crops }
}

fn reference_crop(c: &CropRef) -> RgbImage {
    // Grey crops are stored as 8-bit grey (R = G = B); replication restores them exactly.
    image::open(fixture_dir("preprocess").join("crops").join(&c.crop_file))
        .expect("crop png")
        .to_rgb8()
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Lossless formats decode to the same pixels by definition, JPEG because it is decoded by
/// libjpeg-turbo like in Pillow. Lossy WebP is decoded by image-webp, not libwebp: ±1 is allowed.
fn bit_exact_expected(d: &Decoded) -> bool {
    d.lossless || d.format == "jpeg"
}

/// Per-value comparison of two uint8 images of the same size.
struct Diff {
    max: u8,
    exact: f64,
    within_one: f64,
}

fn diff(a: &RgbImage, b: &RgbImage) -> Diff {
    assert_eq!(a.dimensions(), b.dimensions());
    let n = a.as_raw().len() as f64;
    let (mut max, mut exact, mut within_one) = (0u8, 0usize, 0usize);
    for (&x, &y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(y);
        max = max.max(d);
        exact += usize::from(d == 0);
        within_one += usize::from(d <= 1);
    }
    Diff {
        max,
        exact: exact as f64 / n,
        within_one: within_one as f64 / n,
    }
}

/// Largest normalised step of one uint8 level: 1 / (255 · min std).
fn one_level(cfg: &PreprocessConfig) -> f32 {
    1.0 / (255.0 * cfg.std.iter().copied().fold(f32::INFINITY, f32::min))
}

// ---------------------------------------------------------------------------------------------
// Parity.

#[test]
fn config_matches_the_official_transform() {
    for (img, resize) in [(256, 292), (224, 256), (192, 219), (384, 438)] {
        let cfg = PreprocessConfig::for_image_size(img);
        assert_eq!(
            (cfg.crop_size, cfg.resize_size),
            (img, resize),
            "int(256 / 224 * {img})"
        );
        assert_eq!(cfg.max_image_pixels, 89_478_485);
        assert_eq!(cfg.tensor_len(), (3 * img * img) as usize);
    }
}

#[test]
fn decoded_pixels_match_pil_convert_rgb() {
    let m = manifest();
    let cfg = PreprocessConfig::for_image_size(256);
    let mut lossless = 0;
    for (name, d) in &m.decoded {
        let img = decode_rgb8(&read_input(name), &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.dimensions(), (d.width, d.height), "{name}: size");
        let same = fnv1a64(img.as_raw()) == d.fnv;
        println!(
            "decode {name:42} {:5} PIL mode {:5} {}x{}: {}",
            d.format,
            d.pil_mode,
            d.width,
            d.height,
            if same {
                "identical to PIL"
            } else {
                "differs from PIL (lossy decoder)"
            }
        );
        if bit_exact_expected(d) {
            assert!(
                same,
                "{name}: decoded RGB differs from PIL's convert('RGB')"
            );
            lossless += 1;
        }
    }
    assert!(
        lossless >= 15,
        "expected the lossless and JPEG fixtures to be checked"
    );
}

#[test]
fn crops_match_pil_and_torchvision() {
    let m = manifest();
    assert!(m.crops.len() >= 20, "expected the full fixture set");
    let (mut total, mut total_within_one, mut worst) = (0usize, 0usize, 0u8);
    let mut failures = Vec::new();
    for c in &m.crops {
        let cfg = PreprocessConfig::for_image_size(c.img_size);
        let d = &m.decoded[&c.name];
        assert_eq!(
            resized_size(d.width, d.height, cfg.resize_size),
            c.resized,
            "{}: Resize size",
            c.name
        );
        let expected = reference_crop(c);
        let img = decode_rgb8(&read_input(&c.name), &cfg).unwrap();
        let ours = resize_center_crop(&img, &cfg);
        let r = diff(&ours, &expected);
        println!(
            "crop {:42} {:3}: max |diff| {:2}, exact {:7.3}%, within ±1 {:7.3}%",
            c.name,
            c.img_size,
            r.max,
            100.0 * r.exact,
            100.0 * r.within_one
        );
        let n = expected.as_raw().len();
        total += n;
        total_within_one += (r.within_one * n as f64).round() as usize;
        worst = worst.max(r.max);
        if bit_exact_expected(d) {
            // Same decoded pixels (checked above) + a port of Pillow's resampler: bit-exact.
            if r.max != 0 {
                failures.push(format!(
                    "{} at {}: crop differs from PIL's",
                    c.name, c.img_size
                ));
            }
        } else if r.within_one < 0.999 {
            // Lossy WebP: image-webp is a reimplementation of libwebp (identical on these files).
            failures.push(format!(
                "{} at {}: only {:.4}% within ±1",
                c.name,
                c.img_size,
                100.0 * r.within_one
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let frac = total_within_one as f64 / total as f64;
    println!(
        "all crops: {:.4}% within ±1, worst |diff| {worst}",
        100.0 * frac
    );
    assert!(frac >= 0.999);
}

#[test]
fn normalized_tensor_matches_torchvision() {
    let m = manifest();
    for c in &m.crops {
        let cfg = PreprocessConfig::for_image_size(c.img_size);
        assert_eq!(c.samples.len(), 48, "{}", c.name);

        // 1. ToTensor + Normalize on torchvision's own crop: bit-identical.
        let mut from_ref = vec![0f32; cfg.tensor_len()];
        normalize_into(&reference_crop(c), &cfg, &mut from_ref);
        for &(i, v) in &c.samples {
            assert_eq!(
                from_ref[i].to_bits(),
                v.to_bits(),
                "{} [{i}]: {} vs torchvision {v}",
                c.name,
                from_ref[i]
            );
        }
        let plane = (c.img_size * c.img_size) as usize;
        for ch in 0..3 {
            let values = &from_ref[ch * plane..(ch + 1) * plane];
            let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
            let sumsq: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            assert!(
                (sum - c.sums[ch]).abs() <= 1e-6 * (1.0 + c.sums[ch].abs()),
                "{} sum c{ch}",
                c.name
            );
            assert!(
                (sumsq - c.sumsq[ch]).abs() <= 1e-6 * (1.0 + c.sumsq[ch]),
                "{} sumsq c{ch}",
                c.name
            );
        }

        // 2. The whole pipeline from the encoded bytes.
        let mut ours = vec![0f32; cfg.tensor_len()];
        let info = preprocess_into(&read_input(&c.name), &cfg, &mut ours).unwrap();
        let d = &m.decoded[&c.name];
        assert_eq!(
            (info.width, info.height, info.format),
            (d.width, d.height, d.format.as_str())
        );
        let tolerance = if bit_exact_expected(d) {
            0.0
        } else {
            one_level(&cfg) * 1.0001
        };
        let mut max_sample = 0f32;
        for &(i, v) in &c.samples {
            max_sample = max_sample.max((ours[i] - v).abs());
        }
        let mut max_mean = 0f64;
        for ch in 0..3 {
            let mean: f64 = ours[ch * plane..(ch + 1) * plane]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / plane as f64;
            max_mean = max_mean.max((mean - c.sums[ch] / plane as f64).abs());
        }
        println!(
            "tensor {:42} {:3}: max |diff| on samples {max_sample:.5}, max channel-mean diff {max_mean:.6}",
            c.name, c.img_size
        );
        assert!(
            max_sample <= tolerance,
            "{}: sample diff {max_sample} > {tolerance}",
            c.name
        );
        assert!(
            max_mean <= 0.01 * f64::from(one_level(&cfg)) + f64::from(tolerance) * 0.1,
            "{}: mean diff {max_mean}",
            c.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Decode limits.

fn png_chunk(out: &mut Vec<u8>, tag: &[u8; 4], payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(tag);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A PNG whose header says `width × height` RGB, followed by a small zlib stream of zeros.
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    // zlib header + one stored empty block: valid but short data.
    png_chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 1],
    );
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A real 16×16 JPEG (made by the `image` encoder) whose SOF0 header is patched to `width × height`.
fn jpeg_bomb(width: u16, height: u16) -> Vec<u8> {
    let img = RgbImage::from_fn(16, 16, |x, y| {
        image::Rgb([(x * 16) as u8, (y * 16) as u8, 77])
    });
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&img)
        .unwrap();
    let mut j = jpeg.into_inner();
    let sof = j.windows(2).position(|w| w == [0xFF, 0xC0]).expect("SOF0");
    j[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    j
}

fn gif_bomb(width: u16, height: u16) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&width.to_le_bytes());
    g.extend_from_slice(&height.to_le_bytes());
    g.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]); // 2-colour global palette
    g.extend_from_slice(&[0x2C, 0, 0, 0, 0]);
    g.extend_from_slice(&width.to_le_bytes());
    g.extend_from_slice(&height.to_le_bytes());
    g.extend_from_slice(&[0, 2, 2, 0x4C, 0x01, 0, 0x3B]);
    g
}

fn bmp_bomb(width: i32, height: i32) -> Vec<u8> {
    let mut b = b"BM".to_vec();
    b.extend_from_slice(&(54u32 + 16).to_le_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&width.to_le_bytes());
    b.extend_from_slice(&height.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 24]);
    b.extend_from_slice(&[0; 16]);
    b
}

/// A real lossless WebP (made by the `image` encoder) whose VP8L header is patched to
/// 16383 × 16383 (image-webp reads the largest value the format allows, 16384, as 0).
fn webp_bomb() -> Vec<u8> {
    let img = RgbImage::from_fn(16, 16, |x, y| {
        image::Rgb([(x * 16) as u8, (y * 16) as u8, 77])
    });
    let mut webp = std::io::Cursor::new(Vec::new());
    img.write_to(&mut webp, image::ImageFormat::WebP).unwrap();
    let mut w = webp.into_inner();
    let chunk = w.windows(4).position(|c| c == b"VP8L").expect("VP8L chunk");
    // chunk tag, u32 size, 0x2f signature, then 14 bits width-1 and 14 bits height-1 (LE).
    let at = chunk + 9;
    let bits = u32::from_le_bytes(w[at..at + 4].try_into().unwrap());
    let patched = (bits & !((1 << 28) - 1)) | 16382 | (16382 << 14);
    w[at..at + 4].copy_from_slice(&patched.to_le_bytes());
    w
}

fn tiff_bomb(width: u32, height: u32) -> Vec<u8> {
    // Little-endian TIFF, one IFD: width, height, bits 8, photometric RGB, 3 samples, one strip.
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (262, 3, 2),
        (273, 4, 8),
        (277, 3, 3),
        (278, 4, height),
        (279, 4, 16),
    ];
    let mut t = b"II\x2a\x00".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let cfg = PreprocessConfig::for_image_size(256);
    let bombs: Vec<(&str, Vec<u8>)> = vec![
        ("png 30000x30000", png_bomb(30_000, 30_000)),
        ("png 100000x1000", png_bomb(100_000, 1000)),
        ("jpeg 30000x30000", jpeg_bomb(30_000, 30_000)),
        ("jpeg 65000x2000", jpeg_bomb(65_000, 2000)),
        ("gif 65535x65535", gif_bomb(65_535, 65_535)),
        ("bmp 30000x30000", bmp_bomb(30_000, 30_000)),
        ("bmp 30000x-30000 (top-down)", bmp_bomb(30_000, -30_000)),
        ("webp 16383x16383", webp_bomb()),
        ("tiff 30000x30000", tiff_bomb(30_000, 30_000)),
    ];
    for (what, bytes) in bombs {
        let started = Instant::now();
        let (result, peak) = peak_allocation(|| decode_rgb8(&bytes, &cfg));
        let took = started.elapsed();
        println!(
            "{what}: {:?} in {took:?}, peak allocation {peak} bytes",
            result.as_ref().err()
        );
        match result {
            Err(PreprocessError::TooLarge {
                width,
                height,
                max_pixels,
            }) => {
                assert!(u64::from(width) * u64::from(height) > max_pixels, "{what}");
                let msg = PreprocessError::TooLarge {
                    width,
                    height,
                    max_pixels,
                }
                .to_string();
                assert!(msg.contains("over the limit"), "{msg}");
            }
            other => panic!("{what}: expected TooLarge, got {other:?}"),
        }
        assert!(took < Duration::from_millis(100), "{what}: took {took:?}");
        assert!(peak < 1 << 20, "{what}: allocated {peak} bytes");
    }
}

#[test]
fn pixel_and_memory_limits_are_configurable() {
    let bytes = read_input("coffee_q75_444.jpg"); // 600 x 400
    let strict_pixels = PreprocessConfig {
        max_image_pixels: 600 * 400 - 1,
        ..PreprocessConfig::for_image_size(256)
    };
    assert!(matches!(
        decode_rgb8(&bytes, &strict_pixels),
        Err(PreprocessError::TooLarge {
            width: 600,
            height: 400,
            ..
        })
    ));
    let exact_pixels = PreprocessConfig {
        max_image_pixels: 600 * 400,
        ..PreprocessConfig::for_image_size(256)
    };
    assert!(decode_rgb8(&bytes, &exact_pixels).is_ok());
    let strict_memory = PreprocessConfig {
        max_decode_alloc: 100_000, // < 600 * 400 * 3
        ..PreprocessConfig::for_image_size(256)
    };
    let err = decode_rgb8(&bytes, &strict_memory).unwrap_err();
    assert!(
        matches!(err, PreprocessError::MemoryLimit { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("memory"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Robustness: no panic, a user-facing error, on anything.

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn all_inputs() -> Vec<(String, Vec<u8>)> {
    manifest()
        .decoded
        .keys()
        .map(|n| (n.clone(), read_input(n)))
        .collect()
}

/// Runs the whole pipeline; on success the tensor must be finite.
fn run_pipeline(
    bytes: &[u8],
    cfg: &PreprocessConfig,
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    preprocess_into(bytes, cfg, out)?;
    assert!(out.iter().all(|v| v.is_finite()));
    Ok(())
}

#[test]
fn truncated_files_of_every_format_fail_cleanly() {
    let cfg = PreprocessConfig::for_image_size(256);
    let mut out = vec![0f32; cfg.tensor_len()];
    let mut errors = 0;
    for (name, bytes) in all_inputs() {
        let mut lengths: Vec<usize> = (0..bytes.len().min(64)).collect();
        lengths.extend((1..40).map(|i| bytes.len() * i / 40));
        lengths.push(bytes.len() - 1);
        for len in lengths {
            if let Err(e) = run_pipeline(&bytes[..len], &cfg, &mut out) {
                errors += 1;
                let msg = e.to_string();
                assert!(!msg.is_empty());
                if len == 0 {
                    assert!(matches!(e, PreprocessError::Empty), "{name}: {e}");
                }
            }
        }
    }
    // Some formats decode partial data without complaint (as Pillow with LOAD_TRUNCATED_IMAGES
    // would not); most truncations are errors.
    assert!(errors > 500, "only {errors} truncations were refused");
}

#[test]
fn corrupted_and_random_bytes_never_panic() {
    let cfg = PreprocessConfig::for_image_size(256);
    let mut out = vec![0f32; cfg.tensor_len()];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let inputs = all_inputs();
    let started = Instant::now();
    let mut runs = 0;
    // Bit flips and byte overwrites in real files (headers included).
    for (_, bytes) in &inputs {
        for _ in 0..40 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.below(8) {
                let i = if rng.below(2) == 0 {
                    rng.below(b.len().min(256))
                } else {
                    rng.below(b.len())
                };
                if rng.below(2) == 0 {
                    b[i] ^= 1 << rng.below(8);
                } else {
                    b[i] = rng.next() as u8;
                }
            }
            let _ = run_pipeline(&b, &cfg, &mut out);
            runs += 1;
        }
    }
    // Random tails behind every signature, and pure noise.
    let signatures: [&[u8]; 8] = [
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"BM",
        b"RIFF\x00\x01\x00\x00WEBPVP8 ",
        b"II*\x00",
        b"MM\x00*",
        b"",
    ];
    for sig in signatures {
        for _ in 0..60 {
            let mut b = sig.to_vec();
            let n = rng.below(600);
            b.extend((0..n).map(|_| rng.next() as u8));
            let _ = run_pipeline(&b, &cfg, &mut out);
            runs += 1;
        }
    }
    println!("{runs} corrupted inputs in {:?}", started.elapsed());
}

/// A PNG of the given size, made with the `image` encoder.
fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn tiny_and_extreme_aspect_images_are_cheap_and_finite() {
    let cfg = PreprocessConfig::for_image_size(256);
    let mut out = vec![0f32; cfg.tensor_len()];
    for (w, h) in [
        (1, 1),
        (1, 2),
        (2, 1),
        (1, 5000),
        (5000, 1),
        (3, 4999),
        (4999, 2),
    ] {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (y * 3) as u8, 200])
        });
        let bytes = encode_png(&img);
        let started = Instant::now();
        let (info, peak) = peak_allocation(|| preprocess_into(&bytes, &cfg, &mut out).unwrap());
        let took = started.elapsed();
        println!(
            "{w}x{h}: resized to {:?}, {took:?}, peak allocation {peak} bytes",
            resized_size(w, h, cfg.resize_size)
        );
        assert_eq!((info.width, info.height, info.format), (w, h, "png"));
        assert!(out.iter().all(|v| v.is_finite()));
        // torchvision would resize 1x5000 to 292x1460000 (1.3 GB); only the crop is computed here.
        assert!(peak < 8 << 20, "{w}x{h}: allocated {peak} bytes");
        assert!(took < Duration::from_secs(1), "{w}x{h}: {took:?}");
    }
    // Zero-sized and wrong-length outputs are errors, not panics.
    assert!(matches!(
        preprocess_into(&encode_png(&RgbImage::new(2, 2)), &cfg, &mut [0.0; 5]),
        Err(PreprocessError::OutputLength {
            expected: 196_608,
            actual: 5
        })
    ));
    let bad = PreprocessConfig {
        crop_size: 0,
        ..cfg.clone()
    };
    assert!(matches!(
        preprocess_into(b"x", &bad, &mut []),
        Err(PreprocessError::InvalidConfig(_))
    ));
}

#[test]
fn zero_sized_headers_are_refused() {
    let cfg = PreprocessConfig::for_image_size(256);
    for bytes in [
        png_bomb(0, 10),
        png_bomb(10, 0),
        gif_bomb(0, 0),
        jpeg_bomb(0, 8),
        bmp_bomb(0, 5),
        tiff_bomb(0, 3),
    ] {
        let err = decode_rgb8(&bytes, &cfg).unwrap_err();
        // Some decoders reject a zero side themselves; either way the message says what is wrong.
        assert!(
            matches!(
                err,
                PreprocessError::ZeroSize { .. } | PreprocessError::Decode { .. }
            ),
            "{err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Timing (not a pass/fail test): `cargo test --test preprocess -- --ignored --nocapture`.

#[test]
#[ignore = "timing, run by hand"]
fn time_one_megapixel_jpeg() {
    let src = decode_rgb8(
        &read_input("coffee_q75_444.jpg"),
        &PreprocessConfig::default(),
    )
    .unwrap();
    let big = image::imageops::resize(&src, 1224, 816, image::imageops::FilterType::CatmullRom);
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&big)
        .unwrap();
    let jpeg = jpeg.into_inner();
    let cfg = PreprocessConfig::for_image_size(256);
    let mut out = vec![0f32; cfg.tensor_len()];
    let runs = 50;
    let (mut decode, mut resize, mut normalize) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..runs {
        let t0 = Instant::now();
        let img = decode_rgb8(&jpeg, &cfg).unwrap();
        let t1 = Instant::now();
        let crop = resize_center_crop(&img, &cfg);
        let t2 = Instant::now();
        normalize_into(&crop, &cfg, &mut out);
        let t3 = Instant::now();
        decode += t1 - t0;
        resize += t2 - t1;
        normalize += t3 - t2;
    }
    let per = |d: Duration| d / runs;
    println!(
        "1224x816 JPEG q90 ({} bytes): decode {:?}, resize+crop {:?}, normalize {:?}, total {:?}",
        jpeg.len(),
        per(decode),
        per(resize),
        per(normalize),
        per(decode + resize + normalize)
    );
}
