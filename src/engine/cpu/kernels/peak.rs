//! The machine's arithmetic peak, measured: a loop of independent FMAs (or bf16 dot products) on
//! every thread of the current rayon pool, so that `swin-serve bench` can say what fraction of the
//! CPU a pass uses on whatever CPU runs it (the peak of a shared VM is what it is given, not what
//! its data sheet says).
//!
//! Each thread runs 12 independent accumulator chains (more than an FMA's latency × its issue
//! width on current x86 cores: 4 cycles × 2 ports), of the widest vector of the instruction set.

use std::time::Instant;

use super::isa::Isa;

/// Independent accumulators per thread.
const CHAINS: usize = 12;
/// Loop trips per timed repetition (each chain is a dependent sequence of rounded FMAs, which the
/// compiler may not fold or reorder, so the loop runs as written).
const TRIPS: usize = 1_000_000;

/// FP32 FMA peak of `isa` on the current rayon pool, GFLOP/s (an FMA counts 2 FLOP a lane): the
/// best of `reps` repetitions. `None` for [`Isa::Scalar`] (no vector FMA to measure).
pub fn fma_peak_gflops(isa: Isa, reps: usize) -> Option<f64> {
    let lanes = match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
        Isa::Scalar => return None,
    };
    let flop_per_thread = (2 * lanes * CHAINS * TRIPS) as f64;
    Some(best_rate(reps, flop_per_thread, move || {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `isa` is at most what the CPU has (the callers pass `Isa::active`, or a
            // supported one).
            unsafe {
                let trips = std::hint::black_box(TRIPS);
                match isa {
                    Isa::Avx512 => fma_loop_avx512(trips),
                    _ => fma_loop_avx2(trips),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        0.0
    }))
}

/// bf16 dot-product peak (`vdpbf16ps` on zmm: 32 products a lane pair, 64 FLOP an instruction) on
/// the current rayon pool, GFLOP/s; `None` without AVX512_BF16 ([`super::isa::bf16_supported`]).
pub fn bf16_peak_gflops(reps: usize) -> Option<f64> {
    if !super::isa::bf16_supported() {
        return None;
    }
    let flop_per_thread = (64 * CHAINS * TRIPS) as f64;
    Some(best_rate(reps, flop_per_thread, || {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX512_BF16 checked above.
        unsafe {
            dpbf16_loop(std::hint::black_box(TRIPS))
        }
        #[cfg(not(target_arch = "x86_64"))]
        0.0
    }))
}

/// FLOP/s of `body` run once on every pool thread at once (`flop_per_thread` each), best of `reps`.
fn best_rate(reps: usize, flop_per_thread: f64, body: impl Fn() -> f32 + Sync) -> f64 {
    let threads = rayon::current_num_threads().max(1);
    let mut best = 0.0f64;
    for _ in 0..reps.max(1) + 1 {
        let t = Instant::now();
        // One body on every pool thread exactly (a parallel iterator may run two on one thread
        // when the other wakes late, which reads as half the peak).
        let sink: f32 = rayon::broadcast(|_| body()).into_iter().sum();
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        best = best.max(flop_per_thread * threads as f64 / s / 1e9);
    }
    best
}

/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(trips: usize) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..trips {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(trips: usize) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..trips {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut out = [0.0f32; 8];
    let mut sum = 0.0;
    for v in acc {
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
        sum += out.iter().sum::<f32>();
    }
    sum
}

/// # Safety
/// The CPU must have AVX-512 F and AVX512_BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dpbf16_loop(trips: usize) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3), _mm512_set1_ps(1e-3));
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..trips {
        for v in acc.iter_mut() {
            *v = _mm512_dpbf16_ps(*v, a, a);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_measured_where_the_instructions_exist() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(fma_peak_gflops(Isa::Scalar, 1), None);
            for isa in Isa::available().into_iter().filter(|&i| i > Isa::Scalar) {
                let g = fma_peak_gflops(isa, 1).expect("vector ISA");
                // One core of anything that runs AVX2 does more than 1 GFLOP/s and less than a
                // 10 GHz core with 4 FMA ports of 16 lanes would (1,280).
                assert!(g > 1.0 && g < 1280.0, "{isa}: {g}");
            }
            assert_eq!(
                bf16_peak_gflops(1).is_some(),
                super::super::isa::bf16_supported()
            );
        });
    }
}
