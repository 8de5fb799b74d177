//! The arithmetic precision an engine computes in (`--precision`).

/// What the model's linear layers compute in. FP32 is the default and what the service is for;
/// bf16 is opt-in (CPU engine, AVX512_BF16): weights packed to bf16 once at load, activations
/// rounded to bf16 at each linear layer's input, products accumulated in FP32; the window
/// attention's `q·kᵀ` and `P·v` likewise where their shapes allow. LayerNorm, softmax and the
/// residual stream stay FP32 (docs/cpu-engine.md#bf16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// IEEE single precision everywhere.
    #[default]
    Fp32,
    /// bfloat16 operands in the linear layers and the attention products, FP32 accumulation and
    /// everything else FP32.
    Bf16,
}

impl Precision {
    /// Every precision, the default first.
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Bf16];

    /// The name `--precision` takes and GetModelInfo, ModelConfig and metrics report.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Parse a `--precision` value (case-insensitive).
    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Precision::from_name(s).ok_or_else(|| format!("{s:?} is not one of fp32, bf16"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
        }
        assert_eq!(" BF16 ".parse::<Precision>(), Ok(Precision::Bf16));
        assert!("fp16".parse::<Precision>().is_err());
        assert_eq!(Precision::default(), Precision::Fp32);
    }
}
