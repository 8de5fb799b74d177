//! Row softmax on SIMD vectors (max-subtracted, vector exp, times 1/sum), for the score rows.

use super::super::math::exp_lanes;
use super::super::simd::SimdF32;

/// Softmax in place of the `R` rows of length `n` in `rows`, their steps interleaved (each row's
/// max, exp and sum are short dependency chains: one row alone leaves the core waiting):
/// max-subtracted, [`exp_lanes`], times 1/sum; whole vectors of `s`, the tail of each row in
/// scalar code.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
pub(super) fn softmax_rows<S: SimdF32, const R: usize>(s: S, rows: &mut [f32], n: usize) {
    let l = S::LANES;
    assert_eq!(rows.len(), R * n, "R rows of n");
    let end = n - n % l;
    let p = rows.as_mut_ptr();
    // SAFETY: (all pointer accesses) p = rows.as_mut_ptr(), rows.len() = R*n (asserted); accesses
    // at r*n + j with r < R and j + LANES <= end <= n (vectors) or j < n (scalars).
    unsafe {
        let mut max = [0.0f32; R];
        let mut vmax = [s.splat(f32::NEG_INFINITY); R];
        let mut j = 0;
        while j < end {
            for r in 0..R {
                vmax[r] = s.max(vmax[r], s.load(p.add(r * n + j)));
            }
            j += l;
        }
        for r in 0..R {
            max[r] = s.reduce_max(vmax[r]);
            for jj in end..n {
                max[r] = max[r].max(*p.add(r * n + jj));
            }
        }
        let vm = max.map(|m| s.splat(m));
        let mut vsum = [s.zero(); R];
        let mut j = 0;
        while j < end {
            for r in 0..R {
                let at = p.add(r * n + j);
                let e = exp_lanes(s, s.sub(s.load(at), vm[r]));
                s.store(at, e);
                vsum[r] = s.add(vsum[r], e);
            }
            j += l;
        }
        let mut inv = [0.0f32; R];
        for r in 0..R {
            let mut sum = s.reduce_add(vsum[r]);
            for jj in end..n {
                let at = p.add(r * n + jj);
                let e = (*at - max[r]).exp();
                *at = e;
                sum += e;
            }
            inv[r] = 1.0 / sum;
        }
        let vinv = inv.map(|x| s.splat(x));
        let mut j = 0;
        while j < end {
            for r in 0..R {
                let at = p.add(r * n + j);
                s.store(at, s.mul(s.load(at), vinv[r]));
            }
            j += l;
        }
        for r in 0..R {
            for jj in end..n {
                *p.add(r * n + jj) *= inv[r];
            }
        }
    }
}
