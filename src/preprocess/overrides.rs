//! [`PreprocessOverrides`]: the `serve` flags that replace parts of the eval transform the
//! checkpoint's source prescribes (`--resize-size`, `--crop-pct`, `--crop-mode`,
//! `--interpolation`, `--mean`, `--std`), and the parsers of their values.

use super::config::PreprocessConfig;
use super::pipeline::{CropMode, Interpolation};
use super::timm_cfg::scale_size;
use super::PreprocessError;

/// Parts of the eval transform given on the command line; `None` keeps the source's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreprocessOverrides {
    /// `--resize-size N`: the resize side as the crop mode reads it.
    pub resize_size: Option<u32>,
    /// `--crop-pct F`: the resize side becomes `floor(crop_size / F)` (timm's rule).
    pub crop_pct: Option<f64>,
    /// `--crop-mode`.
    pub crop_mode: Option<CropMode>,
    /// `--interpolation`.
    pub interpolation: Option<Interpolation>,
    /// `--mean R,G,B`.
    pub mean: Option<[f32; 3]>,
    /// `--std R,G,B`.
    pub std: Option<[f32; 3]>,
}

impl PreprocessOverrides {
    /// True when no flag overrides anything.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `base` with these overrides applied, its `source` followed by the flags
    /// (`timm pretrained_cfg + --crop-pct 1 --interpolation bilinear`). The crop size stays the
    /// source's (the model's input). Refuses `--resize-size` with `--crop-pct`, a crop mode that
    /// resizes when neither gives a side and the source had none (`crop_only`), and values that
    /// make the transform invalid (a zero std, a resize side over the maximum).
    pub fn apply(&self, base: PreprocessConfig) -> Result<PreprocessConfig, PreprocessError> {
        let invalid = |m: String| PreprocessError::InvalidOverride(m);
        if self.resize_size.is_some() && self.crop_pct.is_some() {
            return Err(invalid(
                "--resize-size and --crop-pct both set the resize side: give one".into(),
            ));
        }
        let mut cfg = base;
        let mut applied = Vec::new();
        if let Some(mode) = self.crop_mode {
            cfg.crop_mode = mode;
            applied.push(format!("--crop-mode {mode}"));
        }
        if let Some(size) = self.resize_size {
            cfg.resize_size = size;
            applied.push(format!("--resize-size {size}"));
        }
        if let Some(pct) = self.crop_pct {
            if !(pct.is_finite() && pct > 0.0) {
                return Err(invalid(format!(
                    "--crop-pct {pct} must be a positive number"
                )));
            }
            cfg.resize_size =
                scale_size(cfg.crop_size, pct).map_err(|m| invalid(format!("--crop-pct {m}")))?;
            applied.push(format!("--crop-pct {pct}"));
        }
        if cfg.crop_mode != CropMode::CropOnly && cfg.resize_size == 0 {
            return Err(invalid(format!(
                "--crop-mode {} resizes, but the source does not: give --resize-size or --crop-pct",
                cfg.crop_mode
            )));
        }
        if let Some(interpolation) = self.interpolation {
            cfg.interpolation = interpolation;
            applied.push(format!("--interpolation {interpolation}"));
        }
        if let Some(mean) = self.mean {
            cfg.mean = mean;
            applied.push(format!("--mean {}", join(&mean)));
        }
        if let Some(std) = self.std {
            cfg.std = std;
            applied.push(format!("--std {}", join(&std)));
        }
        if !applied.is_empty() {
            cfg.source = format!("{} + {}", cfg.source, applied.join(" "));
        }
        cfg.validate().map_err(|e| invalid(e.to_string()))?;
        Ok(cfg)
    }
}

fn join(values: &[f32; 3]) -> String {
    values.map(|v| v.to_string()).join(",")
}

/// Parses `--mean` / `--std`: `R,G,B` (three finite numbers) or one number for all three.
pub fn parse_rgb(s: &str) -> Result<[f32; 3], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let number = |p: &str| {
        p.parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{p:?} is not a finite number"))
    };
    match parts.as_slice() {
        [one] => Ok([number(one)?; 3]),
        [r, g, b] => Ok([number(r)?, number(g)?, number(b)?]),
        _ => Err(format!(
            "expected R,G,B (three numbers) or one number, got {} values",
            parts.len()
        )),
    }
}

/// Parses `--crop-pct`: a finite number above 0 (timm's `crop_pct`: 0.875, 0.9, 1.0).
pub fn parse_crop_pct(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("{s:?} is not a number above 0 (e.g. 0.875)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_and_are_named_in_the_source() {
        let base = PreprocessConfig::official(256);
        let cfg = PreprocessOverrides {
            crop_pct: Some(0.9),
            interpolation: Some(Interpolation::Bilinear),
            mean: Some([0.5; 3]),
            ..Default::default()
        }
        .apply(base.clone())
        .unwrap();
        assert_eq!(cfg.resize_size, 284); // floor(256 / 0.9)
        assert_eq!(cfg.interpolation, Interpolation::Bilinear);
        assert_eq!(cfg.mean, [0.5; 3]);
        assert_eq!(cfg.std, base.std);
        assert_eq!(
            cfg.source,
            "official + --crop-pct 0.9 --interpolation bilinear --mean 0.5,0.5,0.5"
        );
        assert_eq!(
            PreprocessOverrides::default().apply(base.clone()).unwrap(),
            base
        );
        assert!(PreprocessOverrides::default().is_empty());
    }

    #[test]
    fn conflicting_or_invalid_flags_are_refused() {
        let base = PreprocessConfig::official(256);
        let both = PreprocessOverrides {
            resize_size: Some(300),
            crop_pct: Some(0.9),
            ..Default::default()
        };
        assert!(both
            .apply(base.clone())
            .unwrap_err()
            .to_string()
            .contains("give one"));
        let zero_std = PreprocessOverrides {
            std: Some([1.0, 0.0, 1.0]),
            ..Default::default()
        };
        let err = zero_std.apply(base.clone()).unwrap_err().to_string();
        assert!(err.contains("std[1]"), "{err}");
        let tiny_pct = PreprocessOverrides {
            crop_pct: Some(1e-9),
            ..Default::default()
        };
        assert!(tiny_pct.apply(base.clone()).is_err());
        let crop_only = PreprocessConfig {
            crop_mode: CropMode::CropOnly,
            resize_size: 0,
            ..base
        };
        let center = PreprocessOverrides {
            crop_mode: Some(CropMode::Center),
            ..Default::default()
        };
        let err = center.apply(crop_only.clone()).unwrap_err().to_string();
        assert!(err.contains("--resize-size"), "{err}");
        let with_size = PreprocessOverrides {
            resize_size: Some(300),
            ..center
        };
        assert_eq!(with_size.apply(crop_only).unwrap().resize_size, 300);
    }

    #[test]
    fn rgb_and_crop_pct_values() {
        assert_eq!(parse_rgb("0.5"), Ok([0.5; 3]));
        assert_eq!(parse_rgb("0.1, 0.2,0.3"), Ok([0.1, 0.2, 0.3]));
        assert!(parse_rgb("0.1,0.2").is_err());
        assert!(parse_rgb("nan,1,1").is_err());
        assert!(parse_rgb("1e39").is_err()); // inf in f32
        assert!(parse_rgb("").is_err());
        assert_eq!(parse_crop_pct("0.875"), Ok(0.875));
        for bad in ["0", "-1", "inf", "NaN", "x"] {
            assert!(parse_crop_pct(bad).is_err(), "{bad}");
        }
    }
}
