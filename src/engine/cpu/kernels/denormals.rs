//! Denormal floats flushed to zero in the engine's threads.
//!
//! On Intel cores, an SSE/AVX operation that reads or produces a denormal (|x| < 2^-126) takes a
//! micro-code assist of ~100+ cycles. The window attention's softmax produces them routinely
//! (`exp` of scores 88–104 below the row maximum, common with SwinV2's logit scale of up to 100 and
//! the shift masks' −100), and every later multiply that reads them pays again, which slows the
//! whole forward pass down markedly on Intel. AMD cores handle denormals at full speed.
//!
//! [`flush_denormals_in_this_thread`] sets MXCSR's FTZ (results that would be denormal become ±0) and
//! DAZ (denormal inputs read as ±0) bits, as PyTorch's `set_flush_denormal(True)` and ONNX Runtime's
//! `set_denormal_as_zero` do. It is called by the start handler of every CPU engine thread (the
//! rayon pool each instance owns, where every kernel runs) and nowhere else: preprocessing (also when
//! those threads decode a batch's images, inside [`with_ieee_denormals`]) and the host-side softmax
//! of the logits keep IEEE semantics. A value below 1.2e-38 contributes nothing
//! measurable to a sum of terms ≥ 1e-8 in f32, so results stay within the parity bound (tested).
//!
//! `SWIN_SERVE_KEEP_DENORMALS=1` leaves MXCSR alone (to measure what flushing buys).

/// MXCSR bit 15: flush results that would be denormal to zero.
const MXCSR_FTZ: u32 = 1 << 15;
/// MXCSR bit 6: treat denormal inputs as zero.
const MXCSR_DAZ: u32 = 1 << 6;

/// Environment variable that, set to `1`, keeps denormals (IEEE semantics) in the engine threads.
pub const KEEP_DENORMALS_ENV: &str = "SWIN_SERVE_KEEP_DENORMALS";

/// Whether the engine threads should flush denormals (they do unless [`KEEP_DENORMALS_ENV`] is `1`).
pub fn flush_requested() -> bool {
    std::env::var_os(KEEP_DENORMALS_ENV).is_none_or(|v| v != "1")
}

/// Set FTZ and DAZ in the calling thread's MXCSR (x86-64; elsewhere a no-op). Returns whether the
/// thread now flushes denormals.
pub fn flush_denormals_in_this_thread() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR into the local `csr`, a valid, aligned, writable
        // u32; it touches no other memory and no flags.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        csr |= MXCSR_FTZ | MXCSR_DAZ;
        // SAFETY: `ldmxcsr` loads MXCSR from the local `csr`: the value read above with only the
        // FTZ and DAZ bits added (both defined on every x86-64 CPU with SSE2, so no reserved bit
        // is set and no #GP can occur). It changes only how this thread rounds denormals.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags, readonly));
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Run `f` with FTZ and DAZ cleared in the calling thread (IEEE denormals), then put the thread's
/// MXCSR back as it was, also if `f` panics. The engine threads decode images this way between
/// forward passes (see `Engine::run_on_engine_threads`): preprocessing keeps IEEE semantics
/// wherever it runs.
pub fn with_ieee_denormals<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// Puts the saved MXCSR back when dropped.
        struct Restore(u32);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: loads MXCSR from a local u32 holding the value `stmxcsr` stored for
                // this thread before (a valid MXCSR: no reserved bit set).
                unsafe {
                    std::arch::asm!("ldmxcsr [{}]", in(reg) &self.0, options(nostack, preserves_flags, readonly));
                }
            }
        }
        let mut saved: u32 = 0;
        // SAFETY: as in `flush_denormals_in_this_thread`: stores MXCSR into a local u32.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack, preserves_flags));
        }
        let restore = Restore(saved);
        let ieee = saved & !(MXCSR_FTZ | MXCSR_DAZ);
        // SAFETY: loads MXCSR from a local u32: the value read above with the FTZ and DAZ bits
        // cleared (no reserved bit set). It changes only how this thread rounds denormals.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &ieee, options(nostack, preserves_flags, readonly));
        }
        let result = f();
        drop(restore);
        result
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        f()
    }
}

/// Whether the calling thread flushes denormals (FTZ and DAZ both set).
pub fn flushing_in_this_thread() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: as in `flush_denormals_in_this_thread`: stores MXCSR into a local u32.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        csr & (MXCSR_FTZ | MXCSR_DAZ) == MXCSR_FTZ | MXCSR_DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn ieee_denormals_inside_and_flushing_restored_after_even_on_panic() {
        std::thread::spawn(|| {
            assert!(flush_denormals_in_this_thread());
            let tiny = std::hint::black_box(1e-30f32);
            let inside = with_ieee_denormals(|| {
                assert!(!flushing_in_this_thread());
                std::hint::black_box(tiny) * std::hint::black_box(1e-10f32)
            });
            assert!(
                inside > 0.0 && inside < f32::MIN_POSITIVE,
                "a denormal: {inside}"
            );
            assert!(flushing_in_this_thread());
            let panicked = std::panic::catch_unwind(|| {
                with_ieee_denormals(|| panic!("inside"));
            });
            assert!(panicked.is_err());
            assert!(flushing_in_this_thread(), "restored after a panic");
        })
        .join()
        .unwrap();
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn flushing_turns_denormal_arithmetic_into_zero_in_this_thread_only() {
        // A thread of its own: MXCSR is per thread, and the test harness's threads must keep IEEE.
        std::thread::spawn(|| {
            let tiny = std::hint::black_box(f32::MIN_POSITIVE);
            let half = std::hint::black_box(0.5f32);
            assert!(!flushing_in_this_thread());
            let denormal = tiny * half;
            assert!(denormal > 0.0 && denormal < f32::MIN_POSITIVE);
            assert!(flush_denormals_in_this_thread());
            assert!(flushing_in_this_thread());
            // FTZ: a denormal result becomes 0.
            assert_eq!(std::hint::black_box(tiny) * std::hint::black_box(half), 0.0);
            // DAZ: a denormal input reads as 0.
            assert_eq!(std::hint::black_box(denormal) * 2.0, 0.0);
        })
        .join()
        .unwrap();
        assert!(!flushing_in_this_thread());
    }
}
