use std::sync::Mutex;

use super::super::isa::Isa;
use super::args::{TokenPermutation, WindowAttentionArgs};
use super::driver::{head_kernel, window_attention, window_attention_on, HeadKernel};
#[cfg(target_arch = "x86_64")]
use super::simd_heads::head_staged_avx2;
use crate::engine::Precision;

#[cfg(target_arch = "x86_64")]
mod bf16_products;

/// Every head kernel this CPU runs, by name: each available instruction set's, and the AVX-512
/// recipe on AVX2's lanes (so that its logic is checked on CPUs without AVX-512).
fn kernels() -> Vec<(String, HeadKernel)> {
    let mut all: Vec<(String, HeadKernel)> = Isa::available()
        .into_iter()
        .map(|isa| (isa.name().to_string(), head_kernel(isa)))
        .collect();
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2.supported() {
        all.push(("avx512 recipe on avx2".to_string(), head_staged_avx2));
    }
    all
}

/// One block's attention inputs: a `res`×`res` grid in `win`×`win` windows (shifted by
/// `shift`), deterministic qkv values in [-1, 1), a bias table and logit scales `3 + h·step`.
struct Case {
    batch: usize,
    tokens: usize,
    dim: usize,
    heads: usize,
    n: usize,
    map: TokenPermutation,
    mask: Option<Vec<f32>>,
    masked: Option<Vec<bool>>,
    qkv: Vec<f32>,
    bias: Vec<f32>,
    scale: Vec<f32>,
    cosine: bool,
    products: Precision,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    fn new(
        batch: usize,
        res: usize,
        win: usize,
        heads: usize,
        hd: usize,
        shift: usize,
        window_flags: bool,
        step: f32,
    ) -> Self {
        use crate::engine::cpu::tables;
        let (dim, n, tokens) = (heads * hd, win * win, res * res);
        let mask = tables::attn_mask(res, win, shift);
        let masked = mask
            .as_ref()
            .filter(|_| window_flags)
            .map(|m| tables::masked_windows(m, n));
        Self {
            batch,
            tokens,
            dim,
            heads,
            n,
            map: TokenPermutation::new(tables::window_token_index(res, win, shift)).unwrap(),
            mask,
            masked,
            qkv: (0..batch * tokens * 3 * dim)
                .map(|i| (((i * 2_654_435_761usize) >> 7) % 1000) as f32 * 0.002 - 1.0)
                .collect(),
            bias: (0..heads * n * n).map(|i| (i % 13) as f32 * 0.7).collect(),
            scale: (0..heads).map(|h| 3.0 + h as f32 * step).collect(),
            cosine: true,
            products: Precision::Fp32,
        }
    }

    /// The same inputs for Swin V1's scaled dot-product attention: q scaled by `head_dim^-0.5`.
    fn dot_product(mut self) -> Self {
        let hd = self.dim / self.heads;
        self.scale = vec![(hd as f32).powf(-0.5); self.heads];
        self.cosine = false;
        self
    }

    fn args(&self) -> WindowAttentionArgs<'_> {
        WindowAttentionArgs {
            batch: self.batch,
            tokens: self.tokens,
            dim: self.dim,
            num_heads: self.heads,
            window_tokens: self.n,
            token_index: &self.map,
            cosine: self.cosine,
            logit_scale: &self.scale,
            bias: &self.bias,
            mask: self.mask.as_deref(),
            masked_windows: self.masked.as_deref(),
            products: self.products,
        }
    }

    /// Scratch for a 2-thread pool.
    fn scratch(n: usize, hd: usize) -> Vec<Mutex<Vec<f32>>> {
        (0..2)
            .map(|_| Mutex::new(vec![0.0; WindowAttentionArgs::scratch_len(n, hd)]))
            .collect()
    }
}

#[test]
fn token_permutation_accepts_only_permutations() {
    assert!(TokenPermutation::new(vec![2, 0, 3, 1]).is_some());
    assert!(TokenPermutation::new(vec![]).is_some());
    assert!(TokenPermutation::new(vec![0, 1, 1, 3]).is_none()); // duplicate
    assert!(TokenPermutation::new(vec![0, 1, 2, 4]).is_none()); // out of range
    for (res, win, shift) in [(8, 4, 0), (8, 4, 2), (16, 8, 4), (6, 6, 0)] {
        let map = crate::engine::cpu::tables::window_token_index(res, win, shift);
        assert_eq!(TokenPermutation::new(map).unwrap().tokens(), res * res);
    }
}

/// Straightforward attention for one head of one window, in f64, from the official formulas:
/// cosine (`normalize(q)·normalize(k)ᵀ · scale`, V2) or scaled dot product (`(q · scale)·kᵀ`, V1).
/// `round` is applied to the operands of the two products (scaled q, normalised k, P, v): the
/// identity for the exact result, bf16 rounding to mirror the bf16 kernel.
#[allow(clippy::too_many_arguments)]
pub(super) fn reference(
    cosine: bool,
    qkv: &[f32],
    c: usize,
    heads: usize,
    map: &[u32],
    scale: f32,
    bias: &[f32],
    mask: Option<&[f32]>,
    h: usize,
    round: impl Fn(f64) -> f64,
) -> Vec<Vec<f64>> {
    let hd = c / heads;
    let n = map.len();
    let get = |p: usize, part: usize| -> Vec<f64> {
        let row = map[p] as usize * 3 * c + part * c + h * hd;
        qkv[row..row + hd].iter().map(|&x| x as f64).collect()
    };
    let unit = |v: Vec<f64>| {
        if !cosine {
            return v;
        }
        let l = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        v.into_iter().map(|x| x / l).collect::<Vec<_>>()
    };
    let mut out = vec![];
    for i in 0..n {
        let qi: Vec<f64> = unit(get(i, 0))
            .into_iter()
            .map(|x| round(x * scale as f64))
            .collect();
        let mut sc: Vec<f64> = (0..n)
            .map(|j| {
                let kj = unit(get(j, 1));
                let dot: f64 = qi.iter().zip(&kj).map(|(a, b)| a * round(*b)).sum();
                dot + bias[h * n * n + i * n + j] as f64 + mask.map_or(0.0, |m| m[i * n + j] as f64)
            })
            .collect();
        let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = sc
            .iter_mut()
            .map(|x| {
                *x = (*x - mx).exp();
                *x
            })
            .sum();
        let mut o = vec![0.0; hd];
        for (j, p) in sc.iter().enumerate() {
            for (d, vd) in get(j, 2).iter().enumerate() {
                o[d] += round(p / sum) * round(*vd);
            }
        }
        out.push(o);
    }
    out
}

/// Window attention with SwinV2's largest logit scale (100) and the shift mask: many softmax
/// terms fall in f32's denormal range. With denormals flushed (as in the engine's threads) and
/// kept, both kernel paths match the f64 reference within the parity bound.
#[test]
fn softmax_in_the_denormal_range_is_unchanged_by_flushing() {
    let (res, win, heads, hd) = (16usize, 8usize, 2usize, 16usize);
    let (n, tokens, c) = (win * win, res * res, heads * hd);
    let map = TokenPermutation::new(crate::engine::cpu::tables::window_token_index(
        res,
        win,
        win / 2,
    ))
    .unwrap();
    let mask = crate::engine::cpu::tables::attn_mask(res, win, win / 2).unwrap();
    let qkv: Vec<f32> = (0..tokens * 3 * c)
        .map(|i| (((i * 2_654_435_761usize) >> 7) % 1000) as f32 * 0.002 - 1.0)
        .collect();
    let bias: Vec<f32> = (0..heads * n * n).map(|i| (i % 17) as f32).collect();
    let scale = vec![100.0f32; heads];
    let args = WindowAttentionArgs {
        batch: 1,
        tokens,
        dim: c,
        num_heads: heads,
        window_tokens: n,
        token_index: &map,
        cosine: true,
        logit_scale: &scale,
        bias: &bias,
        mask: Some(&mask),
        masked_windows: None,
        products: Precision::Fp32,
    };
    // The f64 reference, and how many softmax terms exp(s - max) are f32 denormals.
    let mut want = vec![0.0f64; tokens * c];
    let mut denormal_terms = 0usize;
    for w in 0..tokens / n {
        let rows = &map.as_slice()[w * n..(w + 1) * n];
        let m = &mask[w * n * n..(w + 1) * n * n];
        for h in 0..heads {
            for (i, o) in reference(true, &qkv, c, heads, rows, 100.0, &bias, Some(m), h, |x| x)
                .iter()
                .enumerate()
            {
                let tok = rows[i] as usize;
                want[tok * c + h * hd..tok * c + (h + 1) * hd].copy_from_slice(o);
            }
            let unit = |t: usize, part: usize| -> Vec<f64> {
                let row = &qkv[t * 3 * c + part * c + h * hd..][..hd];
                let l = row.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
                row.iter().map(|&x| x as f64 / l).collect()
            };
            for i in 0..n {
                let q = unit(rows[i] as usize, 0);
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        let k = unit(rows[j] as usize, 1);
                        100.0 * q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>()
                            + bias[h * n * n + i * n + j] as f64
                            + m[i * n + j] as f64
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                denormal_terms += s
                    .iter()
                    .map(|x| (x - mx).exp() as f32)
                    .filter(|p| *p != 0.0 && p.abs() < f32::MIN_POSITIVE)
                    .count();
            }
        }
    }
    assert!(
        denormal_terms > 100,
        "the inputs must drive the softmax into the denormal range ({denormal_terms} terms)"
    );
    for flush in [true, false] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .start_handler(move |_| {
                if flush {
                    super::super::denormals::flush_denormals_in_this_thread();
                }
            })
            .build()
            .unwrap();
        for (isa, kernel) in kernels() {
            let scratch: Vec<_> = (0..2)
                .map(|_| Mutex::new(vec![0.0; WindowAttentionArgs::scratch_len(n, hd)]))
                .collect();
            let mut out = vec![f32::NAN; tokens * c];
            // SAFETY: the CPU runs every kernel `kernels` lists.
            pool.install(|| unsafe {
                window_attention_on(&args, &qkv, &mut out, &scratch, kernel)
            });
            for (i, (&got, &x)) in out.iter().zip(&want).enumerate() {
                assert!(
                    (got as f64 - x).abs() <= 1e-4 * (1.0 + x.abs()),
                    "flush {flush} {isa} at {i}: {got} vs {x}"
                );
            }
        }
    }
}

#[test]
fn fused_kernel_matches_reference() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // (window, heads, head_dim, shifted): covers N = 9, 16, 36, 64, 144 and head dims 6, 8,
    // 12, 16, 32, 40, 48 (full vector tiles and every kind of tail; N not a multiple of the lanes
    // or below the head dim, where the staged recipe gathers token by token), with every kernel
    // (`kernels`).
    let shapes = [
        (3, 2, 6, false),
        (3, 1, 16, true),
        (4, 3, 8, true),
        (8, 2, 32, true),
        (4, 1, 40, false),
        (6, 2, 12, true),
        (12, 1, 48, true),
    ];
    let cases = kernels().into_iter().flat_map(|k| {
        shapes
            .iter()
            .flat_map(move |s| [true, false].map(|cosine| (k.clone(), s, cosine)))
    });
    for ((isa, kernel), &(win, heads, hd, shifted), cosine) in cases {
        let res = win * 2;
        let batch = 2;
        // The engine's per-window flags (some shapes), or none (every window masked).
        let case = Case::new(
            batch,
            res,
            win,
            heads,
            hd,
            if shifted { win / 2 } else { 0 },
            win % 2 == 0,
            20.0,
        );
        let case = if cosine { case } else { case.dot_product() };
        let (c, n, tokens) = (case.dim, case.n, case.tokens);
        let (map, mask, qkv, scale) = (&case.map, &case.mask, &case.qkv, &case.scale);
        let bias = &case.bias;
        let args = case.args();
        let scratch = Case::scratch(n, hd);
        let mut out = vec![f32::NAN; batch * tokens * c];
        // SAFETY: the CPU runs every kernel `kernels` lists.
        pool.install(|| unsafe { window_attention_on(&args, qkv, &mut out, &scratch, kernel) });
        for b in 0..batch {
            for w in 0..tokens / n {
                for h in 0..heads {
                    let m = mask.as_ref().map(|m| &m[w * n * n..(w + 1) * n * n]);
                    let img = &qkv[b * tokens * 3 * c..(b + 1) * tokens * 3 * c];
                    let want = reference(
                        cosine,
                        img,
                        c,
                        heads,
                        &map.as_slice()[w * n..(w + 1) * n],
                        scale[h],
                        bias,
                        m,
                        h,
                        |x| x,
                    );
                    for (i, o) in want.iter().enumerate() {
                        let tok = b * tokens + map.as_slice()[w * n + i] as usize;
                        for (d, &x) in o.iter().enumerate() {
                            let got = out[tok * c + h * hd + d] as f64;
                            assert!(
                                (got - x).abs() < 2e-5,
                                "{isa} cosine {cosine} win {win} b {b} w {w} h {h} i {i} d {d}: {got} vs {x}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Time of one block's window attention at the shapes of swinv2_tiny_patch4_window8_256's four
/// stages (batch 1, shifted windows), 2 threads, on the active instruction set. A measurement:
/// `cargo test --release --lib attention::tests::speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn speed() {
    // As the engine's pool: denormals flushed (masked scores' exp underflows).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .start_handler(|_| {
            super::super::denormals::flush_denormals_in_this_thread();
        })
        .build()
        .unwrap();
    for (res, heads) in [(64, 3), (32, 6), (16, 12), (8, 24)] {
        let (win, hd) = (8, 32);
        let shift = if res > win { win / 2 } else { 0 };
        let case = Case::new(1, res, win, heads, hd, shift, true, 1.0);
        let (c, n, tokens, qkv) = (case.dim, case.n, case.tokens, &case.qkv);
        let args = case.args();
        let scratch = Case::scratch(n, hd);
        let mut out = vec![0.0; tokens * c];
        // Between calls, stream 8 MiB through the caches as the linear layers do.
        let mut flush = vec![1.0f32; 2 << 20];
        let mut times = Vec::new();
        for _ in 0..60 {
            flush.iter_mut().for_each(|x| *x += 1.0);
            let t = std::time::Instant::now();
            pool.install(|| window_attention(&args, qkv, &mut out, &scratch));
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pairs = tokens / n * heads;
        println!(
            "{} tokens, {heads} heads: {:.0} us per block ({:.2} us per window-head), {}",
            tokens,
            times[30],
            times[30] / pairs as f64 * 2.0,
            Isa::active()
        );
        std::hint::black_box(&flush);
    }
}
