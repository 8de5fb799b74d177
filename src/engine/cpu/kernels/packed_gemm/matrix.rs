//! The packed weight layout: `Wᵀ` in column panels of [`panel_width`] floats, and the microkernel
//! tile sizes of each instruction set. A panel holds FP32 values, or (bf16) pairs of rows of `Wᵀ`
//! as bf16 in one 32-bit slot, the operand layout of `vdpbf16ps`.

use super::super::isa::Isa;
use super::super::slab::WeightSlice;

/// Output columns of one packed panel for `isa`.
pub fn panel_width(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 32,
        Isa::Avx2 | Isa::Scalar => 16,
    }
}

/// Rows of one microkernel tile for `isa`.
pub fn tile_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 14,
        Isa::Avx2 => 6,
        Isa::Scalar => 4,
    }
}

/// How the values of a [`PackedMatrix`] are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// One FP32 value a slot: a panel is `k` rows of `nr`.
    F32,
    /// bf16 (round to nearest even, subnormals flushed to zero), rows `2i` and `2i + 1` of `Wᵀ` in
    /// one 32-bit slot (row `2i` in the low half; a missing last row is zero): a panel is
    /// `⌈k/2⌉` rows of `nr` slots. Half the bytes of [`WeightFormat::F32`].
    Bf16Pairs,
}

/// `Wᵀ` (`[k, n]`, `y = x · Wᵀ`) packed into column panels for one instruction set.
#[derive(Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    isa: Isa,
    nr: usize,
    format: WeightFormat,
    /// `panels · panel_rows · nr` 32-bit slots, on huge pages, shared by clones.
    data: WeightSlice,
}

/// `x` rounded to bf16 (nearest, ties to even; NaN stays NaN; subnormals flush to zero, as
/// `vcvtne2ps2bf16` does): the upper 16 bits of the rounded FP32 value.
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    if b & 0x7f80_0000 == 0 {
        // Zero or subnormal: signed zero.
        return ((b >> 16) & 0x8000) as u16;
    }
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1));
    (rounded >> 16) as u16
}

/// The FP32 value of bf16 bits.
pub fn bf16_value(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("isa", &self.isa)
            .finish()
    }
}

impl PackedMatrix {
    /// Pack a PyTorch `nn.Linear` weight `W` (`[n, k]` row-major, `n` = out features) for `isa`.
    pub fn from_pytorch(weight: &[f32], k: usize, n: usize, isa: Isa) -> Self {
        Self::from_pytorch_as(weight, k, n, isa, WeightFormat::F32)
    }

    /// [`Self::from_pytorch`] in `format` ([`WeightFormat::Bf16Pairs`] only for [`Isa::Avx512`]).
    pub fn from_pytorch_as(
        weight: &[f32],
        k: usize,
        n: usize,
        isa: Isa,
        format: WeightFormat,
    ) -> Self {
        assert_eq!(weight.len(), k * n, "weight is not [{n}, {k}]");
        Self::pack(k, n, isa, format, |kk, j| weight[j * k + kk])
    }

    /// Pack `Wᵀ` given row-major `[k, n]` for `isa`.
    pub fn from_transposed(wt: &[f32], k: usize, n: usize, isa: Isa) -> Self {
        assert_eq!(wt.len(), k * n, "matrix is not [{k}, {n}]");
        Self::pack(k, n, isa, WeightFormat::F32, |kk, j| wt[kk * n + j])
    }

    /// The same matrix in [`WeightFormat::Bf16Pairs`] (each value rounded to bf16).
    pub fn to_bf16(&self) -> Self {
        Self::pack(
            self.k,
            self.n,
            self.isa,
            WeightFormat::Bf16Pairs,
            |kk, j| self.get(kk, j),
        )
    }

    fn pack(
        k: usize,
        n: usize,
        isa: Isa,
        format: WeightFormat,
        at: impl Fn(usize, usize) -> f32,
    ) -> Self {
        let nr = panel_width(isa);
        let panels = n.div_ceil(nr);
        let rows = match format {
            WeightFormat::F32 => k,
            WeightFormat::Bf16Pairs => {
                // The bf16 microkernel exists for AVX-512 only (its panel width).
                assert_eq!(isa, Isa::Avx512, "bf16 panels are packed for AVX-512");
                k.div_ceil(2)
            }
        };
        // Slot (row i, column j) of the packed `Wᵀ`.
        let slot = |i: usize, j: usize| -> f32 {
            match format {
                WeightFormat::F32 => at(i, j),
                WeightFormat::Bf16Pairs => {
                    let half = |kk: usize| {
                        if kk < k {
                            u32::from(bf16_bits(at(kk, j)))
                        } else {
                            0
                        }
                    };
                    f32::from_bits(half(2 * i) | (half(2 * i + 1) << 16))
                }
            }
        };
        let data = WeightSlice::filled(panels * rows * nr, |data| {
            for p in 0..panels {
                let panel = &mut data[p * rows * nr..(p + 1) * rows * nr];
                for (i, row) in panel.chunks_exact_mut(nr).enumerate() {
                    for (jj, v) in row.iter_mut().enumerate() {
                        let j = p * nr + jj;
                        if j < n {
                            *v = slot(i, j);
                        }
                    }
                }
            }
        });
        Self {
            k,
            n,
            isa,
            nr,
            format,
            data,
        }
    }

    /// Input width (rows of `Wᵀ`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width (columns of `Wᵀ`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The instruction set it was packed for (its microkernel).
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Columns per panel.
    pub fn nr(&self) -> usize {
        self.nr
    }

    /// Number of column panels.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(self.nr)
    }

    /// How the values are stored.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Rows of one panel: `k` (FP32) or `⌈k/2⌉` pairs (bf16).
    pub fn panel_rows(&self) -> usize {
        match self.format {
            WeightFormat::F32 => self.k,
            WeightFormat::Bf16Pairs => self.k.div_ceil(2),
        }
    }

    /// Bytes the packed values take (padding included).
    pub fn bytes(&self) -> usize {
        4 * self.data.as_slice().len()
    }

    /// `Wᵀ[kk, j]` (= PyTorch's `W[j, kk]`), as stored (bf16-rounded in [`WeightFormat::Bf16Pairs`]).
    pub fn get(&self, kk: usize, j: usize) -> f32 {
        assert!(kk < self.k && j < self.n);
        let (p, jj) = (j / self.nr, j % self.nr);
        let rows = self.panel_rows();
        match self.format {
            WeightFormat::F32 => self.data.as_slice()[p * rows * self.nr + kk * self.nr + jj],
            WeightFormat::Bf16Pairs => {
                let slot =
                    self.data.as_slice()[p * rows * self.nr + (kk / 2) * self.nr + jj].to_bits();
                bf16_value((slot >> (16 * (kk % 2))) as u16)
            }
        }
    }

    /// Panel `p`: [`Self::panel_rows`] rows of `nr` slots.
    pub(super) fn panel(&self, p: usize) -> &[f32] {
        let len = self.panel_rows() * self.nr;
        &self.data.as_slice()[p * len..(p + 1) * len]
    }
}
