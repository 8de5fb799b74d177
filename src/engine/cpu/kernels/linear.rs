//! Linear layers on the `gemm` crate: `y = x · Wᵀ` with `W` in PyTorch's `[out, in]` layout, split into
//! row chunks (or column blocks when there are few rows) over the current rayon pool, each chunk running a
//! single-threaded `gemm` and then its epilogue while the rows are still in cache.

use rayon::prelude::*;

use super::math::{bias_gelu_rows, bias_rows};
use super::norm::{add_layer_norm_rows, layer_norm_rows};
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
    /// `residual += layer_norm(y + bias)`, the res-post-norm of a SwinV2 block; `y` is scratch.
    BiasNormResidual {
        /// Linear bias.
        bias: &'a [f32],
        /// LayerNorm weight.
        weight: &'a [f32],
        /// LayerNorm bias.
        norm_bias: &'a [f32],
        /// `[rows, n]` residual stream, updated in place.
        residual: SendPtr<f32>,
    },
}

impl Epilogue<'_> {
    /// Apply to rows `first_row..first_row + rows.len()/n` whose values are in `rows`.
    ///
    /// # Safety
    /// For `BiasNormResidual`, `residual` must be valid for those rows and no other thread may touch
    /// them meanwhile.
    unsafe fn apply(&self, rows: &mut [f32], n: usize, first_row: usize) {
        match *self {
            Epilogue::None => {}
            Epilogue::Bias(b) => bias_rows(rows, b),
            Epilogue::BiasGelu(b) => bias_gelu_rows(rows, b),
            Epilogue::BiasNorm {
                bias,
                weight,
                norm_bias,
            } => {
                if let Some(b) = bias {
                    bias_rows(rows, b);
                }
                layer_norm_rows(rows, weight, norm_bias);
            }
            Epilogue::BiasNormResidual {
                bias,
                weight,
                norm_bias,
                residual,
            } => {
                bias_rows(rows, bias);
                // SAFETY: the caller guarantees exclusive access to these residual rows.
                let res = unsafe {
                    std::slice::from_raw_parts_mut(residual.0.add(first_row * n), rows.len())
                };
                add_layer_norm_rows(res, rows, weight, norm_bias);
            }
        }
    }
}

/// Single-threaded `y[m, n] = x[m, k] · w[n, k]ᵀ` (row strides `ldx`, `ldy`; `w` dense).
///
/// # Safety
/// `x` must be valid for `m` rows of stride `ldx` (k values each), `w` for `n*k` values, `y` for `m` rows
/// of stride `ldy` (n values each), and `y` must not overlap `x` or `w`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_wt(
    m: usize,
    n: usize,
    k: usize,
    x: *const f32,
    ldx: usize,
    w: *const f32,
    y: *mut f32,
    ldy: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: forwarded from the caller; gemm computes dst := beta · lhs · rhs when read_dst is false.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            y,
            1,
            ldy as isize,
            false,
            x,
            1,
            ldx as isize,
            w,
            k as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Rows per task below which column blocks are used instead of row chunks.
const MIN_ROWS_PER_TASK: usize = 48;

/// `y[rows, n] = x[rows, k] · w[n, k]ᵀ`, then `epilogue`, in parallel over the current rayon pool.
///
/// Panics if the slices are shorter than the shapes say (a planning bug, never input-dependent).
pub fn linear(
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[f32],
    n: usize,
    y: &mut [f32],
    epilogue: Epilogue<'_>,
) {
    assert!(x.len() >= rows * k && w.len() == n * k && y.len() >= rows * n);
    let y = &mut y[..rows * n];
    let threads = rayon::current_num_threads().max(1);
    if rows >= 2 * threads * MIN_ROWS_PER_TASK || threads == 1 {
        // Row chunks: ~4 per thread for balance, between 48 and 256 rows.
        let chunk = rows.div_ceil(threads * 4).clamp(MIN_ROWS_PER_TASK, 256);
        y.par_chunks_mut(chunk * n)
            .enumerate()
            .for_each(|(ci, yc)| {
                let r0 = ci * chunk;
                let m = yc.len() / n;
                // SAFETY: rows r0..r0+m of x exist (asserted above); yc is this task's own chunk.
                unsafe {
                    matmul_wt(
                        m,
                        n,
                        k,
                        x.as_ptr().add(r0 * k),
                        k,
                        w.as_ptr(),
                        yc.as_mut_ptr(),
                        n,
                    );
                    // SAFETY: residual rows r0..r0+m belong to this task only.
                    epilogue.apply(yc, n, r0);
                }
            });
    } else {
        // Few rows: split the output columns (weight rows) into blocks of a multiple of 16.
        let blocks = threads * 2;
        let block = n.div_ceil(blocks).div_ceil(16) * 16;
        let yp = SendPtr(y.as_mut_ptr());
        (0..n.div_ceil(block)).into_par_iter().for_each(|bi| {
            let c0 = bi * block;
            let nb = block.min(n - c0);
            let yp = yp;
            // SAFETY: columns c0..c0+nb of every row belong to this task only; w rows c0..c0+nb exist.
            unsafe {
                matmul_wt(
                    rows,
                    nb,
                    k,
                    x.as_ptr(),
                    k,
                    w.as_ptr().add(c0 * k),
                    yp.0.add(c0),
                    n,
                )
            };
        });
        let chunk = rows.div_ceil(threads).max(1);
        y.par_chunks_mut(chunk * n)
            .enumerate()
            .for_each(|(ci, yc)| {
                // SAFETY: residual rows of this chunk belong to this task only.
                unsafe { epilogue.apply(yc, n, ci * chunk) };
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                let mut s = 0.0f64;
                for i in 0..k {
                    s += x[r * k + i] as f64 * w[j * k + i] as f64;
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
            pool.install(|| linear(&x, rows, k, &w, n, &mut y, Epilogue::Bias(&bias)));
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
}
