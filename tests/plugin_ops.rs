//! The lab's plugin ops (`MyPlugin::CnnlRoll`, `MyPlugin::PluginReLU`): the CPU kernels against PyTorch
//! (`torch.roll` / `torch.relu` outputs written by `tests/fixtures/make_reference.py`) and against
//! straightforward references on random shapes; plus the startup self-check.

mod common {
    pub mod fixtures;
}

use common::fixtures::{f32s, fixture_dir};
use swin_serve::engine::cpu::ops::{
    self, relu_reference, roll_reference, CnnlRoll, PluginOp, PluginRelu,
};

fn plugin_fixture() -> Vec<u8> {
    std::fs::read(fixture_dir("parity").join("plugin_ops.safetensors")).unwrap()
}

/// Parse `{"shifts": [..], "dims": [..]}` as written by the fixture script (integers only).
fn attrs(json: &str) -> (Vec<i64>, Vec<i64>) {
    let field = |key: &str| -> Vec<i64> {
        let start = json.find(&format!("\"{key}\"")).unwrap();
        let open = start + json[start..].find('[').unwrap();
        let close = open + json[open..].find(']').unwrap();
        json[open + 1..close]
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().unwrap())
            .collect()
    };
    (field("shifts"), field("dims"))
}

#[test]
fn roll_matches_torch_roll() {
    let bytes = plugin_fixture();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let cases: usize = meta["cases"].parse().unwrap();
    assert!(cases >= 5);
    for i in 0..cases {
        let (shifts, dims) = attrs(&meta[&format!("roll{i}")]);
        let (shape, input) = f32s(&st, &format!("roll{i}.input"));
        let (_, want) = f32s(&st, &format!("roll{i}.output"));
        let mut out = vec![f32::NAN; input.len()];
        CnnlRoll::new(shifts.clone(), dims.clone())
            .forward(&input, &shape, &mut out)
            .unwrap();
        assert_eq!(
            out, want,
            "case {i}: shape {shape:?} shifts {shifts:?} dims {dims:?}"
        );
        assert_eq!(
            roll_reference(&input, &shape, &shifts, &dims),
            want,
            "reference, case {i}"
        );
    }
}

#[test]
fn relu_matches_torch_relu() {
    let bytes = plugin_fixture();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, input) = f32s(&st, "relu.input");
    let (_, want) = f32s(&st, "relu.output");
    let mut out = vec![f32::NAN; input.len()];
    PluginRelu.forward(&input, &mut out).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&out), bits(&want), "including the sign of zeros");
    assert_eq!(bits(&relu_reference(&input)), bits(&want));
}

/// xorshift64*, for random shapes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn roll_random_shapes_match_reference() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..300 {
        let rank = 1 + rng.below(5) as usize;
        let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(7) as usize).collect();
        let n: usize = shape.iter().product();
        let input: Vec<f32> = (0..n).map(|_| rng.below(1 << 20) as f32).collect();
        let k = rng.below(rank as u64 + 1) as usize;
        let (shifts, dims): (Vec<i64>, Vec<i64>) = if k == 0 {
            (vec![rng.below(200) as i64 - 100], vec![])
        } else {
            (0..k)
                .map(|_| {
                    let d = rng.below(rank as u64) as i64;
                    (
                        rng.below(31) as i64 - 15,
                        if rng.below(2) == 0 {
                            d
                        } else {
                            d - rank as i64
                        },
                    )
                })
                .unzip()
        };
        let mut out = vec![f32::NAN; n];
        CnnlRoll::new(shifts.clone(), dims.clone())
            .forward(&input, &shape, &mut out)
            .unwrap();
        assert_eq!(
            out,
            roll_reference(&input, &shape, &shifts, &dims),
            "shape {shape:?} shifts {shifts:?} dims {dims:?}"
        );
    }
}

#[test]
fn roll_refuses_bad_attributes() {
    let x = vec![0.0f32; 6];
    let mut out = vec![0.0f32; 6];
    assert!(CnnlRoll::new(vec![1], vec![2])
        .forward(&x, &[2, 3], &mut out)
        .is_err());
    assert!(CnnlRoll::new(vec![1, 2], vec![0])
        .forward(&x, &[2, 3], &mut out)
        .is_err());
    assert!(CnnlRoll::new(vec![1, 1], vec![])
        .forward(&x, &[2, 3], &mut out)
        .is_err());
    assert!(CnnlRoll::new(vec![1], vec![0])
        .forward(&x[..5], &[2, 3], &mut out)
        .is_err());
    assert!(PluginRelu.forward(&x, &mut out[..5]).is_err());
}

#[test]
fn self_check_reports_both_ops_ok() {
    let checks = ops::self_check();
    let names: Vec<_> = checks
        .iter()
        .map(|c| (c.op.as_str(), c.short_name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("MyPlugin::CnnlRoll", "roll"),
            ("MyPlugin::PluginReLU", "relu")
        ]
    );
    for c in &checks {
        assert!(c.ok, "{}: {}", c.op, c.detail);
    }
    assert_eq!(
        CnnlRoll::new(vec![], vec![]).op_name(),
        "MyPlugin::CnnlRoll"
    );
    assert_eq!(PluginRelu.short_name(), "relu");
}

/// The fused attention's (window, position) → token map equals the official data movement done with
/// the plugin roll: `torch.roll(x, (-s, -s), (1, 2))` → `window_partition`; and sending the windows
/// back through `window_reverse` → `torch.roll(x, (s, s), (1, 2))` restores every token, i.e. scattering
/// through the same map is the inverse.
#[test]
fn fused_index_map_equals_roll_partition_reverse_roll_back() {
    use swin_serve::engine::cpu::tables::window_token_index;
    // (batch, resolution, window, shift, channels): SwinV2-T stage shapes (64/32/16, window 8, shift 4)
    // plus an odd window.
    for &(b, res, win, shift, c) in &[
        (2, 64, 8, 4, 3),
        (1, 32, 8, 4, 2),
        (2, 16, 8, 4, 1),
        (1, 12, 6, 3, 2),
    ] {
        let shape = [b, res, res, c];
        let x: Vec<f32> = (0..b * res * res * c).map(|v| v as f32).collect();
        let mut shifted = vec![0.0; x.len()];
        CnnlRoll::new(vec![-(shift as i64), -(shift as i64)], vec![1, 2])
            .forward(&x, &shape, &mut shifted)
            .unwrap();
        // window_partition: (B, H/w, w, W/w, w, C) → (B, H/w, W/w, w, w, C)
        let per = res / win;
        let mut windows = Vec::with_capacity(x.len());
        for bi in 0..b {
            for wh in 0..per {
                for ww in 0..per {
                    for ph in 0..win {
                        for pw in 0..win {
                            let t = (bi * res + wh * win + ph) * res + ww * win + pw;
                            windows.extend_from_slice(&shifted[t * c..(t + 1) * c]);
                        }
                    }
                }
            }
        }
        let map = window_token_index(res, win, shift);
        assert_eq!(map.len(), res * res);
        let tokens = res * res;
        for bi in 0..b {
            for (slot, &tok) in map.iter().enumerate() {
                let src = (bi * tokens + tok as usize) * c;
                let got = &windows[(bi * tokens + slot) * c..][..c];
                assert_eq!(got, &x[src..src + c], "b {bi} res {res} slot {slot}");
            }
        }
        // window_reverse + roll back
        let mut merged = vec![0.0; x.len()];
        for bi in 0..b {
            for slot in 0..tokens {
                let (wi, p) = (slot / (win * win), slot % (win * win));
                let (wh, ww) = (wi / per, wi % per);
                let t = (bi * res + wh * win + p / win) * res + ww * win + p % win;
                let src = (bi * tokens + slot) * c;
                merged[t * c..(t + 1) * c].copy_from_slice(&windows[src..src + c]);
            }
        }
        let mut back = vec![0.0; x.len()];
        CnnlRoll::new(vec![shift as i64, shift as i64], vec![1, 2])
            .forward(&merged, &shape, &mut back)
            .unwrap();
        assert_eq!(back, x);
    }
}
