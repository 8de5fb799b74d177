//! The `forward`s of the official modules (`models/swin_transformer_v2.py`; for V1 blocks and patch
//! merging, `models/swin_transformer.py`), run inside an instance's thread pool on its planned
//! `Buffers` (`buffers.rs`).

use rayon::prelude::*;

use super::buffers::{image_by_image_stages, staged_len, Buffers};
use super::kernels::attention::{window_attention, WindowAttentionArgs};
use super::kernels::linear::{linear, Epilogue, ResidualRows};
use super::kernels::mlp::{self, MlpWeights};
use super::kernels::norm::layer_norm_rows;
use super::modules::{BasicLayer, LayerNorm, PatchMerging, SwinModel, SwinTransformerBlock};
use super::profile::{enter_stage, mark, Profile};
use crate::engine::Precision;

/// `SwinTransformerV2.forward` (or V1's `SwinTransformer.forward`: the same outside the blocks and
/// the patch merging) on `batch` images (inside the instance's pool).
pub(super) fn forward(
    m: &SwinModel,
    buf: &mut Buffers,
    input: &[f32],
    batch: usize,
    logits: &mut [f32],
    prof: &mut Option<Profile>,
) {
    let cfg = &m.config;
    mark(prof, "start");
    // Leading stages with large activations run one image at a time (`image_by_image_stages`), so
    // that each operation finds the previous one's output in cache; their outputs are gathered in
    // `staged` and the rest runs on the whole batch.
    let early = if batch > 1 {
        image_by_image_stages(m)
    } else {
        0
    };
    if early > 0 {
        let image = cfg.in_chans * cfg.img_size * cfg.img_size;
        let per = staged_len(m, early);
        for b in 0..batch {
            enter_stage(prof, None);
            embed(m, buf, &input[b * image..(b + 1) * image], 1, prof);
            for (i, layer) in m.layers[..early].iter().enumerate() {
                enter_stage(prof, Some(i));
                basic_layer(layer, m.precision, buf, 1, prof);
            }
            buf.staged[b * per..(b + 1) * per].copy_from_slice(&buf.x[..per]);
            mark(prof, "restage");
        }
        buf.x[..batch * per].copy_from_slice(&buf.staged[..batch * per]);
        mark(prof, "restage");
    } else {
        embed(m, buf, input, batch, prof);
    }
    for (i, layer) in m.layers.iter().enumerate().skip(early) {
        enter_stage(prof, Some(i));
        basic_layer(layer, m.precision, buf, batch, prof);
    }
    enter_stage(prof, None);
    // norm, avgpool, head
    let nf = cfg.num_features();
    let last = m.layers.last().map_or(0, |l| l.input_resolution.pow(2));
    let x = &mut buf.x[..batch * last * nf];
    x.par_chunks_mut(nf * 64.min(last.max(1)))
        .for_each(|rows| layer_norm_rows(rows, &m.norm.weight, &m.norm.bias));
    for (b, pooled) in buf.pooled.chunks_exact_mut(nf).take(batch).enumerate() {
        pooled.fill(0.0);
        for row in x[b * last * nf..(b + 1) * last * nf].chunks_exact(nf) {
            for (p, &v) in pooled.iter_mut().zip(row) {
                *p += v;
            }
        }
        let inv = 1.0 / last as f32;
        pooled.iter_mut().for_each(|p| *p *= inv);
    }
    let head = &m.head;
    linear(
        &buf.pooled,
        batch,
        nf,
        &head.weight,
        logits,
        head.bias.as_deref().map_or(Epilogue::None, Epilogue::Bias),
    );
    mark(prof, "norm+pool+head");
}

/// `forward_features` up to the stages: patch_embed, then the absolute position embedding (V1 `ape`).
fn embed(
    m: &SwinModel,
    buf: &mut Buffers,
    input: &[f32],
    batch: usize,
    prof: &mut Option<Profile>,
) {
    let cfg = &m.config;
    patch_embed(m, buf, input, batch);
    let l0 = cfg.stage_resolution(0).pow(2);
    if let Some(ape) = &m.absolute_pos_embed {
        buf.x[..batch * l0 * cfg.embed_dim]
            .par_chunks_mut(l0 * cfg.embed_dim)
            .for_each(|img| {
                for (v, &a) in img.iter_mut().zip(ape) {
                    *v += a;
                }
            });
    }
    mark(prof, "patch_embed");
}

/// `PatchEmbed.forward`: flatten each patch in (channel, row, col) order — the conv weight's order —
/// and run the projection as a GEMM, then the optional norm.
fn patch_embed(m: &SwinModel, buf: &mut Buffers, input: &[f32], batch: usize) {
    let pe = &m.patch_embed;
    let (p, s, cin) = (pe.patch_size, pe.img_size, pe.in_chans);
    let grid = s / p;
    let k = cin * p * p;
    let patches = &mut buf.hidden[..batch * grid * grid * k];
    patches
        .par_chunks_mut(grid * k)
        .enumerate()
        .for_each(|(row_id, dst)| {
            let (b, ph) = (row_id / grid, row_id % grid);
            let img = &input[b * cin * s * s..(b + 1) * cin * s * s];
            for pw in 0..grid {
                let patch = &mut dst[pw * k..(pw + 1) * k];
                for c in 0..cin {
                    for kh in 0..p {
                        let src = c * s * s + (ph * p + kh) * s + pw * p;
                        patch[(c * p + kh) * p..(c * p + kh + 1) * p]
                            .copy_from_slice(&img[src..src + p]);
                    }
                }
            }
        });
    let epilogue = match &pe.norm {
        Some(n) => Epilogue::BiasNorm {
            bias: pe.proj.bias.as_deref(),
            weight: &n.weight,
            norm_bias: &n.bias,
        },
        None => pe
            .proj
            .bias
            .as_deref()
            .map_or(Epilogue::None, Epilogue::Bias),
    };
    let rows = batch * grid * grid;
    linear(
        &buf.hidden[..rows * k],
        rows,
        k,
        &pe.proj.weight,
        &mut buf.x,
        epilogue,
    );
}

/// `BasicLayer.forward` (the attention products in `products`).
fn basic_layer(
    layer: &BasicLayer,
    products: Precision,
    buf: &mut Buffers,
    batch: usize,
    prof: &mut Option<Profile>,
) {
    for block in &layer.blocks {
        swin_block(block, products, buf, batch, prof);
    }
    if let Some(d) = &layer.downsample {
        patch_merging(d, buf, batch);
        mark(prof, "patch_merging");
    }
}

/// `dst = layer_norm(src)` row by row (`src`, `dst`: `rows` rows of `norm.weight.len()` floats).
fn layer_norm_into(src: &[f32], dst: &mut [f32], norm: &LayerNorm) {
    let c = norm.weight.len();
    dst.copy_from_slice(src);
    dst.par_chunks_mut(c * 64)
        .for_each(|rows| layer_norm_rows(rows, &norm.weight, &norm.bias));
}

/// `SwinTransformerBlock.forward`: V2 `x = x + norm1(attn(x))`; `x = x + norm2(mlp(x))`, or V1
/// `x = x + attn(norm1(x))`; `x = x + mlp(norm2(x))`. The attention products in `products`.
fn swin_block(
    blk: &SwinTransformerBlock,
    products: Precision,
    buf: &mut Buffers,
    batch: usize,
    prof: &mut Option<Profile>,
) {
    let c = blk.dim;
    let tokens = blk.input_resolution * blk.input_resolution;
    let rows = batch * tokens;
    let attn = &blk.attn;
    // V1: the attention reads norm1(x), in `tmp`.
    if blk.pre_norm {
        layer_norm_into(&buf.x[..rows * c], &mut buf.tmp[..rows * c], &blk.norm1);
        mark(prof, "norm1");
    }
    let attn_input = if blk.pre_norm { &buf.tmp } else { &buf.x };
    // qkv = F.linear(x, qkv.weight, cat(q_bias, 0, v_bias)) (V1: its own bias)
    linear(
        &attn_input[..rows * c],
        rows,
        c,
        &attn.qkv.weight,
        &mut buf.qkv,
        attn.qkv
            .bias
            .as_deref()
            .map_or(Epilogue::None, Epilogue::Bias),
    );
    mark(prof, "qkv");
    // roll, window partition, cosine (V2) or scaled dot-product (V1) attention with bias and mask,
    // window reverse, roll back
    let args = WindowAttentionArgs {
        batch,
        tokens,
        dim: c,
        num_heads: attn.num_heads,
        window_tokens: blk.window_size * blk.window_size,
        token_index: &blk.token_index,
        cosine: attn.cosine,
        logit_scale: &attn.logit_scale,
        bias: &attn.relative_position_bias,
        mask: blk.attn_mask.as_deref(),
        masked_windows: blk.masked_windows.as_deref(),
        products,
    };
    window_attention(&args, &buf.qkv, &mut buf.attn, &buf.attn_scratch);
    mark(prof, "attention");
    if blk.pre_norm {
        pre_norm_rest(blk, buf, rows, prof);
        return;
    }
    // x = shortcut + norm1(proj(attn))
    let residual = ResidualRows::new(&mut buf.x[..rows * c]);
    linear(
        &buf.attn[..rows * c],
        rows,
        c,
        &attn.proj.weight,
        &mut buf.tmp,
        Epilogue::BiasNormResidual {
            bias: attn.proj.bias.as_deref().unwrap_or(&[]),
            weight: &blk.norm1.weight,
            norm_bias: &blk.norm1.bias,
            residual,
        },
    );
    mark(prof, "proj+norm1");
    // x = x + norm2(fc2(gelu(fc1(x))))
    let (fc1, fc2) = (&blk.mlp.fc1, &blk.mlp.fc2);
    let fused = MlpWeights {
        fc1: &fc1.weight,
        fc1_bias: fc1.bias.as_deref().unwrap_or(&[]),
        fc2: &fc2.weight,
        fc2_bias: fc2.bias.as_deref().unwrap_or(&[]),
        norm_weight: &blk.norm2.weight,
        norm_bias: &blk.norm2.bias,
    };
    if mlp::worth_fusing(rows, &fused, rayon::current_num_threads()) {
        mlp::mlp_residual(&mut buf.x[..rows * c], rows, &fused, &buf.mlp_scratch);
        mark(prof, "mlp+norm2 (fused)");
        return;
    }
    linear(
        &buf.x[..rows * c],
        rows,
        c,
        &fc1.weight,
        &mut buf.hidden,
        Epilogue::BiasGelu(fc1.bias.as_deref().unwrap_or(&[])),
    );
    mark(prof, "fc1+gelu");
    let residual = ResidualRows::new(&mut buf.x[..rows * c]);
    linear(
        &buf.hidden[..rows * fc1.out_features],
        rows,
        fc1.out_features,
        &fc2.weight,
        &mut buf.tmp,
        Epilogue::BiasNormResidual {
            bias: fc2.bias.as_deref().unwrap_or(&[]),
            weight: &blk.norm2.weight,
            norm_bias: &blk.norm2.bias,
            residual,
        },
    );
    mark(prof, "fc2+norm2");
}

/// The rest of a V1 (pre-norm) block after its attention: `x = x + proj(attn)`, then
/// `x = x + fc2(gelu(fc1(norm2(x))))`.
fn pre_norm_rest(
    blk: &SwinTransformerBlock,
    buf: &mut Buffers,
    rows: usize,
    prof: &mut Option<Profile>,
) {
    let c = blk.dim;
    let proj = &blk.attn.proj;
    let residual = ResidualRows::new(&mut buf.x[..rows * c]);
    linear(
        &buf.attn[..rows * c],
        rows,
        c,
        &proj.weight,
        &mut buf.tmp,
        Epilogue::BiasResidual {
            bias: proj.bias.as_deref().unwrap_or(&[]),
            residual,
        },
    );
    mark(prof, "proj");
    let (fc1, fc2) = (&blk.mlp.fc1, &blk.mlp.fc2);
    layer_norm_into(&buf.x[..rows * c], &mut buf.tmp[..rows * c], &blk.norm2);
    linear(
        &buf.tmp[..rows * c],
        rows,
        c,
        &fc1.weight,
        &mut buf.hidden,
        Epilogue::BiasGelu(fc1.bias.as_deref().unwrap_or(&[])),
    );
    mark(prof, "norm2+fc1+gelu");
    let residual = ResidualRows::new(&mut buf.x[..rows * c]);
    linear(
        &buf.hidden[..rows * fc1.out_features],
        rows,
        fc1.out_features,
        &fc2.weight,
        &mut buf.tmp,
        Epilogue::BiasResidual {
            bias: fc2.bias.as_deref().unwrap_or(&[]),
            residual,
        },
    );
    mark(prof, "fc2");
}

/// `PatchMerging.forward`: cat(x0 = [0::2, 0::2], x1 = [1::2, 0::2], x2 = [0::2, 1::2],
/// x3 = [1::2, 1::2]) → reduction → norm (V2), or → norm → reduction (V1).
fn patch_merging(pm: &PatchMerging, buf: &mut Buffers, batch: usize) {
    let (r, c) = (pm.input_resolution, pm.dim);
    let half = r / 2;
    let x = &buf.x;
    let gathered = &mut buf.qkv[..batch * half * half * 4 * c];
    gathered
        .par_chunks_mut(half * 4 * c)
        .enumerate()
        .for_each(|(row_id, dst)| {
            let (b, i) = (row_id / half, row_id % half);
            let img = &x[b * r * r * c..(b + 1) * r * r * c];
            for j in 0..half {
                let out = &mut dst[j * 4 * c..(j + 1) * 4 * c];
                for (q, (dh, dw)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
                    let t = (2 * i + dh) * r + 2 * j + dw;
                    out[q * c..(q + 1) * c].copy_from_slice(&img[t * c..(t + 1) * c]);
                }
            }
        });
    let rows = batch * half * half;
    let epilogue = if pm.norm_first {
        buf.qkv[..rows * 4 * c]
            .par_chunks_mut(4 * c * 16)
            .for_each(|chunk| layer_norm_rows(chunk, &pm.norm.weight, &pm.norm.bias));
        Epilogue::None
    } else {
        Epilogue::BiasNorm {
            bias: None,
            weight: &pm.norm.weight,
            norm_bias: &pm.norm.bias,
        }
    };
    linear(
        &buf.qkv[..rows * 4 * c],
        rows,
        4 * c,
        &pm.reduction.weight,
        &mut buf.x,
        epilogue,
    );
}
