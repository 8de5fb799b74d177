//! Writes the seed corpora `fuzz/corpus/<target>/` (run from anywhere:
//! `fuzz/target/release/make_corpus`, or `cargo run --release --bin make_corpus` in `fuzz/`).
//!
//! * `preprocess`: tiny images encoded here (PNG RGB/RGBA/16-bit grey, JPEG colour/grey, GIF, BMP,
//!   TIFF, lossless WebP), a few small files from `tests/fixtures/preprocess/inputs` (palette PNG,
//!   EXIF JPEG, lossy WebP), and hostile headers (a PNG announcing 100 000 × 100 000 pixels, a
//!   truncated JPEG, a 300 × 1 strip).
//! * `checkpoint`: `torch.save`-format ZIPs built here (a small state dict under `model` with
//!   contiguous, transposed, broadcast, f16 and int64 tensors, a CfgNode-like `config`, deflated and
//!   big-endian variants), the hostile checkpoints of `tests/fixtures/hostile` (the deep one
//!   rebuilt smaller) and `tests/fixtures/weights/no_model.pth`, plus bare pickles (the target wraps
//!   input that is not a ZIP into an archive with storages `0` … `3`).
//! * `request_parsers`: `grpc-timeout` values, raw BYTES data and OIP inputs, in the byte layout
//!   `swin_serve_fuzz::harness::request_parsers` reads.
//!
//! Every seed is then run through its target once and whether it is accepted is printed (the
//! valid seeds must be accepted, so that the fuzzer starts past the format checks).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageBuffer, ImageFormat, Luma, Rgb, Rgba};
use swin_serve::model::pth_writer::opcodes::{
    APPEND, BINGET, BININT1, BINPUT, BUILD, EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE, FRAME, MARK,
    MEMOIZE, NEWOBJ, PROTO, REDUCE, SETITEM, SETITEMS, STOP, TUPLE1,
};
use swin_serve::model::pth_writer::{
    global, storage, su, tensor_v2, zip_archive, CompressionMethod,
};
use swin_serve_fuzz::harness;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let fixtures = root.join("../tests/fixtures");
    let mut all: Vec<(&str, String, Vec<u8>)> = Vec::new();
    for (name, bytes) in images(&fixtures) {
        all.push(("preprocess", name, bytes));
    }
    for (name, bytes) in checkpoints(&fixtures) {
        all.push(("checkpoint", name, bytes));
    }
    for (name, bytes) in requests() {
        all.push(("request_parsers", name, bytes));
    }
    for target in harness::TARGETS {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
    }
    for (target, name, bytes) in &all {
        let path: PathBuf = corpus.join(target).join(name);
        std::fs::write(&path, bytes).expect("write seed");
        let accepted = accepted(target, bytes);
        println!("{target}/{name}: {} bytes, {accepted}", bytes.len());
    }
}

/// Whether the target's entry point accepts `bytes` (a seed that panics panics here).
fn accepted(target: &str, bytes: &[u8]) -> &'static str {
    let ok = match target {
        "preprocess" => {
            let cfg = harness::preprocess_config();
            let mut out = vec![0.0; cfg.tensor_len()];
            swin_serve::preprocess::preprocess_into(bytes, &cfg, &mut out).is_ok()
        }
        "checkpoint" => {
            let wrapped;
            let zip = if bytes.starts_with(b"PK") {
                bytes
            } else {
                wrapped = harness::wrap_pickle(bytes);
                &wrapped
            };
            swin_serve::model::checkpoint::read_torch_zip_bytes(zip, Path::new("seed.pth")).is_ok()
        }
        _ => {
            harness::run_target(target, bytes);
            return "ran";
        }
    };
    harness::run_target(target, bytes);
    if ok {
        "accepted"
    } else {
        "refused"
    }
}

// --- images ------------------------------------------------------------------------------------

fn encode<P, C>(img: &ImageBuffer<P, C>, format: ImageFormat) -> Vec<u8>
where
    P: image::Pixel + image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).expect("encode");
    buf.into_inner()
}

fn images(fixtures: &Path) -> Vec<(String, Vec<u8>)> {
    let rgb = ImageBuffer::from_fn(5, 4, |x, y| Rgb([(x * 50) as u8, (y * 60) as u8, 128]));
    let rgba = ImageBuffer::from_fn(3, 3, |x, y| Rgba([(x * 80) as u8, (y * 80) as u8, 7, 200]));
    let grey16 = ImageBuffer::from_fn(4, 2, |x, y| Luma([(x * 16000 + y * 3000) as u16]));
    let grey = ImageBuffer::from_fn(6, 3, |x, y| Luma([(x * 40 + y) as u8]));
    let mut out = vec![
        ("rgb_5x4.png".to_string(), encode(&rgb, ImageFormat::Png)),
        ("rgba_3x3.png".into(), encode(&rgba, ImageFormat::Png)),
        ("grey16_4x2.png".into(), encode(&grey16, ImageFormat::Png)),
        ("rgb_5x4.bmp".into(), encode(&rgb, ImageFormat::Bmp)),
        ("rgba_3x3.bmp".into(), encode(&rgba, ImageFormat::Bmp)),
        ("rgb_5x4.gif".into(), encode(&rgba, ImageFormat::Gif)),
        ("rgb_5x4.tif".into(), encode(&rgb, ImageFormat::Tiff)),
        ("grey16_4x2.tif".into(), encode(&grey16, ImageFormat::Tiff)),
        (
            "rgba_3x3_lossless.webp".into(),
            encode(&rgba, ImageFormat::WebP),
        ),
    ];
    for (name, img_quality) in [("rgb_5x4_q75.jpg", 75u8), ("rgb_5x4_q20.jpg", 20)] {
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, img_quality)
            .encode_image(&rgb)
            .expect("jpeg");
        out.push((name.into(), buf));
    }
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 90)
        .encode_image(&grey)
        .expect("jpeg");
    out.push(("grey_6x3_q90.jpg".into(), buf.clone()));
    out.push(("truncated_grey.jpg".into(), buf[..buf.len() / 2].to_vec()));
    let strip = ImageBuffer::from_fn(300, 1, |x, _| Rgb([x as u8, 0, 255 - x as u8]));
    out.push(("strip_300x1.png".into(), encode(&strip, ImageFormat::Png)));
    // A PNG header announcing 100 000 × 100 000 pixels (refused from the header).
    let mut bomb = encode(&rgb, ImageFormat::Png);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    out.push(("bomb_100000x100000.png".into(), bomb));
    let inputs = fixtures.join("preprocess/inputs");
    for name in [
        "tiny_1x1.png",
        "tiny_7x5.png",
        "colorwheel_palette_trns.png",
        "rocket_exif_orientation6.jpg",
    ] {
        let bytes = std::fs::read(inputs.join(name)).expect("fixture image");
        out.push((format!("fixture_{name}"), bytes));
    }
    out
}

// --- checkpoints -------------------------------------------------------------------------------

/// `{'model': OrderedDict(...tensors...), 'epoch': 3, 'config': CfgNode({'A': 1})}` over the
/// storages of `harness::wrap_pickle` (0: 16 f32, 3: 8 bytes).
fn state_dict_pickle() -> Vec<u8> {
    [
        &[PROTO, 2, EMPTY_DICT, BINPUT, 0, MARK][..],
        &su("model"),
        &global("collections", "OrderedDict"),
        &[EMPTY_TUPLE, REDUCE, BINPUT, 1, MARK],
        &su("patch_embed.proj.weight"),
        &tensor_v2(
            &[&storage("FloatStorage", "0", 16)[..], &[BINPUT, 2]].concat(),
            0,
            &[2, 3],
            &[3, 1],
        ),
        &su("layers.0.transposed"),
        &tensor_v2(&[BINGET, 2], 1, &[3, 2], &[1, 3]),
        &su("layers.0.broadcast"),
        &tensor_v2(&[BINGET, 2], 4, &[2, 2], &[0, 1]),
        &su("norm.half"),
        &tensor_v2(&storage("HalfStorage", "3", 4), 0, &[4], &[1]),
        &su("relative_position_index"),
        &tensor_v2(&storage("LongStorage", "3", 1), 0, &[], &[]),
        &[SETITEMS],
        // OrderedDict state: `_metadata` (BUILD with a dict).
        &[EMPTY_DICT],
        &[BUILD],
        &su("epoch"),
        &[BININT1, 3],
        &su("config"),
        &global("yacs.config", "CfgNode"),
        &[EMPTY_TUPLE, NEWOBJ, MARK],
        &su("A"),
        &[BININT1, 1, SETITEMS],
        &[SETITEMS, STOP],
    ]
    .concat()
}

/// Protocol 4, as recent torch versions write: FRAME, MEMOIZE, a bare state dict.
fn protocol4_pickle() -> Vec<u8> {
    let body = [
        &[EMPTY_DICT, MEMOIZE][..],
        &su("patch_embed.proj.bias"),
        &tensor_v2(&storage("FloatStorage", "0", 16), 2, &[3], &[1]),
        &[SETITEM, STOP],
    ]
    .concat();
    [
        &[PROTO, 4, FRAME][..],
        &(body.len() as u64).to_le_bytes(),
        &body,
    ]
    .concat()
}

/// A list appended to itself `n` times through the memo.
fn self_append(n: usize) -> Vec<u8> {
    let mut p = vec![PROTO, 2, EMPTY_LIST, BINPUT, 0];
    for _ in 0..n {
        p.extend([BINGET, 0, APPEND]);
    }
    p.push(STOP);
    p
}

/// A tensor under `model` nested in `depth` 1-tuples.
fn deep_tuples(depth: usize) -> Vec<u8> {
    let mut p = vec![PROTO, 2, EMPTY_DICT];
    p.extend(su("model"));
    p.extend(tensor_v2(&storage("FloatStorage", "0", 16), 0, &[1], &[1]));
    p.extend(std::iter::repeat_n(TUPLE1, depth));
    p.extend([SETITEM, STOP]);
    p
}

fn checkpoints(fixtures: &Path) -> Vec<(String, Vec<u8>)> {
    let state = state_dict_pickle();
    let storage0: Vec<u8> = (0..16u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
    let mut out = vec![
        ("state_dict.pth".to_string(), harness::wrap_pickle(&state)),
        ("state_dict.pkl".into(), state.clone()),
        ("protocol4.pkl".into(), protocol4_pickle()),
        (
            "protocol4.pth".into(),
            harness::wrap_pickle(&protocol4_pickle()),
        ),
        ("self_append_200.pkl".into(), self_append(200)),
        ("deep_tuples_3000.pkl".into(), deep_tuples(3000)),
        // Protocol 0 (text) opcodes: {'a': [1, 2.5, 'x']}.
        (
            "text_protocol0.pkl".into(),
            b"(dp0\nVa\np1\n(lp2\nI1\naF2.5\naS'x'\nas.".to_vec(),
        ),
        (
            "deflated.pth".into(),
            zip_archive(
                &[
                    ("archive/data.pkl", &protocol4_pickle()),
                    ("archive/byteorder", b"little"),
                    ("archive/data/0", &storage0),
                ],
                CompressionMethod::Deflated,
            ),
        ),
        (
            "big_endian.pth".into(),
            zip_archive(
                &[
                    ("archive/data.pkl", &protocol4_pickle()),
                    ("archive/byteorder", b"big"),
                    ("archive/data/0", &storage0),
                ],
                CompressionMethod::Stored,
            ),
        ),
    ];
    for name in [
        "self_append_list.pth",
        "expand_2_40.pth",
        "huge_layer_index.pth",
    ] {
        let bytes = std::fs::read(fixtures.join("hostile").join(name)).expect("hostile fixture");
        out.push((format!("hostile_{name}"), bytes));
    }
    let bytes = std::fs::read(fixtures.join("weights/no_model.pth")).expect("fixture");
    out.push(("fixture_no_model.pth".into(), bytes));
    out
}

// --- request parsers ---------------------------------------------------------------------------

fn requests() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, t) in [
        "100m",
        "99999999H",
        "1S",
        "0n",
        "5u",
        "12M",
        "1x",
        "123456789S",
        "-1S",
        "m",
    ]
    .iter()
    .enumerate()
    {
        out.push((format!("timeout_{i}"), [&[0u8][..], t.as_bytes()].concat()));
    }
    let raw = [&3u32.to_le_bytes()[..], b"abc", &1u32.to_le_bytes(), b"d"].concat();
    out.push(("split_2.bin".into(), [&[1u8, 2][..], &raw].concat()));
    out.push(("split_0.bin".into(), vec![1, 0]));
    out.push((
        "split_truncated.bin".into(),
        [&[1u8, 2][..], &raw[..6]].concat(),
    ));
    // parse_inputs: [2, #inputs, name, type, ndims, dims…, contents kind, …, #raw, raw len, …]
    // IMAGE BYTES [2] with two typed elements.
    out.push((
        "inputs_image_typed.bin".into(),
        [&[2u8, 1, 0, 0, 1, 3, 1, 2, 3][..], b"abc", &[1], b"d", &[0]].concat(),
    ));
    // IMAGE BYTES [2, 1] in raw_input_contents.
    out.push((
        "inputs_image_raw.bin".into(),
        [&[2u8, 1, 0, 0, 2, 3, 2, 0, 1, 0][..], &raw].concat(),
    ));
    // INPUT FP32 [1, 3, 2, 2] with 12 typed floats.
    let floats: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    out.push((
        "inputs_tensor_typed.bin".into(),
        [&[2u8, 1, 1, 1, 4, 2, 4, 3, 3, 2, 12][..], &floats, &[0]].concat(),
    ));
    // INPUT FP32 [1, 3, 2, 2] in raw_input_contents.
    out.push((
        "inputs_tensor_raw.bin".into(),
        [&[2u8, 1, 1, 1, 4, 2, 4, 3, 3, 0, 1, 0][..], &floats].concat(),
    ));
    // Two inputs; an unknown name with control characters; no inputs.
    out.push((
        "inputs_two.bin".into(),
        vec![2, 2, 0, 0, 1, 2, 0, 1, 1, 1, 2, 0, 0],
    ));
    out.push(("inputs_unknown.bin".into(), vec![2, 1, 2, 0, 1, 2, 0, 0]));
    out.push(("inputs_none.bin".into(), vec![2, 0, 0]));
    // parse_outputs + build_outputs: [3, #outputs, (name, parameter kind, [value], [key])…,
    // images - 1, logits (table indices: 1 = 1.0, 2 = -1.0, 3 = NaN, 4 = inf, 0 = 0.0)…, raw]
    out.push((
        "outputs_default.bin".into(),
        vec![3, 0, 0, 1, 2, 0, 9, 8, 0],
    ));
    out.push((
        "outputs_logits_top3_raw.bin".into(),
        [
            &[3u8, 1, 0, 1, 4, 1, 1][..],
            &[1, 2, 0, 9, 8, 8, 9, 0, 2, 1],
            &[1],
        ]
        .concat(),
    ));
    out.push((
        "outputs_both_classification_nan.bin".into(),
        [
            &[3u8, 2, 0, 5, 3, 1, 1, 2, 255, 1, 0][..],
            &[3, 1, 2, 0, 4],
            &[0],
        ]
        .concat(),
    ));
    out.push(("outputs_unknown_name.bin".into(), vec![3, 1, 2, 0]));
    out.push(("outputs_twice.bin".into(), vec![3, 2, 0, 0, 0, 0, 0]));
    out
}
