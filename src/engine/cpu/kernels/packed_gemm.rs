//! GEMM on weights packed once at load: `y = x · Wᵀ` for the model's linear layers.
//!
//! Why our own: the `gemm` crate (and `matrixmultiply`, `faer`) pack the right-hand matrix on every
//! call; for this model that repacking is a large share of each linear layer (the weights outweigh the
//! activations in stages 2–3), and none of them accepts a matrix packed in advance. Here the weights are
//! packed at load into column panels of [`PackedMatrix::nr`] floats (`k` rows of `nr`, contiguous, the
//! last panel zero-padded), the layout the microkernel streams. The activations are read in place.
//!
//! Microkernels (`mr × nr` accumulators kept in registers): AVX-512 14 × 32 and AVX2+FMA 6 × 16 (one
//! kernel over [`SimdF32`](super::simd::SimdF32), two vectors wide), and a portable 4 × 16; the instruction set is the one the matrix was packed for ([`Isa`]). Blocking, in
//! GotoBLAS order: `KC` rows of `k` per pass; a block of activation rows (`MC_BYTES` of them, kept in
//! L2); then each weight panel in turn, its `kc × nr` slice kept in L1 while every tile of the row block
//! uses it. The weights come from memory once per pass (113 MB for SwinV2-T, more than any cache):
//! they live on transparent huge pages ([`super::slab`]) so that streaming them costs one TLB miss per
//! 2 MiB instead of one per 4 KiB; and while the tiles of a row block work on one panel, the
//! microkernels software-prefetch the next panel into L2, a share per tile, so the stream from DRAM
//! overlaps the arithmetic (the hardware prefetchers stop at every 4 KiB boundary).

use std::ops::Range;

use super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::math::gelu_lanes;
#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2Simd, Avx512Simd, SimdF32};
use super::slab::WeightSlice;

/// Rows of `k` per pass: 384 floats × 14 rows of activations (21 KB) stay in L1, and every layer of
/// SwinV2-T with `k` ≤ 384 runs in one pass.
const KC: usize = 384;
/// Bytes of activations (`rows × kc` floats) per row block: stays in L2 (2 MiB a core on Sapphire
/// Rapids, 512 KiB–1 MiB on Zen) while every weight panel passes over it.
const MC_BYTES: usize = 384 * 1024;

/// Output columns of one packed panel for `isa`.
pub fn panel_width(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 32,
        Isa::Avx2 | Isa::Scalar => 16,
    }
}

/// Rows of one microkernel tile for `isa`.
pub fn tile_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 14,
        Isa::Avx2 => 6,
        Isa::Scalar => 4,
    }
}

/// `Wᵀ` (`[k, n]`, `y = x · Wᵀ`) packed into column panels for one instruction set.
#[derive(Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    isa: Isa,
    nr: usize,
    /// `panels · k · nr` floats, on huge pages, shared by clones.
    data: WeightSlice,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("isa", &self.isa)
            .finish()
    }
}

impl PackedMatrix {
    /// Pack a PyTorch `nn.Linear` weight `W` (`[n, k]` row-major, `n` = out features) for `isa`.
    pub fn from_pytorch(weight: &[f32], k: usize, n: usize, isa: Isa) -> Self {
        assert_eq!(weight.len(), k * n, "weight is not [{n}, {k}]");
        Self::pack(k, n, isa, |kk, j| weight[j * k + kk])
    }

    /// Pack `Wᵀ` given row-major `[k, n]` for `isa`.
    pub fn from_transposed(wt: &[f32], k: usize, n: usize, isa: Isa) -> Self {
        assert_eq!(wt.len(), k * n, "matrix is not [{k}, {n}]");
        Self::pack(k, n, isa, |kk, j| wt[kk * n + j])
    }

    fn pack(k: usize, n: usize, isa: Isa, at: impl Fn(usize, usize) -> f32) -> Self {
        let nr = panel_width(isa);
        let panels = n.div_ceil(nr);
        let data = WeightSlice::filled(panels * k * nr, |data| {
            for p in 0..panels {
                let panel = &mut data[p * k * nr..(p + 1) * k * nr];
                for (kk, row) in panel.chunks_exact_mut(nr).enumerate() {
                    for (jj, v) in row.iter_mut().enumerate() {
                        let j = p * nr + jj;
                        if j < n {
                            *v = at(kk, j);
                        }
                    }
                }
            }
        });
        Self {
            k,
            n,
            isa,
            nr,
            data,
        }
    }

    /// Input width (rows of `Wᵀ`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width (columns of `Wᵀ`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The instruction set it was packed for (its microkernel).
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Columns per panel.
    pub fn nr(&self) -> usize {
        self.nr
    }

    /// Number of column panels.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(self.nr)
    }

    /// `Wᵀ[kk, j]` (= PyTorch's `W[j, kk]`).
    pub fn get(&self, kk: usize, j: usize) -> f32 {
        assert!(kk < self.k && j < self.n);
        let (p, jj) = (j / self.nr, j % self.nr);
        self.data.as_slice()[p * self.k * self.nr + kk * self.nr + jj]
    }

    /// Panel `p`: `k` rows of `nr` floats.
    fn panel(&self, p: usize) -> &[f32] {
        let len = self.k * self.nr;
        &self.data.as_slice()[p * len..(p + 1) * len]
    }
}

/// A microkernel: `c[rows, nr] (+)= a[rows, kc] · b[kc, nr]`, `a` rows `lda` floats apart (read in
/// place: broadcasting from the activations' own rows costs nothing more than from a packed copy, and
/// a copy would cost as much as the product on the narrow layers), `b` a panel slice `[kc][nr]`, `c`
/// rows `ldc` apart; `rows` ≤ the kernel's tile height; `store` says what happens to the tile in
/// registers before it is written, and what to prefetch meanwhile.
type Microkernel = unsafe fn(usize, usize, *const f32, usize, *const f32, *mut f32, usize, Store);

/// How a microkernel writes its tile.
#[derive(Clone, Copy)]
struct Store {
    /// Add the tile to what `c` holds (a later block of `k`).
    accumulate: bool,
    /// `nr` floats added to every row (null: none), then GELU when `gelu`: the last block of `k`.
    bias: *const f32,
    gelu: bool,
    /// What to prefetch meanwhile.
    pf: Prefetch,
}

/// What a microkernel call prefetches into L2: `steps` rows of `nr` floats from `ptr` (null: none),
/// one row per step of `k`.
#[derive(Clone, Copy)]
struct Prefetch {
    ptr: *const f32,
    steps: usize,
}

impl Prefetch {
    const NONE: Prefetch = Prefetch {
        ptr: std::ptr::null(),
        steps: 0,
    };
}

/// What [`matmul_panels`] applies to the finished output, fused into the microkernels' stores (the
/// tile is still in registers): nothing, `+ bias`, or `gelu(· + bias)` (exact erf).
#[derive(Clone, Copy, Debug)]
pub enum TileOutput<'a> {
    /// `y = x · Wᵀ`.
    Plain,
    /// `y = x · Wᵀ + bias` (`bias` has `n` floats).
    Bias(&'a [f32]),
    /// `y = gelu(x · Wᵀ + bias)`.
    BiasGelu(&'a [f32]),
}

impl TileOutput<'_> {
    fn bias(&self) -> Option<&[f32]> {
        match *self {
            TileOutput::Plain => None,
            TileOutput::Bias(b) | TileOutput::BiasGelu(b) => Some(b),
        }
    }
}

fn microkernel(isa: Isa) -> Microkernel {
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            Isa::Avx512 => micro_avx512_rows,
            Isa::Avx2 => micro_avx2_rows,
            Isa::Scalar => micro_scalar,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        micro_scalar
    }
}

/// Single-threaded `y[r, c] = Σ_kk x[r, kk] · Wᵀ[kk, c]` (then `output`) for rows `0..m` and the
/// columns of panels `panels` (columns `panels.start·nr .. min(panels.end·nr, n)`).
///
/// Panics if `output`'s bias does not have `n` floats.
///
/// # Safety
/// `x` must be valid for reads of `m` rows `ldx` floats apart, `w.k()` floats each; `y` for reads and
/// writes of `m` rows `ldy` floats apart covering those columns; `y` must not overlap `x`, and no other
/// thread may access those elements of `y` during the call. The CPU must support `w.isa()`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_panels(
    m: usize,
    x: *const f32,
    ldx: usize,
    w: &PackedMatrix,
    panels: Range<usize>,
    y: *mut f32,
    ldy: usize,
    output: TileOutput<'_>,
) {
    let (k, n, nr) = (w.k, w.n, w.nr);
    if let Some(b) = output.bias() {
        assert_eq!(b.len(), n, "bias of {} floats for {n} outputs", b.len());
    }
    let gelu = matches!(output, TileOutput::BiasGelu(_));
    let panels = panels.start..panels.end.min(w.panels());
    if m == 0 || panels.is_empty() {
        return;
    }
    if k == 0 {
        let (c0, c1) = (panels.start * nr, (panels.end * nr).min(n));
        for r in 0..m {
            // SAFETY: row r, columns c0..c1 of y are ours (caller).
            let row = unsafe { std::slice::from_raw_parts_mut(y.add(r * ldy + c0), c1 - c0) };
            row.fill(0.0);
            finish_scalar(row, output.bias().map(|b| &b[c0..c1]), gelu);
        }
        return;
    }
    let mr = tile_rows(w.isa);
    let kern = microkernel(w.isa);
    let mut tile = [0.0f32; 14 * 32];
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let accumulate = k0 > 0;
        let last = k0 + kc == k;
        let mc = (MC_BYTES / (kc * 4) / mr).max(1) * mr;
        for r0 in (0..m).step_by(mc) {
            let block_rows = mc.min(m - r0);
            let tiles = block_rows.div_ceil(mr);
            let steps_per_tile = kc.div_ceil(tiles);
            for p in panels.clone() {
                let b = w.panel(p)[k0 * nr..].as_ptr();
                // The next panel's slice, prefetched a share per tile while this one is used.
                let next = (p + 1 < panels.end).then(|| w.panel(p + 1)[k0 * nr..].as_ptr());
                let c0 = p * nr;
                let cols = nr.min(n - c0);
                let bias = output.bias().filter(|_| last).map(|b| &b[c0..c0 + cols]);
                for t in 0..tiles {
                    let first = (t * steps_per_tile).min(kc);
                    let pf = next.map_or(Prefetch::NONE, |next| Prefetch {
                        // SAFETY: row `first` ≤ kc of the next panel's slice (kc rows of nr).
                        ptr: unsafe { next.add(first * nr) },
                        steps: steps_per_tile.min(kc - first),
                    });
                    let ib = r0 + t * mr;
                    let rows = mr.min(m - ib);
                    // SAFETY: tile rows ib..ib+rows < m (kc floats from column k0 each) of x, and
                    // columns c0..c0+cols ≤ n of those rows of y belong to this call (caller); b
                    // holds kc·nr panel floats, the bias nr floats when cols == nr, and pf stays
                    // inside the next panel's slice; the CPU supports w.isa (caller).
                    unsafe {
                        let a = x.add(ib * ldx + k0);
                        let c = y.add(ib * ldy + c0);
                        if cols == nr {
                            let store = Store {
                                accumulate,
                                bias: bias.map_or(std::ptr::null(), <[f32]>::as_ptr),
                                gelu: gelu && last,
                                pf,
                            };
                            kern(rows, kc, a, ldx, b, c, ldy, store);
                        } else {
                            let store = Store {
                                accumulate: false,
                                bias: std::ptr::null(),
                                gelu: false,
                                pf,
                            };
                            kern(rows, kc, a, ldx, b, tile.as_mut_ptr(), nr, store);
                            for r in 0..rows {
                                let dst = std::slice::from_raw_parts_mut(c.add(r * ldy), cols);
                                let src = &tile[r * nr..r * nr + cols];
                                if accumulate {
                                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                                } else {
                                    dst.copy_from_slice(src);
                                }
                                if last {
                                    finish_scalar(dst, bias, gelu);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `row += bias`, then GELU when `gelu` (the edge columns the vector stores do not cover).
fn finish_scalar(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
    if let Some(b) = bias {
        row.iter_mut().zip(b).for_each(|(v, &b)| *v += b);
    }
    if gelu {
        row.iter_mut().for_each(|v| *v = super::math::gelu(*v));
    }
}

/// Portable microkernel, up to 4 rows × 16.
///
/// # Safety
/// `a` valid for `rows` rows `lda` apart of `kc` floats, `b` for `kc · 16`, `c` for `rows` rows
/// `ldc` apart of 16 floats; `rows` ≤ 4.
#[allow(clippy::too_many_arguments)]
unsafe fn micro_scalar(
    rows: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    const NR: usize = 16;
    debug_assert!(rows <= 4);
    // SAFETY: extents as documented (caller).
    let b = unsafe { std::slice::from_raw_parts(b, kc * NR) };
    for i in 0..rows {
        // SAFETY: row i of a holds kc floats (caller).
        let ai = unsafe { std::slice::from_raw_parts(a.add(i * lda), kc) };
        let mut acc = [0.0f32; NR];
        for (&av, bk) in ai.iter().zip(b.chunks_exact(NR)) {
            for (s, &bj) in acc.iter_mut().zip(bk) {
                *s += av * bj;
            }
        }
        // SAFETY: row i of c holds NR floats (caller).
        let dst = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        if store.accumulate {
            dst.iter_mut().zip(&acc).for_each(|(d, s)| *d += s);
        } else {
            dst.copy_from_slice(&acc);
        }
        // SAFETY: a non-null bias holds NR floats (caller).
        let bias =
            (!store.bias.is_null()).then(|| unsafe { std::slice::from_raw_parts(store.bias, NR) });
        finish_scalar(dst, bias, store.gelu);
    }
}

/// Dispatch a row count to a kernel monomorphised for it (so the accumulators stay in registers).
macro_rules! by_rows {
    ($kernel:ident, $rows:expr, $max:literal, $args:tt, [$($r:literal)*]) => {
        match $rows {
            $($r => $kernel::<$r> $args,)*
            _ => unreachable!("{} rows > {}", $rows, $max),
        }
    };
}

/// AVX2+FMA microkernel, up to 6 rows × 16.
///
/// # Safety
/// As [`micro_scalar`] with `rows` ≤ 6; the CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_avx2_rows(
    rows: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    // SAFETY: forwarded (caller).
    unsafe {
        by_rows!(
            micro_avx2,
            rows,
            6,
            (kc, a, lda, b, c, ldc, store),
            [1 2 3 4 5 6]
        )
    }
}

/// AVX2+FMA `R × 16` [`micro_simd`].
///
/// # Safety
/// As [`micro_scalar`] with `R` rows; the CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    // SAFETY: forwarded (caller).
    unsafe { micro_simd::<_, R>(Avx2Simd::here(), kc, a, lda, b, c, ldc, store) }
}

/// AVX-512 microkernel, up to 14 rows × 32.
///
/// # Safety
/// As [`micro_scalar`] with `rows` ≤ 14 and 32 columns; the CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_avx512_rows(
    rows: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    // SAFETY: forwarded (caller).
    unsafe {
        by_rows!(
            micro_avx512,
            rows,
            14,
            (kc, a, lda, b, c, ldc, store),
            [1 2 3 4 5 6 7 8 9 10 11 12 13 14]
        )
    }
}

/// AVX-512 `R × 32` [`micro_simd`].
///
/// # Safety
/// As [`micro_scalar`] with `R` rows of 32 columns; the CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    // SAFETY: forwarded (caller).
    unsafe { micro_simd::<_, R>(Avx512Simd::here(), kc, a, lda, b, c, ldc, store) }
}

/// The `R × 2·LANES` microkernel on the vectors of `s` (panels of `2·LANES` floats: 2R
/// accumulators, 2 panel loads and R broadcasts a step; each step prefetches its row of the next
/// panel, one 64-byte line per 16 floats).
///
/// # Safety
/// As [`micro_scalar`] with `R` rows of `2·LANES` columns (`b` holds `kc · 2·LANES` floats, a
/// non-null bias `2·LANES`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_simd<S: SimdF32, const R: usize>(
    s: S,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    store: Store,
) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
    let lanes = S::LANES;
    let nr = 2 * lanes;
    let mut acc = [[s.zero(); 2]; R];
    // SAFETY: a holds R rows of kc floats lda apart, b kc·nr, c R rows of nr, a non-null bias nr
    // floats, pf.ptr pf.steps rows of the panel width (caller); a prefetch never faults.
    unsafe {
        let mut b = b;
        for kk in 0..kc {
            if kk < store.pf.steps {
                for line in 0..nr / 16 {
                    _mm_prefetch::<_MM_HINT_T1>(store.pf.ptr.add(kk * nr + 16 * line).cast());
                }
            }
            let b0 = s.load(b);
            let b1 = s.load(b.add(lanes));
            for (i, acc) in acc.iter_mut().enumerate() {
                let ai = s.splat(*a.add(i * lda + kk));
                acc[0] = s.mul_add(ai, b0, acc[0]);
                acc[1] = s.mul_add(ai, b1, acc[1]);
            }
            b = b.add(nr);
        }
        let bias = if store.bias.is_null() {
            [s.zero(); 2]
        } else {
            [s.load(store.bias), s.load(store.bias.add(lanes))]
        };
        for (i, acc) in acc.iter().enumerate() {
            let ci = c.add(i * ldc);
            let (mut v0, mut v1) = (acc[0], acc[1]);
            if store.accumulate {
                v0 = s.add(v0, s.load(ci));
                v1 = s.add(v1, s.load(ci.add(lanes)));
            }
            if !store.bias.is_null() {
                v0 = s.add(v0, bias[0]);
                v1 = s.add(v1, bias[1]);
            }
            if store.gelu {
                v0 = gelu_lanes(s, v0);
                v1 = gelu_lanes(s, v1);
            }
            s.store(ci, v0);
            s.store(ci.add(lanes), v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release --lib packed_gemm::speed -- --ignored --nocapture`: GFLOP/s per ISA on
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

#[cfg(test)]
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
