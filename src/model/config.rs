//! Swin hyper-parameters (V1 and V2), named as in the official `SwinTransformer.__init__` and
//! `SwinTransformerV2.__init__` (microsoft/Swin-Transformer `models/swin_transformer.py` and
//! `models/swin_transformer_v2.py`, commit d19503d7).

/// Which Swin: the two differ in the block (pre-norm vs res-post-norm), the attention (scaled dot
/// product with a learned bias table vs cosine with a continuous position bias), the qkv bias and
/// the patch merging (norm then reduction vs reduction then norm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwinVersion {
    /// Swin Transformer (V1): `models/swin_transformer.py`.
    V1,
    /// Swin Transformer V2: `models/swin_transformer_v2.py`.
    V2,
}

impl SwinVersion {
    /// `swin` or `swinv2`, as the official `MODEL.TYPE` and Hugging Face's `model_type` spell it.
    pub fn model_type(self) -> &'static str {
        match self {
            SwinVersion::V1 => "swin",
            SwinVersion::V2 => "swinv2",
        }
    }
}

/// Architecture of a Swin classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct SwinConfig {
    /// V1 or V2.
    pub version: SwinVersion,
    /// Input image side (square), `img_size`.
    pub img_size: usize,
    /// Patch side, `patch_size`.
    pub patch_size: usize,
    /// Input channels, `in_chans`.
    pub in_chans: usize,
    /// Output classes, `num_classes`.
    pub num_classes: usize,
    /// Channels after patch embedding, `embed_dim`.
    pub embed_dim: usize,
    /// Blocks per stage, `depths`.
    pub depths: Vec<usize>,
    /// Attention heads per stage, `num_heads`.
    pub num_heads: Vec<usize>,
    /// Window side, `window_size`.
    pub window_size: usize,
    /// MLP hidden ratio, `mlp_ratio`.
    pub mlp_ratio: f64,
    /// Whether q and v carry biases, `qkv_bias`.
    pub qkv_bias: bool,
    /// Absolute position embedding, `ape`.
    pub ape: bool,
    /// LayerNorm after patch embedding, `patch_norm`.
    pub patch_norm: bool,
    /// Window size used in pre-training per stage (0 = none), `pretrained_window_sizes` (V2 only;
    /// all zero for V1).
    pub pretrained_window_sizes: Vec<usize>,
}

impl SwinConfig {
    /// SwinV2-T, window 8, 256×256: the released `swinv2_tiny_patch4_window8_256`.
    pub fn tiny_window8_256() -> Self {
        Self {
            version: SwinVersion::V2,
            img_size: 256,
            patch_size: 4,
            in_chans: 3,
            num_classes: 1000,
            embed_dim: 96,
            depths: vec![2, 2, 6, 2],
            num_heads: vec![3, 6, 12, 24],
            window_size: 8,
            mlp_ratio: 4.0,
            qkv_bias: true,
            ape: false,
            patch_norm: true,
            pretrained_window_sizes: vec![0, 0, 0, 0],
        }
    }

    /// A name in the style of the official configs, e.g. `swinv2_tiny_patch4_window8_256` or
    /// `swin_tiny_patch4_window7_224` (`custom` replaces the size when embed dim and depths match
    /// no released model).
    pub fn name(&self) -> String {
        let size = match (self.embed_dim, self.depths.as_slice()) {
            (96, [2, 2, 6, 2]) => "tiny",
            (96, [2, 2, 18, 2]) => "small",
            (128, [2, 2, 18, 2]) => "base",
            (192, [2, 2, 18, 2]) => "large",
            _ => "custom",
        };
        format!(
            "{}_{size}_patch{}_window{}_{}",
            self.version.model_type(),
            self.patch_size,
            self.window_size,
            self.img_size
        )
    }

    /// Number of stages (`len(depths)`).
    pub fn num_layers(&self) -> usize {
        self.depths.len()
    }

    /// Channels of the final stage: `embed_dim * 2^(num_layers-1)`.
    pub fn num_features(&self) -> usize {
        self.embed_dim << (self.num_layers().saturating_sub(1))
    }

    /// Channels of stage `i`: `embed_dim * 2^i`.
    pub fn stage_dim(&self, i: usize) -> usize {
        self.embed_dim << i
    }

    /// Hidden width of the MLPs of stage `i`: `int(dim * mlp_ratio)`.
    pub fn mlp_hidden(&self, i: usize) -> usize {
        (self.stage_dim(i) as f64 * self.mlp_ratio) as usize
    }

    /// Cyclic shift of block `block` in stage `stage`, as `BasicLayer` and `SwinTransformerBlock`
    /// decide it: `window_size // 2` for odd blocks, forced to 0 when the stage resolution is not
    /// larger than the window.
    pub fn block_shift(&self, stage: usize, block: usize) -> usize {
        if self.stage_resolution(stage) <= self.window_size || block.is_multiple_of(2) {
            0
        } else {
            self.window_size / 2
        }
    }

    /// Token grid side of stage `i` (`patches_resolution // 2^i`).
    pub fn stage_resolution(&self, i: usize) -> usize {
        (self.img_size / self.patch_size) >> i
    }

    /// Window size actually used in stage `i`: the official block sets `window_size = min(input_resolution)`
    /// and `shift_size = 0` when the resolution is not larger than the window.
    pub fn stage_window(&self, i: usize) -> usize {
        self.window_size.min(self.stage_resolution(i))
    }

    /// Floating-point operations of one forward pass of one image, counting 2·M·K·N for every
    /// matrix product: the patch embedding (a `patch_size`-strided convolution), every linear layer
    /// (qkv, proj, fc1, fc2, the patch-merging reductions, the head) and the two attention products
    /// per window and head (q·kᵀ and attn·v). Norms, softmax, GELU and the position-bias MLP
    /// (folded at load) are not counted. SwinV2-T/8 @256: 11.84 GFLOP, 11.3 of it in the linear
    /// layers of the stages.
    pub fn flops_per_image(&self) -> u64 {
        let mm = |m: usize, k: usize, n: usize| 2 * (m as u64) * (k as u64) * (n as u64);
        let patches = self.stage_resolution(0).pow(2);
        let mut flops = mm(
            patches,
            self.in_chans * self.patch_size * self.patch_size,
            self.embed_dim,
        );
        for (i, &depth) in self.depths.iter().enumerate() {
            let tokens = self.stage_resolution(i).pow(2);
            let dim = self.stage_dim(i);
            let hidden = self.mlp_hidden(i);
            let window = self.stage_window(i).pow(2);
            let head_dim = dim / self.num_heads[i].max(1);
            let windows = tokens / window.max(1);
            let linear = mm(tokens, dim, 3 * dim)
                + mm(tokens, dim, dim)
                + mm(tokens, dim, hidden)
                + mm(tokens, hidden, dim);
            let attention = (windows * self.num_heads[i]) as u64 * 2 * mm(window, head_dim, window);
            flops += depth as u64 * (linear + attention);
            if i + 1 < self.num_layers() {
                flops += mm(tokens / 4, 4 * dim, 2 * dim);
            }
        }
        flops + mm(1, self.num_features(), self.num_classes)
    }

    /// Check internal consistency; the message names what is wrong.
    pub fn validate(&self) -> Result<(), super::ModelError> {
        let err = |m: String| Err(super::ModelError::Config(m));
        if self.depths.is_empty() || self.depths.len() != self.num_heads.len() {
            return err(format!(
                "depths {:?} and num_heads {:?} must be non-empty and of equal length",
                self.depths, self.num_heads
            ));
        }
        if self.patch_size == 0 || !self.img_size.is_multiple_of(self.patch_size) {
            return err(format!(
                "img_size {} is not a multiple of patch_size {}",
                self.img_size, self.patch_size
            ));
        }
        for i in 0..self.num_layers() {
            let res = self.stage_resolution(i);
            let win = self.stage_window(i);
            if res == 0 || win == 0 || !res.is_multiple_of(win) {
                return err(format!(
                    "stage {i}: resolution {res} is not a multiple of window {win}"
                ));
            }
            if i + 1 < self.num_layers() && !res.is_multiple_of(2) {
                return err(format!(
                    "stage {i}: resolution {res} is odd, so patch merging cannot halve it"
                ));
            }
            let dim = self.stage_dim(i);
            if self.num_heads[i] == 0 || !dim.is_multiple_of(self.num_heads[i]) {
                return err(format!(
                    "stage {i}: dim {dim} not divisible by {} heads",
                    self.num_heads[i]
                ));
            }
        }
        if self.num_classes == 0 {
            return err("num_classes must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SwinConfig;

    #[test]
    fn flops_of_swinv2_tiny_match_the_published_count() {
        let flops = SwinConfig::tiny_window8_256().flops_per_image() as f64 / 1e9;
        // The published count for SwinV2-T/8 @256: 11.85 GFLOP.
        assert!((flops - 11.85).abs() < 0.05, "{flops} GFLOP");
        // Hand count of the stages' linear layers: 2·L·C·(3C + C + 4C + 4C) per block, plus the
        // merging reductions 2·(L/4)·4C·2C.
        let mut linear = 0u64;
        for (l, c, depth) in [
            (4096u64, 96u64, 2u64),
            (1024, 192, 2),
            (256, 384, 6),
            (64, 768, 2),
        ] {
            linear += depth * 2 * l * c * 12 * c;
            if l > 64 {
                linear += 2 * (l / 4) * (4 * c) * (2 * c);
            }
        }
        assert_eq!(linear, 11_324_620_800);
        let config = SwinConfig::tiny_window8_256();
        let rest = config.flops_per_image() - linear;
        // patch embed 37.7 M + attention 478 M + head 1.5 M
        assert_eq!(rest, 37_748_736 + 478_150_656 + 1_536_000);
    }
}
