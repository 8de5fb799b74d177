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

use super::isa::Isa;
use super::SendPtr;

/// `F.normalize` epsilon.
const NORM_EPS: f32 = 1e-12;

/// A (window, position) → token map that is a permutation of `0..tokens`, checked once when made,
/// so that the attention kernel can scatter every task's output through it without checks (no row
/// out of range, no two tasks on one row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPermutation(Vec<u32>);

impl TokenPermutation {
    /// `map` if it holds every value of `0..map.len()` exactly once.
    pub fn new(map: Vec<u32>) -> Option<Self> {
        let mut seen = vec![false; map.len()];
        for &t in &map {
            let slot = seen.get_mut(t as usize)?;
            if std::mem::replace(slot, true) {
                return None;
            }
        }
        Some(Self(map))
    }

    /// The map.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// Tokens it permutes.
    pub fn tokens(&self) -> usize {
        self.0.len()
    }
}

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
    /// `[nW * window_tokens]` token row of each (window, position): a permutation of `0..tokens`
    /// (outputs are written through it, from several threads).
    pub token_index: &'a TokenPermutation,
    /// `[num_heads]` folded `exp(clamp(logit_scale, max = ln 100))`.
    pub logit_scale: &'a [f32],
    /// `[num_heads, N, N]` folded `16·sigmoid(relative position bias)`.
    pub bias: &'a [f32],
    /// `[nW, N, N]` shifted-window mask (0 / -100), if the block is shifted.
    pub mask: Option<&'a [f32]>,
    /// `[nW]`: whether window `w`'s mask has a non-zero entry (interior windows have none, and
    /// skip the add); `None`: every window is masked.
    pub masked_windows: Option<&'a [bool]>,
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
    window_attention_with(args, qkv, out, scratch, Isa::active());
}

/// [`window_attention`] with the kernel set chosen by the caller (lowered to what the CPU has).
fn window_attention_with(
    args: &WindowAttentionArgs<'_>,
    qkv: &[f32],
    out: &mut [f32],
    scratch: &[Mutex<Vec<f32>>],
    isa: Isa,
) {
    let n = args.window_tokens;
    assert_eq!(
        args.token_index.tokens(),
        args.tokens,
        "token map of another grid"
    );
    assert!(
        n > 0 && args.tokens.is_multiple_of(n),
        "windows must tile the grid"
    );
    let windows = args.tokens / n;
    let tasks = args.batch * windows * args.num_heads;
    assert!(qkv.len() >= args.batch * args.tokens * 3 * args.dim);
    assert!(out.len() >= args.batch * args.tokens * args.dim);
    let out = SendPtr(out.as_mut_ptr());
    let isa = isa.min(Isa::detected());
    (0..tasks).into_par_iter().for_each(|t| {
        let h = t % args.num_heads;
        let w = (t / args.num_heads) % windows;
        let b = t / (args.num_heads * windows);
        let slot = rayon::current_thread_index().unwrap_or(0) % scratch.len();
        let mut guard = scratch[slot].lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `out` holds batch*tokens*dim floats (asserted above) and the CPU has `isa`
        // (lowered to the detected set above). Task (b, w, h) writes only columns
        // h*hd..(h+1)*hd of the rows of window w of image b; the token map is a permutation of
        // 0..tokens (`TokenPermutation`, length asserted above), so the rows exist and no two
        // tasks write the same element.
        unsafe { window_head(args, qkv, out, &mut guard, b, w, h, isa) };
    });
}

/// One (image, window, head) task.
///
/// # Safety
/// `out` must be valid for writes of `batch*tokens*dim` floats; every entry of `a.token_index` must be
/// below `a.tokens`; no other thread may access this task's elements of `out` (columns
/// `h*hd..(h+1)*hd` of the rows of window `w` of image `b`) during the call; the CPU must support
/// `isa`.
#[allow(clippy::too_many_arguments)]
unsafe fn window_head(
    a: &WindowAttentionArgs<'_>,
    qkv: &[f32],
    out: SendPtr<f32>,
    scratch: &mut [f32],
    b: usize,
    w: usize,
    h: usize,
    isa: Isa,
) {
    let n = a.window_tokens;
    let c = a.dim;
    let hd = c / a.num_heads;
    let (q, rest) = scratch.split_at_mut(n * hd);
    let (kt, rest) = rest.split_at_mut(hd * n);
    let (v, rest) = rest.split_at_mut(n * hd);
    let s = &mut rest[..n * n];
    let map = &a.token_index.as_slice()[w * n..(w + 1) * n];
    let base = b * a.tokens;
    let scale = a.logit_scale[h];

    let bias = &a.bias[h * n * n..(h + 1) * n * n];
    let mask = a
        .mask
        .filter(|_| a.masked_windows.is_none_or(|masked| masked[w]))
        .map(|m| &m[w * n * n..(w + 1) * n * n]);
    // Row of the output that window position p goes to (window reverse + roll back).
    // SAFETY: row (base + tok) exists and its head-h columns belong to this task (see caller).
    let dst_row = |p: usize| unsafe { out.get().add((base + map[p] as usize) * c + h * hd) };

    #[cfg(target_arch = "x86_64")]
    if isa >= Isa::Avx2 {
        // SAFETY: the CPU has `isa` (caller), so AVX2 and FMA, and AVX-512 F where `isa` says so;
        // q, kt, v and s were split from the scratch at n×hd, hd×n, n×hd and n×n floats, bias and
        // mask sliced at n×n above, and dst_row(p) is valid for hd floats owned by this task (see
        // dst_row). gather_t_avx512: n % 16 == 0 and qkv.len() <= i32::MAX are checked next to
        // the call, and every row base + map[p] < batch*tokens is a row of the [_, 3c] qkv (map is
        // a permutation of 0..tokens, qkv.len() asserted by the caller).
        unsafe {
            if isa >= Isa::Avx512 {
                // q transposed (`qt`, hd×n) like kᵀ: the score tiles broadcast q[i, d] from it.
                let qt = q;
                if n.is_multiple_of(16) && qkv.len() <= i32::MAX as usize {
                    gather_t_avx512(qkv, map, base, c, h, hd, scale, qt, kt, v);
                } else {
                    gather_avx2(qkv, map, base, c, h, hd, scale, qt, true, kt, v);
                }
                scores_softmax_avx512(qt, kt, s, bias, mask, n, hd);
                pv_avx512(s, v, &dst_row, n, hd);
            } else {
                gather_avx2(qkv, map, base, c, h, hd, scale, q, false, kt, v);
                scores_softmax_avx2(q, kt, s, bias, mask, n, hd);
                pv_avx2(s, v, &dst_row, n, hd);
            }
        }
        return;
    }
    let _ = isa;

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
    // 2. scores + bias (+ mask), softmax.
    scores_softmax_scalar(q, kt, s, bias, mask, n, hd);
    // 3. O = P·v, scattered to the tokens' rows.
    for i in 0..n {
        // SAFETY: see dst_row.
        let dst = unsafe { std::slice::from_raw_parts_mut(dst_row(i), hd) };
        pv_row_scalar(&s[i * n..(i + 1) * n], v, dst, n, hd);
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
        softmax_scalar(row);
    }
}

fn softmax_scalar(row: &mut [f32]) {
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

fn pv_row_scalar(p: &[f32], v: &[f32], dst: &mut [f32], n: usize, hd: usize) {
    dst.fill(0.0);
    for j in 0..n {
        let pj = p[j];
        for (o, &x) in dst.iter_mut().zip(&v[j * hd..(j + 1) * hd]) {
            *o += pj * x;
        }
    }
}

/// Sum of squares of `x` (8 lanes + scalar tail).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn sum_sq_avx2(x: &[f32]) -> f32 {
    let end = x.len() - x.len() % 8;
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < end {
        // SAFETY: i + 8 <= end <= x.len().
        let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        acc = _mm256_fmadd_ps(v, v, acc);
        i += 8;
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: lanes has 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    let mut s: f32 = lanes.iter().sum();
    for &v in &x[end..] {
        s += v * v;
    }
    s
}

/// Gather q (scaled by `logit_scale / |q|`; transposed, hd×n, when `q_transposed`), kᵀ (`k / |k|`)
/// and v of the window's tokens.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn gather_avx2(
    qkv: &[f32],
    map: &[u32],
    base: usize,
    c: usize,
    h: usize,
    hd: usize,
    scale: f32,
    q: &mut [f32],
    q_transposed: bool,
    kt: &mut [f32],
    v: &mut [f32],
) {
    let n = map.len();
    let end = hd - hd % 8;
    for (p, &tok) in map.iter().enumerate() {
        let row = &qkv[(base + tok as usize) * 3 * c..][..3 * c];
        let qr = &row[h * hd..(h + 1) * hd];
        let kr = &row[c + h * hd..c + (h + 1) * hd];
        let qs = scale / sum_sq_avx2(qr).sqrt().max(NORM_EPS);
        let ks = 1.0 / sum_sq_avx2(kr).sqrt().max(NORM_EPS);
        if q_transposed {
            for (d, &x) in qr.iter().enumerate() {
                q[d * n + p] = x * qs;
            }
        } else {
            let qdst = &mut q[p * hd..(p + 1) * hd];
            let vq = _mm256_set1_ps(qs);
            let mut d = 0;
            while d < end {
                // SAFETY: d + 8 <= end <= hd = qr.len() = qdst.len().
                unsafe {
                    _mm256_storeu_ps(
                        qdst.as_mut_ptr().add(d),
                        _mm256_mul_ps(_mm256_loadu_ps(qr.as_ptr().add(d)), vq),
                    )
                };
                d += 8;
            }
            for d in end..hd {
                qdst[d] = qr[d] * qs;
            }
        }
        for (d, &x) in kr.iter().enumerate() {
            kt[d * n + p] = x * ks;
        }
        v[p * hd..(p + 1) * hd].copy_from_slice(&row[2 * c + h * hd..2 * c + (h + 1) * hd]);
    }
}

/// [`gather_avx2`] with q transposed too (`qt`: hd×n, like `kt`), for `n` a multiple of 16: each
/// row `d` of qᵀ and kᵀ is gathered 16 tokens at a time, and the norms are summed over `d` for 16
/// tokens at once, with no horizontal sums and no scalar transposing stores.
///
/// # Safety
/// The CPU must support AVX-512 F; `n = map.len()` must be a multiple of 16, `qkv.len()` at most
/// `i32::MAX`, and every row `base + map[p]` a row of the `[_, 3c]` `qkv` (so that its columns
/// `h*hd..(h+1)*hd` of each third exist); `qt` and `kt` must hold `hd*n` floats, `v` `n*hd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn gather_t_avx512(
    qkv: &[f32],
    map: &[u32],
    base: usize,
    c: usize,
    h: usize,
    hd: usize,
    scale: f32,
    qt: &mut [f32],
    kt: &mut [f32],
    v: &mut [f32],
) {
    let n = map.len();
    debug_assert!(n.is_multiple_of(16) && qkv.len() <= i32::MAX as usize);
    for (p, &tok) in map.iter().enumerate() {
        let row = (base + tok as usize) * 3 * c;
        v[p * hd..(p + 1) * hd].copy_from_slice(&qkv[row + 2 * c + h * hd..][..hd]);
    }
    let eps = _mm512_set1_ps(NORM_EPS);
    for j in (0..n).step_by(16) {
        let mut rows = [0i32; 16];
        for (l, r) in rows.iter_mut().enumerate() {
            // Fits: below qkv.len() <= i32::MAX (caller).
            *r = ((base + map[j + l] as usize) * 3 * c + h * hd) as i32;
        }
        // SAFETY: rows has 16 i32; every gathered index row + d (+ c) for d < hd is an element
        // of qkv (caller); stores at d*n + j with j + 16 <= n stay inside the hd×n qt and kt.
        unsafe {
            let rows = _mm512_loadu_si512(rows.as_ptr().cast());
            for (xt, offset, num) in [(&mut *qt, 0, scale), (&mut *kt, c as i32, 1.0)] {
                let at = _mm512_add_epi32(rows, _mm512_set1_epi32(offset));
                let mut ss = _mm512_setzero_ps();
                for d in 0..hd {
                    let idx = _mm512_add_epi32(at, _mm512_set1_epi32(d as i32));
                    let x = _mm512_i32gather_ps::<4>(idx, qkv.as_ptr());
                    _mm512_storeu_ps(xt.as_mut_ptr().add(d * n + j), x);
                    ss = _mm512_fmadd_ps(x, x, ss);
                }
                // num / max(|x|, eps), 16 tokens at once.
                let inv =
                    _mm512_div_ps(_mm512_set1_ps(num), _mm512_max_ps(_mm512_sqrt_ps(ss), eps));
                for d in 0..hd {
                    let at = xt.as_mut_ptr().add(d * n + j);
                    _mm512_storeu_ps(at, _mm512_mul_ps(_mm512_loadu_ps(at), inv));
                }
            }
        }
    }
}

/// Scores of `R` consecutive rows starting at `i` over columns `j..j + 8*B`:
/// `S = bias (+ mask) + q·kᵀ`, accumulated in `R*B` registers.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `i + R <= n` and `j + 8*B <= n`; `bias`, `s` (and `mask`)
/// must hold at least `n*n` floats, `q` at least `n*hd` and `kt` at least `hd*n` (all are read or
/// written unchecked).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline]
unsafe fn score_tile<const R: usize, const B: usize>(
    q: &[f32],
    kt: &[f32],
    s: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
    i: usize,
    j: usize,
) {
    debug_assert!(i + R <= n && j + 8 * B <= n);
    let mut acc = [[_mm256_setzero_ps(); B]; R];
    // SAFETY: (all loads/stores) rows i..i+R < n, columns j..j+8B <= n of the n×n bias, mask and s;
    // rows d < hd of the hd×n kt; rows i..i+R of the n×hd q (caller).
    unsafe {
        for r in 0..R {
            for b in 0..B {
                let off = (i + r) * n + j + 8 * b;
                acc[r][b] = _mm256_loadu_ps(bias.as_ptr().add(off));
                if let Some(m) = mask {
                    acc[r][b] = _mm256_add_ps(acc[r][b], _mm256_loadu_ps(m.as_ptr().add(off)));
                }
            }
        }
        for d in 0..hd {
            let mut kv = [_mm256_setzero_ps(); B];
            for (b, k) in kv.iter_mut().enumerate() {
                *k = _mm256_loadu_ps(kt.as_ptr().add(d * n + j + 8 * b));
            }
            for r in 0..R {
                let qb = _mm256_set1_ps(*q.get_unchecked((i + r) * hd + d));
                for b in 0..B {
                    acc[r][b] = _mm256_fmadd_ps(qb, kv[b], acc[r][b]);
                }
            }
        }
        for r in 0..R {
            for b in 0..B {
                _mm256_storeu_ps(s.as_mut_ptr().add((i + r) * n + j + 8 * b), acc[r][b]);
            }
        }
    }
}

/// Scores for rows `i..i+R` (all columns), then softmax of each row.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `i + R <= n`; the slices are sized as [`score_tile`] requires.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn score_rows<const R: usize>(
    q: &[f32],
    kt: &[f32],
    s: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
    i: usize,
) {
    let mut j = 0;
    // SAFETY: i + R <= n and the slice sizes come from the caller; the loop bounds keep
    // j + 32 <= n, resp. j + 8 <= n.
    unsafe {
        while j + 32 <= n {
            score_tile::<R, 4>(q, kt, s, bias, mask, n, hd, i, j);
            j += 32;
        }
        while j + 8 <= n {
            score_tile::<R, 1>(q, kt, s, bias, mask, n, hd, i, j);
            j += 8;
        }
    }
    for r in i..i + R {
        for jj in j..n {
            let mut x = bias[r * n + jj] + mask.map_or(0.0, |m| m[r * n + jj]);
            for d in 0..hd {
                x += q[r * hd + d] * kt[d * n + jj];
            }
            s[r * n + jj] = x;
        }
        softmax_avx2(&mut s[r * n..(r + 1) * n]);
    }
}

/// `S = softmax(bias (+ mask) + q·kᵀ)` over the rows of the `n×n` score matrix `s`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `bias`, `s` (and `mask`) must hold at least `n*n` floats, `q`
/// at least `n*hd` and `kt` at least `hd*n`.
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
    let mut i = 0;
    // SAFETY: the loop bounds keep i + 2 <= n, resp. i + 1 <= n; slice sizes from the caller.
    unsafe {
        while i + 2 <= n {
            score_rows::<2>(q, kt, s, bias, mask, n, hd, i);
            i += 2;
        }
        if i < n {
            score_rows::<1>(q, kt, s, bias, mask, n, hd, i);
        }
    }
}

/// Softmax of one row in place (max-subtracted, vector exp).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_avx2(row: &mut [f32]) {
    use super::math::exp_avx2;
    let n = row.len();
    let end = n - n % 8;
    let p = row.as_mut_ptr();
    let mut lanes = [0.0f32; 8];
    // SAFETY: (all pointer accesses) p = row.as_mut_ptr(); vector accesses at j with
    // j + 8 <= end <= n = row.len(), scalar ones at jj < n.
    unsafe {
        let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut j = 0;
        while j < end {
            vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p.add(j)));
            j += 8;
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), vmax);
        let mut max = lanes.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        for jj in end..n {
            max = max.max(*p.add(jj));
        }
        let vm = _mm256_set1_ps(max);
        let mut vsum = _mm256_setzero_ps();
        let mut j = 0;
        while j < end {
            let e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(p.add(j)), vm));
            _mm256_storeu_ps(p.add(j), e);
            vsum = _mm256_add_ps(vsum, e);
            j += 8;
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), vsum);
        let mut sum: f32 = lanes.iter().sum();
        for jj in end..n {
            let e = (*p.add(jj) - max).exp();
            *p.add(jj) = e;
            sum += e;
        }
        let inv = 1.0 / sum;
        let vinv = _mm256_set1_ps(inv);
        let mut j = 0;
        while j < end {
            _mm256_storeu_ps(p.add(j), _mm256_mul_ps(_mm256_loadu_ps(p.add(j)), vinv));
            j += 8;
        }
        for jj in end..n {
            *p.add(jj) *= inv;
        }
    }
}

/// `O[i, d..d+8B] = Σ_j P[i, j] v[j, d..d+8B]` for rows `i..i+R`, stored at `dst_row(i)`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `i + R <= n` and `d + 8*B <= hd`; `s` must hold at least
/// `n*n` floats and `v` at least `n*hd`; for every `r` in `i..i+R`, `dst_row(r)` must be valid for
/// writes of `hd` floats that no other thread accesses during the call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
#[inline]
unsafe fn pv_tile<const R: usize, const B: usize>(
    s: &[f32],
    v: &[f32],
    dst_row: &impl Fn(usize) -> *mut f32,
    n: usize,
    hd: usize,
    i: usize,
    d: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); B]; R];
    // SAFETY: (all loads/stores) rows i..i+R < n of the n×n P, rows j < n and columns d..d+8B <= hd
    // of the n×hd v; dst_row(r) is valid for hd floats owned by this task (caller).
    unsafe {
        for j in 0..n {
            let mut vv = [_mm256_setzero_ps(); B];
            for (b, x) in vv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(v.as_ptr().add(j * hd + d + 8 * b));
            }
            for r in 0..R {
                let pb = _mm256_set1_ps(*s.get_unchecked((i + r) * n + j));
                for b in 0..B {
                    acc[r][b] = _mm256_fmadd_ps(pb, vv[b], acc[r][b]);
                }
            }
        }
        for r in 0..R {
            let o = dst_row(i + r).add(d);
            for b in 0..B {
                _mm256_storeu_ps(o.add(8 * b), acc[r][b]);
            }
        }
    }
}

/// `O = P·v` for rows `i..i+R` (all `hd` columns), stored at `dst_row(r)`.
///
/// # Safety
/// As [`pv_tile`], with `i + R <= n` and no condition on the columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn pv_rows<const R: usize>(
    s: &[f32],
    v: &[f32],
    dst_row: &impl Fn(usize) -> *mut f32,
    n: usize,
    hd: usize,
    i: usize,
) {
    let mut d = 0;
    // SAFETY: the loop bounds keep d + 32 <= hd, resp. d + 8 <= hd, and the tail writes columns
    // dd < hd of dst_row(r), valid for hd floats; the rest comes from the caller (see pv_tile).
    unsafe {
        while d + 32 <= hd {
            pv_tile::<R, 4>(s, v, dst_row, n, hd, i, d);
            d += 32;
        }
        while d + 8 <= hd {
            pv_tile::<R, 1>(s, v, dst_row, n, hd, i, d);
            d += 8;
        }
        for r in i..i + R {
            let o = dst_row(r);
            for dd in d..hd {
                let mut x = 0.0;
                for j in 0..n {
                    x += s[r * n + j] * v[j * hd + dd];
                }
                *o.add(dd) = x;
            }
        }
    }
}

/// `O = P·v` for all `n` rows, row `r` stored at `dst_row(r)`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `s` must hold at least `n*n` floats and `v` at least `n*hd`;
/// for every `r < n`, `dst_row(r)` must be valid for writes of `hd` floats that no other thread
/// accesses during the call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pv_avx2(s: &[f32], v: &[f32], dst_row: &impl Fn(usize) -> *mut f32, n: usize, hd: usize) {
    let mut i = 0;
    // SAFETY: the loop bounds keep i + 2 <= n, resp. i + 1 <= n; the rest comes from the caller.
    unsafe {
        while i + 2 <= n {
            pv_rows::<2>(s, v, dst_row, n, hd, i);
            i += 2;
        }
        if i < n {
            pv_rows::<1>(s, v, dst_row, n, hd, i);
        }
    }
}

/// AVX-512 [`score_tile`]: rows `i..i+R`, columns `j..j + 16*B`, with q transposed (`qt`, hd×n).
///
/// # Safety
/// The CPU must support AVX-512 F; `i + R <= n` and `j + 16*B <= n`; the slices are sized as
/// [`score_tile`] requires (`qt` as `kt`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline]
unsafe fn score_tile512<const R: usize, const B: usize>(
    qt: &[f32],
    kt: &[f32],
    s: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
    i: usize,
    j: usize,
) {
    debug_assert!(i + R <= n && j + 16 * B <= n);
    let mut acc = [[_mm512_setzero_ps(); B]; R];
    // SAFETY: (all loads/stores) rows i..i+R < n, columns j..j+16B <= n of the n×n bias, mask and
    // s; rows d < hd of the hd×n kt; columns i..i+R of the hd×n qt (caller).
    unsafe {
        for r in 0..R {
            for b in 0..B {
                let off = (i + r) * n + j + 16 * b;
                acc[r][b] = _mm512_loadu_ps(bias.as_ptr().add(off));
                if let Some(m) = mask {
                    acc[r][b] = _mm512_add_ps(acc[r][b], _mm512_loadu_ps(m.as_ptr().add(off)));
                }
            }
        }
        for d in 0..hd {
            let mut kv = [_mm512_setzero_ps(); B];
            for (b, k) in kv.iter_mut().enumerate() {
                *k = _mm512_loadu_ps(kt.as_ptr().add(d * n + j + 16 * b));
            }
            for r in 0..R {
                let qb = _mm512_set1_ps(*qt.get_unchecked(d * n + i + r));
                for b in 0..B {
                    acc[r][b] = _mm512_fmadd_ps(qb, kv[b], acc[r][b]);
                }
            }
        }
        for r in 0..R {
            for b in 0..B {
                _mm512_storeu_ps(s.as_mut_ptr().add((i + r) * n + j + 16 * b), acc[r][b]);
            }
        }
    }
}

/// AVX-512 [`score_rows`] with q transposed (`qt`, hd×n): scores for rows `i..i+R`, then softmax of
/// each row ([`softmax_rows_avx512`], the `R` rows interleaved).
///
/// # Safety
/// The CPU must support AVX-512 F; `i + R <= n`; the slices are sized as [`score_tile`] requires.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn score_rows512<const R: usize>(
    qt: &[f32],
    kt: &[f32],
    s: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
    i: usize,
) {
    let mut j = 0;
    // SAFETY: i + R <= n and the slice sizes come from the caller; the loop bounds keep
    // j + 64 <= n, resp. j + 16 <= n.
    unsafe {
        while j + 64 <= n {
            score_tile512::<R, 4>(qt, kt, s, bias, mask, n, hd, i, j);
            j += 64;
        }
        while j + 16 <= n {
            score_tile512::<R, 1>(qt, kt, s, bias, mask, n, hd, i, j);
            j += 16;
        }
    }
    for r in i..i + R {
        for jj in j..n {
            let mut x = bias[r * n + jj] + mask.map_or(0.0, |m| m[r * n + jj]);
            for d in 0..hd {
                x += qt[d * n + r] * kt[d * n + jj];
            }
            s[r * n + jj] = x;
        }
    }
    softmax_rows_avx512::<R>(&mut s[i * n..(i + R) * n], n);
}

/// AVX-512 [`scores_softmax_avx2`], with q transposed (`qt`, hd×n).
///
/// # Safety
/// The CPU must support AVX-512 F; `bias`, `s` (and `mask`) must hold at least `n*n` floats, `qt`
/// and `kt` at least `hd*n`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scores_softmax_avx512(
    qt: &[f32],
    kt: &[f32],
    s: &mut [f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    hd: usize,
) {
    let mut i = 0;
    // SAFETY: the loop bounds keep i + 4 <= n, resp. i + 1 <= n; slice sizes from the caller.
    unsafe {
        while i + 4 <= n {
            score_rows512::<4>(qt, kt, s, bias, mask, n, hd, i);
            i += 4;
        }
        while i < n {
            score_rows512::<1>(qt, kt, s, bias, mask, n, hd, i);
            i += 1;
        }
    }
}

/// Softmax in place of the `R` rows of length `n` in `rows`, their steps interleaved (each row's
/// max, exp and sum are short dependency chains: one row alone leaves the core waiting):
/// max-subtracted, [`exp_avx512`](super::math::exp_avx512), times 1/sum.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
fn softmax_rows_avx512<const R: usize>(rows: &mut [f32], n: usize) {
    use super::math::exp_avx512;
    assert_eq!(rows.len(), R * n, "R rows of n");
    let end = n - n % 16;
    let p = rows.as_mut_ptr();
    // SAFETY: (all pointer accesses) p = rows.as_mut_ptr(), rows.len() = R*n (asserted); accesses
    // at r*n + j with r < R and j + 16 <= end <= n (vectors) or j < n (scalars).
    unsafe {
        let mut max = [0.0f32; R];
        let mut vmax = [_mm512_set1_ps(f32::NEG_INFINITY); R];
        let mut j = 0;
        while j < end {
            for r in 0..R {
                vmax[r] = _mm512_max_ps(vmax[r], _mm512_loadu_ps(p.add(r * n + j)));
            }
            j += 16;
        }
        for r in 0..R {
            max[r] = _mm512_reduce_max_ps(vmax[r]);
            for jj in end..n {
                max[r] = max[r].max(*p.add(r * n + jj));
            }
        }
        let vm = max.map(|m| _mm512_set1_ps(m));
        let mut vsum = [_mm512_setzero_ps(); R];
        let mut j = 0;
        while j < end {
            for r in 0..R {
                let at = p.add(r * n + j);
                let e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(at), vm[r]));
                _mm512_storeu_ps(at, e);
                vsum[r] = _mm512_add_ps(vsum[r], e);
            }
            j += 16;
        }
        let mut inv = [0.0f32; R];
        for r in 0..R {
            let mut sum = _mm512_reduce_add_ps(vsum[r]);
            for jj in end..n {
                let at = p.add(r * n + jj);
                let e = (*at - max[r]).exp();
                *at = e;
                sum += e;
            }
            inv[r] = 1.0 / sum;
        }
        let vinv = inv.map(|x| _mm512_set1_ps(x));
        let mut j = 0;
        while j < end {
            for r in 0..R {
                let at = p.add(r * n + j);
                _mm512_storeu_ps(at, _mm512_mul_ps(_mm512_loadu_ps(at), vinv[r]));
            }
            j += 16;
        }
        for r in 0..R {
            for jj in end..n {
                *p.add(r * n + jj) *= inv[r];
            }
        }
    }
}

/// AVX-512 [`pv_tile`]: `O[i, d..d+16B]` for rows `i..i+R`.
///
/// # Safety
/// As [`pv_tile`] with AVX-512 F instead of AVX2 and `d + 16*B <= hd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
#[inline]
unsafe fn pv_tile512<const R: usize, const B: usize>(
    s: &[f32],
    v: &[f32],
    dst_row: &impl Fn(usize) -> *mut f32,
    n: usize,
    hd: usize,
    i: usize,
    d: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); B]; R];
    // SAFETY: (all loads/stores) rows i..i+R < n of the n×n P, rows j < n and columns
    // d..d+16B <= hd of the n×hd v; dst_row(r) is valid for hd floats owned by this task (caller).
    unsafe {
        for j in 0..n {
            let mut vv = [_mm512_setzero_ps(); B];
            for (b, x) in vv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(v.as_ptr().add(j * hd + d + 16 * b));
            }
            for r in 0..R {
                let pb = _mm512_set1_ps(*s.get_unchecked((i + r) * n + j));
                for b in 0..B {
                    acc[r][b] = _mm512_fmadd_ps(pb, vv[b], acc[r][b]);
                }
            }
        }
        for r in 0..R {
            let o = dst_row(i + r).add(d);
            for b in 0..B {
                _mm512_storeu_ps(o.add(16 * b), acc[r][b]);
            }
        }
    }
}

/// AVX-512 [`pv_rows`]: rows `i..i+R`, all `hd` columns.
///
/// # Safety
/// As [`pv_tile512`], with `i + R <= n` and no condition on the columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pv_rows512<const R: usize>(
    s: &[f32],
    v: &[f32],
    dst_row: &impl Fn(usize) -> *mut f32,
    n: usize,
    hd: usize,
    i: usize,
) {
    let mut d = 0;
    // SAFETY: the loop bounds keep d + 32 <= hd, resp. d + 16 <= hd, and the tail writes columns
    // dd < hd of dst_row(r), valid for hd floats; the rest comes from the caller (see pv_tile).
    unsafe {
        while d + 32 <= hd {
            pv_tile512::<R, 2>(s, v, dst_row, n, hd, i, d);
            d += 32;
        }
        while d + 16 <= hd {
            pv_tile512::<R, 1>(s, v, dst_row, n, hd, i, d);
            d += 16;
        }
        for r in i..i + R {
            let o = dst_row(r);
            for dd in d..hd {
                let mut x = 0.0;
                for j in 0..n {
                    x += s[r * n + j] * v[j * hd + dd];
                }
                *o.add(dd) = x;
            }
        }
    }
}

/// AVX-512 [`pv_avx2`].
///
/// # Safety
/// As [`pv_avx2`] with AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pv_avx512(
    s: &[f32],
    v: &[f32],
    dst_row: &impl Fn(usize) -> *mut f32,
    n: usize,
    hd: usize,
) {
    let mut i = 0;
    // SAFETY: the loop bounds keep i + 8 <= n, resp. i + 1 <= n; the rest comes from the caller.
    unsafe {
        while i + 8 <= n {
            pv_rows512::<8>(s, v, dst_row, n, hd, i);
            i += 8;
        }
        while i < n {
            pv_rows512::<1>(s, v, dst_row, n, hd, i);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            }
        }

        fn args(&self) -> WindowAttentionArgs<'_> {
            WindowAttentionArgs {
                batch: self.batch,
                tokens: self.tokens,
                dim: self.dim,
                num_heads: self.heads,
                window_tokens: self.n,
                token_index: &self.map,
                logit_scale: &self.scale,
                bias: &self.bias,
                mask: self.mask.as_deref(),
                masked_windows: self.masked.as_deref(),
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
            logit_scale: &scale,
            bias: &bias,
            mask: Some(&mask),
            masked_windows: None,
        };
        // The f64 reference, and how many softmax terms exp(s - max) are f32 denormals.
        let mut want = vec![0.0f64; tokens * c];
        let mut denormal_terms = 0usize;
        for w in 0..tokens / n {
            let rows = &map.as_slice()[w * n..(w + 1) * n];
            let m = &mask[w * n * n..(w + 1) * n * n];
            for h in 0..heads {
                for (i, o) in reference(&qkv, c, heads, rows, 100.0, &bias, Some(m), h)
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
            for isa in Isa::available() {
                let scratch: Vec<_> = (0..2)
                    .map(|_| Mutex::new(vec![0.0; WindowAttentionArgs::scratch_len(n, hd)]))
                    .collect();
                let mut out = vec![f32::NAN; tokens * c];
                pool.install(|| window_attention_with(&args, &qkv, &mut out, &scratch, isa));
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
        // 12, 16, 32, 40, 48 (full vector tiles and every kind of tail; head dims above N, where
        // AVX-512 gathers q transposed token by token), on every instruction set.
        let shapes = [
            (3, 2, 6, false),
            (3, 1, 16, true),
            (4, 3, 8, true),
            (8, 2, 32, true),
            (4, 1, 40, false),
            (6, 2, 12, true),
            (12, 1, 48, true),
        ];
        for (isa, &(win, heads, hd, shifted)) in Isa::available()
            .into_iter()
            .flat_map(|isa| shapes.iter().map(move |s| (isa, s)))
        {
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
            let (c, n, tokens) = (case.dim, case.n, case.tokens);
            let (map, mask, qkv, scale) = (&case.map, &case.mask, &case.qkv, &case.scale);
            let bias = &case.bias;
            let args = case.args();
            let scratch = Case::scratch(n, hd);
            let mut out = vec![f32::NAN; batch * tokens * c];
            pool.install(|| window_attention_with(&args, qkv, &mut out, &scratch, isa));
            for b in 0..batch {
                for w in 0..tokens / n {
                    for h in 0..heads {
                        let m = mask.as_ref().map(|m| &m[w * n * n..(w + 1) * n * n]);
                        let img = &qkv[b * tokens * 3 * c..(b + 1) * tokens * 3 * c];
                        let want = reference(
                            img,
                            c,
                            heads,
                            &map.as_slice()[w * n..(w + 1) * n],
                            scale[h],
                            bias,
                            m,
                            h,
                        );
                        for (i, o) in want.iter().enumerate() {
                            let tok = b * tokens + map.as_slice()[w * n + i] as usize;
                            for (d, &x) in o.iter().enumerate() {
                                let got = out[tok * c + h * hd + d] as f64;
                                assert!(
                                    (got - x).abs() < 2e-5,
                                    "{isa} win {win} b {b} w {w} h {h} i {i} d {d}: {got} vs {x}"
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
}
