//! Fused window attention of SwinV2 (`WindowAttention.forward` after the qkv linear, before proj), one
//! task per (image, window, head):
//!
//! 1. gather q, k, v of the window's tokens from the `[B*L, 3C]` qkv rows through the block's
//!    (window, position) → token map (roll + window partition, folded);
//! 2. cosine attention: `S = normalize(q)·normalize(k)ᵀ · logit_scale[h] + bias[h] (+ mask[w])`, with the
//!    clamped/exp'd logit scale and the `16·sigmoid(cpb_mlp(…))` table folded at load;
//! 3. softmax over rows, `O = S·v`;
//! 4. scatter O to the window tokens' rows of the `[B*L, C]` output, columns of head `h`
//!    (window reverse + roll back, folded).

use std::sync::Mutex;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::SendPtr;

/// `F.normalize` epsilon.
const NORM_EPS: f32 = 1e-12;

/// Shapes and folded tables of one block's window attention.
#[derive(Clone, Copy)]
pub struct WindowAttentionArgs<'a> {
    /// Images in the batch.
    pub batch: usize,
    /// Tokens per image (`H*W`).
    pub tokens: usize,
    /// Channels `C` (`num_heads * head_dim`).
    pub dim: usize,
    /// Heads.
    pub num_heads: usize,
    /// Tokens per window (`window_size²`).
    pub window_tokens: usize,
    /// `[nW * window_tokens]` token row of each (window, position).
    pub token_index: &'a [u32],
    /// `[num_heads]` folded `exp(clamp(logit_scale, max = ln 100))`.
    pub logit_scale: &'a [f32],
    /// `[num_heads, N, N]` folded `16·sigmoid(relative position bias)`.
    pub bias: &'a [f32],
    /// `[nW, N, N]` shifted-window mask (0 / -100), if the block is shifted.
    pub mask: Option<&'a [f32]>,
}

impl WindowAttentionArgs<'_> {
    /// Scratch floats one task needs: q, kᵀ, v and the score matrix.
    pub fn scratch_len(window_tokens: usize, head_dim: usize) -> usize {
        window_tokens * (3 * head_dim + window_tokens)
    }
}

/// Run the attention of one block: `qkv` is `[batch*tokens, 3*dim]`, `out` `[batch*tokens, dim]`.
/// `scratch` holds one buffer per pool thread (indexed by `rayon::current_thread_index`), each at least
/// [`WindowAttentionArgs::scratch_len`] long.
pub fn window_attention(
    args: &WindowAttentionArgs<'_>,
    qkv: &[f32],
    out: &mut [f32],
    scratch: &[Mutex<Vec<f32>>],
) {
    let n = args.window_tokens;
    let windows = args.token_index.len() / n;
    let tasks = args.batch * windows * args.num_heads;
    assert!(qkv.len() >= args.batch * args.tokens * 3 * args.dim);
    assert!(out.len() >= args.batch * args.tokens * args.dim);
    let out = SendPtr(out.as_mut_ptr());
    let avx2 = super::has_avx2_fma();
    (0..tasks).into_par_iter().for_each(|t| {
        let h = t % args.num_heads;
        let w = (t / args.num_heads) % windows;
        let b = t / (args.num_heads * windows);
        let slot = rayon::current_thread_index().unwrap_or(0) % scratch.len();
        let mut guard = scratch[slot].lock().unwrap_or_else(|e| e.into_inner());
        let out = out;
        // SAFETY: task (b, w, h) writes only columns h*hd..(h+1)*hd of the rows of window w of image b;
        // the token map is a permutation of the image's rows, so no two tasks write the same element.
        unsafe { window_head(args, qkv, out, &mut guard, b, w, h, avx2) };
    });
}

/// One (image, window, head) task.
///
/// # Safety
/// `out` must be valid for `batch*tokens*dim` floats and no other thread may write this task's elements.
#[allow(clippy::too_many_arguments)]
unsafe fn window_head(
    a: &WindowAttentionArgs<'_>,
    qkv: &[f32],
    out: SendPtr<f32>,
    scratch: &mut [f32],
    b: usize,
    w: usize,
    h: usize,
    avx2: bool,
) {
    let n = a.window_tokens;
    let c = a.dim;
    let hd = c / a.num_heads;
    let (q, rest) = scratch.split_at_mut(n * hd);
    let (kt, rest) = rest.split_at_mut(hd * n);
    let (v, rest) = rest.split_at_mut(n * hd);
    let s = &mut rest[..n * n];
    let map = &a.token_index[w * n..(w + 1) * n];
    let base = b * a.tokens;
    let scale = a.logit_scale[h];

    // 1. gather + cosine normalisation (logit scale folded into q).
    for (p, &tok) in map.iter().enumerate() {
        let row = &qkv[(base + tok as usize) * 3 * c..][..3 * c];
        let qr = &row[h * hd..(h + 1) * hd];
        let kr = &row[c + h * hd..c + (h + 1) * hd];
        let vr = &row[2 * c + h * hd..2 * c + (h + 1) * hd];
        let qs = scale / norm(qr).max(NORM_EPS);
        for (d, &x) in qr.iter().enumerate() {
            q[p * hd + d] = x * qs;
        }
        let ks = 1.0 / norm(kr).max(NORM_EPS);
        for (d, &x) in kr.iter().enumerate() {
            kt[d * n + p] = x * ks;
        }
        v[p * hd..(p + 1) * hd].copy_from_slice(vr);
    }

    // 2. scores + bias (+ mask).
    let bias = &a.bias[h * n * n..(h + 1) * n * n];
    let mask = a.mask.map(|m| &m[w * n * n..(w + 1) * n * n]);
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2+FMA detected by the caller; slices sized above.
        unsafe { scores_softmax_avx2(q, kt, s, bias, mask, n, hd) };
    } else {
        scores_softmax_scalar(q, kt, s, bias, mask, n, hd);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = avx2;
        scores_softmax_scalar(q, kt, s, bias, mask, n, hd);
    }

    // 3. O = P·v, scattered to the tokens' rows.
    for (i, &tok) in map.iter().enumerate() {
        // SAFETY: row (base + tok) exists and its head-h columns belong to this task (see caller).
        let dst = unsafe {
            std::slice::from_raw_parts_mut(out.0.add((base + tok as usize) * c + h * hd), hd)
        };
        let p = &s[i * n..(i + 1) * n];
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2+FMA detected; p has n values, v n*hd, dst hd.
            unsafe { pv_row_avx2(p, v, dst, n, hd) };
            continue;
        }
        pv_row_scalar(p, v, dst, n, hd);
    }
}

#[inline]
fn norm(x: &[f32]) -> f32 {
    x.iter().map(|&v| v * v).sum::<f32>().sqrt()
}

fn scores_softmax_scalar(
    q: &[f32],
    kt: &[f32],
    s: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
) {
    for i in 0..n {
        let row = &mut s[i * n..(i + 1) * n];
        row.copy_from_slice(&bias[i * n..(i + 1) * n]);
        if let Some(m) = mask {
            for (x, &mv) in row.iter_mut().zip(&m[i * n..(i + 1) * n]) {
                *x += mv;
            }
        }
        for d in 0..hd {
            let qd = q[i * hd + d];
            for (x, &k) in row.iter_mut().zip(&kt[d * n..(d + 1) * n]) {
                *x += qd * k;
            }
        }
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let mut sum = 0.0;
        for x in row.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        let inv = 1.0 / sum;
        for x in row.iter_mut() {
            *x *= inv;
        }
    }
}

fn pv_row_scalar(p: &[f32], v: &[f32], dst: &mut [f32], n: usize, hd: usize) {
    dst.fill(0.0);
    for j in 0..n {
        let pj = p[j];
        for (o, &x) in dst.iter_mut().zip(&v[j * hd..(j + 1) * hd]) {
            *o += pj * x;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_softmax_avx2(
    q: &[f32],
    kt: &[f32],
    s: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
) {
    use super::math::exp_avx2;
    let end = n - n % 8;
    for i in 0..n {
        let row = &mut s[i * n..(i + 1) * n];
        let qi = &q[i * hd..(i + 1) * hd];
        let brow = &bias[i * n..(i + 1) * n];
        let mrow = mask.map(|m| &m[i * n..(i + 1) * n]);
        let mut j = 0;
        // SAFETY (all pointer arithmetic below): j + 8 <= end <= n, d < hd, kt has hd*n values.
        while j < end {
            let mut acc = _mm256_loadu_ps(brow.as_ptr().add(j));
            if let Some(m) = mrow {
                acc = _mm256_add_ps(acc, _mm256_loadu_ps(m.as_ptr().add(j)));
            }
            for (d, &qd) in qi.iter().enumerate() {
                acc = _mm256_fmadd_ps(
                    _mm256_set1_ps(qd),
                    _mm256_loadu_ps(kt.as_ptr().add(d * n + j)),
                    acc,
                );
            }
            _mm256_storeu_ps(row.as_mut_ptr().add(j), acc);
            j += 8;
        }
        for j in end..n {
            let mut x = brow[j] + mrow.map_or(0.0, |m| m[j]);
            for (d, &qd) in qi.iter().enumerate() {
                x += qd * kt[d * n + j];
            }
            row[j] = x;
        }
        // softmax
        let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut j = 0;
        while j < end {
            vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row.as_ptr().add(j)));
            j += 8;
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), vmax);
        let mut max = lanes.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        for &x in &row[end..] {
            max = max.max(x);
        }
        let vm = _mm256_set1_ps(max);
        let mut vsum = _mm256_setzero_ps();
        let mut j = 0;
        while j < end {
            let e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(row.as_ptr().add(j)), vm));
            _mm256_storeu_ps(row.as_mut_ptr().add(j), e);
            vsum = _mm256_add_ps(vsum, e);
            j += 8;
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), vsum);
        let mut sum: f32 = lanes.iter().sum();
        for x in &mut row[end..] {
            *x = (*x - max).exp();
            sum += *x;
        }
        let inv = 1.0 / sum;
        let vinv = _mm256_set1_ps(inv);
        let mut j = 0;
        while j < end {
            let p = row.as_mut_ptr().add(j);
            _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(p), vinv));
            j += 8;
        }
        for x in &mut row[end..] {
            *x *= inv;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pv_row_avx2(p: &[f32], v: &[f32], dst: &mut [f32], n: usize, hd: usize) {
    let end = hd - hd % 8;
    let mut d = 0;
    // SAFETY (pointer arithmetic): d + 8 <= end <= hd; j < n; v has n*hd values, dst hd.
    while d + 32 <= end {
        let mut a0 = _mm256_setzero_ps();
        let mut a1 = _mm256_setzero_ps();
        let mut a2 = _mm256_setzero_ps();
        let mut a3 = _mm256_setzero_ps();
        for (j, &pj) in p.iter().enumerate().take(n) {
            let pb = _mm256_set1_ps(pj);
            let vr = v.as_ptr().add(j * hd + d);
            a0 = _mm256_fmadd_ps(pb, _mm256_loadu_ps(vr), a0);
            a1 = _mm256_fmadd_ps(pb, _mm256_loadu_ps(vr.add(8)), a1);
            a2 = _mm256_fmadd_ps(pb, _mm256_loadu_ps(vr.add(16)), a2);
            a3 = _mm256_fmadd_ps(pb, _mm256_loadu_ps(vr.add(24)), a3);
        }
        let o = dst.as_mut_ptr().add(d);
        _mm256_storeu_ps(o, a0);
        _mm256_storeu_ps(o.add(8), a1);
        _mm256_storeu_ps(o.add(16), a2);
        _mm256_storeu_ps(o.add(24), a3);
        d += 32;
    }
    while d < end {
        let mut a0 = _mm256_setzero_ps();
        for (j, &pj) in p.iter().enumerate().take(n) {
            a0 = _mm256_fmadd_ps(
                _mm256_set1_ps(pj),
                _mm256_loadu_ps(v.as_ptr().add(j * hd + d)),
                a0,
            );
        }
        _mm256_storeu_ps(dst.as_mut_ptr().add(d), a0);
        d += 8;
    }
    for dd in end..hd {
        let mut x = 0.0;
        for (j, &pj) in p.iter().enumerate().take(n) {
            x += pj * v[j * hd + dd];
        }
        dst[dd] = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward attention for one head of one window, in f64, from the official formula.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        qkv: &[f32],
        c: usize,
        heads: usize,
        map: &[u32],
        scale: f32,
        bias: &[f32],
        mask: Option<&[f32]>,
        h: usize,
    ) -> Vec<Vec<f64>> {
        let hd = c / heads;
        let n = map.len();
        let get = |p: usize, part: usize| -> Vec<f64> {
            let row = map[p] as usize * 3 * c + part * c + h * hd;
            qkv[row..row + hd].iter().map(|&x| x as f64).collect()
        };
        let unit = |v: Vec<f64>| {
            let l = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v.into_iter().map(|x| x / l).collect::<Vec<_>>()
        };
        let mut out = vec![];
        for i in 0..n {
            let qi = unit(get(i, 0));
            let mut sc: Vec<f64> = (0..n)
                .map(|j| {
                    let kj = unit(get(j, 1));
                    let dot: f64 = qi.iter().zip(&kj).map(|(a, b)| a * b).sum();
                    dot * scale as f64
                        + bias[h * n * n + i * n + j] as f64
                        + mask.map_or(0.0, |m| m[i * n + j] as f64)
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
                    o[d] += p / sum * vd;
                }
            }
            out.push(o);
        }
        out
    }

    #[test]
    fn fused_kernel_matches_reference() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // (window, heads, head_dim, shifted): covers N = 9, 16, 64 and head dims 6, 8, 32, 40.
        for &(win, heads, hd, shifted) in &[
            (3, 2, 6, false),
            (4, 3, 8, true),
            (8, 2, 32, true),
            (4, 1, 40, false),
        ] {
            let res = win * 2;
            let c = heads * hd;
            let n = win * win;
            let tokens = res * res;
            let map = crate::engine::cpu::tables::window_token_index(
                res,
                win,
                if shifted { win / 2 } else { 0 },
            );
            let mask =
                crate::engine::cpu::tables::attn_mask(res, win, if shifted { win / 2 } else { 0 });
            let batch = 2;
            let qkv: Vec<f32> = (0..batch * tokens * 3 * c)
                .map(|i| (((i * 2_654_435_761usize) >> 7) % 1000) as f32 * 0.002 - 1.0)
                .collect();
            let bias: Vec<f32> = (0..heads * n * n).map(|i| (i % 13) as f32 * 0.7).collect();
            let scale: Vec<f32> = (0..heads).map(|h| 3.0 + h as f32 * 20.0).collect();
            let args = WindowAttentionArgs {
                batch,
                tokens,
                dim: c,
                num_heads: heads,
                window_tokens: n,
                token_index: &map,
                logit_scale: &scale,
                bias: &bias,
                mask: mask.as_deref(),
            };
            let scratch: Vec<_> = (0..2)
                .map(|_| Mutex::new(vec![0.0; WindowAttentionArgs::scratch_len(n, hd)]))
                .collect();
            let mut out = vec![f32::NAN; batch * tokens * c];
            pool.install(|| window_attention(&args, &qkv, &mut out, &scratch));
            for b in 0..batch {
                for w in 0..tokens / n {
                    for h in 0..heads {
                        let m = mask.as_ref().map(|m| &m[w * n * n..(w + 1) * n * n]);
                        let img = &qkv[b * tokens * 3 * c..(b + 1) * tokens * 3 * c];
                        let want = reference(
                            img,
                            c,
                            heads,
                            &map[w * n..(w + 1) * n],
                            scale[h],
                            &bias,
                            m,
                            h,
                        );
                        for (i, o) in want.iter().enumerate() {
                            let tok = b * tokens + map[w * n + i] as usize;
                            for (d, &x) in o.iter().enumerate() {
                                let got = out[tok * c + h * hd + d] as f64;
                                assert!(
                                    (got - x).abs() < 2e-5,
                                    "win {win} b {b} w {w} h {h} i {i} d {d}: {got} vs {x}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
