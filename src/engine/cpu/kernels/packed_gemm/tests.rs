use super::super::isa::Isa;
use super::matmul::{matmul_panels, TileOutput};
use super::matrix::{panel_width, tile_rows, PackedMatrix};
use super::micro::{microkernel, Prefetch, Store};

fn naive(x: &[f32], m: usize, k: usize, wt: &[f32], n: usize) -> Vec<f64> {
    let mut y = vec![0.0f64; m * n];
    for r in 0..m {
        for kk in 0..k {
            let xv = x[r * k + kk] as f64;
            for j in 0..n {
                y[r * n + j] += xv * wt[kk * n + j] as f64;
            }
        }
    }
    y
}

fn pseudo(len: usize, seed: u64) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            let h = (i ^ seed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(29);
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// GELU in f64 (erf by its Maclaurin series; |x| ≤ 8 here).
fn gelu_f64(x: f64) -> f64 {
    let u = x / std::f64::consts::SQRT_2;
    let erf = if u.abs() > 5.0 {
        u.signum()
    } else {
        let (mut sum, mut term, mut i) = (0.0, u, 0.0);
        while term.abs() > 1e-17 || i < 5.0 {
            sum += term / (2.0 * i + 1.0);
            i += 1.0;
            term *= -u * u / i;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    };
    0.5 * x * (1.0 + erf)
}

#[test]
fn every_isa_matches_naive_on_odd_shapes() {
    let shapes = [
        (1, 1, 1),
        (1, 7, 17),
        (3, 5, 33),
        (14, 16, 32),
        (15, 385, 31),
        (29, 96, 100),
        (64, 800, 48),
        (13, 1000, 65),
        (100, 33, 1),
    ];
    for isa in Isa::available() {
        for &(m, k, n) in &shapes {
            let x = pseudo(m * k, 1);
            let wt = pseudo(k * n, 2);
            let bias: Vec<f32> = pseudo(n, 3).iter().map(|b| b * 2.0).collect();
            let w = PackedMatrix::from_transposed(&wt, k, n, isa);
            let plain = naive(&x, m, k, &wt, n);
            for output in [
                TileOutput::Plain,
                TileOutput::Bias(&bias),
                TileOutput::BiasGelu(&bias),
            ] {
                // Strided output (ldy > n) with a sentinel border, computed in two panel ranges.
                let ldy = n + 3;
                let mut y = vec![f32::NAN; m * ldy];
                let split = w.panels() / 2;
                for range in [0..split, split..w.panels()] {
                    // SAFETY: x is m×k, y m rows of ldy >= n; the panel ranges are disjoint.
                    unsafe {
                        matmul_panels(m, x.as_ptr(), k, &w, range, y.as_mut_ptr(), ldy, output)
                    };
                }
                for r in 0..m {
                    for j in 0..n {
                        let v = plain[r * n + j];
                        let want = match output {
                            TileOutput::Plain => v,
                            TileOutput::Bias(b) => v + b[j] as f64,
                            TileOutput::BiasGelu(b) => gelu_f64(v + b[j] as f64),
                        };
                        let got = y[r * ldy + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + want.abs()),
                            "{isa} {output:?} {m}x{k}x{n} at ({r},{j}): {got} vs {want}"
                        );
                    }
                    assert!(y[r * ldy + n..(r + 1) * ldy].iter().all(|v| v.is_nan()));
                }
            }
        }
    }
}

#[test]
fn pytorch_layout_is_transposed_and_padding_is_zero() {
    let (k, n) = (5, 37);
    let w = pseudo(n * k, 3);
    for isa in Isa::available() {
        let p = PackedMatrix::from_pytorch(&w, k, n, isa);
        for j in 0..n {
            for kk in 0..k {
                assert_eq!(p.get(kk, j), w[j * k + kk]);
            }
        }
        let last = p.panel(p.panels() - 1);
        let used = n - (p.panels() - 1) * p.nr();
        for row in last.chunks_exact(p.nr()) {
            assert!(row[used..].iter().all(|&v| v == 0.0));
        }
        assert_eq!(
            p.panel(0).as_ptr() as usize % 64,
            0,
            "panels 64-byte aligned"
        );
    }
}

mod speed {
    use super::*;

    /// `cargo test --release --lib packed_gemm::tests::speed -- --ignored --nocapture`: GFLOP/s per ISA on
    /// SwinV2-T's batch-1 shapes, one thread (a measurement, not a check).
    #[test]
    #[ignore]
    fn gflops_on_model_shapes() {
        for isa in Isa::available() {
            for &(m, k, n) in &[
                (4096, 96, 288),
                (1024, 192, 768),
                (256, 1536, 384),
                (64, 768, 3072),
                (4096, 384, 96),
                (1024, 768, 192),
                (64, 3072, 768),
            ] {
                let x = vec![0.5f32; m * k];
                let w = PackedMatrix::from_transposed(&vec![0.25f32; k * n], k, n, isa);
                let mut y = vec![0.0f32; m * n];
                let run = |y: &mut [f32]| {
                    // SAFETY: shapes as allocated.
                    unsafe {
                        matmul_panels(
                            m,
                            x.as_ptr(),
                            k,
                            &w,
                            0..w.panels(),
                            y.as_mut_ptr(),
                            n,
                            TileOutput::Plain,
                        )
                    }
                };
                run(&mut y);
                let t = std::time::Instant::now();
                let reps = 5;
                for _ in 0..reps {
                    run(&mut y);
                }
                let s = t.elapsed().as_secs_f64() / reps as f64;
                println!(
                    "{isa} {m}x{k}x{n}: {:.1} GFLOP/s",
                    2.0 * (m * k * n) as f64 / s / 1e9
                );
            }
        }
    }
}

mod peak {
    use super::*;

    #[test]
    #[ignore]
    fn microkernel_in_l1() {
        for isa in Isa::available() {
            let (mr, nr) = (tile_rows(isa), panel_width(isa));
            let kc = 64;
            let a = vec![0.5f32; kc * mr];
            let b = vec![0.25f32; kc * nr];
            let mut c = vec![0.0f32; mr * nr];
            let kern = microkernel(isa);
            let reps = 200_000;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                // SAFETY: extents as allocated; the CPU has isa.
                unsafe {
                    kern(
                        mr,
                        kc,
                        a.as_ptr(),
                        kc,
                        b.as_ptr(),
                        c.as_mut_ptr(),
                        nr,
                        Store {
                            accumulate: true,
                            bias: std::ptr::null(),
                            gelu: false,
                            pf: Prefetch::NONE,
                        },
                    )
                };
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "{isa} micro {mr}x{nr} kc={kc}: {:.1} GFLOP/s",
                2.0 * (reps * kc * mr * nr) as f64 / s / 1e9
            );
        }
    }
}

/// bf16 rounding, checked against its definition: the nearest bf16 (ties to even) by exhaustive
/// comparison with the two neighbours, subnormals to signed zero, NaN kept NaN.
#[test]
fn bf16_rounding_is_nearest_even() {
    use super::matrix::{bf16_bits, bf16_value};
    for x in pseudo(20_000, 9).into_iter().map(|v| v * 1e3).chain([
        0.0,
        -0.0,
        1.0,
        3.0e38,
        f32::MIN_POSITIVE,
        1.0 + 1.0 / 256.0,
    ]) {
        let b = bf16_bits(x);
        let (lo, hi) = (
            x.to_bits() & 0xffff_0000,
            (x.to_bits() & 0xffff_0000) + 0x1_0000,
        );
        let (lo_v, hi_v) = (f32::from_bits(lo) as f64, f32::from_bits(hi) as f64);
        let (dl, dh) = ((x as f64 - lo_v).abs(), (hi_v - x as f64).abs());
        let want = if dl < dh || (dl == dh && (lo >> 16) & 1 == 0) {
            lo
        } else {
            hi
        };
        assert_eq!(u32::from(b) << 16, want, "{x}");
        assert_eq!(bf16_value(b).to_bits(), want);
    }
    // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties to the even one, 1.
    assert_eq!(bf16_value(bf16_bits(1.0 + 1.0 / 256.0)), 1.0);
    assert_eq!(bf16_bits(1e-40), 0);
    assert_eq!(bf16_bits(-1e-40), 0x8000);
    assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
    // Past the largest bf16 by more than half its ulp: infinity, as vcvtne2ps2bf16 rounds.
    assert_eq!(bf16_value(bf16_bits(f32::MAX)), f32::INFINITY);
}

/// The bf16 microkernel against a naive product of the bf16-rounded operands in f64 (the only
/// difference left is FP32 accumulation order), on shapes with odd `k` (a zero-padded last pair),
/// partial tiles and panels, more than one block of `k`, and the fused epilogues. Runs where the
/// CPU has AVX512_BF16 (bf16 is refused elsewhere); says so when it cannot.
#[test]
fn bf16_panels_match_naive_on_rounded_operands() {
    use super::matrix::{bf16_bits, bf16_value, WeightFormat};
    if !super::super::isa::bf16_supported() {
        eprintln!(
            "no AVX512_BF16 on this CPU (or SWIN_SERVE_ISA below avx512): bf16 kernel not run"
        );
        return;
    }
    let round = |v: &[f32]| {
        v.iter()
            .map(|&x| bf16_value(bf16_bits(x)))
            .collect::<Vec<_>>()
    };
    // The hardware rounding of the activations (32 at a time) is the scalar one (the tails).
    let mut probe = pseudo(4096, 14);
    probe.extend([
        1.0 + 1.0 / 256.0,
        1e-40,
        -1e-40,
        f32::MAX,
        -0.0,
        1.5,
        2.0e-38,
        7.0,
    ]);
    probe.extend(pseudo(24, 15).iter().map(|v| v * 1e-3));
    let mut packed = vec![0u32; probe.len() / 2];
    // SAFETY: one row of probe.len() floats into as many halves; AVX512_BF16 (checked above).
    unsafe {
        super::bf16::pack_rows_bf16(1, probe.as_ptr(), 0, probe.len(), packed.as_mut_ptr(), 0)
    };
    for (i, &x) in probe.iter().enumerate() {
        let half = (packed[i / 2] >> (16 * (i % 2))) as u16;
        assert_eq!(half, bf16_bits(x), "{x} at {i}");
    }
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 7, 33),
        (14, 32, 32),
        (15, 97, 31),
        (29, 96, 100),
        (13, 1001, 65),
        (40, 3072, 40),
    ] {
        let x = pseudo(m * k, 11);
        let wt = pseudo(k * n, 12);
        let bias = pseudo(n, 13);
        let w = PackedMatrix::from_transposed(&wt, k, n, Isa::Avx512).to_bf16();
        assert_eq!(w.format(), WeightFormat::Bf16Pairs);
        for kk in 0..k {
            for j in 0..n {
                assert_eq!(w.get(kk, j), bf16_value(bf16_bits(wt[kk * n + j])));
            }
        }
        let plain = naive(&round(&x), m, k, &round(&wt), n);
        for output in [
            TileOutput::Plain,
            TileOutput::Bias(&bias),
            TileOutput::BiasGelu(&bias),
        ] {
            let ldy = n + 1;
            let mut y = vec![f32::NAN; m * ldy];
            let split = w.panels() / 2;
            for range in [0..split, split..w.panels()] {
                // SAFETY: x is m×k, y m rows of ldy >= n; the panel ranges are disjoint; the CPU
                // has AVX512_BF16 (checked above).
                unsafe { matmul_panels(m, x.as_ptr(), k, &w, range, y.as_mut_ptr(), ldy, output) };
            }
            for r in 0..m {
                for j in 0..n {
                    let v = plain[r * n + j];
                    let want = match output {
                        TileOutput::Plain => v,
                        TileOutput::Bias(b) => v + b[j] as f64,
                        TileOutput::BiasGelu(b) => gelu_f64(v + b[j] as f64),
                    };
                    let got = y[r * ldy + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + want.abs()),
                        "bf16 {output:?} {m}x{k}x{n} at ({r},{j}): {got} vs {want}"
                    );
                }
                assert!(y[r * ldy + n].is_nan());
            }
        }
    }
}
