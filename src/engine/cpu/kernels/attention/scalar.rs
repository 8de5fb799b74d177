//! The portable head kernel (any CPU; also what the SIMD kernels are checked against).

use super::head::{Head, NORM_EPS};

/// One (image, window, head) task in portable code: gather and normalise q, kᵀ, v; scores and
/// softmax; `O = P·v` scattered to the tokens' rows.
pub(super) fn head_scalar(head: &mut Head<'_>) {
    let (n, c, h, hd) = (head.n(), head.c, head.h, head.hd);
    let (q, kt, v) = (&mut *head.q, &mut *head.kt, &mut *head.v);
    // 1. gather + cosine normalisation (logit scale folded into q), or the scale alone (V1).
    for (p, &tok) in head.map.iter().enumerate() {
        let row = &head.qkv[(head.base + tok as usize) * 3 * c..][..3 * c];
        let qr = &row[h * hd..(h + 1) * hd];
        let kr = &row[c + h * hd..c + (h + 1) * hd];
        let vr = &row[2 * c + h * hd..2 * c + (h + 1) * hd];
        let (qs, ks) = if head.cosine {
            (
                head.scale / norm(qr).max(NORM_EPS),
                1.0 / norm(kr).max(NORM_EPS),
            )
        } else {
            (head.scale, 1.0)
        };
        for (d, &x) in qr.iter().enumerate() {
            q[p * hd + d] = x * qs;
        }
        for (d, &x) in kr.iter().enumerate() {
            kt[d * n + p] = x * ks;
        }
        v[p * hd..(p + 1) * hd].copy_from_slice(vr);
    }
    // 2. scores + bias (+ mask), softmax.
    scores_softmax_scalar(q, kt, head.s, head.bias, head.mask, n, hd);
    // 3. O = P·v, scattered to the tokens' rows.
    for i in 0..n {
        // SAFETY: the output row of position i holds hd floats that belong to this task
        // (`HeadOutput::row`).
        let dst = unsafe { std::slice::from_raw_parts_mut(head.out.row(i), hd) };
        pv_row_scalar(&head.s[i * n..(i + 1) * n], v, dst, n, hd);
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
