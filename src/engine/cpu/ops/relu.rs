//! `MyPlugin::PluginReLU`: `torch.relu`, element-wise `max(x, 0)` (NaN stays NaN, as in PyTorch).

use super::plugin_op::{OpError, PluginOp};
use super::split_mix::SplitMix64;
use crate::engine::PluginCheck;

const OP: &str = "MyPlugin::PluginReLU";

/// The ReLU op (no attributes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginRelu;

impl PluginOp for PluginRelu {
    fn op_name(&self) -> &'static str {
        OP
    }
    fn short_name(&self) -> &'static str {
        "relu"
    }
}

impl PluginRelu {
    /// `output[i] = relu(input[i])`.
    pub fn forward(&self, input: &[f32], output: &mut [f32]) -> Result<(), OpError> {
        if input.len() != output.len() {
            return Err(OpError::Invalid {
                op: OP,
                message: format!("input has {} values, output {}", input.len(), output.len()),
            });
        }
        for (o, &x) in output.iter_mut().zip(input) {
            *o = if x < 0.0 { 0.0 } else { x };
        }
        Ok(())
    }

    /// In place: `data[i] = relu(data[i])`.
    pub fn forward_inplace(&self, data: &mut [f32]) {
        for x in data {
            if *x < 0.0 {
                *x = 0.0;
            }
        }
    }
}

/// Straightforward reference, with PyTorch's edge cases: NaN stays NaN, `-0.0` stays `-0.0`
/// (`torch.relu(torch.tensor(-0.0))` is `-0.`), negatives become `+0.0`.
pub fn relu_reference(input: &[f32]) -> Vec<f32> {
    input
        .iter()
        .map(|&x| {
            if x.is_nan() || x == 0.0 {
                x
            } else {
                x.max(0.0)
            }
        })
        .collect()
}

/// Random lengths and values (with zeros, ±inf and NaN mixed in), both entry points vs the reference.
pub(super) fn self_check(seed: u64) -> PluginCheck {
    let mut rng = SplitMix64(seed);
    let mut failure = None;
    let mut total = 0;
    for _ in 0..20 {
        let n = rng.below(1000);
        let input: Vec<f32> = (0..n)
            .map(|_| match rng.below(50) {
                0 => 0.0,
                1 => -0.0,
                2 => f32::INFINITY,
                3 => f32::NEG_INFINITY,
                4 => f32::NAN,
                _ => rng.next_f32() * 10.0,
            })
            .collect();
        total += n;
        let expected = relu_reference(&input);
        let mut out = vec![1.0f32; n];
        let ok_out = PluginRelu.forward(&input, &mut out).is_ok() && same(&out, &expected);
        let mut inplace = input.clone();
        PluginRelu.forward_inplace(&mut inplace);
        if !ok_out || !same(&inplace, &expected) {
            failure = Some(format!("length {n}: values differ from the reference"));
            break;
        }
    }
    PluginCheck {
        op: OP.into(),
        short_name: "relu".into(),
        ok: failure.is_none(),
        detail: failure.unwrap_or_else(|| {
            format!("{total} random values (incl. ±0, ±inf, NaN) equal to the reference")
        }),
    }
}

/// Bitwise-equal, except that any NaN equals any NaN.
fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits())
}
