//! The k loop of a full AVX-512 tile (14 rows × 32 columns, 28 accumulators) in inline assembly, for
//! the FP32 (`vfmadd231ps`) and bf16 (`vdpbf16ps`) microkernels.
//!
//! Why assembly: each step multiplies the two panel vectors by one element of each of the 14 rows.
//! Written with intrinsics, LLVM loads that element once with `vbroadcastss` into a register and
//! uses it twice, an extra instruction per row on the FP pipes; here both multiply-adds take it as a
//! broadcast memory operand (`dword ptr [row]{1to16}`), which the load unit expands. Measured with a
//! C loop of the same shape (gcc intrinsics against this assembly), in L1 on AMD EPYC (Zen 4), one
//! thread, bf16, kc = 192–384: 226–231 GFLOP/s against 232–235 (of a 236 peak); in the model, the
//! bf16 batch-8 linear layers −2.5% (docs/performance.md). Tiles of fewer rows keep the intrinsics
//! kernels.

#[cfg(target_arch = "x86_64")]
use std::arch::{asm, x86_64::__m512};

/// The 28 accumulators of a full tile, `[row][half]`.
#[cfg(target_arch = "x86_64")]
pub(super) type FullTile = [[__m512; 2]; 14];

/// The loop of [`fma_tile`] and [`dpbf16_tile`]: `$op` is the multiply-add, one 32-bit element of a
/// row broadcast to every lane of its memory operand.
#[cfg(target_arch = "x86_64")]
macro_rules! tile_loop {
    ($op:literal, $kc:expr, $a:expr, $lda:expr, $b:expr, $pf:expr, $pf_steps:expr) => {{
        let z = std::arch::x86_64::_mm512_setzero_ps();
        let [mut c0, mut c1, mut c2, mut c3, mut c4, mut c5, mut c6] = [z; 7];
        let [mut c7, mut c8, mut c9, mut c10, mut c11, mut c12, mut c13] = [z; 7];
        let [mut c14, mut c15, mut c16, mut c17, mut c18, mut c19, mut c20] = [z; 7];
        let [mut c21, mut c22, mut c23, mut c24, mut c25, mut c26, mut c27] = [z; 7];
        let stride = $lda * 4;
        let a0: *const f32 = $a;
        asm!(
            // Steps that also prefetch a row (two lines) of the next panel, then the rest.
            "test {pfn}, {pfn}",
            "jz 3f",
            "2:",
            "prefetcht1 [{pf}]",
            "prefetcht1 [{pf} + 64]",
            "add {pf}, 128",
            "vmovups zmm30, [{b}]",
            "vmovups zmm31, [{b} + 64]",
            tile_loop!(@rows $op),
            "add {b}, 128",
            "dec {kc}",
            "dec {pfn}",
            "jnz 2b",
            "3:",
            "test {kc}, {kc}",
            "jz 5f",
            "4:",
            "vmovups zmm30, [{b}]",
            "vmovups zmm31, [{b} + 64]",
            tile_loop!(@rows $op),
            "add {b}, 128",
            "dec {kc}",
            "jnz 4b",
            "5:",
            a0 = inout(reg) a0 => _,
            a3 = inout(reg) a0.add(3 * $lda) => _,
            a6 = inout(reg) a0.add(6 * $lda) => _,
            a9 = inout(reg) a0.add(9 * $lda) => _,
            a12 = inout(reg) a0.add(12 * $lda) => _,
            l = in(reg) stride,
            b = inout(reg) $b => _,
            kc = inout(reg) $kc => _,
            pf = inout(reg) $pf => _,
            pfn = inout(reg) $pf_steps => _,
            inout("zmm0") c0, inout("zmm1") c1, inout("zmm2") c2, inout("zmm3") c3,
            inout("zmm4") c4, inout("zmm5") c5, inout("zmm6") c6, inout("zmm7") c7,
            inout("zmm8") c8, inout("zmm9") c9, inout("zmm10") c10, inout("zmm11") c11,
            inout("zmm12") c12, inout("zmm13") c13, inout("zmm14") c14, inout("zmm15") c15,
            inout("zmm16") c16, inout("zmm17") c17, inout("zmm18") c18, inout("zmm19") c19,
            inout("zmm20") c20, inout("zmm21") c21, inout("zmm22") c22, inout("zmm23") c23,
            inout("zmm24") c24, inout("zmm25") c25, inout("zmm26") c26, inout("zmm27") c27,
            out("zmm30") _, out("zmm31") _,
            options(nostack, readonly),
        );
        [
            [c0, c1], [c2, c3], [c4, c5], [c6, c7], [c8, c9], [c10, c11], [c12, c13],
            [c14, c15], [c16, c17], [c18, c19], [c20, c21], [c22, c23], [c24, c25], [c26, c27],
        ]
    }};
    // One step's 28 multiply-adds, then the row pointers move one element on. Rows 0..14 are
    // a0 + {0, 1, 2, 4}·l, a3 + {0, 2}·l, a6 + {0, 1, 2, 4}·l, a9 + {0, 2}·l, a12 + {0, 1}·l.
    (@rows $op:literal) => {
        concat!(
            $op, " zmm0, zmm30, dword ptr [{a0}]{{1to16}}\n", $op, " zmm1, zmm31, dword ptr [{a0}]{{1to16}}\n",
            $op, " zmm2, zmm30, dword ptr [{a0} + {l}]{{1to16}}\n", $op, " zmm3, zmm31, dword ptr [{a0} + {l}]{{1to16}}\n",
            $op, " zmm4, zmm30, dword ptr [{a0} + {l}*2]{{1to16}}\n", $op, " zmm5, zmm31, dword ptr [{a0} + {l}*2]{{1to16}}\n",
            $op, " zmm6, zmm30, dword ptr [{a3}]{{1to16}}\n", $op, " zmm7, zmm31, dword ptr [{a3}]{{1to16}}\n",
            $op, " zmm8, zmm30, dword ptr [{a0} + {l}*4]{{1to16}}\n", $op, " zmm9, zmm31, dword ptr [{a0} + {l}*4]{{1to16}}\n",
            $op, " zmm10, zmm30, dword ptr [{a3} + {l}*2]{{1to16}}\n", $op, " zmm11, zmm31, dword ptr [{a3} + {l}*2]{{1to16}}\n",
            $op, " zmm12, zmm30, dword ptr [{a6}]{{1to16}}\n", $op, " zmm13, zmm31, dword ptr [{a6}]{{1to16}}\n",
            $op, " zmm14, zmm30, dword ptr [{a6} + {l}]{{1to16}}\n", $op, " zmm15, zmm31, dword ptr [{a6} + {l}]{{1to16}}\n",
            $op, " zmm16, zmm30, dword ptr [{a6} + {l}*2]{{1to16}}\n", $op, " zmm17, zmm31, dword ptr [{a6} + {l}*2]{{1to16}}\n",
            $op, " zmm18, zmm30, dword ptr [{a9}]{{1to16}}\n", $op, " zmm19, zmm31, dword ptr [{a9}]{{1to16}}\n",
            $op, " zmm20, zmm30, dword ptr [{a6} + {l}*4]{{1to16}}\n", $op, " zmm21, zmm31, dword ptr [{a6} + {l}*4]{{1to16}}\n",
            $op, " zmm22, zmm30, dword ptr [{a9} + {l}*2]{{1to16}}\n", $op, " zmm23, zmm31, dword ptr [{a9} + {l}*2]{{1to16}}\n",
            $op, " zmm24, zmm30, dword ptr [{a12}]{{1to16}}\n", $op, " zmm25, zmm31, dword ptr [{a12}]{{1to16}}\n",
            $op, " zmm26, zmm30, dword ptr [{a12} + {l}]{{1to16}}\n", $op, " zmm27, zmm31, dword ptr [{a12} + {l}]{{1to16}}\n",
            "add {a0}, 4\nadd {a3}, 4\nadd {a6}, 4\nadd {a9}, 4\nadd {a12}, 4",
        )
    };
}

/// `Σ_kk a[r, kk] · b[kk, 0..32]` for the 14 rows `r` of `a` (`lda` floats apart), `b` a panel slice
/// of `kc` rows of 32 floats; the first `pf_steps` steps each prefetch 128 bytes of `pf` into L2.
///
/// # Safety
/// `a` valid for reads of 14 rows of `kc` floats `lda` apart, `b` for `kc · 32` floats, `pf_steps ≤
/// kc` (a prefetch never faults); `kc ≥ 1`; the CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn fma_tile(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    pf: *const f32,
    pf_steps: usize,
) -> FullTile {
    debug_assert!(kc >= 1 && pf_steps <= kc);
    // SAFETY: the loop reads rows a + r·lda (r < 14) for kc elements and kc·32 floats of b, which
    // the caller guarantees; it writes only the named registers; a prefetch never faults.
    unsafe { tile_loop!("vfmadd231ps", kc, a, lda, b, pf, pf_steps) }
}

/// As [`fma_tile`] on bf16 pairs: `a` holds 14 rows of `kc` pairs (32-bit slots, `lda` apart), `b`
/// `kc` pair rows of 32 slots; each step adds both products of a pair (`vdpbf16ps`).
///
/// # Safety
/// As [`fma_tile`] in 32-bit slots; the CPU must have AVX-512 F and AVX512_BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn dpbf16_tile(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    pf: *const f32,
    pf_steps: usize,
) -> FullTile {
    debug_assert!(kc >= 1 && pf_steps <= kc);
    // SAFETY: as in `fma_tile`.
    unsafe { tile_loop!("vdpbf16ps", kc, a, lda, b, pf, pf_steps) }
}
