//! Compute kernels of the CPU engine: GEMM for linear layers (weights packed at load, AVX-512 / AVX2 /
//! scalar microkernels, row or panel chunked, epilogues fused), element-wise math (exact-erf GELU,
//! exp), LayerNorm, and the fused window attention ([`attention`]). Every hot kernel runs on
//! AVX-512 or AVX2+FMA, chosen at run time ([`isa::Isa::active`]), and has a portable scalar
//! version (also the reference in unit tests). The SIMD kernels are written once, over the vectors
//! of [`simd::SimdF32`], and compiled for each of the two instruction sets. The linear layers also
//! run in bf16 (`--precision bf16`, AVX512_BF16: [`packed_gemm`]); [`peak`] measures the machine's
//! FMA and bf16 peaks for `swin-serve bench`.

pub mod attention;
pub mod denormals;
pub mod isa;
pub mod linear;
pub mod math;
pub mod mlp;
pub mod norm;
pub mod packed_gemm;
pub mod peak;
#[cfg(target_arch = "x86_64")]
pub mod simd;
pub mod slab;

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
