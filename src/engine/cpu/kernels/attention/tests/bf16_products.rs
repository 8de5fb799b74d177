//! The bf16 head kernel (`--precision bf16`): chosen where it applies, and its output against two
//! f64 references: the exact one (every element within the error bf16 rounding can cause, derived
//! at [`bound`]), and one with the products' operands rounded to bf16 where the kernel rounds them.
//! Against the second only FP32 accumulation and the odd operand that rounds the other way (f32 vs
//! f64 before rounding) remain, so its RMS error must be a small fraction of the exact one's: a
//! kernel that pairs or places operands wrongly is as far from both.

use super::super::driver::{bf16_kernel, window_attention_with};
use super::{reference, Case};
use crate::engine::cpu::kernels::isa::Isa;
use crate::engine::cpu::kernels::packed_gemm::{bf16_bits, bf16_value};
use crate::engine::Precision;

/// `x` rounded to bf16 (round to nearest even, as `vcvtne2ps2bf16`), back in f64.
fn bf16(x: f64) -> f64 {
    f64::from(bf16_value(bf16_bits(x as f32)))
}

/// bf16's unit roundoff (8 significant bits).
const U: f64 = 1.0 / 512.0;

fn has_bf16() -> bool {
    Isa::detected() == Isa::Avx512 && std::is_x86_feature_detected!("avx512bf16")
}

#[test]
fn bf16_products_are_chosen_only_where_they_apply() {
    for (win, heads, hd, products, want) in [
        (8, 2, 32, Precision::Bf16, true),
        (12, 1, 32, Precision::Bf16, true),
        (8, 2, 32, Precision::Fp32, false),
        (7, 2, 32, Precision::Bf16, false), // n = 49: not a multiple of 16
        (8, 2, 16, Precision::Bf16, false), // head dim 16: not a multiple of 32
    ] {
        let mut case = Case::new(1, win * 2, win, heads, hd, 0, false, 1.0);
        case.products = products;
        let chosen = bf16_kernel(&case.args(), Isa::Avx512).is_some();
        assert_eq!(chosen, want && has_bf16(), "win {win} hd {hd} {products:?}");
        assert!(bf16_kernel(&case.args(), Isa::Avx2).is_none());
    }
}

/// Error bound of the bf16 products against the exact result, per output element: with `u` bf16's
/// unit roundoff, each rounded operand is `x(1 + δ)`, `|δ| <= u`. A score `s·Σ_d q̂_d k̂_d` then moves
/// by at most `2u·s·Σ_d |q̂_d k̂_d|` (`smax`, the largest over the window), so each probability by a
/// factor within `exp(±2·smax)` after the softmax, i.e. `|ΔP_ij| <= (exp(2·smax) - 1)·P_ij`; and
/// `P·v` with both operands rounded adds `2u·Σ_j P_ij |v_jd|`. With `Σ_j P_ij = 1`:
/// `|ΔO_id| <= (2u + (1 + 2u)(exp(2·smax) - 1))·max|v|`, plus FP32 accumulation (1e-5).
fn bound(smax: f64, vmax: f64) -> f64 {
    (2.0 * U + (1.0 + 2.0 * U) * ((2.0 * smax).exp() - 1.0)) * vmax + 1e-5
}

#[test]
fn bf16_products_match_the_reference_within_their_rounding() {
    if !has_bf16() {
        eprintln!(
            "skipped: this CPU has no AVX-512 with AVX512_BF16 (the bf16 kernel is not used)"
        );
        return;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // (window, heads, head_dim, shifted, logit-scale step): N = 16, 64, 144 (one 64-column tile,
    // 64-column tiles and a 16-column one, a last half pair row of P), head dims 32, 64, 96 (P·v
    // tiles of 2 vectors and of 1), cosine and dot-product scores, masks.
    let shapes = [
        (4, 2, 32, true, 1.0),
        (8, 3, 32, true, 20.0),
        (8, 1, 64, false, 1.0),
        (12, 1, 32, true, 1.0),
        (4, 1, 96, true, 5.0),
    ];
    for &(win, heads, hd, shifted, step) in &shapes {
        for cosine in [true, false] {
            let (res, batch) = (win * 2, 2);
            let shift = if shifted { win / 2 } else { 0 };
            let case = Case::new(batch, res, win, heads, hd, shift, true, step);
            let mut case = if cosine { case } else { case.dot_product() };
            case.products = Precision::Bf16;
            let (c, n, tokens) = (case.dim, case.n, case.tokens);
            let args = case.args();
            assert!(bf16_kernel(&args, Isa::Avx512).is_some());
            let scratch = Case::scratch(n, hd);
            let mut out = vec![f32::NAN; batch * tokens * c];
            pool.install(|| {
                window_attention_with(&args, &case.qkv, &mut out, &scratch, Isa::Avx512)
            });
            let (mut worst_exact, mut sq_mirror, mut sq_exact) = (0.0f64, 0.0f64, 0.0f64);
            for b in 0..batch {
                let img = &case.qkv[b * tokens * 3 * c..(b + 1) * tokens * 3 * c];
                for w in 0..tokens / n {
                    let map = &case.map.as_slice()[w * n..(w + 1) * n];
                    let m = case.mask.as_ref().map(|m| &m[w * n * n..(w + 1) * n * n]);
                    for h in 0..heads {
                        let at = |p: usize, part: usize| {
                            let row = map[p] as usize * 3 * c + part * c + h * hd;
                            img[row..row + hd]
                                .iter()
                                .map(|&x| f64::from(x))
                                .collect::<Vec<_>>()
                        };
                        let unit = |v: Vec<f64>| {
                            let l = if cosine {
                                v.iter().map(|x| x * x).sum::<f64>().sqrt()
                            } else {
                                1.0
                            };
                            v.into_iter().map(move |x| x / l).collect::<Vec<_>>()
                        };
                        let scale = f64::from(case.scale[h]);
                        let mut smax = 0.0f64;
                        for i in 0..n {
                            let qi = unit(at(i, 0));
                            for j in 0..n {
                                let kj = unit(at(j, 1));
                                let s: f64 = qi.iter().zip(&kj).map(|(a, b)| (a * b).abs()).sum();
                                smax = smax.max(2.0 * U * scale * s);
                            }
                        }
                        let vmax = (0..n)
                            .flat_map(|j| at(j, 2))
                            .fold(0.0, |a: f64, x| a.max(x.abs()));
                        let tol = bound(smax, vmax);
                        let with = |round: fn(f64) -> f64| {
                            let scale = case.scale[h];
                            reference(cosine, img, c, heads, map, scale, &case.bias, m, h, round)
                        };
                        let (mirror, exact) = (with(bf16), with(|x| x));
                        for i in 0..n {
                            let tok = b * tokens + map[i] as usize;
                            for d in 0..hd {
                                let got = f64::from(out[tok * c + h * hd + d]);
                                let (em, ee) =
                                    ((got - mirror[i][d]).abs(), (got - exact[i][d]).abs());
                                let what = format!("win {win} hd {hd} cosine {cosine} b {b} w {w} h {h} i {i} d {d}");
                                assert!(
                                    ee <= tol,
                                    "{what}: {got} vs {} (exact; bound {tol:.2e})",
                                    exact[i][d]
                                );
                                worst_exact = worst_exact.max(ee);
                                sq_mirror += em * em;
                                sq_exact += ee * ee;
                            }
                        }
                    }
                }
            }
            let count = (batch * tokens * c) as f64;
            let (rms_mirror, rms_exact) = ((sq_mirror / count).sqrt(), (sq_exact / count).sqrt());
            eprintln!(
                "win {win} heads {heads} hd {hd} cosine {cosine}: error max {worst_exact:.2e}, RMS \
                 {rms_exact:.2e} (exact); RMS {rms_mirror:.2e} (bf16 operands)"
            );
            assert!(
                rms_mirror <= 0.1 * rms_exact,
                "RMS {rms_mirror:.2e} from the bf16-operand reference vs {rms_exact:.2e} from the exact one"
            );
            // The kernel did round: an FP32 result would be ~1e-6 from the exact one.
            assert!(
                worst_exact > 1e-4,
                "no bf16 rounding seen ({worst_exact:.2e})"
            );
        }
    }
}
