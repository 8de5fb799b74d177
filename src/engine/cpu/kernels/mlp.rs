//! The MLP of a SwinV2 block with its post-norm residual, `x = x + norm2(fc2(gelu(fc1(x))))`, fused
//! per chunk of rows: each task runs fc1 + GELU into a hidden block of its own (4× the width, kept in
//! L2), then fc2, the bias, LayerNorm and the residual add, before the next chunk. Unfused, the hidden
//! activations (`rows × 4C`, 6 MiB an image at stage 0) are written out and read back through memory.
//!
//! Worth it only while both weight matrices stay in L2 next to the hidden block (stages 0–1 of
//! SwinV2-T: C ≤ 192); past that every chunk would stream them again, so [`worth_fusing`] says no and
//! the block runs the two [`super::linear::linear`] calls.

use std::sync::Mutex;

use rayon::prelude::*;

use super::norm::add_layer_norm_rows;
use super::packed_gemm::{matmul_panels, tile_rows, PackedMatrix, TileOutput};
use super::SendPtr;

/// The weights of one `Mlp` and the block's `norm2`.
pub struct MlpWeights<'a> {
    /// `fc1`, `[C → H]`.
    pub fc1: &'a PackedMatrix,
    /// `fc1.bias`, `[H]`.
    pub fc1_bias: &'a [f32],
    /// `fc2`, `[H → C]`.
    pub fc2: &'a PackedMatrix,
    /// `fc2.bias`, `[C]`.
    pub fc2_bias: &'a [f32],
    /// `norm2.weight`, `[C]`.
    pub norm_weight: &'a [f32],
    /// `norm2.bias`, `[C]`.
    pub norm_bias: &'a [f32],
}

/// Largest `fc1` + `fc2` weights (bytes) fused: they must stay in L2 beside a chunk's activations.
const FUSE_MAX_WEIGHT_BYTES: usize = 1536 * 1024;

/// Rows of one task for `fc1` (a multiple of the microkernel's tile height).
pub fn chunk_rows(fc1: &PackedMatrix) -> usize {
    tile_rows(fc1.isa()) * 8
}

/// Scratch floats one task needs: the hidden block and the fc2 output of a chunk.
pub fn scratch_len(chunk_rows: usize, dim: usize, hidden: usize) -> usize {
    chunk_rows * (hidden + dim)
}

/// Whether [`mlp_residual`] beats the two separate linear layers for `rows` rows on `threads`
/// threads: the weights fit in L2 and there are enough chunks to keep every thread busy.
pub fn worth_fusing(rows: usize, w: &MlpWeights<'_>, threads: usize) -> bool {
    let weight_bytes = 4 * (w.fc1.k() * w.fc1.n() + w.fc2.k() * w.fc2.n());
    let biases = w.fc1_bias.len() == w.fc1.n() && w.fc2_bias.len() == w.fc2.n();
    biases
        && weight_bytes <= FUSE_MAX_WEIGHT_BYTES
        && rows >= 2 * threads.max(1) * chunk_rows(w.fc1)
}

/// `x[r] += layer_norm(fc2(gelu(fc1(x[r]) + b1)) + b2)` for rows `0..rows` of `x` (`C` floats each),
/// chunk by chunk over the current rayon pool. `scratch` holds one buffer per pool thread (indexed
/// by `rayon::current_thread_index`), each at least [`scratch_len`] long.
///
/// Panics if the shapes disagree or a buffer is too short (a planning bug, never input-dependent).
pub fn mlp_residual(x: &mut [f32], rows: usize, w: &MlpWeights<'_>, scratch: &[Mutex<Vec<f32>>]) {
    let (c, h) = (w.fc1.k(), w.fc1.n());
    assert!(w.fc2.k() == h && w.fc2.n() == c && x.len() >= rows * c);
    assert!(w.fc1_bias.len() == h && w.fc2_bias.len() == c && !scratch.is_empty());
    let chunk = chunk_rows(w.fc1);
    let xp = SendPtr(x.as_mut_ptr());
    (0..rows.div_ceil(chunk)).into_par_iter().for_each(|t| {
        let r0 = t * chunk;
        let m = chunk.min(rows - r0);
        let slot = rayon::current_thread_index().unwrap_or(0) % scratch.len();
        let mut guard = scratch[slot].lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            guard.len() >= scratch_len(chunk, c, h),
            "MLP scratch too short"
        );
        let (hidden, out) = guard.split_at_mut(chunk * h);
        let (hidden, out) = (&mut hidden[..m * h], &mut out[..m * c]);
        // SAFETY: rows r0..r0+m of x (rows·c floats, asserted) belong to this task alone: the
        // chunks are disjoint and nothing else touches x during the parallel loop.
        let xs = unsafe { std::slice::from_raw_parts_mut(xp.get().add(r0 * c), m * c) };
        // SAFETY: xs is m rows of c, hidden m rows of h, out m rows of c, none overlapping; the
        // weights were packed for an instruction set this CPU has (`Isa::active` at load).
        unsafe {
            matmul_panels(
                m,
                xs.as_ptr(),
                c,
                w.fc1,
                0..w.fc1.panels(),
                hidden.as_mut_ptr(),
                h,
                TileOutput::BiasGelu(w.fc1_bias),
            );
        }
        // SAFETY: as above.
        unsafe {
            matmul_panels(
                m,
                hidden.as_ptr(),
                h,
                w.fc2,
                0..w.fc2.panels(),
                out.as_mut_ptr(),
                c,
                TileOutput::Bias(w.fc2_bias),
            );
        }
        add_layer_norm_rows(xs, out, w.norm_weight, w.norm_bias);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::kernels::isa::Isa;
    use crate::engine::cpu::kernels::linear::{linear, Epilogue, ResidualRows};

    fn pseudo(len: usize, seed: u64, scale: f32) -> Vec<f32> {
        (0..len as u64)
            .map(|i| {
                let h = (i ^ seed)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .rotate_left(29);
                (((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// The fused MLP equals the two linear layers with their epilogues, on every ISA, for row
    /// counts that do and do not fill the last chunk.
    #[test]
    fn fused_mlp_equals_the_two_linear_layers() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (c, h) = (24, 96);
        for isa in Isa::available() {
            let fc1 = PackedMatrix::from_transposed(&pseudo(c * h, 1, 0.3), c, h, isa);
            let fc2 = PackedMatrix::from_transposed(&pseudo(h * c, 2, 0.2), h, c, isa);
            let (b1, b2) = (pseudo(h, 3, 0.1), pseudo(c, 4, 0.1));
            let (nw, nb) = (pseudo(c, 5, 1.0), pseudo(c, 6, 0.5));
            let w = MlpWeights {
                fc1: &fc1,
                fc1_bias: &b1,
                fc2: &fc2,
                fc2_bias: &b2,
                norm_weight: &nw,
                norm_bias: &nb,
            };
            let chunk = chunk_rows(&fc1);
            for rows in [1, chunk, 3 * chunk + 5] {
                let x0 = pseudo(rows * c, 7, 1.0);
                // Reference: the unfused path the engine uses otherwise.
                let mut want = x0.clone();
                let mut hidden = vec![0.0; rows * h];
                let mut tmp = vec![0.0; rows * c];
                pool.install(|| {
                    linear(&want, rows, c, &fc1, &mut hidden, Epilogue::BiasGelu(&b1));
                    let residual = ResidualRows::new(&mut want);
                    linear(
                        &hidden,
                        rows,
                        h,
                        &fc2,
                        &mut tmp,
                        Epilogue::BiasNormResidual {
                            bias: &b2,
                            weight: &nw,
                            norm_bias: &nb,
                            residual,
                        },
                    );
                });
                let scratch: Vec<_> = (0..2)
                    .map(|_| Mutex::new(vec![0.0; scratch_len(chunk, c, h)]))
                    .collect();
                let mut got = x0.clone();
                pool.install(|| mlp_residual(&mut got, rows, &w, &scratch));
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{isa} rows={rows} at {i}: {a} vs {b}"
                    );
                }
                assert_ne!(got, x0, "the residual was updated");
            }
        }
    }
}
