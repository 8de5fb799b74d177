//! Linear layers: `y = x · Wᵀ` on weights packed at load ([`PackedMatrix`]), split into row chunks (or
//! panel groups when there are few rows) over the current rayon pool, each task running the
//! single-threaded packed GEMM. Bias and GELU are applied by the GEMM's microkernels while each tile
//! is still in registers; a LayerNorm (which needs whole rows) runs after the task's GEMM while its
//! rows are still in cache.

use std::marker::PhantomData;

use rayon::prelude::*;

use super::norm::{add_layer_norm_rows, layer_norm_rows};
use super::packed_gemm::{matmul_panels, tile_rows, PackedMatrix, TileOutput};
use super::SendPtr;

/// What to do with the rows of `x · Wᵀ` once computed.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    /// Nothing more.
    None,
    /// `y += bias`.
    Bias(&'a [f32]),
    /// `y = gelu(y + bias)` (exact erf).
    BiasGelu(&'a [f32]),
    /// `y = layer_norm(y + bias)` in place (PatchEmbed's and PatchMerging's norm).
    BiasNorm {
        /// Linear bias, if the layer has one.
        bias: Option<&'a [f32]>,
        /// LayerNorm weight.
        weight: &'a [f32],
        /// LayerNorm bias.
        norm_bias: &'a [f32],
    },
    /// `residual += y + bias`, the residual add of a pre-norm (Swin V1) block; `y` is scratch.
    BiasResidual {
        /// Linear bias.
        bias: &'a [f32],
        /// `[rows, n]` residual stream, updated in place ([`linear`] checks its length).
        residual: ResidualRows<'a>,
    },
    /// `residual += layer_norm(y + bias)`, the res-post-norm of a SwinV2 block; `y` is scratch.
    BiasNormResidual {
        /// Linear bias.
        bias: &'a [f32],
        /// LayerNorm weight.
        weight: &'a [f32],
        /// LayerNorm bias.
        norm_bias: &'a [f32],
        /// `[rows, n]` residual stream, updated in place ([`linear`] checks its length).
        residual: ResidualRows<'a>,
    },
}

/// The residual stream of [`Epilogue::BiasNormResidual`], updated in place by the tasks of one
/// [`linear`] call, each on its own rows. It is made from an exclusive borrow, so nothing else can
/// read or write those floats while the epilogue exists; it is `Copy` so every task can hold it.
#[derive(Clone, Copy)]
pub struct ResidualRows<'a> {
    ptr: SendPtr<f32>,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

impl<'a> ResidualRows<'a> {
    /// The residual rows `rows` (row-major, `n` floats a row).
    pub fn new(rows: &'a mut [f32]) -> Self {
        Self {
            ptr: SendPtr(rows.as_mut_ptr()),
            len: rows.len(),
            _borrow: PhantomData,
        }
    }
}

impl<'a> Epilogue<'a> {
    /// Whether the epilogue runs on whole rows after the tiles (a LayerNorm, or the residual add,
    /// which reads each output once the bias is in), so cannot run on a column block.
    fn needs_full_rows(&self) -> bool {
        matches!(
            self,
            Epilogue::BiasNorm { .. }
                | Epilogue::BiasNormResidual { .. }
                | Epilogue::BiasResidual { .. }
        )
    }

    /// The part the GEMM's microkernels apply as they store: the bias, and GELU. (An empty bias is
    /// no bias: a layer loaded without one.)
    fn tile_output(&self) -> TileOutput<'a> {
        match *self {
            Epilogue::None | Epilogue::BiasNorm { bias: None, .. } => TileOutput::Plain,
            Epilogue::Bias(b)
            | Epilogue::BiasNormResidual { bias: b, .. }
            | Epilogue::BiasResidual { bias: b, .. }
                if b.is_empty() =>
            {
                TileOutput::Plain
            }
            Epilogue::Bias(b)
            | Epilogue::BiasNorm { bias: Some(b), .. }
            | Epilogue::BiasNormResidual { bias: b, .. }
            | Epilogue::BiasResidual { bias: b, .. } => TileOutput::Bias(b),
            Epilogue::BiasGelu(b) => TileOutput::BiasGelu(b),
        }
    }

    /// Apply the rest (the norms: bias and GELU came with [`Self::tile_output`]) to rows
    /// `r0..r0+m` of `y` (row stride `n`).
    ///
    /// # Safety
    /// `y` must be valid for reads and writes of rows `r0..r0+m` (`n` floats each) and, for
    /// `BiasNormResidual`, `residual` must hold those rows too (`(r0 + m) · n <= residual.len`); no
    /// other thread may access those rows (nor the same rows of `residual`) during the call.
    unsafe fn apply_norm(&self, y: *mut f32, n: usize, r0: usize, m: usize) {
        // SAFETY: rows r0..r0+m exist and belong to this task (caller).
        let rows = || unsafe { std::slice::from_raw_parts_mut(y.add(r0 * n), m * n) };
        match *self {
            Epilogue::None | Epilogue::Bias(_) | Epilogue::BiasGelu(_) => {}
            Epilogue::BiasNorm {
                weight, norm_bias, ..
            } => layer_norm_rows(rows(), weight, norm_bias),
            Epilogue::BiasNormResidual {
                weight,
                norm_bias,
                residual,
                ..
            } => {
                debug_assert!((r0 + m) * n <= residual.len);
                // SAFETY: the rows exist (caller) and belong to this task alone: `ResidualRows`
                // comes from an exclusive borrow and tasks own disjoint row ranges.
                let res = unsafe {
                    std::slice::from_raw_parts_mut(residual.ptr.get().add(r0 * n), m * n)
                };
                add_layer_norm_rows(res, rows(), weight, norm_bias);
            }
            Epilogue::BiasResidual { residual, .. } => {
                debug_assert!((r0 + m) * n <= residual.len);
                // SAFETY: as for `BiasNormResidual`.
                let res = unsafe {
                    std::slice::from_raw_parts_mut(residual.ptr.get().add(r0 * n), m * n)
                };
                for (r, &y) in res.iter_mut().zip(rows().iter()) {
                    *r += y;
                }
            }
        }
    }
}

/// How one linear layer is split into tasks: row chunks × panel groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Rows per task.
    pub row_chunk: usize,
    /// Weight panels (of [`PackedMatrix::nr`] output columns) per task.
    pub panel_group: usize,
}

/// Choose the split of a `[rows, k] · [k, n]` product (`panels` weight panels, microkernel tiles of
/// `tile_rows` rows) over `threads` threads.
///
/// Many rows: row chunks (whole output rows, so every epilogue fuses), a multiple of the tile height.
/// Few rows (small batch, late stages: stage 3 has 64 tokens an image): panel groups, so every thread
/// has work however few the rows; the weights are packed already, so splitting over `n` costs nothing
/// but a repack of the few activation rows per task.
pub fn plan(rows: usize, panels: usize, tile_rows: usize, threads: usize) -> Split {
    if threads <= 1 {
        return Split {
            row_chunk: rows.max(1),
            panel_group: panels.max(1),
        };
    }
    if rows >= ROW_SPLIT_MIN_ROWS || panels < threads {
        let chunks = (threads * ROW_CHUNKS_PER_THREAD).max(rows.div_ceil(MAX_ROW_CHUNK));
        Split {
            row_chunk: rows.div_ceil(chunks).div_ceil(tile_rows).max(1) * tile_rows,
            panel_group: panels.max(1),
        }
    } else {
        let groups = (threads * PANEL_GROUPS_PER_THREAD).min(panels);
        Split {
            row_chunk: rows.max(1),
            panel_group: panels.div_ceil(groups),
        }
    }
}

const ROW_SPLIT_MIN_ROWS: usize = 512;
const ROW_CHUNKS_PER_THREAD: usize = 2;
const MAX_ROW_CHUNK: usize = 1024;
const PANEL_GROUPS_PER_THREAD: usize = 2;

/// `y[rows, n] = x[rows, k] · Wᵀ[k, n]` (`w` packed at load), then `epilogue`, in parallel over the
/// current rayon pool.
///
/// Panics if the slices are shorter than the shapes say (a planning bug, never input-dependent).
pub fn linear(
    x: &[f32],
    rows: usize,
    k: usize,
    w: &PackedMatrix,
    y: &mut [f32],
    epilogue: Epilogue<'_>,
) {
    let n = w.n();
    assert!(x.len() >= rows * k && w.k() == k && y.len() >= rows * n);
    if let Epilogue::BiasNormResidual { residual, .. } | Epilogue::BiasResidual { residual, .. } =
        &epilogue
    {
        assert!(residual.len >= rows * n, "residual shorter than rows · n");
    }
    if rows == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let panels = w.panels();
    let split = plan(rows, panels, tile_rows(w.isa()), threads);
    let row_chunks = rows.div_ceil(split.row_chunk);
    let groups = panels.div_ceil(split.panel_group);
    // A norm runs in the task when the task has whole rows, else in a second pass.
    let norm_in_task = groups == 1 || !epilogue.needs_full_rows();
    let output = epilogue.tile_output();
    let yp = SendPtr(y.as_mut_ptr());
    (0..row_chunks * groups).into_par_iter().for_each(|t| {
        let (ri, gi) = (t / groups, t % groups);
        let r0 = ri * split.row_chunk;
        let m = split.row_chunk.min(rows - r0);
        let p0 = gi * split.panel_group;
        let p1 = (p0 + split.panel_group).min(panels);
        // SAFETY: the (row chunk, panel group) tiles are disjoint; x has rows r0..r0+m of k values,
        // y rows r0..r0+m of n, and the residual of `BiasNormResidual` rows·n floats (asserted
        // above); w was packed for an instruction set this CPU has (`Isa::active` at load).
        unsafe {
            matmul_panels(
                m,
                x.as_ptr().add(r0 * k),
                k,
                w,
                p0..p1,
                yp.get().add(r0 * n),
                n,
                output,
            );
            if norm_in_task && epilogue.needs_full_rows() {
                epilogue.apply_norm(yp.get(), n, r0, m);
            }
        }
    });
    if !norm_in_task {
        let chunk = rows.div_ceil(threads);
        (0..rows.div_ceil(chunk)).into_par_iter().for_each(|ri| {
            let r0 = ri * chunk;
            // SAFETY: row chunks are disjoint; the tiles above are complete (the parallel loop joined).
            unsafe { epilogue.apply_norm(yp.get(), n, r0, chunk.min(rows - r0)) };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::kernels::isa::Isa;

    fn naive(x: &[f32], rows: usize, k: usize, wt: &[f32], n: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                let mut s = 0.0f64;
                for i in 0..k {
                    s += x[r * k + i] as f64 * wt[i * n + j] as f64;
                }
                y[r * n + j] = s as f32;
            }
        }
        y
    }

    #[test]
    fn row_and_column_splits_match_naive() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for &(rows, k, n) in &[(5, 7, 9), (300, 33, 70), (64, 96, 200), (1000, 16, 24)] {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 7919) % 97) as f32 * 0.01 - 0.5)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 104_729) % 89) as f32 * 0.01 - 0.4)
                .collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
            let mut y = vec![0.0; rows * n];
            let packed = PackedMatrix::from_transposed(&w, k, n, Isa::active());
            pool.install(|| linear(&x, rows, k, &packed, &mut y, Epilogue::Bias(&bias)));
            let want = naive(&x, rows, k, &w, n);
            for (i, (&a, &b)) in y.iter().zip(&want).enumerate() {
                let b = b + bias[i % n];
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "{rows}x{k}x{n} at {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn fused_epilogues_match_naive_in_both_splits() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // 100 rows: column blocks (norm epilogues in a second pass); 700 rows: row chunks (fused).
        for &(rows, k, n) in &[(100, 40, 72), (700, 24, 40)] {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 7919) % 97) as f32 * 0.02 - 1.0)
                .collect();
            let wt: Vec<f32> = (0..n * k)
                .map(|i| ((i * 104_729) % 89) as f32 * 0.01 - 0.4)
                .collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - 1.0).collect();
            let gamma: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 * 0.01).collect();
            let beta: Vec<f32> = (0..n).map(|i| i as f32 * -0.01).collect();
            let plain = naive(&x, rows, k, &wt, n);
            let packed = PackedMatrix::from_transposed(&wt, k, n, Isa::active());
            // GELU
            let mut y = vec![0.0; rows * n];
            pool.install(|| linear(&x, rows, k, &packed, &mut y, Epilogue::BiasGelu(&bias)));
            for (i, &a) in y.iter().enumerate() {
                let v = (plain[i] + bias[i % n]) as f64;
                let want = 0.5 * v * (1.0 + erf_f64(v / std::f64::consts::SQRT_2));
                assert!(
                    (a as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "gelu {i}"
                );
            }
            // residual += LN(y + bias)
            let res0: Vec<f32> = (0..rows * n).map(|i| (i % 11) as f32 * 0.1).collect();
            let mut res = res0.clone();
            let mut scratch = vec![0.0; rows * n];
            let epi = Epilogue::BiasNormResidual {
                bias: &bias,
                weight: &gamma,
                norm_bias: &beta,
                residual: ResidualRows::new(&mut res),
            };
            pool.install(|| linear(&x, rows, k, &packed, &mut scratch, epi));
            for r in 0..rows {
                let row: Vec<f64> = (0..n)
                    .map(|j| (plain[r * n + j] + bias[j]) as f64)
                    .collect();
                let mean = row.iter().sum::<f64>() / n as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
                for j in 0..n {
                    let want = res0[r * n + j] as f64
                        + (row[j] - mean) / (var + 1e-5).sqrt() * gamma[j] as f64
                        + beta[j] as f64;
                    let got = res[r * n + j] as f64;
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "ln row {r} col {j}"
                    );
                }
            }
        }
    }

    /// erf by its Maclaurin series (|x| <= 6 here; terms stay within f64 range and precision).
    fn erf_f64(x: f64) -> f64 {
        if x.abs() > 5.0 {
            return x.signum();
        }
        let (mut sum, mut term, mut n) = (0.0, x, 0.0);
        while term.abs() > 1e-17 || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::engine::cpu::kernels::isa::Isa;

    /// `cargo test --release --lib linear::speed -- --ignored --nocapture`: GFLOP/s of [`linear`] on
    /// SwinV2-T's batch-1 shapes on a 2-thread pool, warm (one weight matrix reused) and cold (as many
    /// distinct weight matrices as the stage has blocks, in turn). A measurement, not a check.
    #[test]
    #[ignore]
    fn gflops_on_model_shapes_two_threads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let isa = Isa::active();
        for &(m, k, n, depth) in &[
            (4096, 96, 288, 2),
            (4096, 96, 96, 2),
            (1024, 192, 576, 2),
            (1024, 192, 768, 2),
            (1024, 768, 192, 2),
            (256, 384, 1152, 6),
            (256, 384, 384, 6),
            (256, 384, 1536, 6),
            (256, 1536, 384, 6),
            (64, 768, 2304, 2),
            (64, 768, 768, 2),
            (64, 768, 3072, 2),
            (64, 3072, 768, 2),
        ] {
            let x = vec![0.5f32; m * k];
            let weights = |count: usize| -> Vec<PackedMatrix> {
                (0..count)
                    .map(|_| PackedMatrix::from_transposed(&vec![0.25f32; k * n], k, n, isa))
                    .collect()
            };
            let ws = weights(depth);
            let bias = vec![0.0f32; n];
            let mut y = vec![0.0f32; m * n];
            let mut time = |ws: &[PackedMatrix]| {
                pool.install(|| {
                    for w in ws {
                        linear(&x, m, k, w, &mut y, Epilogue::Bias(&bias));
                    }
                    let reps = 20;
                    let t = std::time::Instant::now();
                    for _ in 0..reps {
                        for w in ws {
                            linear(&x, m, k, w, &mut y, Epilogue::Bias(&bias));
                        }
                    }
                    let s = t.elapsed().as_secs_f64() / (reps * ws.len()) as f64;
                    2.0 * (m * k * n) as f64 / s / 1e9
                })
            };
            let warm = time(&ws[..1]);
            let cold = time(&ws);
            // As many distinct weights as make 256 MiB: from memory, as in a whole forward pass.
            let many = (256 << 20) / (4 * k * n);
            let dram = time(&weights(many));
            println!(
                "{isa} {m}x{k}x{n}: warm {warm:.1} GFLOP/s, cold ({depth} weights) {cold:.1}, \
                 {many} weights (256 MiB) {dram:.1}"
            );
        }
    }
}
