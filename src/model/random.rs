//! Deterministic random weights for smoke tests and benchmarks (`--random-weights SEED`).
//!
//! Every parameter of the official state dict (see [`super::layout`]) is filled; buffers are not
//! (the engines derive them from the configuration). Each tensor draws from its own stream,
//! seeded by the user seed and the tensor's name, so a tensor's values do not depend on which
//! other tensors exist (stage 0 of a tiny model equals stage 0 of a small one for the same seed).
//!
//! Only integer and basic IEEE f64 arithmetic (+, ×, √) is used, never a libm function, so the
//! same seed gives the same bits on every machine.
//!
//! Magnitudes are chosen for non-degenerate outputs rather than copied from the official
//! initialisation (which zeroes the post-norm weights, making every block an identity, and
//! makes the position-bias MLP output a constant): linear weights ~N(0, 0.02) as officially,
//! small non-zero biases, LayerNorm weights around 1, `logit_scale = ln 10` as officially,
//! and a `cpb_mlp` (V2) or `relative_position_bias_table` (V1) whose bias varies by a few units
//! across relative positions.

use std::collections::BTreeMap;

use super::layout::{official_state_dict, EntryKind};
use super::{SwinConfig, Tensor};

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Approximately standard normal: Irwin–Hall sum of 4 uniforms, centred and scaled to unit
    /// variance (bounded by ±2√3, bell-shaped; exact arithmetic, reproducible bit for bit).
    fn standard_normal(&mut self) -> f64 {
        let s = self.uniform() + self.uniform() + self.uniform() + self.uniform() - 2.0;
        s * 3f64.sqrt()
    }
}

/// FNV-1a hash of a tensor name, mixed into the seed of its stream.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// How a parameter is filled: `mean + std * z`, z approximately N(0, 1).
fn distribution(name: &str) -> (f64, f64) {
    let last = name.rsplit('.').next().unwrap_or(name);
    let is_norm = name.contains("norm") && !name.contains("proj");
    if name.ends_with("attn.logit_scale") {
        // Official init: log(10 * ones).
        (std::f64::consts::LN_10, 0.0)
    } else if name.ends_with("cpb_mlp.0.weight") {
        // Inputs are log-spaced coordinates in about [-1.06, 1.06]: unit weights give O(1) hidden units.
        (0.0, 1.0)
    } else if name.ends_with("cpb_mlp.0.bias") {
        (0.0, 0.5)
    } else if name.ends_with("cpb_mlp.2.weight") {
        // Output std about 0.7 before 16·sigmoid: biases spread over roughly 4..12.
        (0.0, 0.05)
    } else if name.ends_with("attn.relative_position_bias_table") {
        // V1's learned bias (officially trunc_normal_(std=.02)): a few units across offsets, like
        // V2's folded bias, so that it matters to the softmax.
        (0.0, 1.0)
    } else if is_norm && last == "weight" {
        (1.0, 0.1)
    } else {
        // Linear / conv weights and absolute_pos_embed: the official trunc_normal_(std=.02);
        // biases (LayerNorm, linear, q_bias / v_bias, zero officially): small but non-zero.
        (0.0, 0.02)
    }
}

/// Deterministic random parameters for `config`, keyed and shaped as the official state dict.
pub fn random_parameters(config: &SwinConfig, seed: u64) -> BTreeMap<String, Tensor> {
    official_state_dict(config)
        .into_iter()
        .filter(|entry| entry.kind == EntryKind::Parameter)
        .map(|entry| {
            let (mean, std) = distribution(&entry.name);
            let mut rng = Xoshiro256::new(seed ^ fnv1a(&entry.name));
            let len = entry.shape.iter().product();
            let data = (0..len)
                .map(|_| (mean + std * rng.standard_normal()) as f32)
                .collect();
            (
                entry.name,
                Tensor {
                    shape: entry.shape,
                    data,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_vector() {
        // Reference: splitmix64(0) state then xoshiro256** as in https://prng.di.unimi.it/ ;
        // the first splitmix64 outputs for seed 0 are published: 0xe220a8397b1dcdaf, ...
        let mut sm = Xoshiro256::new(0);
        assert_eq!(sm.s[0], 0xE220_A839_7B1D_CDAF);
        assert_eq!(sm.s[1], 0x6E78_9E6A_A1B9_65F4);
        let _ = sm.next_u64();
    }

    #[test]
    fn standard_normal_has_unit_moments() {
        let mut rng = Xoshiro256::new(42);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.standard_normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }
}
