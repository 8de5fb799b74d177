//! The official state-dict layout of `SwinTransformerV2` for a configuration: every key
//! `model.state_dict()` holds, with its shape, in the order PyTorch lists them
//! (a module's own parameters, then its own buffers, then its children in registration order).
//!
//! Read beside `models/swin_transformer_v2.py` (commit d19503d7): `SwinTransformerV2.__init__`
//! registers `absolute_pos_embed` (if `ape`), `patch_embed`, `layers`, `norm`, `head`;
//! `SwinTransformerBlock` registers the `attn_mask` buffer (only when shifted: a `None` buffer is
//! not in the state dict), `norm1`, `attn`, `norm2`, `mlp`; `WindowAttention` registers
//! `logit_scale`, `q_bias`/`v_bias`, the `relative_coords_table` and `relative_position_index`
//! buffers, `cpb_mlp`, `qkv`, `proj`.

use super::SwinV2Config;

/// Whether a state-dict entry is a learned parameter or a buffer derived from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `nn.Parameter`: learned, must be in every checkpoint.
    Parameter,
    /// `register_buffer`: computed from the configuration (`relative_coords_table`,
    /// `relative_position_index`, `attn_mask`); optional in a checkpoint, the engines recompute it.
    Buffer,
}

/// One entry of the official state dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDictEntry {
    /// Official key, e.g. `layers.0.blocks.1.attn.qkv.weight`.
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Parameter or buffer.
    pub kind: EntryKind,
}

/// Whether `name` is one of the buffers `SwinTransformerV2` registers (by its last component).
pub fn is_buffer_name(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    matches!(
        last,
        "relative_coords_table" | "relative_position_index" | "attn_mask"
    )
}

/// Shift of block `block` in stage `stage`, as `BasicLayer` and `SwinTransformerBlock` decide it:
/// `window_size // 2` for odd blocks, forced to 0 when the stage resolution is not larger than the window.
pub fn block_shift(config: &SwinV2Config, stage: usize, block: usize) -> usize {
    if config.stage_resolution(stage) <= config.window_size || block.is_multiple_of(2) {
        0
    } else {
        config.window_size / 2
    }
}

/// Every entry of `SwinTransformerV2(config).state_dict()`, in PyTorch's order.
pub fn official_state_dict(config: &SwinV2Config) -> Vec<StateDictEntry> {
    let mut out = Vec::new();
    let param = |name: &str, shape: Vec<usize>| StateDictEntry {
        name: name.to_string(),
        shape,
        kind: EntryKind::Parameter,
    };
    let e = config.embed_dim;
    let p = config.patch_size;
    let patches = config.stage_resolution(0);
    if config.ape {
        out.push(param("absolute_pos_embed", vec![1, patches * patches, e]));
    }
    out.push(param(
        "patch_embed.proj.weight",
        vec![e, config.in_chans, p, p],
    ));
    out.push(param("patch_embed.proj.bias", vec![e]));
    if config.patch_norm {
        out.push(param("patch_embed.norm.weight", vec![e]));
        out.push(param("patch_embed.norm.bias", vec![e]));
    }
    for stage in 0..config.num_layers() {
        out.extend(basic_layer_entries(config, stage));
    }
    let f = config.num_features();
    out.push(param("norm.weight", vec![f]));
    out.push(param("norm.bias", vec![f]));
    out.push(param("head.weight", vec![config.num_classes, f]));
    out.push(param("head.bias", vec![config.num_classes]));
    out
}

/// Entries of `layers.{stage}` (`BasicLayer`): its blocks, then its `downsample` (`PatchMerging`).
fn basic_layer_entries(config: &SwinV2Config, stage: usize) -> Vec<StateDictEntry> {
    let mut out = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, kind: EntryKind| {
        out.push(StateDictEntry { name, shape, kind })
    };
    let dim = config.embed_dim << stage;
    let heads = config.num_heads[stage];
    let res = config.stage_resolution(stage);
    let win = config.stage_window(stage);
    let tokens = win * win;
    let hidden = (dim as f64 * config.mlp_ratio) as usize;
    let pf = |s: &str| format!("layers.{stage}.{s}");
    for block in 0..config.depths[stage] {
        let b = |s: &str| pf(&format!("blocks.{block}.{s}"));
        if block_shift(config, stage, block) > 0 {
            let windows = (res / win) * (res / win);
            add(
                b("attn_mask"),
                vec![windows, tokens, tokens],
                EntryKind::Buffer,
            );
        }
        add(b("norm1.weight"), vec![dim], EntryKind::Parameter);
        add(b("norm1.bias"), vec![dim], EntryKind::Parameter);
        add(
            b("attn.logit_scale"),
            vec![heads, 1, 1],
            EntryKind::Parameter,
        );
        if config.qkv_bias {
            add(b("attn.q_bias"), vec![dim], EntryKind::Parameter);
            add(b("attn.v_bias"), vec![dim], EntryKind::Parameter);
        }
        add(
            b("attn.relative_coords_table"),
            vec![1, 2 * win - 1, 2 * win - 1, 2],
            EntryKind::Buffer,
        );
        add(
            b("attn.relative_position_index"),
            vec![tokens, tokens],
            EntryKind::Buffer,
        );
        add(
            b("attn.cpb_mlp.0.weight"),
            vec![512, 2],
            EntryKind::Parameter,
        );
        add(b("attn.cpb_mlp.0.bias"), vec![512], EntryKind::Parameter);
        add(
            b("attn.cpb_mlp.2.weight"),
            vec![heads, 512],
            EntryKind::Parameter,
        );
        add(
            b("attn.qkv.weight"),
            vec![3 * dim, dim],
            EntryKind::Parameter,
        );
        add(b("attn.proj.weight"), vec![dim, dim], EntryKind::Parameter);
        add(b("attn.proj.bias"), vec![dim], EntryKind::Parameter);
        add(b("norm2.weight"), vec![dim], EntryKind::Parameter);
        add(b("norm2.bias"), vec![dim], EntryKind::Parameter);
        add(b("mlp.fc1.weight"), vec![hidden, dim], EntryKind::Parameter);
        add(b("mlp.fc1.bias"), vec![hidden], EntryKind::Parameter);
        add(b("mlp.fc2.weight"), vec![dim, hidden], EntryKind::Parameter);
        add(b("mlp.fc2.bias"), vec![dim], EntryKind::Parameter);
    }
    if stage + 1 < config.num_layers() {
        add(
            pf("downsample.reduction.weight"),
            vec![2 * dim, 4 * dim],
            EntryKind::Parameter,
        );
        add(
            pf("downsample.norm.weight"),
            vec![2 * dim],
            EntryKind::Parameter,
        );
        add(
            pf("downsample.norm.bias"),
            vec![2 * dim],
            EntryKind::Parameter,
        );
    }
    out
}
