//! `preprocess::working_set` against what preprocessing really allocates: a counting global
//! allocator (`peak_alloc`) measures the peak of the Rust-side buffers of `preprocess_into` for
//! bombs of every format; the estimate must cover it (and not be wildly above it). libjpeg's own
//! buffers are C `malloc`s the allocator does not see; for JPEG the decoder-output and conversion
//! parts are checked exactly instead. A test binary of its own: the allocator is process-wide.

mod common {
    pub mod bombs;
}

use std::sync::{Mutex, MutexGuard};

use common::bombs;
use swin_serve::preprocess::{preprocess_into, working_set, PreprocessConfig, WorkingSet};

#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// One test at a time: the allocator's peak is process-wide, so another test building its images
/// while one measures would count in its peak.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn cfg() -> PreprocessConfig {
    PreprocessConfig::for_image_size(256)
}

/// The estimate and the measured peak of the bytes `preprocess_into` allocates (its output tensor
/// included, the encoded bytes not: the caller holds those).
fn measure(bytes: &[u8]) -> (WorkingSet, u64) {
    let cfg = cfg();
    let estimate = working_set(bytes, &cfg).unwrap();
    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let mut tensor = vec![0f32; cfg.tensor_len()];
    preprocess_into(bytes, &cfg, &mut tensor).unwrap();
    let peak = ALLOC.peak_usage().saturating_sub(base) as u64;
    drop(tensor);
    (estimate, peak)
}

/// The estimate covers the measured peak and is at most twice it plus the fixed allowances.
fn assert_covers(name: &str, estimate: &WorkingSet, measured: u64) {
    let est = estimate.peak();
    eprintln!("{name}: estimate {est} bytes, measured {measured} bytes ({estimate:?})");
    assert!(
        est >= measured,
        "{name}: estimate {est} < measured {measured}"
    );
    assert!(
        est <= 2 * measured + (4 << 20),
        "{name}: estimate {est} far above measured {measured}"
    );
}

#[test]
fn png_rgba16_counts_the_16_bit_output_and_the_rgb_copy() {
    let _serial = serial();
    let (w, h) = (2000u64, 1500u64);
    let png = bombs::png_rgba16(w as u32, h as u32);
    let (est, measured) = measure(&png);
    assert_eq!(est.decode.output, w * h * 8);
    assert_eq!(est.decode.conversion, w * h * 3);
    assert_covers("png rgba16", &est, measured);
    // The decode phase: the RGBA16 image and its RGB copy are alive at once.
    assert!(measured >= w * h * (8 + 3), "{measured}");
}

#[test]
fn png_that_compresses_to_little_is_counted_at_its_decoded_size() {
    let _serial = serial();
    let png = bombs::png_rgb8(4000, 4000);
    // At least 100:1 (the `png` crate's fast compression makes ~240 KB of these 48 MB).
    assert!(png.len() < 4000 * 4000 * 3 / 100, "{}", png.len());
    let (est, measured) = measure(&png);
    assert_eq!(est.decode.output, 4000 * 4000 * 3);
    assert_eq!(est.decode.conversion, 0);
    assert_covers("png rgb8", &est, measured);
}

#[test]
fn gif_counts_the_logical_screen_not_the_frame() {
    let _serial = serial();
    let gif = bombs::gif_screen_bomb(5000);
    assert!(gif.len() < 100, "{}", gif.len());
    let (est, measured) = measure(&gif);
    // The decoder's output is the whole screen as RGBA, then the RGB copy.
    assert_eq!((est.decode.width, est.decode.height), (5000, 5000));
    assert_eq!(est.decode.output, 5000 * 5000 * 4);
    assert_eq!(est.decode.conversion, 5000 * 5000 * 3);
    assert_covers("gif screen bomb", &est, measured);
    assert!(measured >= 5000 * 5000 * 7, "{measured}");
}

#[test]
fn gif_bomb_of_the_issue_is_estimated_from_its_header() {
    let _serial = serial();
    // 9459×9459 screen, 1×1 frame: estimated without decoding (the estimate is what the budget
    // is charged; decoding it is the e2e tests' business).
    let gif = bombs::gif_screen_bomb(9459);
    let est = working_set(&gif, &cfg()).unwrap();
    assert!(est.peak() >= 9459 * 9459 * 7, "{est:?}");
}

#[test]
fn jpeg_cmyk_counts_the_4_byte_output_and_the_rgb_copy() {
    let _serial = serial();
    for progressive in [false, true] {
        let (w, h) = (1200u64, 1000u64);
        let jpeg = bombs::jpeg_cmyk(w as u32, h as u32, progressive);
        let (est, measured) = measure(&jpeg);
        assert_eq!(est.decode.output, w * h * 4);
        assert_eq!(est.decode.conversion, w * h * 3);
        // libjpeg's whole-image coefficient buffer only for multi-scan files.
        let coefficients = w.div_ceil(8) * h.div_ceil(8) * 64 * 2 * 4;
        if progressive {
            assert!(est.decode.decoder >= coefficients, "{est:?}");
        } else {
            assert!(est.decode.decoder < coefficients, "{est:?}");
        }
        // The Rust side (output, RGB copy, resize, tensor) is all the allocator sees.
        assert!(est.peak() >= measured, "{est:?} {measured}");
        assert!(measured >= w * h * 7, "{measured}");
    }
}

#[test]
fn tiff_counts_its_stored_layout_and_the_output() {
    let _serial = serial();
    let (w, h) = (1000u64, 800u64);
    let tiff = bombs::tiff_rgba16(w as u32, h as u32);
    let (est, measured) = measure(&tiff);
    assert_eq!(est.decode.output, w * h * 8);
    assert_covers("tiff rgba16", &est, measured);
}

#[test]
fn webp_lossless_is_covered() {
    let _serial = serial();
    let webp = bombs::webp_rgba(1500, 1200);
    let (est, measured) = measure(&webp);
    assert_eq!(est.decode.output, 1500 * 1200 * 4);
    assert_covers("webp lossless rgba", &est, measured);
}

#[test]
fn bmp_is_covered() {
    let _serial = serial();
    let bmp = bombs::bmp_rgb(2000, 1000);
    let (est, measured) = measure(&bmp);
    assert_covers("bmp", &est, measured);
}

#[test]
fn extreme_aspect_ratios_count_the_resize_rows() {
    let _serial = serial();
    // 1×5000 is resized to 292×1 460 000: only the crop's window is computed.
    let png = bombs::png_rgb8(1, 5000);
    let (est, measured) = measure(&png);
    assert_covers("1x5000", &est, measured);
    let png = bombs::png_rgb8(20000, 3);
    let (est, measured) = measure(&png);
    assert_covers("20000x3", &est, measured);
}

#[test]
fn what_the_header_refuses_is_refused_by_the_estimate_too() {
    let _serial = serial();
    let cfg = cfg();
    assert!(working_set(b"", &cfg).is_err());
    assert!(working_set(b"not an image", &cfg).is_err());
    let gif = bombs::gif_screen_bomb(0);
    assert!(working_set(&gif, &cfg).is_err());
    // Truncated headers are errors, not panics.
    let png = bombs::png_rgb8(10, 10);
    for cut in [9, 20, 33] {
        let _ = working_set(&png[..cut], &cfg);
    }
}
