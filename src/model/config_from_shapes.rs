//! Recovering a [`SwinConfig`] from the tensor shapes of a state dict
//! ([`Weights::infer_config`]), completed by [`ConfigHints`].
//!
//! | field | from |
//! |---|---|
//! | `embed_dim`, `in_chans`, `patch_size` | `patch_embed.proj.weight` `[E, C, p, p]` |
//! | `depths` | the `layers.{i}.blocks.{j}` indices |
//! | `version` | V1 when `layers.0.blocks.0.attn.relative_position_bias_table` is there and `logit_scale` is not |
//! | `num_heads` | `layers.{i}.blocks.0.attn.logit_scale` `[H, 1, 1]` (V1: `relative_position_bias_table` `[(2w-1)², H]`) |
//! | `mlp_ratio` | `layers.0.blocks.0.mlp.fc1.weight` `[E·r, E]` |
//! | `window_size` | `relative_coords_table` `[1, 2w-1, 2w-1, 2]` or `relative_position_index` `[w², w²]` buffers, V1's `relative_position_bias_table` (largest stage window) |
//! | `img_size` | a shifted block's `attn_mask` `[nW, w², w²]`, else `absolute_pos_embed` `[1, N, E]` |
//! | `num_classes` | `head.weight` `[K, F]` |
//! | `qkv_bias`, `ape`, `patch_norm` | presence of `attn.q_bias` (V1: `attn.qkv.bias`), `absolute_pos_embed`, `patch_embed.norm.weight` |
//! | `pretrained_window_sizes` | inverting the log-spaced normalisation of `relative_coords_table` (V1: none) |
//!
//! Hints (CLI flags) take precedence over inference; a value neither inferable nor hinted is an
//! error naming the flag.

use std::collections::{BTreeMap, BTreeSet};

use super::keys;
use super::{ModelError, SwinConfig, SwinVersion, Weights, WeightsView};

/// Values given on the command line that complete or override what the tensor shapes say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigHints {
    /// `--img-size`: input side in pixels.
    pub img_size: Option<usize>,
    /// `--window-size`: attention window side.
    pub window_size: Option<usize>,
    /// `--num-classes`: classifier outputs.
    pub num_classes: Option<usize>,
    /// Window size used in pre-training, per stage (0 = none).
    pub pretrained_window_sizes: Option<Vec<usize>>,
    /// `--config FILE.yaml`: the official yacs configuration, which declares the architecture in
    /// place of what the checkpoint's files say (checked against the tensors all the same).
    pub yacs_config: Option<std::path::PathBuf>,
}

fn missing(weights: &Weights, what: &str) -> ModelError {
    ModelError::Format {
        path: weights.source.clone(),
        message: format!("cannot infer the model configuration: {what}"),
    }
}

/// `layers.{stage}.blocks.0.attn`: the attention of a stage's first block.
fn first_attention(weights: &Weights, stage: usize) -> WeightsView<'_> {
    weights.view().pp(keys::block(stage, 0).pp("attn"))
}

/// Exact integer square root, if `n` is a perfect square.
fn exact_sqrt(n: usize) -> Option<usize> {
    let r = (n as f64).sqrt().round() as usize;
    (r * r == n).then_some(r)
}

/// Window side of stage `stage` from its first block's position buffers, if the checkpoint has them.
fn stage_window_from_buffers(weights: &Weights, stage: usize) -> Option<usize> {
    let attn = first_attention(weights, stage);
    if let Some(t) = attn.tensor("relative_coords_table") {
        if let [1, n, m, 2] = t.shape[..] {
            if n == m && n % 2 == 1 {
                return Some(n.div_ceil(2));
            }
        }
    }
    if let Some(t) = attn.tensor("relative_position_index") {
        if let [n, m] = t.shape[..] {
            if n == m {
                return exact_sqrt(n);
            }
        }
    }
    // V1's learned table, a parameter: `[(2w-1)², H]`.
    if let Some(t) = attn.tensor("relative_position_bias_table") {
        if let [offsets, _] = t.shape[..] {
            if let Some(side) = exact_sqrt(offsets).filter(|s| s % 2 == 1) {
                return Some(side.div_ceil(2));
            }
        }
    }
    None
}

/// Which Swin the tensors are: V1 has a `relative_position_bias_table` and no `logit_scale`.
fn version_of(weights: &Weights) -> SwinVersion {
    let attn = first_attention(weights, 0);
    if attn.tensor("relative_position_bias_table").is_some() && attn.tensor("logit_scale").is_none()
    {
        SwinVersion::V1
    } else {
        SwinVersion::V2
    }
}

/// Pre-training window of stage `stage`, by inverting `WindowAttention`'s normalisation of
/// `relative_coords_table`: entry `[0, 0, 0, 0]` is `x = -(w-1) / (P-1) · 8` mapped to
/// `sign(x) · log2(|x| + 1) / log2(8)`, where `P` is the pre-training window (or `w` when none).
/// Returns `Some(0)` when `P == w` (the same table as no pre-training window).
fn pretrained_window_from_table(weights: &Weights, stage: usize, window: usize) -> Option<usize> {
    let t = first_attention(weights, stage).tensor("relative_coords_table")?;
    if window <= 1 {
        return Some(0);
    }
    let v = f64::from(*t.data.first()?).abs();
    let x = (3.0 * v).exp2() - 1.0; // |x| = (w-1)/(P-1)·8
    if !(x.is_finite() && x > 0.0) {
        return None;
    }
    let p = (8.0 * (window - 1) as f64 / x).round() as usize + 1;
    Some(if p == window { 0 } else { p })
}

/// Image side implied by the first shifted block's `attn_mask` `[nW, w², w²]` in any stage.
fn img_size_from_masks(weights: &Weights, depths: &[usize], patch_size: usize) -> Option<usize> {
    let root = weights.view();
    for (stage, &depth) in depths.iter().enumerate() {
        for block in 0..depth {
            let Some(t) = root.pp(keys::block(stage, block)).tensor("attn_mask") else {
                continue;
            };
            if let [windows, n, m] = t.shape[..] {
                if let (Some(per_side), Some(w), true) =
                    (exact_sqrt(windows), exact_sqrt(n), n == m)
                {
                    return Some(((per_side * w) << stage) * patch_size);
                }
            }
        }
    }
    None
}

impl Weights {
    /// Infer the configuration from tensor shapes (embed dim, depths, heads, window, image size,
    /// classes, qkv bias, ape, patch norm, pretrained window sizes), completed or overridden by
    /// `hints` (the CLI flags), then validate it and [`check`](Self::check) every tensor.
    /// Fails with a message naming what could not be inferred and the flag that supplies it.
    pub fn infer_config(&self, hints: &ConfigHints) -> Result<SwinConfig, ModelError> {
        let config = infer_from_shapes(self, hints)?;
        self.check(&config)?;
        Ok(config)
    }
}

/// Infer the configuration of `weights` (no tensor check: see [`Weights::infer_config`]).
fn infer_from_shapes(weights: &Weights, hints: &ConfigHints) -> Result<SwinConfig, ModelError> {
    let tensors = &weights.tensors;
    let root = weights.view();
    let proj = root
        .pp("patch_embed")
        .pp("proj")
        .tensor("weight")
        .ok_or_else(|| missing(weights, "tensor `patch_embed.proj.weight` is missing"))?;
    let [embed_dim, in_chans, patch_size, patch_w] = proj.shape[..] else {
        return Err(missing(
            weights,
            &format!(
                "`patch_embed.proj.weight` has shape {:?}, expected [embed_dim, in_chans, patch, patch]",
                proj.shape
            ),
        ));
    };
    if patch_size != patch_w || patch_size == 0 {
        return Err(missing(
            weights,
            &format!("patch kernel {patch_size}×{patch_w} is not square"),
        ));
    }

    // depths: blocks per `layers.{i}`. Indices come from the file: they must run 0..n without gaps
    // (checked before anything is sized by them, so `layers.1099511627776.…` is an error, not an
    // allocation of 2^40 stages).
    let mut blocks_per_stage: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut stages: BTreeSet<usize> = BTreeSet::new();
    for name in tensors.keys() {
        if let Some(stage) = keys::stage_index(name) {
            stages.insert(stage);
        }
        if let Some((stage, block)) = keys::block_index(name) {
            blocks_per_stage.entry(stage).or_default().insert(block);
        }
    }
    if stages.is_empty() {
        return Err(missing(weights, "no `layers.{i}.blocks.{j}` tensors found"));
    }
    let num_layers = stages.len();
    let last_stage = stages.last().copied().unwrap_or(0);
    if last_stage != num_layers - 1 {
        let gap = (0..num_layers).find(|i| !stages.contains(i)).unwrap_or(0);
        return Err(missing(
            weights,
            &format!(
                "the `layers.{{i}}` indices do not run 0..{num_layers}: there is no `layers.{gap}` \
                 but there is a `layers.{last_stage}`"
            ),
        ));
    }
    if let Some(stage) = (0..num_layers).find(|i| !blocks_per_stage.contains_key(i)) {
        return Err(missing(weights, &format!("stage {stage} has no blocks")));
    }
    let mut depths = Vec::with_capacity(num_layers);
    for (stage, blocks) in blocks_per_stage.range(..num_layers) {
        let depth = blocks.len();
        if blocks.last() != Some(&(depth - 1)) {
            return Err(missing(
                weights,
                &format!(
                    "the blocks of stage {stage} are not numbered 0..{depth} (up to `blocks.{}`)",
                    blocks.last().copied().unwrap_or(0)
                ),
            ));
        }
        depths.push(depth);
    }

    let version = version_of(weights);
    let num_heads = (0..num_layers)
        .map(|i| {
            let attn = first_attention(weights, i);
            let (leaf, expected) = match version {
                SwinVersion::V1 => ("relative_position_bias_table", "[(2w-1)², num_heads]"),
                SwinVersion::V2 => ("logit_scale", "[num_heads, 1, 1]"),
            };
            let name = attn.path().key(leaf);
            match (version, attn.tensor(leaf).map(|t| &t.shape[..])) {
                (SwinVersion::V2, Some(&[h, 1, 1])) | (SwinVersion::V1, Some(&[_, h])) => Ok(h),
                (_, Some(shape)) => Err(missing(
                    weights,
                    &format!("`{name}` has shape {shape:?}, expected {expected}"),
                )),
                (_, None) => Err(missing(weights, &format!("tensor `{name}` is missing"))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;

    let fc1_module = keys::block(0, 0).pp("mlp").pp("fc1");
    let fc1 = fc1_module.key("weight");
    let mlp_ratio = match root.pp(&fc1_module).tensor("weight").map(|t| &t.shape[..]) {
        Some(&[hidden, dim]) if dim > 0 => hidden as f64 / dim as f64,
        _ => {
            return Err(missing(
                weights,
                &format!("tensor `{fc1}` is missing or not 2-D"),
            ))
        }
    };

    let stage_windows: Vec<Option<usize>> = (0..num_layers)
        .map(|i| stage_window_from_buffers(weights, i))
        .collect();
    let window_size = match hints.window_size {
        Some(w) => w,
        None => stage_windows
            .iter()
            .flatten()
            .copied()
            .max()
            .ok_or_else(|| {
                missing(
                weights,
                "the window size cannot be inferred (the checkpoint has no `relative_coords_table`, \
                 `relative_position_index` or `relative_position_bias_table`); pass --window-size",
            )
            })?,
    };

    let img_size = match hints.img_size {
        Some(s) => s,
        None => img_size_from_masks(weights, &depths, patch_size)
            .or_else(|| {
                let t = root.tensor("absolute_pos_embed")?;
                match t.shape[..] {
                    [1, n, _] => exact_sqrt(n).map(|side| side * patch_size),
                    _ => None,
                }
            })
            .ok_or_else(|| {
                missing(
                    weights,
                    "the image size cannot be inferred (no shifted block's `attn_mask` buffer and no \
                     `absolute_pos_embed`); pass --img-size",
                )
            })?,
    };

    let num_classes = match hints.num_classes {
        Some(k) => k,
        None => match root.pp("head").tensor("weight").map(|t| &t.shape[..]) {
            Some(&[k, _]) => k,
            _ => {
                return Err(missing(
                    weights,
                    "tensor `head.weight` is missing or not 2-D, so the number of classes is \
                     unknown; pass --num-classes",
                ))
            }
        },
    };

    let qkv_bias = match version {
        SwinVersion::V1 => first_attention(weights, 0)
            .pp("qkv")
            .tensor("bias")
            .is_some(),
        SwinVersion::V2 => first_attention(weights, 0).tensor("q_bias").is_some(),
    };
    let mut config = SwinConfig {
        version,
        img_size,
        patch_size,
        in_chans,
        num_classes,
        embed_dim,
        depths,
        num_heads,
        window_size,
        mlp_ratio,
        qkv_bias,
        ape: root.tensor("absolute_pos_embed").is_some(),
        patch_norm: root.pp("patch_embed").pp("norm").tensor("weight").is_some(),
        pretrained_window_sizes: vec![0; num_layers],
    };
    config.validate()?;

    config.pretrained_window_sizes = match &hints.pretrained_window_sizes {
        Some(p) => {
            if p.len() != num_layers {
                return Err(ModelError::Config(format!(
                    "{} pretrained window sizes given for {num_layers} stages",
                    p.len()
                )));
            }
            p.clone()
        }
        None if version == SwinVersion::V1 => vec![0; num_layers],
        None => (0..num_layers)
            .map(|i| {
                pretrained_window_from_table(weights, i, config.stage_window(i)).unwrap_or_else(
                    || {
                        tracing::warn!(
                            stage = i,
                            "no usable `relative_coords_table` buffer: assuming no pre-training \
                             window (pretrained_window_size = 0)"
                        );
                        0
                    },
                )
            })
            .collect(),
    };
    tracing::debug!(?config, "inferred model configuration");
    Ok(config)
}
