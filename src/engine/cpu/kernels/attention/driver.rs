//! One block's window attention as (image, window, head) tasks over the current rayon pool, each
//! run by the head kernel of the instruction set.

use std::sync::Mutex;

use rayon::prelude::*;

use super::super::isa::Isa;
use super::super::SendPtr;
use super::args::WindowAttentionArgs;
#[cfg(target_arch = "x86_64")]
use super::bf16_head;
use super::head::{Head, HeadOutput};
use super::scalar::head_scalar;
#[cfg(target_arch = "x86_64")]
use super::simd_heads::{head_avx2, head_avx512};
use crate::engine::Precision;

/// A head kernel: fills the task's scratch and writes its output rows.
///
/// # Safety
/// The CPU must support the kernel's instruction set.
pub(super) type HeadKernel = unsafe fn(&mut Head<'_>);

/// The head kernel of `isa` (which the CPU must support for the kernel to be called).
pub(super) fn head_kernel(isa: Isa) -> HeadKernel {
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx512 => return head_avx512,
        Isa::Avx2 => return head_avx2,
        Isa::Scalar => {}
    }
    let _ = isa;
    head_scalar
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
pub(super) fn window_attention_with(
    args: &WindowAttentionArgs<'_>,
    qkv: &[f32],
    out: &mut [f32],
    scratch: &[Mutex<Vec<f32>>],
    isa: Isa,
) {
    let isa = isa.min(Isa::detected());
    let kernel = bf16_kernel(args, isa).unwrap_or_else(|| head_kernel(isa));
    // SAFETY: the CPU has `isa` (lowered to the detected set), and AVX512_BF16 where the bf16
    // kernel was chosen (`bf16_kernel`).
    unsafe { window_attention_on(args, qkv, out, scratch, kernel) };
}

/// The bf16 head kernel, if `args` asks for bf16 products, `isa` is AVX-512, the CPU has
/// AVX512_BF16 and the kernel takes the block's shapes.
pub(super) fn bf16_kernel(args: &WindowAttentionArgs<'_>, isa: Isa) -> Option<HeadKernel> {
    #[cfg(target_arch = "x86_64")]
    if args.products == Precision::Bf16
        && isa == Isa::Avx512
        && std::is_x86_feature_detected!("avx512bf16")
        && args.num_heads > 0
        && bf16_head::takes(args.window_tokens, args.dim / args.num_heads)
    {
        return Some(bf16_head::head_avx512_bf16);
    }
    let _ = (args, isa);
    None
}

/// [`window_attention`] with every task run by `kernel`.
///
/// # Safety
/// The CPU must support `kernel`'s instruction set.
pub(super) unsafe fn window_attention_on(
    args: &WindowAttentionArgs<'_>,
    qkv: &[f32],
    out: &mut [f32],
    scratch: &[Mutex<Vec<f32>>],
    kernel: HeadKernel,
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
    (0..tasks).into_par_iter().for_each(|t| {
        let h = t % args.num_heads;
        let w = (t / args.num_heads) % windows;
        let b = t / (args.num_heads * windows);
        let slot = rayon::current_thread_index().unwrap_or(0) % scratch.len();
        let mut guard = scratch[slot].lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `out` holds batch*tokens*dim floats (asserted above). Task (b, w, h) writes
        // only columns h*hd..(h+1)*hd of the rows of window w of image b; the token map is a
        // permutation of 0..tokens (`TokenPermutation`, length asserted above), so the rows
        // exist and no two tasks write the same element.
        let mut head = unsafe { head_task(args, qkv, out, &mut guard, b, w, h) };
        // SAFETY: the CPU supports the kernel's instruction set (caller).
        unsafe { kernel(&mut head) };
    });
}

/// The task (image `b`, window `w`, head `h`), its scratch split from `scratch`.
///
/// # Safety
/// `out` must be valid for writes of `batch*tokens*dim` floats; every entry of `a.token_index` must be
/// below `a.tokens`; no other thread may access this task's elements of `out` (columns
/// `h*hd..(h+1)*hd` of the rows of window `w` of image `b`) while the task is in use.
unsafe fn head_task<'a>(
    a: &'a WindowAttentionArgs<'_>,
    qkv: &'a [f32],
    out: SendPtr<f32>,
    scratch: &'a mut [f32],
    b: usize,
    w: usize,
    h: usize,
) -> Head<'a> {
    let n = a.window_tokens;
    let c = a.dim;
    let hd = c / a.num_heads;
    let (q, rest) = scratch.split_at_mut(n * hd);
    let (kt, rest) = rest.split_at_mut(hd * n);
    let (v, rest) = rest.split_at_mut(n * hd);
    let (s, rest) = rest.split_at_mut(n * n);
    let pairs = &mut rest[..n * n.div_ceil(2)];
    let map = &a.token_index.as_slice()[w * n..(w + 1) * n];
    let base = b * a.tokens;
    let mask = a
        .mask
        .filter(|_| a.masked_windows.is_none_or(|masked| masked[w]))
        .map(|m| &m[w * n * n..(w + 1) * n * n]);
    Head {
        qkv,
        map,
        base,
        c,
        h,
        hd,
        cosine: a.cosine,
        scale: a.logit_scale[h],
        bias: &a.bias[h * n * n..(h + 1) * n * n],
        mask,
        q,
        kt,
        v,
        s,
        pairs,
        // SAFETY: row base + map[p] (< batch*tokens) of `out` exists and its columns
        // h*hd..(h+1)*hd belong to this task alone (caller).
        out: unsafe { HeadOutput::new(out, map, base, c, h * hd) },
    }
}
