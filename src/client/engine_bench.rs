//! The local CPU engine benchmark (`swin-serve bench engine`, and `cargo bench --bench engine`):
//! one engine instance, a deterministic input, for each batch size `runs` timed forward passes
//! after `warmup` untimed ones; median / min / max latency, images per second, GFLOP/s from the
//! model's FLOP count ([`SwinConfig::flops_per_image`]), the process's peak RSS, and on request
//! the time per operation and per stage ([`CpuEngine::profile`]).
//!
//! Each batch size gets an instance planned for exactly that batch (buffers for `batch` images), so
//! the peak RSS after a figure is what serving at that `--max-batch` takes, when the batch sizes
//! are given in increasing order (the peak only grows).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::cpu::kernels::peak;
use crate::engine::cpu::{CpuEngine, Isa, Profile, SwinModel};
use crate::engine::{Engine, EngineError, Precision};
use crate::model::{ConfigHints, ModelError, SwinConfig, WeightsSource};
use crate::server::memory_budget::proc_kb_field;

/// `system` of the figures (as `peers.py` names its own).
pub const SYSTEM: &str = "swin-serve-cpu";

/// Default timed passes per batch size (`--runs`).
pub const DEFAULT_RUNS: usize = 10;

/// Default untimed passes before them (`--warmup`).
pub const DEFAULT_WARMUP: usize = 3;

/// Default batch sizes (`--batch`).
pub const DEFAULT_BATCHES: [usize; 2] = [1, 8];

/// Profiled passes per batch size with `profile` (the fastest is reported).
const PROFILE_PASSES: usize = 3;
/// Repetitions of each peak measurement (the best is kept).
const PEAK_REPS: usize = 5;

/// How often a progress line is printed during one batch size's runs.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineBenchOptions {
    /// Batch sizes, measured in this order.
    pub batches: Vec<usize>,
    /// Threads of the engine instance.
    pub threads: usize,
    /// Timed passes per batch size.
    pub runs: usize,
    /// Untimed passes before them.
    pub warmup: usize,
    /// Also profile each batch size (time per operation and per stage).
    pub profile: bool,
    /// Print progress lines to stderr.
    pub progress: bool,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineBenchError {
    /// Options out of range.
    #[error("{0}")]
    Options(String),
    /// The weights could not be read.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// One measured batch size.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// CPU model name (`/proc/cpuinfo`).
    pub cpu: String,
    /// Instruction set the kernels use ([`Isa::active`]).
    pub isa: String,
    /// What the linear layers compute in.
    pub precision: Precision,
    /// FP32 FMA peak of `threads` threads of this machine, GFLOP/s, measured right before
    /// ([`crate::engine::cpu::kernels::peak`]); `None` on the scalar path.
    pub fma_peak_gflops: Option<f64>,
    /// bf16 dot-product peak (AVX512_BF16 CPUs), GFLOP/s.
    pub bf16_peak_gflops: Option<f64>,
    pub threads: usize,
    pub batch: usize,
    pub runs: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Images per second at the median.
    pub img_per_s: f64,
    /// GFLOP/s at the median ([`SwinConfig::flops_per_image`] × batch / median).
    pub gflops: f64,
    /// Peak resident set of the process so far (`VmHWM`), MiB; `None` where unknown.
    pub peak_rss_mb: Option<f64>,
}

impl Figure {
    /// One JSON object (one line), the fields named as `peers.py` names its own.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"system\": {}, \"cpu\": {}, \"isa\": {}, \"precision\": {}, \"threads\": {}, \"batch\": {}, \"runs\": {}, \"median_ms\": {:.3}, \"min_ms\": {:.3}, \"max_ms\": {:.3}, \"img_per_s\": {:.3}, \"gflops\": {:.1}, \"fma_peak_gflops\": {}, \"of_fma_peak\": {}, \"bf16_peak_gflops\": {}, \"of_peak\": {}, \"peak_rss_mb\": {}}}",
            json_string(SYSTEM),
            json_string(&self.cpu),
            json_string(&self.isa),
            json_string(self.precision.name()),
            self.threads,
            self.batch,
            self.runs,
            self.median_ms,
            self.min_ms,
            self.max_ms,
            self.img_per_s,
            self.gflops,
            opt(self.fma_peak_gflops, 1),
            opt(self.of_fma_peak(), 3),
            opt(self.bf16_peak_gflops, 1),
            opt(self.of_peak(), 3),
            self.peak_rss_mb
                .map_or("null".to_string(), |mb| format!("{mb:.1}"))
        )
    }

    /// The pass's GFLOP/s over the peak of the precision it ran in: the bf16 dot-product peak for
    /// bf16, the FP32 FMA peak otherwise.
    pub fn of_peak(&self) -> Option<f64> {
        let peak = if self.precision == Precision::Bf16 {
            self.bf16_peak_gflops
        } else {
            self.fma_peak_gflops
        };
        peak.filter(|&p| p > 0.0).map(|p| self.gflops / p)
    }

    /// The pass's GFLOP/s over the FP32 FMA peak.
    pub fn of_fma_peak(&self) -> Option<f64> {
        self.fma_peak_gflops
            .filter(|&p| p > 0.0)
            .map(|p| self.gflops / p)
    }
}

/// A JSON number with `decimals`, or null.
fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("null".into(), |v| format!("{v:.decimals$}"))
}

/// The profile of one batch size: the fastest of a few profiled passes.
#[derive(Debug, Clone)]
pub struct BatchProfile {
    pub batch: usize,
    pub profile: Profile,
}

impl BatchProfile {
    /// Milliseconds per stage, named (`embed/head` for what runs outside the stages).
    pub fn by_stage(&self) -> Vec<(String, f64)> {
        self.profile
            .by_stage()
            .into_iter()
            .map(|(s, ms)| (s.map_or("embed/head".into(), |s| format!("stage {s}")), ms))
            .collect()
    }

    /// Human lines: milliseconds per operation, per stage, then per operation within each stage.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "batch-{} profile, ms per operation: {}\nbatch-{} profile, ms per stage: {}",
            self.batch,
            join_ms(&self.profile.by_operation()),
            self.batch,
            join_ms(&self.by_stage())
        );
        for (stage, _) in self.profile.by_stage() {
            let ops: Vec<(&str, f64)> = self
                .profile
                .entries
                .iter()
                .filter(|(s, _, _)| *s == stage)
                .map(|&(_, what, ms)| (what, ms))
                .collect();
            let name = stage.map_or("embed/head".into(), |s| format!("stage {s}"));
            out.push_str(&format!("\n  {name}: {}", join_ms(&ops)));
        }
        out
    }

    /// One JSON object: `{"system": "swin-serve-cpu-profile", "batch", "total_ms", "operations":
    /// {name: ms}, "stages": {name: ms}}`.
    pub fn to_json(&self) -> String {
        let object = |entries: &[(String, f64)]| {
            let fields: Vec<String> = entries
                .iter()
                .map(|(k, ms)| format!("{}: {ms:.3}", json_string(k)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        };
        let ops: Vec<(String, f64)> = self
            .profile
            .by_operation()
            .into_iter()
            .map(|(k, ms)| (k.to_string(), ms))
            .collect();
        format!(
            "{{\"system\": {}, \"batch\": {}, \"total_ms\": {:.3}, \"operations\": {}, \"stages\": {}}}",
            json_string(&format!("{SYSTEM}-profile")),
            self.batch,
            total_ms(&self.profile),
            object(&ops),
            object(&self.by_stage())
        )
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct EngineBenchReport {
    /// The model's name ([`SwinConfig::name`]).
    pub model: String,
    /// Its FLOP per image.
    pub flops_per_image: u64,
    /// One figure per batch size, in the order measured.
    pub figures: Vec<Figure>,
    /// With `profile`: one per batch size.
    pub profiles: Vec<BatchProfile>,
}

/// Read the weights `source` names (with `hints` for what a checkpoint lacks) and fold the model.
pub fn load_bench_model(
    source: &WeightsSource,
    hints: &ConfigHints,
    precision: Precision,
) -> Result<Arc<SwinModel>, EngineBenchError> {
    if precision == Precision::Bf16 && !crate::engine::cpu::kernels::isa::bf16_supported() {
        return Err(EngineBenchError::Options(crate::engine::cpu::bf16_refusal()));
    }
    let (weights, config) = source.load(hints)?;
    Ok(Arc::new(SwinModel::with_precision(
        &weights, &config, precision,
    )?))
}

/// Measure `model` as `opts` says.
pub fn run(
    model: &Arc<SwinModel>,
    opts: &EngineBenchOptions,
) -> Result<EngineBenchReport, EngineBenchError> {
    if opts.batches.is_empty() || opts.batches.contains(&0) {
        return Err(EngineBenchError::Options(
            "--batch needs one or more batch sizes of at least 1".into(),
        ));
    }
    if opts.runs == 0 || opts.threads == 0 {
        return Err(EngineBenchError::Options(
            "--runs and --threads must be at least 1".into(),
        ));
    }
    let config: &SwinConfig = &model.config;
    let flops_per_image = config.flops_per_image();
    let per_image = config.in_chans * config.img_size * config.img_size;
    let largest = opts.batches.iter().copied().max().unwrap_or(1);
    let input = bench_input(largest * per_image);
    let cpu = cpu_model_name();
    let isa = Isa::active().to_string();
    // The machine's peaks on as many threads as the engine, measured once before the passes.
    let (fma_peak_gflops, bf16_peak_gflops) = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map(|pool| {
            pool.install(|| {
                // The best of three: a shared VM's neighbour can halve one measurement.
                let best =
                    |f: &dyn Fn() -> Option<f64>| (0..3).filter_map(|_| f()).reduce(f64::max);
                (
                    best(&|| peak::fma_peak_gflops(Isa::active(), PEAK_REPS)),
                    best(&|| peak::bf16_peak_gflops(PEAK_REPS)),
                )
            })
        })
        .unwrap_or((None, None));
    if opts.progress {
        if let Some(p) = fma_peak_gflops {
            eprintln!(
                "FP32 FMA peak of {} threads: {p:.1} GFLOP/s{}",
                opts.threads,
                bf16_peak_gflops.map_or(String::new(), |b| format!("; bf16 (vdpbf16ps) {b:.1}"))
            );
        }
    }
    let mut report = EngineBenchReport {
        model: config.name(),
        flops_per_image,
        figures: Vec::with_capacity(opts.batches.len()),
        profiles: vec![],
    };
    for &batch in &opts.batches {
        let mut engine = CpuEngine::new(Arc::clone(model), opts.threads, batch)?;
        let input = &input[..batch * per_image];
        let mut logits = vec![0f32; batch * config.num_classes];
        if opts.progress {
            eprintln!(
                "batch {batch}: {} warm-up + {} timed passes on {} threads",
                opts.warmup, opts.runs, opts.threads
            );
        }
        for _ in 0..opts.warmup {
            engine.infer(input, batch, &mut logits)?;
        }
        let mut times = Vec::with_capacity(opts.runs);
        let mut last_progress = Instant::now();
        for run in 0..opts.runs {
            let t = Instant::now();
            engine.infer(input, batch, &mut logits)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if opts.progress && last_progress.elapsed() >= PROGRESS_INTERVAL {
                last_progress = Instant::now();
                eprintln!(
                    "batch {batch}: {}/{} passes, median so far {:.1} ms",
                    run + 1,
                    opts.runs,
                    median(&times)
                );
            }
        }
        if logits.iter().any(|v| !v.is_finite()) {
            return Err(EngineBenchError::Options(
                "the engine produced non-finite logits".into(),
            ));
        }
        let median_ms = median(&times);
        let per_s = 1e3 / median_ms.max(f64::MIN_POSITIVE);
        report.figures.push(Figure {
            cpu: cpu.clone(),
            isa: isa.clone(),
            precision: model.precision,
            fma_peak_gflops,
            bf16_peak_gflops,
            threads: opts.threads,
            batch,
            runs: opts.runs,
            median_ms,
            min_ms: times.iter().copied().fold(f64::INFINITY, f64::min),
            max_ms: times.iter().copied().fold(0.0, f64::max),
            img_per_s: batch as f64 * per_s,
            gflops: flops_per_image as f64 * batch as f64 * per_s / 1e9,
            peak_rss_mb: peak_rss_mb(),
        });
        if opts.profile {
            let mut best: Option<Profile> = None;
            for _ in 0..PROFILE_PASSES {
                let p = engine.profile(input, batch, &mut logits)?;
                if best.as_ref().is_none_or(|b| total_ms(&p) < total_ms(b)) {
                    best = Some(p);
                }
            }
            report.profiles.push(BatchProfile {
                batch,
                profile: best.unwrap_or_default(),
            });
        }
    }
    Ok(report)
}

/// The figures as a small table (header + one line per batch size).
pub fn format_table(figures: &[Figure]) -> String {
    let mut out = format!(
        "{:>5} {:>5} {:>10} {:>9} {:>9} {:>9} {:>8} {:>9} {:>12}\n",
        "batch",
        "runs",
        "median ms",
        "min ms",
        "max ms",
        "img/s",
        "GFLOP/s",
        "of peak",
        "peak RSS MB"
    );
    for f in figures {
        out.push_str(&format!(
            "{:>5} {:>5} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>8.1} {:>9} {:>12}\n",
            f.batch,
            f.runs,
            f.median_ms,
            f.min_ms,
            f.max_ms,
            f.img_per_s,
            f.gflops,
            f.of_peak()
                .map_or("?".into(), |r| format!("{:.0}%", 100.0 * r)),
            f.peak_rss_mb.map_or("?".into(), |mb| format!("{mb:.0}"))
        ));
    }
    out
}

/// A deterministic input in [-2, 2) (the same every run, so runs compare).
fn bench_input(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            (((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32)
                * 4.0
                - 2.0
        })
        .collect()
}

fn median(ms: &[f64]) -> f64 {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

fn total_ms(p: &Profile) -> f64 {
    p.entries.iter().map(|e| e.2).sum()
}

fn join_ms<S: std::fmt::Display>(entries: &[(S, f64)]) -> String {
    entries
        .iter()
        .map(|(w, ms)| format!("{w} {ms:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The CPU's model name (first `model name` of `/proc/cpuinfo`), or `unknown`.
pub fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Peak resident set size of this process so far (`VmHWM` of `/proc/self/status`), MiB.
pub fn peak_rss_mb() -> Option<f64> {
    proc_kb_field("/proc/self/status", "VmHWM:").map(|bytes| bytes as f64 / (1024.0 * 1024.0))
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("Intel(R) Xeon(R)"), "\"Intel(R) Xeon(R)\"");
        assert_eq!(json_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\u000ad\"");
    }

    #[test]
    fn peak_rss_and_cpu_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_mb().is_some_and(|mb| mb > 0.0));
            assert!(!cpu_model_name().is_empty());
        }
    }
}
