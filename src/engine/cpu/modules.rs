//! Swin weights arranged like the official modules (`models/swin_transformer_v2.py` and, for V1,
//! `models/swin_transformer.py`, d19503d7), with everything that does not depend on the image folded
//! at load time:
//!
//! * per block, the relative position bias gathered by `relative_position_index` into a
//!   `[num_heads, N, N]` table: V2's continuous `16·sigmoid(cpb_mlp(relative_coords_table))` (the
//!   MLP's ReLU is the `MyPlugin::PluginReLU` op), V1's learned `relative_position_bias_table`;
//! * the factor q is multiplied by: V2's `exp(clamp(logit_scale, max = ln(1/0.01)))`, V1's
//!   `head_dim^-0.5`, per head;
//! * the shifted-window `attn_mask` and the (window, position) → token map (roll + partition folded);
//! * V2's qkv bias `cat(q_bias, zeros, v_bias)` (V1 has a learned `[3C]` one).
//!
//! Tensors are read by their official state-dict keys; a missing or mis-shaped one is an error naming it.
//! The tables are computed from the configuration like the official `__init__`, so the checkpoint's
//! buffers (`relative_coords_table`, `relative_position_index`, `attn_mask`) are not needed.

use super::kernels::attention::TokenPermutation;
use super::kernels::isa::Isa;
use super::kernels::packed_gemm::{PackedMatrix, WeightFormat};
use super::ops::PluginRelu;
use super::tables;
use crate::engine::Precision;
use crate::model::{ModelError, SwinConfig, SwinVersion, Weights, WeightsView};

pub use crate::model::layout::CPB_HIDDEN;

/// `nn.Linear` (`y = x·Wᵀ + b`). The weight is packed once at load into the GEMM microkernel's panel
/// layout for the instruction set in use ([`PackedMatrix`]), in FP32 or (bf16 precision) as bf16
/// pairs: no repacking per call.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `Wᵀ` packed for [`Isa::active`].
    pub weight: PackedMatrix,
    /// `[out_features]`.
    pub bias: Option<Vec<f32>>,
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
}

impl Linear {
    /// `weight` `[out, in]` and, when `bias`, `bias` `[out]` of the module at `vb`.
    fn load(
        vb: &WeightsView,
        in_features: usize,
        out_features: usize,
        bias: bool,
        format: WeightFormat,
    ) -> Result<Self, ModelError> {
        let weight = &vb.get("weight", &[out_features, in_features])?.data;
        let bias = if bias {
            Some(vb.get("bias", &[out_features])?.data.clone())
        } else {
            None
        };
        Ok(Self::from_pytorch(
            weight,
            bias,
            in_features,
            out_features,
            format,
        ))
    }

    /// From a PyTorch-layout `[out_features, in_features]` weight, packed in `format`.
    pub fn from_pytorch(
        weight: &[f32],
        bias: Option<Vec<f32>>,
        in_features: usize,
        out_features: usize,
        format: WeightFormat,
    ) -> Self {
        assert_eq!(weight.len(), in_features * out_features);
        Self {
            weight: PackedMatrix::from_pytorch_as(
                weight,
                in_features,
                out_features,
                Isa::active(),
                format,
            ),
            bias,
            in_features,
            out_features,
        }
    }

    /// `W[o, i]` in PyTorch's indexing.
    #[inline]
    pub fn weight_at(&self, o: usize, i: usize) -> f32 {
        self.weight.get(i, o)
    }
}

/// `nn.LayerNorm(dim)` (eps 1e-5).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[dim]`.
    pub weight: Vec<f32>,
    /// `[dim]`.
    pub bias: Vec<f32>,
}

impl LayerNorm {
    fn load(vb: &WeightsView, dim: usize) -> Result<Self, ModelError> {
        Ok(Self {
            weight: vb.get("weight", &[dim])?.data.clone(),
            bias: vb.get("bias", &[dim])?.data.clone(),
        })
    }
}

/// `PatchEmbed`: a `patch_size`-strided conv (run as a GEMM over flattened patches), then `norm` when
/// `patch_norm`.
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    /// Conv weight viewed as a linear layer from `in_chans*patch*patch` (flattened in the conv weight's
    /// (channel, row, col) order) to `embed_dim`.
    pub proj: Linear,
    /// LayerNorm after the projection (`patch_norm=True`).
    pub norm: Option<LayerNorm>,
    /// Patch side.
    pub patch_size: usize,
    /// Input side.
    pub img_size: usize,
    /// Input channels.
    pub in_chans: usize,
}

/// `WindowAttention` with its input-independent parts folded.
#[derive(Debug, Clone)]
pub struct WindowAttention {
    /// Channels.
    pub dim: usize,
    /// Window side actually used (clamped to the stage resolution).
    pub window_size: usize,
    /// Heads.
    pub num_heads: usize,
    /// `qkv` with bias `cat(q_bias, zeros, v_bias)` (V2) or its own (V1) folded in (no bias when
    /// `qkv_bias=False`).
    pub qkv: Linear,
    /// Output projection.
    pub proj: Linear,
    /// Cosine attention (V2) rather than scaled dot-product attention (V1).
    pub cosine: bool,
    /// The factor q is multiplied by, one per head: `exp(clamp(logit_scale, max = ln 100))` (V2)
    /// or `head_dim^-0.5` (V1).
    pub logit_scale: Vec<f32>,
    /// `16·sigmoid(cpb_mlp(relative_coords_table))[relative_position_index]` (V2) or
    /// `relative_position_bias_table[relative_position_index]` (V1), `[num_heads, N, N]`.
    pub relative_position_bias: Vec<f32>,
}

/// `Mlp`: fc1 → GELU → fc2.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// `[hidden, dim]`.
    pub fc1: Linear,
    /// `[dim, hidden]`.
    pub fc2: Linear,
}

/// `SwinTransformerBlock`: res-post-norm in V2 (`x = x + norm1(attn(x))`, `x = x + norm2(mlp(x))`),
/// pre-norm in V1 (`x = x + attn(norm1(x))`, `x = x + mlp(norm2(x))`).
#[derive(Debug, Clone)]
pub struct SwinTransformerBlock {
    /// Channels.
    pub dim: usize,
    /// Token grid side.
    pub input_resolution: usize,
    /// Window side (clamped).
    pub window_size: usize,
    /// Cyclic shift (0 for even blocks and when the window covers the whole grid).
    pub shift_size: usize,
    /// The norms come before attention and MLP (V1), not after (V2).
    pub pre_norm: bool,
    /// Post-attention norm (V2), pre-attention norm (V1).
    pub norm1: LayerNorm,
    /// Window attention.
    pub attn: WindowAttention,
    /// Post-MLP norm.
    pub norm2: LayerNorm,
    /// MLP.
    pub mlp: Mlp,
    /// `attn_mask` `[nW, N, N]` (0 / -100) of a shifted block.
    pub attn_mask: Option<Vec<f32>>,
    /// `[nW]`: which windows of `attn_mask` have a non-zero entry.
    pub masked_windows: Option<Vec<bool>>,
    /// (window, position) → token row (roll + window partition folded), `[nW * N]`.
    pub token_index: TokenPermutation,
}

/// `PatchMerging`: 2×2 neighbours concatenated (x0, x1, x2, x3), then `reduction` (4C → 2C, no bias)
/// and `norm` (2C) in V2, `norm` (4C) and `reduction` in V1.
#[derive(Debug, Clone)]
pub struct PatchMerging {
    /// Input token grid side.
    pub input_resolution: usize,
    /// Input channels.
    pub dim: usize,
    /// `[2*dim, 4*dim]`, no bias.
    pub reduction: Linear,
    /// Norm over `2*dim` after the reduction (V2) or over `4*dim` before it (V1).
    pub norm: LayerNorm,
    /// The norm comes before the reduction (V1).
    pub norm_first: bool,
}

/// `BasicLayer`: one stage of blocks, then optional patch merging.
#[derive(Debug, Clone)]
pub struct BasicLayer {
    /// Channels.
    pub dim: usize,
    /// Token grid side.
    pub input_resolution: usize,
    /// Blocks.
    pub blocks: Vec<SwinTransformerBlock>,
    /// Patch merging at the end (all stages but the last).
    pub downsample: Option<PatchMerging>,
}

/// A loaded Swin classifier (`SwinTransformer` or `SwinTransformerV2`), immutable and shareable through `Arc` between
/// engine instances: the weights are stored once here.
#[derive(Debug, Clone)]
pub struct SwinModel {
    /// Architecture.
    pub config: SwinConfig,
    /// Patch embedding.
    pub patch_embed: PatchEmbed,
    /// `absolute_pos_embed` `[num_patches * embed_dim]` when `ape`.
    pub absolute_pos_embed: Option<Vec<f32>>,
    /// Stages.
    pub layers: Vec<BasicLayer>,
    /// Final norm over `num_features`.
    pub norm: LayerNorm,
    /// Classifier `[num_classes, num_features]`.
    pub head: Linear,
    /// Where the weights came from.
    pub source: String,
    /// What the linear layers compute in.
    pub precision: Precision,
}

impl SwinModel {
    /// Build the model from official state-dict tensors, folding the input-independent parts (FP32).
    pub fn new(weights: &Weights, config: &SwinConfig) -> Result<Self, ModelError> {
        Self::with_precision(weights, config, Precision::Fp32)
    }

    /// [`Self::new`] with the linear layers in `precision`: bf16 packs every linear layer the
    /// forward pass runs as bf16 pairs (the continuous position bias MLP, folded here at load,
    /// stays FP32); it needs AVX512_BF16 on the active instruction set
    /// ([`super::kernels::isa::bf16_supported`]) and is refused with [`ModelError::Config`]
    /// elsewhere.
    pub fn with_precision(
        weights: &Weights,
        config: &SwinConfig,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        let format = match precision {
            Precision::Fp32 => WeightFormat::F32,
            Precision::Bf16 if super::kernels::isa::bf16_supported() => WeightFormat::Bf16Pairs,
            Precision::Bf16 => return Err(ModelError::Config(super::kernels::isa::bf16_refusal())),
        };
        config.validate()?;
        if config.in_chans == 0 {
            return Err(ModelError::Config("in_chans must be at least 1".into()));
        }
        let v2 = config.version == SwinVersion::V2;
        if v2 && config.pretrained_window_sizes.len() < config.num_layers() {
            return Err(ModelError::Config(format!(
                "pretrained_window_sizes {:?} needs one entry per stage ({})",
                config.pretrained_window_sizes,
                config.num_layers()
            )));
        }
        if v2 && config.pretrained_window_sizes.contains(&1) {
            return Err(ModelError::Config(
                "a pretrained window size of 1 divides by zero in relative_coords_table".into(),
            ));
        }
        // `relative_coords_table /= (window_size - 1)` when there is no pretrained window: a stage
        // whose window is clamped to a 1×1 grid makes the official model output NaN (0 / 0).
        if let Some(stage) = (0..config.num_layers())
            .filter(|_| v2)
            .find(|&i| config.stage_window(i) == 1 && config.pretrained_window_sizes[i] == 0)
        {
            return Err(ModelError::Config(format!(
                "stage {stage} has a 1×1 token grid, so its window is 1 and the official \
                 relative_coords_table divides by window_size - 1 = 0 (the model would output NaN): \
                 use a larger --img-size ({} makes the last stage {}×{})",
                config.img_size,
                config.stage_resolution(config.num_layers() - 1),
                config.stage_resolution(config.num_layers() - 1)
            )));
        }
        let vb = weights.view();
        let (p, e, cin) = (config.patch_size, config.embed_dim, config.in_chans);
        let vb_embed = vb.pp("patch_embed");
        let vb_proj = vb_embed.pp("proj");
        let conv = vb_proj.get("weight", &[e, cin, p, p])?;
        let patch_embed = PatchEmbed {
            proj: Linear::from_pytorch(
                &conv.data,
                Some(vb_proj.get("bias", &[e])?.data.clone()),
                cin * p * p,
                e,
                format,
            ),
            norm: if config.patch_norm {
                Some(LayerNorm::load(&vb_embed.pp("norm"), e)?)
            } else {
                None
            },
            patch_size: p,
            img_size: config.img_size,
            in_chans: cin,
        };
        let num_patches = config.stage_resolution(0).pow(2);
        let absolute_pos_embed = if config.ape {
            Some(
                vb.get("absolute_pos_embed", &[1, num_patches, e])?
                    .data
                    .clone(),
            )
        } else {
            None
        };

        let mut layers = Vec::with_capacity(config.num_layers());
        for i in 0..config.num_layers() {
            let vb_layer = vb.pp("layers").pp(i);
            let dim = config.stage_dim(i);
            let res = config.stage_resolution(i);
            let mut blocks = Vec::with_capacity(config.depths[i]);
            for j in 0..config.depths[i] {
                blocks.push(load_block(
                    &vb_layer.pp("blocks").pp(j),
                    config,
                    i,
                    j,
                    format,
                )?);
            }
            let downsample = if i + 1 < config.num_layers() {
                if !res.is_multiple_of(2) {
                    return Err(ModelError::Config(format!(
                        "stage {i}: resolution {res} is odd, patch merging needs it even"
                    )));
                }
                let vb_down = vb_layer.pp("downsample");
                let norm_dim = if v2 { 2 * dim } else { 4 * dim };
                Some(PatchMerging {
                    input_resolution: res,
                    dim,
                    reduction: Linear::load(
                        &vb_down.pp("reduction"),
                        4 * dim,
                        2 * dim,
                        false,
                        format,
                    )?,
                    norm: LayerNorm::load(&vb_down.pp("norm"), norm_dim)?,
                    norm_first: !v2,
                })
            } else {
                None
            };
            layers.push(BasicLayer {
                dim,
                input_resolution: res,
                blocks,
                downsample,
            });
        }
        let nf = config.num_features();
        Ok(Self {
            config: config.clone(),
            patch_embed,
            absolute_pos_embed,
            layers,
            norm: LayerNorm::load(&vb.pp("norm"), nf)?,
            head: Linear::load(&vb.pp("head"), nf, config.num_classes, true, format)?,
            source: weights.source.clone(),
            precision,
        })
    }

    /// Number of parameters held (after folding).
    pub fn num_parameters(&self) -> usize {
        let lin = |l: &Linear| l.in_features * l.out_features + l.bias.as_ref().map_or(0, Vec::len);
        let ln = |n: &LayerNorm| n.weight.len() + n.bias.len();
        let mut total = lin(&self.patch_embed.proj)
            + self.patch_embed.norm.as_ref().map_or(0, ln)
            + self.absolute_pos_embed.as_ref().map_or(0, Vec::len)
            + ln(&self.norm)
            + lin(&self.head);
        for layer in &self.layers {
            for b in &layer.blocks {
                total += ln(&b.norm1)
                    + ln(&b.norm2)
                    + lin(&b.attn.qkv)
                    + lin(&b.attn.proj)
                    + lin(&b.mlp.fc1)
                    + lin(&b.mlp.fc2);
            }
            if let Some(d) = &layer.downsample {
                total += lin(&d.reduction) + ln(&d.norm);
            }
        }
        total
    }
}

/// Load block `j` of stage `i` (the module at `vb`) and fold its tables.
fn load_block(
    vb: &WeightsView,
    config: &SwinConfig,
    i: usize,
    j: usize,
    format: WeightFormat,
) -> Result<SwinTransformerBlock, ModelError> {
    let dim = config.stage_dim(i);
    let res = config.stage_resolution(i);
    // Official: when the grid fits in one window, window = resolution and no shift.
    let (window, shift) = (config.stage_window(i), config.block_shift(i, j));
    let hidden = config.mlp_hidden(i);
    let vb_attn = vb.pp("attn");
    let (qkv, logit_scale, relative_position_bias) = match config.version {
        SwinVersion::V1 => load_attention_v1(&vb_attn, config, i, format)?,
        SwinVersion::V2 => load_attention_v2(&vb_attn, config, i, format)?,
    };

    let attn_mask = tables::attn_mask(res, window, shift);
    Ok(SwinTransformerBlock {
        dim,
        input_resolution: res,
        window_size: window,
        shift_size: shift,
        pre_norm: config.version == SwinVersion::V1,
        norm1: LayerNorm::load(&vb.pp("norm1"), dim)?,
        attn: WindowAttention {
            dim,
            window_size: window,
            num_heads: config.num_heads[i],
            qkv,
            proj: Linear::load(&vb_attn.pp("proj"), dim, dim, true, format)?,
            cosine: config.version == SwinVersion::V2,
            logit_scale,
            relative_position_bias,
        },
        norm2: LayerNorm::load(&vb.pp("norm2"), dim)?,
        mlp: Mlp {
            fc1: Linear::load(&vb.pp("mlp").pp("fc1"), dim, hidden, true, format)?,
            fc2: Linear::load(&vb.pp("mlp").pp("fc2"), hidden, dim, true, format)?,
        },
        masked_windows: attn_mask
            .as_deref()
            .map(|m| tables::masked_windows(m, window * window)),
        attn_mask,
        token_index: TokenPermutation::new(tables::window_token_index(res, window, shift))
            .ok_or_else(|| {
                ModelError::Config(format!(
                    "stage {i}: the window token map of a {res}×{res} grid is not a permutation"
                ))
            })?,
    })
}

/// What a block's attention is folded into: qkv (with its bias), the per-head factor for q and the
/// `[num_heads, N, N]` position bias.
type FoldedAttention = (Linear, Vec<f32>, Vec<f32>);

/// V1 `WindowAttention` of stage `i` at `vb_attn`: qkv with its own bias, `head_dim^-0.5`, and
/// `relative_position_bias_table[relative_position_index]`.
fn load_attention_v1(
    vb_attn: &WeightsView,
    config: &SwinConfig,
    i: usize,
    format: WeightFormat,
) -> Result<FoldedAttention, ModelError> {
    let (dim, heads, window) = (
        config.stage_dim(i),
        config.num_heads[i],
        config.stage_window(i),
    );
    let qkv = Linear::load(&vb_attn.pp("qkv"), dim, 3 * dim, config.qkv_bias, format)?;
    let scale = ((dim / heads) as f32).powf(-0.5);
    let offsets = (2 * window - 1) * (2 * window - 1);
    let table = vb_attn.get("relative_position_bias_table", &[offsets, heads])?;
    Ok((
        qkv,
        vec![scale; heads],
        gather_bias_table(&table.data, window, heads),
    ))
}

/// `table.view(-1, nH)[relative_position_index]` permuted to `[nH, N, N]` (`table` is
/// `[(2w-1)², nH]`).
pub fn gather_bias_table(table: &[f32], window: usize, heads: usize) -> Vec<f32> {
    let index = tables::relative_position_index(window);
    let n = window * window;
    let mut bias = vec![0.0f32; heads * n * n];
    for h in 0..heads {
        for (ij, &idx) in index.iter().enumerate() {
            bias[h * n * n + ij] = table[idx * heads + h];
        }
    }
    bias
}

/// V2 `WindowAttention` of stage `i` at `vb_attn`: qkv with `cat(q_bias, 0, v_bias)`, the clamped
/// and exponentiated logit scale, and the folded continuous position bias.
fn load_attention_v2(
    vb_attn: &WeightsView,
    config: &SwinConfig,
    i: usize,
    format: WeightFormat,
) -> Result<FoldedAttention, ModelError> {
    let (dim, heads, window) = (
        config.stage_dim(i),
        config.num_heads[i],
        config.stage_window(i),
    );
    // qkv bias: cat(q_bias, zeros_like(v_bias), v_bias).
    let mut qkv = Linear::load(&vb_attn.pp("qkv"), dim, 3 * dim, false, format)?;
    if config.qkv_bias {
        let q_bias = vb_attn.get("q_bias", &[dim])?;
        let v_bias = vb_attn.get("v_bias", &[dim])?;
        let mut bias = Vec::with_capacity(3 * dim);
        bias.extend_from_slice(&q_bias.data);
        bias.extend(std::iter::repeat_n(0.0, dim));
        bias.extend_from_slice(&v_bias.data);
        qkv.bias = Some(bias);
    }

    // logit scale: exp(clamp(logit_scale, max=log(1/0.01))).
    let max_log = (1.0f32 / 0.01).ln();
    let logit_scale = vb_attn
        .get("logit_scale", &[heads, 1, 1])?
        .data
        .iter()
        .map(|&s| s.min(max_log).exp())
        .collect();

    // Continuous position bias, folded.
    let vb_cpb = vb_attn.pp("cpb_mlp");
    let fc_a = Linear::load(&vb_cpb.pp(0), 2, CPB_HIDDEN, true, WeightFormat::F32)?;
    let fc_b = Linear::load(&vb_cpb.pp(2), CPB_HIDDEN, heads, false, WeightFormat::F32)?;
    let relative_position_bias = fold_cpb(
        &fc_a,
        &fc_b,
        window,
        config.pretrained_window_sizes[i],
        heads,
    );
    Ok((qkv, logit_scale, relative_position_bias))
}

/// `16·sigmoid(cpb_mlp(relative_coords_table).view(-1, nH)[relative_position_index])`, permuted to
/// `[nH, N, N]`. The MLP runs once here: Linear(2, 512) → PluginReLU → Linear(512, nH, no bias).
pub fn fold_cpb(
    fc_a: &Linear,
    fc_b: &Linear,
    window: usize,
    pretrained_window: usize,
    heads: usize,
) -> Vec<f32> {
    let table = tables::relative_coords_table(window, pretrained_window);
    let rows = table.len() / 2;
    let mut hidden = vec![0.0f32; rows * CPB_HIDDEN];
    let bias_a = fc_a.bias.as_deref().unwrap_or(&[]);
    for r in 0..rows {
        let (x0, x1) = (table[2 * r], table[2 * r + 1]);
        for o in 0..CPB_HIDDEN {
            let b = bias_a.get(o).copied().unwrap_or(0.0);
            hidden[r * CPB_HIDDEN + o] = x0 * fc_a.weight_at(o, 0) + x1 * fc_a.weight_at(o, 1) + b;
        }
    }
    PluginRelu.forward_inplace(&mut hidden);
    let mut per_offset = vec![0.0f32; rows * heads];
    for r in 0..rows {
        let hrow = &hidden[r * CPB_HIDDEN..(r + 1) * CPB_HIDDEN];
        for h in 0..heads {
            let s: f64 = hrow
                .iter()
                .enumerate()
                .map(|(j, &a)| a as f64 * fc_b.weight_at(h, j) as f64)
                .sum();
            per_offset[r * heads + h] = s as f32;
        }
    }
    let index = tables::relative_position_index(window);
    let n = window * window;
    let mut bias = vec![0.0f32; heads * n * n];
    for h in 0..heads {
        for (ij, &idx) in index.iter().enumerate() {
            let x = per_offset[idx * heads + h];
            bias[h * n * n + ij] = 16.0 / (1.0 + (-x).exp());
        }
    }
    bias
}

// One model is shared by every engine instance through `Arc`.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<SwinModel>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layout::{official_state_dict, EntryKind};

    /// Two stages (shifted and unshifted blocks, patch merging), q/v biases, ape and patch norm:
    /// every kind of module the loader reads.
    fn small_config() -> SwinConfig {
        SwinConfig {
            version: crate::model::SwinVersion::V2,
            img_size: 32,
            patch_size: 2,
            in_chans: 3,
            num_classes: 5,
            embed_dim: 8,
            depths: vec![2, 1],
            num_heads: vec![2, 4],
            window_size: 4,
            mlp_ratio: 2.0,
            qkv_bias: true,
            ape: true,
            patch_norm: true,
            pretrained_window_sizes: vec![0, 0],
        }
    }

    #[test]
    fn a_one_token_window_without_a_pretrained_window_is_refused() {
        // 16 px, patch 2: stages of 8, 4, 2 and 1 tokens a side.
        let mut config = small_config();
        config.img_size = 16;
        config.depths = vec![1, 1, 1, 1];
        config.num_heads = vec![1, 1, 1, 1];
        config.pretrained_window_sizes = vec![0; 4];
        let weights = Weights::random(&config, 5);
        match SwinModel::new(&weights, &config) {
            Err(ModelError::Config(m)) => {
                assert!(m.contains("stage 3 has a 1×1 token grid"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        // With a pretrained window the official table divides by (pretrained - 1): fine.
        config.pretrained_window_sizes = vec![0, 0, 0, 4];
        SwinModel::new(&weights, &config).expect("loads");
    }

    #[test]
    fn the_loader_reads_every_parameter_of_the_official_layout() {
        let config = small_config();
        let weights = Weights::random(&config, 3);
        let parameters: Vec<_> = official_state_dict(&config)
            .into_iter()
            .filter(|e| e.kind == EntryKind::Parameter)
            .collect();
        assert_eq!(weights.tensors.len(), parameters.len());
        SwinModel::new(&weights, &config).expect("all parameters present");
        // Each parameter is needed: without it, loading fails and names exactly that key.
        for entry in &parameters {
            let mut without = weights.clone();
            without.tensors.remove(&entry.name);
            match SwinModel::new(&without, &config) {
                Err(ModelError::MissingTensor { name, expected }) => {
                    assert_eq!(name, entry.name);
                    assert_eq!(expected, entry.shape);
                }
                other => panic!("without {}: {other:?}", entry.name),
            }
        }
    }
}
