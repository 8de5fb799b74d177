//! The official state-dict layout of `SwinTransformer` (V1) and `SwinTransformerV2` for a
//! configuration: every key `model.state_dict()` holds, with its shape, in the order PyTorch lists
//! them (a module's own parameters, then its own buffers, then its children in registration order).
//!
//! Read beside `models/swin_transformer_v2.py` (commit d19503d7): `SwinTransformerV2.__init__`
//! registers `absolute_pos_embed` (if `ape`), `patch_embed`, `layers`, `norm`, `head`;
//! `SwinTransformerBlock` registers the `attn_mask` buffer (only when shifted: a `None` buffer is
//! not in the state dict), `norm1`, `attn`, `norm2`, `mlp`; `WindowAttention` registers
//! `logit_scale`, `q_bias`/`v_bias`, the `relative_coords_table` and `relative_position_index`
//! buffers, `cpb_mlp`, `qkv`, `proj`.
//!
//! And beside `models/swin_transformer.py` (V1, same commit): the same modules, but V1's
//! `WindowAttention` registers `relative_position_bias_table` `[(2w−1)², H]`, the
//! `relative_position_index` buffer, `qkv` (with its own `[3C]` bias when `qkv_bias`) and `proj`; and
//! V1's `PatchMerging` normalises the 4C concatenation before the reduction (`norm` is 4C wide).

use super::keys::{self, ModulePath};
use super::{SwinConfig, SwinVersion};

/// Hidden width of the continuous position bias MLP (`nn.Linear(2, 512)` in `WindowAttention`).
pub const CPB_HIDDEN: usize = 512;

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

/// Entries in PyTorch's order, named through [`ModulePath`].
#[derive(Default)]
struct Entries(Vec<StateDictEntry>);

impl Entries {
    fn add(&mut self, module: &ModulePath, leaf: &str, shape: Vec<usize>, kind: EntryKind) {
        self.0.push(StateDictEntry {
            name: module.key(leaf),
            shape,
            kind,
        });
    }

    fn param(&mut self, module: &ModulePath, leaf: &str, shape: Vec<usize>) {
        self.add(module, leaf, shape, EntryKind::Parameter);
    }

    fn buffer(&mut self, module: &ModulePath, leaf: &str, shape: Vec<usize>) {
        self.add(module, leaf, shape, EntryKind::Buffer);
    }

    /// `nn.Linear(in, out, bias)` at `module`.
    fn linear(&mut self, module: &ModulePath, in_features: usize, out_features: usize, bias: bool) {
        self.param(module, "weight", vec![out_features, in_features]);
        if bias {
            self.param(module, "bias", vec![out_features]);
        }
    }

    /// `nn.LayerNorm(dim)` at `module`.
    fn layer_norm(&mut self, module: &ModulePath, dim: usize) {
        self.param(module, "weight", vec![dim]);
        self.param(module, "bias", vec![dim]);
    }
}

/// Every entry of `SwinTransformer(config).state_dict()` (V1) or `SwinTransformerV2(config)
/// .state_dict()` (V2), in PyTorch's order.
pub fn official_state_dict(config: &SwinConfig) -> Vec<StateDictEntry> {
    let mut out = Entries::default();
    let root = ModulePath::root();
    let e = config.embed_dim;
    let p = config.patch_size;
    let patches = config.stage_resolution(0);
    if config.ape {
        out.param(&root, "absolute_pos_embed", vec![1, patches * patches, e]);
    }
    let patch_embed = root.pp("patch_embed");
    let proj = patch_embed.pp("proj");
    out.param(&proj, "weight", vec![e, config.in_chans, p, p]);
    out.param(&proj, "bias", vec![e]);
    if config.patch_norm {
        out.layer_norm(&patch_embed.pp("norm"), e);
    }
    for stage in 0..config.num_layers() {
        basic_layer_entries(config, stage, &mut out);
    }
    let f = config.num_features();
    out.layer_norm(&root.pp("norm"), f);
    out.linear(&root.pp("head"), f, config.num_classes, true);
    out.0
}

/// Entries of `layers.{stage}` (`BasicLayer`): its blocks, then its `downsample` (`PatchMerging`).
fn basic_layer_entries(config: &SwinConfig, stage: usize, out: &mut Entries) {
    let dim = config.stage_dim(stage);
    let heads = config.num_heads[stage];
    let res = config.stage_resolution(stage);
    let win = config.stage_window(stage);
    let tokens = win * win;
    for block in 0..config.depths[stage] {
        let b = keys::block(stage, block);
        if config.block_shift(stage, block) > 0 {
            let windows = (res / win) * (res / win);
            out.buffer(&b, "attn_mask", vec![windows, tokens, tokens]);
        }
        out.layer_norm(&b.pp("norm1"), dim);
        let attn = b.pp("attn");
        if config.version == SwinVersion::V1 {
            let offsets = (2 * win - 1) * (2 * win - 1);
            out.param(&attn, "relative_position_bias_table", vec![offsets, heads]);
            out.buffer(&attn, "relative_position_index", vec![tokens, tokens]);
            out.linear(&attn.pp("qkv"), dim, 3 * dim, config.qkv_bias);
            out.linear(&attn.pp("proj"), dim, dim, true);
            mlp_entries(config, stage, &b, out);
            continue;
        }
        out.param(&attn, "logit_scale", vec![heads, 1, 1]);
        if config.qkv_bias {
            out.param(&attn, "q_bias", vec![dim]);
            out.param(&attn, "v_bias", vec![dim]);
        }
        out.buffer(
            &attn,
            "relative_coords_table",
            vec![1, 2 * win - 1, 2 * win - 1, 2],
        );
        out.buffer(&attn, "relative_position_index", vec![tokens, tokens]);
        let cpb = attn.pp("cpb_mlp");
        out.linear(&cpb.pp(0), 2, CPB_HIDDEN, true);
        out.linear(&cpb.pp(2), CPB_HIDDEN, heads, false);
        out.linear(&attn.pp("qkv"), dim, 3 * dim, false);
        out.linear(&attn.pp("proj"), dim, dim, true);
        mlp_entries(config, stage, &b, out);
    }
    if stage + 1 < config.num_layers() {
        let down = keys::stage(stage).pp("downsample");
        out.linear(&down.pp("reduction"), 4 * dim, 2 * dim, false);
        // V1 normalises the 4C concatenation, V2 the 2C reduction.
        let norm_dim = match config.version {
            SwinVersion::V1 => 4 * dim,
            SwinVersion::V2 => 2 * dim,
        };
        out.layer_norm(&down.pp("norm"), norm_dim);
    }
}

/// `norm2` and `mlp` of the block at `b`.
fn mlp_entries(config: &SwinConfig, stage: usize, b: &ModulePath, out: &mut Entries) {
    let dim = config.stage_dim(stage);
    let hidden = config.mlp_hidden(stage);
    out.layer_norm(&b.pp("norm2"), dim);
    let mlp = b.pp("mlp");
    out.linear(&mlp.pp("fc1"), dim, hidden, true);
    out.linear(&mlp.pp("fc2"), hidden, dim, true);
}
