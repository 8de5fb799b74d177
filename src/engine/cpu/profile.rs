//! [`Profile`]: wall time per kind of operation and stage of one forward pass
//! ([`CpuEngine::profile`](super::CpuEngine::profile), used by `cargo bench --bench engine`).

/// Wall time per kind of operation and stage, summed over one forward pass.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// `(stage, operation, milliseconds)` in first-seen order; stage `None` outside the stages.
    pub entries: Vec<(Option<usize>, &'static str, f64)>,
    stage: Option<usize>,
    last: Option<std::time::Instant>,
}

impl Profile {
    fn lap(&mut self, what: &'static str) {
        let now = std::time::Instant::now();
        let ms = self
            .last
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64() * 1e3);
        self.last = Some(now);
        let stage = self.stage;
        match self
            .entries
            .iter_mut()
            .find(|(s, w, _)| *s == stage && *w == what)
        {
            Some(e) => e.2 += ms,
            None => self.entries.push((stage, what, ms)),
        }
    }

    /// Milliseconds per operation summed over stages, in first-seen order.
    pub fn by_operation(&self) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = vec![];
        for &(_, what, ms) in &self.entries {
            match out.iter_mut().find(|(w, _)| *w == what) {
                Some(e) => e.1 += ms,
                None => out.push((what, ms)),
            }
        }
        out
    }

    /// Milliseconds per stage (`None`: patch embed and head).
    pub fn by_stage(&self) -> Vec<(Option<usize>, f64)> {
        let mut out: Vec<(Option<usize>, f64)> = vec![];
        for &(stage, _, ms) in &self.entries {
            match out.iter_mut().find(|(s, _)| *s == stage) {
                Some(e) => e.1 += ms,
                None => out.push((stage, ms)),
            }
        }
        out
    }
}

/// Set the stage that following marks belong to, when profiling.
pub(super) fn enter_stage(prof: &mut Option<Profile>, stage: Option<usize>) {
    if let Some(p) = prof {
        p.stage = stage;
    }
}

/// Record the time since the previous mark under `what`, when profiling.
pub(super) fn mark(prof: &mut Option<Profile>, what: &'static str) {
    if let Some(p) = prof {
        p.lap(what);
    }
}
