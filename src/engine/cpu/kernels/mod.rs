//! Compute kernels of the CPU engine: GEMM for linear layers (`gemm` crate, row/column chunked, epilogues
//! fused), element-wise math (exact-erf GELU, exp), LayerNorm, and the fused window attention
//! ([`attention`]). Every hot kernel has an AVX2+FMA version chosen at run time with
//! `is_x86_feature_detected!` and a portable scalar version (also the reference in unit tests).

pub mod attention;
pub mod denormals;
pub mod linear;
pub mod math;
pub mod norm;

/// Whether the AVX2+FMA kernels can run on this CPU (detected at run time, cached by std).
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A raw pointer that may cross threads. Kernels that write disjoint parts of one buffer from several
/// threads (scattered rows, column blocks) carry the buffer this way; each use documents why the parts
/// are disjoint.
#[derive(Clone, Copy, Debug)]
pub struct SendPtr<T>(pub *mut T);

impl<T> SendPtr<T> {
    /// The pointer. (A method, so closures capture the whole `SendPtr`, not its raw field.)
    #[inline]
    pub fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: the pointer is only dereferenced by kernels that write provably disjoint regions (see each
// use) while the owning buffer outlives the parallel section.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above; shared access never writes the same element from two threads.
unsafe impl<T> Sync for SendPtr<T> {}
