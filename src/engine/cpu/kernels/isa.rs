//! The instruction set the CPU engine's kernels run on, chosen once per process.
//!
//! Detected at run time (`is_x86_feature_detected!`): AVX-512 (F) when the CPU has it, else AVX2+FMA,
//! else portable scalar code. `SWIN_SERVE_ISA=avx512|avx2|scalar` lowers the choice (never raises it
//! past what the CPU has: asking for more logs a warning and keeps the detected one), so one AVX-512
//! machine can run — and `cargo test` does run — every path.

use std::sync::OnceLock;

/// Environment variable that forces a lower instruction set for the engine's kernels.
pub const ISA_ENV: &str = "SWIN_SERVE_ISA";

/// An instruction set of the engine's kernels, ordered from least to most capable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust (what the compiler makes of it for the baseline target).
    Scalar,
    /// AVX2 and FMA (256-bit).
    Avx2,
    /// AVX-512 F (512-bit).
    Avx512,
}

impl Isa {
    /// Every instruction set, least capable first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// The name used by [`ISA_ENV`] and in the engine's description.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parse a name of [`ISA_ENV`].
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The most capable instruction set this CPU runs.
    pub fn detected() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Whether this CPU can run `self`.
    pub fn supported(self) -> bool {
        self <= Isa::detected()
    }

    /// The instruction sets this CPU runs, least capable first (what tests iterate over).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }

    /// The instruction set the engine uses in this process: [`Isa::detected`], lowered by
    /// [`ISA_ENV`] when set. Read once.
    pub fn active() -> Isa {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let detected = Isa::detected();
            match std::env::var(ISA_ENV) {
                Err(_) => detected,
                Ok(v) => match Isa::from_name(&v) {
                    Some(want) if want <= detected => want,
                    Some(want) => {
                        tracing::warn!(
                            "{ISA_ENV}={v}: this CPU has no {}; using {}",
                            want.name(),
                            detected.name()
                        );
                        detected
                    }
                    None => {
                        tracing::warn!(
                            "{ISA_ENV}={v} is not one of avx512, avx2, scalar; using {}",
                            detected.name()
                        );
                        detected
                    }
                },
            }
        })
    }
}

/// Whether the engine can run bf16 linear layers here: the active instruction set is AVX-512 and
/// the CPU has AVX512_BF16 (`vcvtne2ps2bf16`, `vdpbf16ps`: Zen 4 and later, Cooper Lake, Sapphire
/// Rapids and later). Lowering [`ISA_ENV`] below `avx512` turns it off too.
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        Isa::active() == Isa::Avx512 && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why `--precision bf16` cannot run here (what startup says).
pub fn bf16_refusal() -> String {
    format!(
        "--precision bf16 needs AVX-512 with AVX512_BF16 (AMD Zen 4 or later, Intel Cooper Lake, \
         Sapphire Rapids or later); the engine runs on {} here{}: use --precision fp32 (the default)",
        Isa::active(),
        if std::env::var_os(ISA_ENV).is_some() {
            format!(" ({ISA_ENV} is set)")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_by_capability() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::from_name("sse"), None);
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
        assert!(Isa::available().contains(&Isa::Scalar));
        assert!(Isa::active() <= Isa::detected());
    }
}
