//! The blocked product over packed panels, and the edge tiles narrower than a panel.

use std::ops::Range;

use super::matrix::{tile_rows, PackedMatrix, WeightFormat};
use super::micro::{finish_scalar, microkernel, Prefetch, Store};

thread_local! {
    /// The activation rows of a bf16 call, rounded to bf16 pairs: one buffer per thread, grown to
    /// the largest call it ran (at most a row chunk of the widest layer: 1024 × 1536 slots for
    /// SwinV2-T at batch 8, 6 MiB) and reused.
    static BF16_ROWS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Rows of `k` per pass: 384 floats × 14 rows of activations (21 KB) stay in L1, and every layer of
/// SwinV2-T with `k` ≤ 384 runs in one pass.
const KC: usize = 384;
/// Bytes of activations (`rows × kc` floats) per row block: stays in L2 (2 MiB a core on Sapphire
/// Rapids, 512 KiB–1 MiB on Zen) while every weight panel passes over it.
const MC_BYTES: usize = 384 * 1024;

/// The microkernel for `w`'s layout: `vdpbf16ps` on bf16 pairs (packed for AVX-512 only), else the
/// FP32 one of its ISA.
fn kernel_for(w: &PackedMatrix) -> super::micro::Microkernel {
    #[cfg(target_arch = "x86_64")]
    if w.format() == WeightFormat::Bf16Pairs {
        return super::bf16::micro_bf16_rows;
    }
    microkernel(w.isa())
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
    let (k, n, nr) = (w.k(), w.n(), w.nr());
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
    if w.format() == WeightFormat::Bf16Pairs {
        // Round the rows to bf16 pairs once for every panel of this call.
        let pairs = w.panel_rows();
        let mut rows = BF16_ROWS.take();
        rows.clear();
        rows.resize(m * pairs, 0);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: x holds m rows of k floats ldx apart (caller), `rows` m rows of `pairs` slots;
        // bf16 panels exist only where the CPU has AVX512_BF16 (`PackedMatrix::pack`'s callers).
        unsafe {
            super::bf16::pack_rows_bf16(m, x, ldx, k, rows.as_mut_ptr(), pairs)
        };
        // SAFETY: the same y rows and columns as ours (caller); `rows` holds m rows of `pairs`.
        unsafe {
            blocked(
                m,
                rows.as_ptr().cast(),
                pairs,
                pairs,
                w,
                panels,
                y,
                ldy,
                output,
                gelu,
            )
        };
        BF16_ROWS.set(rows);
    } else {
        // SAFETY: forwarded (caller).
        unsafe { blocked(m, x, ldx, k, w, panels, y, ldy, output, gelu) };
    }
}

/// The blocked loops of [`matmul_panels`] over `kr` panel rows (`k` floats, or `⌈k/2⌉` bf16
/// pairs whose A operand `x` holds as 32-bit slots).
///
/// # Safety
/// As [`matmul_panels`], with `x` holding `m` rows of `kr` slots `ldx` apart.
#[allow(clippy::too_many_arguments)]
unsafe fn blocked(
    m: usize,
    x: *const f32,
    ldx: usize,
    kr: usize,
    w: &PackedMatrix,
    panels: Range<usize>,
    y: *mut f32,
    ldy: usize,
    output: TileOutput<'_>,
    gelu: bool,
) {
    let (n, nr) = (w.n(), w.nr());
    let k = kr;
    let mr = tile_rows(w.isa());
    let kern = kernel_for(w);
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
