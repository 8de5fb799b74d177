//! `MyPlugin::CnnlRoll`: `torch.roll(input, shifts, dims)` on a dense row-major f32 tensor.

use super::plugin_op::{OpError, PluginOp};
use super::split_mix::SplitMix64;
use crate::engine::PluginCheck;

const OP: &str = "MyPlugin::CnnlRoll";

/// The roll op with its attributes, as the lab's plugin takes them: `shifts` and `dims` of equal length
/// (negative dims count from the end, as in PyTorch), or empty `dims` with a single shift to roll the
/// flattened tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnnlRoll {
    /// Shift per rolled dimension (may be negative or larger than the dimension).
    pub shifts: Vec<i64>,
    /// Rolled dimensions; empty = roll the flattened tensor by `shifts[0]`.
    pub dims: Vec<i64>,
}

impl PluginOp for CnnlRoll {
    fn op_name(&self) -> &'static str {
        OP
    }
    fn short_name(&self) -> &'static str {
        "roll"
    }
}

fn invalid(message: String) -> OpError {
    OpError::Invalid { op: OP, message }
}

impl CnnlRoll {
    /// Roll with the given attributes.
    pub fn new(shifts: Vec<i64>, dims: Vec<i64>) -> Self {
        Self { shifts, dims }
    }

    /// Effective non-negative shift of every dimension of `shape` (0 for dimensions not rolled).
    /// Repeated dims add up, as PyTorch's sequential definition implies.
    fn per_dim_shifts(&self, shape: &[usize]) -> Result<Vec<usize>, OpError> {
        if self.dims.is_empty() {
            if self.shifts.len() != 1 {
                return Err(invalid(format!(
                    "without dims, exactly one shift is needed (got {})",
                    self.shifts.len()
                )));
            }
            let n: usize = shape.iter().product();
            return Ok(vec![rem(self.shifts[0], n)]);
        }
        if self.shifts.len() != self.dims.len() {
            return Err(invalid(format!(
                "shifts {:?} and dims {:?} differ in length",
                self.shifts, self.dims
            )));
        }
        let rank = shape.len() as i64;
        let mut per_dim = vec![0i64; shape.len()];
        for (&s, &d) in self.shifts.iter().zip(&self.dims) {
            let dim = if d < 0 { d + rank } else { d };
            if !(0..rank).contains(&dim) {
                return Err(invalid(format!("dim {d} out of range for rank {rank}")));
            }
            per_dim[dim as usize] += s;
        }
        Ok(per_dim
            .iter()
            .zip(shape)
            .map(|(&s, &n)| rem(s, n))
            .collect())
    }

    /// Roll `input` of `shape` into `output` (same length). Works by contiguous runs of the last
    /// dimension: each output row is copied from one source row in at most two pieces.
    pub fn forward(
        &self,
        input: &[f32],
        shape: &[usize],
        output: &mut [f32],
    ) -> Result<(), OpError> {
        let n: usize = shape.iter().product();
        if input.len() != n || output.len() != n {
            return Err(invalid(format!(
                "shape {shape:?} needs {n} values, got input {} and output {}",
                input.len(),
                output.len()
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let shifts = self.per_dim_shifts(shape)?;
        // A flattened roll is a roll of the 1-D view.
        let flat = [n];
        let shape = if self.dims.is_empty() {
            &flat[..]
        } else {
            shape
        };
        let rank = shape.len();
        let inner = shape[rank - 1];
        let inner_shift = shifts[rank - 1];
        let outer = &shape[..rank - 1];
        let outer_shifts = &shifts[..rank - 1];
        // Row-major strides of the outer dimensions, in rows.
        let mut row_strides = vec![1usize; outer.len()];
        for d in (0..outer.len().saturating_sub(1)).rev() {
            row_strides[d] = row_strides[d + 1] * outer[d + 1];
        }
        let rows = n / inner;
        let mut index = vec![0usize; outer.len()];
        for out_row in 0..rows {
            // Source row: every outer coordinate moved back by its shift.
            let src_row: usize = index
                .iter()
                .zip(outer)
                .zip(outer_shifts)
                .zip(&row_strides)
                .map(|(((&i, &len), &s), &stride)| ((i + len - s) % len) * stride)
                .sum();
            let src = &input[src_row * inner..(src_row + 1) * inner];
            let dst = &mut output[out_row * inner..(out_row + 1) * inner];
            // dst[j] = src[(j - s) mod inner]
            dst[inner_shift..].copy_from_slice(&src[..inner - inner_shift]);
            dst[..inner_shift].copy_from_slice(&src[inner - inner_shift..]);
            // Advance the outer multi-index (last outer dimension fastest).
            for d in (0..outer.len()).rev() {
                index[d] += 1;
                if index[d] < outer[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(())
    }
}

/// `s mod n` in `[0, n)` for any sign of `s` (0 when `n` is 0).
fn rem(s: i64, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        s.rem_euclid(n as i64) as usize
    }
}

/// Straightforward reference: for every element, compute its multi-index, move it by the shifts and
/// store it there. Same attribute conventions as [`CnnlRoll`].
pub fn roll_reference(input: &[f32], shape: &[usize], shifts: &[i64], dims: &[i64]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    assert_eq!(input.len(), n, "roll_reference: input length");
    let mut out = vec![0.0f32; n];
    if dims.is_empty() {
        for (i, &v) in input.iter().enumerate() {
            out[(i as i64 + shifts[0]).rem_euclid(n as i64) as usize] = v;
        }
        return out;
    }
    let rank = shape.len();
    for (flat, &v) in input.iter().enumerate() {
        let mut coords = vec![0i64; rank];
        let mut rest = flat;
        for d in (0..rank).rev() {
            coords[d] = (rest % shape[d]) as i64;
            rest /= shape[d];
        }
        for (&s, &d) in shifts.iter().zip(dims) {
            let d = if d < 0 { d + rank as i64 } else { d } as usize;
            coords[d] = (coords[d] + s).rem_euclid(shape[d] as i64);
        }
        let mut dst = 0usize;
        for d in 0..rank {
            dst = dst * shape[d] + coords[d] as usize;
        }
        out[dst] = v;
    }
    out
}

/// Random shapes (rank 1–4), random shifts (both signs, some beyond the size) and dims, kernel vs
/// reference, exact equality.
pub(super) fn self_check(seed: u64) -> PluginCheck {
    let mut rng = SplitMix64(seed);
    let mut cases = 0;
    let mut failure = None;
    for case in 0..40 {
        let rank = 1 + rng.below(4);
        let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(9)).collect();
        let n: usize = shape.iter().product();
        let input: Vec<f32> = (0..n).map(|_| rng.next_f32()).collect();
        let (shifts, dims): (Vec<i64>, Vec<i64>) = if case % 7 == 6 {
            (vec![rng.below(3 * n) as i64 - n as i64], vec![])
        } else {
            let k = 1 + rng.below(rank);
            (0..k)
                .map(|_| {
                    let d = rng.below(rank) as i64;
                    let d = if rng.below(2) == 0 {
                        d
                    } else {
                        d - rank as i64
                    };
                    (rng.below(40) as i64 - 20, d)
                })
                .unzip()
        };
        let op = CnnlRoll::new(shifts.clone(), dims.clone());
        let mut out = vec![f32::NAN; n];
        let res = op.forward(&input, &shape, &mut out);
        let expected = roll_reference(&input, &shape, &shifts, &dims);
        cases += 1;
        if res.is_err() || out != expected {
            failure = Some(format!(
                "shape {shape:?} shifts {shifts:?} dims {dims:?}: {}",
                match res {
                    Err(e) => e.to_string(),
                    Ok(()) => "values differ from the reference".into(),
                }
            ));
            break;
        }
    }
    PluginCheck {
        op: OP.into(),
        short_name: "roll".into(),
        ok: failure.is_none(),
        detail: failure.unwrap_or_else(|| {
            format!("{cases} random shapes (rank 1-4, shifts of both signs) equal to the reference")
        }),
    }
}
