//! The packed weight layout: `Wᵀ` in column panels of [`panel_width`] floats, and the microkernel
//! tile sizes of each instruction set.

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

/// `Wᵀ` (`[k, n]`, `y = x · Wᵀ`) packed into column panels for one instruction set.
#[derive(Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    isa: Isa,
    nr: usize,
    /// `panels · k · nr` floats, on huge pages, shared by clones.
    data: WeightSlice,
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
        assert_eq!(weight.len(), k * n, "weight is not [{n}, {k}]");
        Self::pack(k, n, isa, |kk, j| weight[j * k + kk])
    }

    /// Pack `Wᵀ` given row-major `[k, n]` for `isa`.
    pub fn from_transposed(wt: &[f32], k: usize, n: usize, isa: Isa) -> Self {
        assert_eq!(wt.len(), k * n, "matrix is not [{k}, {n}]");
        Self::pack(k, n, isa, |kk, j| wt[kk * n + j])
    }

    fn pack(k: usize, n: usize, isa: Isa, at: impl Fn(usize, usize) -> f32) -> Self {
        let nr = panel_width(isa);
        let panels = n.div_ceil(nr);
        let data = WeightSlice::filled(panels * k * nr, |data| {
            for p in 0..panels {
                let panel = &mut data[p * k * nr..(p + 1) * k * nr];
                for (kk, row) in panel.chunks_exact_mut(nr).enumerate() {
                    for (jj, v) in row.iter_mut().enumerate() {
                        let j = p * nr + jj;
                        if j < n {
                            *v = at(kk, j);
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

    /// `Wᵀ[kk, j]` (= PyTorch's `W[j, kk]`).
    pub fn get(&self, kk: usize, j: usize) -> f32 {
        assert!(kk < self.k && j < self.n);
        let (p, jj) = (j / self.nr, j % self.nr);
        self.data.as_slice()[p * self.k * self.nr + kk * self.nr + jj]
    }

    /// Panel `p`: `k` rows of `nr` floats.
    pub(super) fn panel(&self, p: usize) -> &[f32] {
        let len = self.k * self.nr;
        &self.data.as_slice()[p * len..(p + 1) * len]
    }
}
