//! Input-independent tables of the official `WindowAttention.__init__` and `SwinTransformerBlock.__init__`,
//! computed from the configuration (so checkpoints need not carry the buffers), plus the index map that
//! replaces roll + window partition + window reverse + roll back in the fused attention.
//!
//! All windows are square (`window_size` = Wh = Ww), as in every official SwinV2 config.

/// `relative_coords_table` of `WindowAttention` as a `[(2W-1)*(2W-1), 2]` row-major table
/// (the official buffer has shape `[1, 2W-1, 2W-1, 2]`).
///
/// Coordinates `(dh, dw)` in `-(W-1)..=W-1` are divided by `pretrained_window - 1` when
/// `pretrained_window > 0` (else by `W - 1`), scaled by 8 and mapped through
/// `sign(x) * log2(|x| + 1) / log2(8)`, in f32 like the official code.
pub fn relative_coords_table(window: usize, pretrained_window: usize) -> Vec<f32> {
    let span = 2 * window - 1;
    let denom = if pretrained_window > 0 {
        (pretrained_window - 1) as f32
    } else {
        (window - 1) as f32
    };
    let f = |c: i64| -> f32 {
        let x = c as f32 / denom * 8.0;
        let s = if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        };
        s * (x.abs() + 1.0).log2() / 3.0
    };
    let mut table = Vec::with_capacity(span * span * 2);
    for dh in -(window as i64 - 1)..window as i64 {
        for dw in -(window as i64 - 1)..window as i64 {
            table.push(f(dh));
            table.push(f(dw));
        }
    }
    table
}

/// `relative_position_index` of `WindowAttention`: `[W*W, W*W]` row-major, entry `(i, j)` is the row of
/// [`relative_coords_table`] for the offset of token `i` relative to token `j` inside a window.
pub fn relative_position_index(window: usize) -> Vec<usize> {
    let n = window * window;
    let span = 2 * window - 1;
    let mut index = Vec::with_capacity(n * n);
    for i in 0..n {
        let (ih, iw) = (i / window, i % window);
        for j in 0..n {
            let (jh, jw) = (j / window, j % window);
            index.push((ih + window - 1 - jh) * span + (iw + window - 1 - jw));
        }
    }
    index
}

/// `attn_mask` of a shifted `SwinTransformerBlock`: `[nW, W*W, W*W]` with 0 where two tokens of a window
/// come from the same region of the rolled image and -100 elsewhere. `None` when `shift == 0`.
pub fn attn_mask(resolution: usize, window: usize, shift: usize) -> Option<Vec<f32>> {
    if shift == 0 {
        return None;
    }
    // img_mask region id along one axis: slices (0, -W), (-W, -shift), (-shift, None).
    let region = |y: usize| -> usize {
        if y < resolution - window {
            0
        } else if y < resolution - shift {
            1
        } else {
            2
        }
    };
    let per_side = resolution / window;
    let n = window * window;
    let mut mask = Vec::with_capacity(per_side * per_side * n * n);
    for wh in 0..per_side {
        for ww in 0..per_side {
            let label = |p: usize| {
                let (ph, pw) = (p / window, p % window);
                region(wh * window + ph) * 3 + region(ww * window + pw)
            };
            for i in 0..n {
                for j in 0..n {
                    mask.push(if label(i) == label(j) { 0.0 } else { -100.0 });
                }
            }
        }
    }
    Some(mask)
}

/// The (window, position) → token index map of a block: entry `w * W*W + p` is the row (in the
/// `H*W` token order of one image) that window `w` (partition order) holds at position `p` after
/// `torch.roll(x, (-shift, -shift), (1, 2))`. Rolling back after `window_reverse` sends the result of
/// that position to the same row, so the fused attention gathers its inputs and scatters its outputs
/// through this one map.
pub fn window_token_index(resolution: usize, window: usize, shift: usize) -> Vec<u32> {
    let per_side = resolution / window;
    let mut map = Vec::with_capacity(resolution * resolution);
    for wh in 0..per_side {
        for ww in 0..per_side {
            for ph in 0..window {
                for pw in 0..window {
                    let row = (wh * window + ph + shift) % resolution;
                    let col = (ww * window + pw + shift) % resolution;
                    map.push((row * resolution + col) as u32);
                }
            }
        }
    }
    map
}

/// Per window of a `[nW, N, N]` mask: whether it has a non-zero entry.
pub fn masked_windows(mask: &[f32], window_tokens: usize) -> Vec<bool> {
    mask.chunks(window_tokens * window_tokens)
        .map(|w| w.iter().any(|&v| v != 0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::ops::CnnlRoll;

    /// Only windows that straddle the shifted regions are masked: with a 16×16 grid, window 8 and
    /// shift 4, the top-left window lies inside one region (the official `attn_mask` is all zero
    /// there) and the other three cross a boundary.
    #[test]
    fn only_windows_across_region_boundaries_are_masked() {
        let mask = attn_mask(16, 8, 4).unwrap();
        assert_eq!(masked_windows(&mask, 64), vec![false, true, true, true]);
        let mask = attn_mask(64, 8, 4).unwrap();
        let masked = masked_windows(&mask, 64);
        assert_eq!(
            masked.iter().filter(|&&m| m).count(),
            15,
            "last row and column of 8×8 windows"
        );
    }

    /// `window_partition` of the official file on a `[H, W, C]` image: `[nW, W*W, C]`.
    fn window_partition(x: &[f32], res: usize, c: usize, window: usize) -> Vec<f32> {
        let per_side = res / window;
        let mut out = Vec::with_capacity(x.len());
        for wh in 0..per_side {
            for ww in 0..per_side {
                for ph in 0..window {
                    for pw in 0..window {
                        let t = (wh * window + ph) * res + ww * window + pw;
                        out.extend_from_slice(&x[t * c..(t + 1) * c]);
                    }
                }
            }
        }
        out
    }

    /// `window_reverse` of the official file: `[nW, W*W, C]` back to `[H, W, C]`.
    fn window_reverse(w: &[f32], res: usize, c: usize, window: usize) -> Vec<f32> {
        let per_side = res / window;
        let mut out = vec![0.0; w.len()];
        let n = window * window;
        for wi in 0..per_side * per_side {
            for p in 0..n {
                let (wh, ww) = (wi / per_side, wi % per_side);
                let t = (wh * window + p / window) * res + ww * window + p % window;
                let src = (wi * n + p) * c;
                out[t * c..(t + 1) * c].copy_from_slice(&w[src..src + c]);
            }
        }
        out
    }

    #[test]
    fn index_map_equals_plugin_roll_then_partition_and_back() {
        for &(res, window, shift, c) in &[
            (8, 4, 2, 3),
            (16, 8, 4, 2),
            (12, 6, 3, 1),
            (8, 8, 0, 2),
            (12, 4, 0, 1),
        ] {
            // Every value names its token and channel, so the gathered windows reveal the mapping.
            let x: Vec<f32> = (0..res * res * c).map(|v| v as f32).collect();
            let shape = [res, res, c];
            let mut shifted = vec![0.0; x.len()];
            CnnlRoll::new(vec![-(shift as i64), -(shift as i64)], vec![0, 1])
                .forward(&x, &shape, &mut shifted)
                .unwrap();
            let windows = window_partition(&shifted, res, c, window);
            let map = window_token_index(res, window, shift);
            for (slot, &token) in map.iter().enumerate() {
                let t = token as usize;
                assert_eq!(
                    &windows[slot * c..(slot + 1) * c],
                    &x[t * c..(t + 1) * c],
                    "res {res} window {window} shift {shift} slot {slot}"
                );
            }
            // Reverse + roll back restores the image: scattering through the map is the inverse.
            let merged = window_reverse(&windows, res, c, window);
            let mut back = vec![0.0; x.len()];
            CnnlRoll::new(vec![shift as i64, shift as i64], vec![0, 1])
                .forward(&merged, &shape, &mut back)
                .unwrap();
            assert_eq!(back, x);
            let mut scattered = vec![f32::NAN; x.len()];
            for (slot, &token) in map.iter().enumerate() {
                let t = token as usize;
                scattered[t * c..(t + 1) * c].copy_from_slice(&windows[slot * c..(slot + 1) * c]);
            }
            assert_eq!(scattered, x);
        }
    }

    #[test]
    fn relative_position_index_corners() {
        // Official: index(i, j) = (dh + W-1) * (2W-1) + (dw + W-1), with (dh, dw) = pos(i) - pos(j).
        let w = 3;
        let idx = relative_position_index(w);
        let span = 2 * w - 1;
        assert_eq!(idx[0], (w - 1) * span + (w - 1)); // token 0 vs itself
        assert_eq!(idx[w * w - 1], 0); // (0,0) vs (2,2): offset (-2,-2)
        assert_eq!(idx[(w * w - 1) * w * w], span * span - 1); // (2,2) vs (0,0)
    }
}
