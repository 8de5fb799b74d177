//! State-dict keys, composed the way PyTorch names a module tree: `layers.0.blocks.1.attn.qkv.weight`
//! is the path `layers` → `0` → `blocks` → `1` → `attn` → `qkv` plus the leaf `weight`.
//!
//! [`ModulePath`] is the one place keys are put together: the layout ([`super::layout`]), the
//! configuration inference ([`super::config_from_shapes`]) and the engines (through
//! [`super::WeightsView`], the prefix-scoped view modelled on candle's `VarBuilder::pp`) all descend
//! with [`ModulePath::pp`] and name only their own leaves.

use std::fmt::Display;

/// The path of a module in the state dict (empty at the root).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ModulePath(String);

impl ModulePath {
    /// The root module (`SwinTransformerV2` itself).
    pub fn root() -> Self {
        Self(String::new())
    }

    /// The child `name` (a submodule name or a `ModuleList` index).
    pub fn pp(&self, name: impl Display) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// The full key of this module's parameter or buffer `leaf`.
    pub fn key(&self, leaf: &str) -> String {
        if self.0.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.0)
        }
    }

    /// The path as a string (`""` at the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Display for ModulePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `layers.{stage}`: one `BasicLayer`.
pub fn stage(stage: usize) -> ModulePath {
    ModulePath::root().pp("layers").pp(stage)
}

/// `layers.{stage}.blocks.{block}`: one `SwinTransformerBlock`.
pub fn block(stage_index: usize, block: usize) -> ModulePath {
    stage(stage_index).pp("blocks").pp(block)
}

/// Stage and block indices of a `layers.{i}.blocks.{j}.…` key.
pub fn block_index(key: &str) -> Option<(usize, usize)> {
    let rest = key.strip_prefix("layers.")?;
    let (stage, rest) = rest.split_once('.')?;
    let rest = rest.strip_prefix("blocks.")?;
    let (block, _) = rest.split_once('.')?;
    Some((stage.parse().ok()?, block.parse().ok()?))
}

/// Stage index of a `layers.{i}.…` key.
pub fn stage_index(key: &str) -> Option<usize> {
    let rest = key.strip_prefix("layers.")?;
    let (stage, _) = rest.split_once('.')?;
    stage.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compose_like_pytorch_module_names() {
        assert_eq!(ModulePath::root().key("norm.weight"), "norm.weight");
        assert_eq!(ModulePath::root().pp("head").key("bias"), "head.bias");
        assert_eq!(
            block(2, 5).pp("attn").pp("qkv").key("weight"),
            "layers.2.blocks.5.attn.qkv.weight"
        );
        assert_eq!(
            stage(1).pp("downsample").key("reduction.weight"),
            "layers.1.downsample.reduction.weight"
        );
    }

    #[test]
    fn indices_are_parsed_back_from_keys() {
        assert_eq!(
            block_index("layers.3.blocks.17.mlp.fc1.weight"),
            Some((3, 17))
        );
        assert_eq!(block_index("layers.3.downsample.norm.weight"), None);
        assert_eq!(block_index("layers.x.blocks.1.norm1.weight"), None);
        assert_eq!(stage_index("layers.3.downsample.norm.weight"), Some(3));
        assert_eq!(stage_index("norm.weight"), None);
    }
}
