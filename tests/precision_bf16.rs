//! `--precision bf16`: the linear layers and the window attention's two products (`q·kᵀ`, `P·v`,
//! where the head dimension is a multiple of 32 and the window's tokens of 16) on bf16 operands
//! (AVX512_BF16 `vdpbf16ps`, FP32 accumulation), everything else FP32. Measured against the official models' float64 logits on every
//! parity fixture (SwinV2 and V1), with top-1 agreement with the FP32 engine; refused with a clear
//! error where the CPU lacks AVX512_BF16 (or `SWIN_SERVE_ISA` lowers the engine below AVX-512).
//!
//! The tolerance, derived: bf16 keeps 8 significant bits, so rounding an operand costs a relative
//! error of at most u = 2⁻⁹ (round to nearest even). A dot product of bf16-rounded x and w, summed in
//! FP32, is off by at most 2u·Σ|xᵢwᵢ| (the FP32 summation adds ~k·2⁻²⁴, negligible); with rounding errors
//! of random sign the typical error is about u·√(2/3)·‖x∘w‖₂, i.e. u·√(2/3) relative to an output
//! of the same scale (random-weight fixtures have no cancellation beyond that). A logit depends on L
//! bf16 products in series (patch embedding, 4 linear layers per block and the 2 attention products
//! where they are bf16, one per merge, the head); independent
//! errors add in quadrature, so the expected relative error is about u·√(2/3)·√L, and LayerNorm
//! (post-norm in V2, pre-norm in V1) keeps each block's gain near 1. The bound is 4× that expectation
//! (a tail margin for the maximum over all logits of a fixture): `4·u·√(2/3)·√L` = 3.4e-2–3.8e-2 on
//! the V1 fixtures, measured there at 5.0e-3–8.9e-3. The SwinV2 fixtures are ill-conditioned (see
//! `V2_MEASURED_BOUND`) and get a measured bound. The FP32 engine is at
//! ≤1e-4 on the same fixtures (tests/parity.rs), so the bound also shows the bf16 path does compute
//! in bf16 (errors well above FP32's) but no worse than its rounding explains.

mod common {
    pub mod fixtures;
    pub mod parity_fixtures;
}

use std::sync::Arc;

use swin_serve::engine::cpu::kernels::isa::bf16_supported;
use swin_serve::engine::cpu::{Isa, SwinModel, ISA_ENV};
use swin_serve::engine::Precision;
use swin_serve::model::{ModelError, SwinConfig, SwinVersion};

use common::parity_fixtures::{load, rel_err, run, V1_CONFIGS, V2_CONFIGS};

/// bf16's unit roundoff (8 significant bits, round to nearest).
const BF16_UNIT_ROUNDOFF: f64 = 1.0 / 512.0;

/// The bf16 products in series from the image to a logit: the linear layers, and in each block
/// whose heads are a multiple of 32 wide and whose windows hold a multiple of 16 tokens (the bf16
/// attention kernel's shapes) the attention's `q·kᵀ` and `P·v`.
fn products_in_series(config: &SwinConfig) -> usize {
    let blocks: usize = config.depths.iter().sum();
    let attention: usize = (0..config.num_layers())
        .filter(|&i| {
            let hd = config.stage_dim(i) / config.num_heads[i];
            config.stage_window(i).pow(2).is_multiple_of(16) && hd.is_multiple_of(32)
        })
        .map(|i| 2 * config.depths[i])
        .sum();
    1 + 4 * blocks + attention + (config.depths.len() - 1) + 1
}

fn tolerance(config: &SwinConfig) -> f64 {
    match config.version {
        SwinVersion::V1 => {
            4.0 * BF16_UNIT_ROUNDOFF
                * (2.0f64 / 3.0).sqrt()
                * (products_in_series(config) as f64).sqrt()
        }
        // Measured, not derived (see the module docs): 0.045–0.215 on these fixtures.
        SwinVersion::V2 => V2_MEASURED_BOUND,
    }
}

/// The SwinV2 fixtures randomise every parameter, res-post-norm gains and logit scales included, which
/// makes them ill-conditioned: PyTorch's own f32 forward is 4.5e-6–3.4e-5 off the float64 one there
/// (1.6e-7–2.4e-7 on the V1 fixtures), so bf16 rounding is amplified far past the derivation above and
/// the bound is the measured worst (0.215, `shifted_w4`) with a margin. A float64 reference with its
/// linear operands rounded to bf16 would give a derived bound here; not made yet.
const V2_MEASURED_BOUND: f64 = 0.3;

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0
}

#[test]
fn bf16_logits_are_within_the_rounding_bound_on_every_parity_fixture() {
    if !bf16_supported() {
        println!(
            "SKIPPED: this CPU runs {} without AVX512_BF16; the bf16 path cannot execute here",
            Isa::active()
        );
        return;
    }
    let (mut images, mut agree) = (0, 0);
    for name in V2_CONFIGS.iter().chain(&V1_CONFIGS) {
        let f = load(name);
        let fp32 = Arc::new(SwinModel::new(&f.weights, &f.config).unwrap());
        let bf16 =
            Arc::new(SwinModel::with_precision(&f.weights, &f.config, Precision::Bf16).unwrap());
        assert_eq!(bf16.precision, Precision::Bf16);
        let got = run(&bf16, 2, f.batch, &f.input, f.batch);
        let want32 = run(&fp32, 2, f.batch, &f.input, f.batch);
        let err = rel_err(&got, &f.logits);
        let err32 = rel_err(&want32, &f.logits);
        let tol = tolerance(&f.config);
        println!(
            "{name}: bf16 rel err {err:.2e} (bound {tol:.2e}, {} bf16 products in series; FP32 {err32:.2e})",
            products_in_series(&f.config)
        );
        assert!(
            err <= tol,
            "{name}: bf16 relative error {err:.3e} > {tol:.3e}"
        );
        // Really bf16: rounding 8-bit operands cannot land at FP32's error.
        assert!(
            err > 10.0 * err32.max(1e-6),
            "{name}: bf16 error {err:.2e} looks like FP32"
        );
        // One image alone on one thread: the same logits as in the batch (the rounding is per element).
        let classes = f.config.num_classes;
        let per_image = f.input.len() / f.batch;
        let one = run(&bf16, 1, 1, &f.input[..per_image], 1);
        assert_eq!(
            one,
            got[..classes],
            "{name}: image 0 alone differs from its batch"
        );
        for b in 0..f.batch {
            images += 1;
            let row = |v: &[f32]| argmax(&v[b * classes..(b + 1) * classes]);
            agree += usize::from(row(&got) == row(&want32));
        }
    }
    println!("top-1 agreement with FP32: {agree}/{images} fixture images");
    assert_eq!(
        agree, images,
        "bf16 changed a top-1 class on a parity fixture"
    );
}

/// Without AVX512_BF16, or with `SWIN_SERVE_ISA` below AVX-512, bf16 is refused with an error that says
/// what is needed and what to use instead.
#[test]
fn bf16_is_refused_without_avx512_bf16() {
    let f = load("shifted_w4");
    if bf16_supported() {
        // Run the refusal in a child with the engine lowered to AVX2 (or scalar where AVX2 is absent).
        let isa = Isa::available()
            .into_iter()
            .find(|i| *i != Isa::Avx512)
            .expect("a lower ISA");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "bf16_is_refused_without_avx512_bf16",
                "--nocapture",
            ])
            .env(ISA_ENV, isa.name())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("refused: "), "{stdout}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    match SwinModel::with_precision(&f.weights, &f.config, Precision::Bf16) {
        Err(ModelError::Config(msg)) => {
            println!("refused: {msg}");
            assert!(msg.contains("AVX512_BF16"), "{msg}");
            assert!(msg.contains("--precision fp32"), "{msg}");
        }
        Ok(_) => panic!("bf16 built on {} without AVX512_BF16", Isa::active()),
        Err(e) => panic!("unexpected error {e}"),
    }
}
