//! [`BackendKind`]: which backend runs the model, and what that means for the rest of the data
//! path.

/// Which backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum BackendKind {
    /// The native CPU engine (default).
    Cpu,
    /// Cambricon MLU370 through MagicMind (needs a build with `--features mlu`).
    Mlu,
}

impl BackendKind {
    /// `cpu` or `mlu`, as logs, errors and GetModelInfo spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Mlu => "mlu",
        }
    }

    /// Whether the forward pass computes on the host's own cores. Then inputs are prepared
    /// (decoded) on the engine's threads between forward passes rather than beside them: a decode
    /// that preempts one engine thread stalls the others at their next join, so decoding beside a
    /// busy CPU engine costs more than its own CPU time (docs/performance.md). An accelerator's
    /// host threads mostly wait, and decoding overlaps them.
    pub fn computes_on_host_cores(self) -> bool {
        match self {
            BackendKind::Cpu => true,
            BackendKind::Mlu => false,
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
