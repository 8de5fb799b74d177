//! Backend selection: [`BackendOptions`] names the backend and its options, [`build`] makes its
//! [`Engines`], self-checked and warmed up. Nothing else in the crate matches on the backend to
//! build one.

use std::time::Instant;

use super::backend_kind::BackendKind;
use super::engines::Engines;
use super::error::EngineError;
use super::instance::{Engine, EngineDescription};
use super::{cpu, mlu};

/// What to build: one variant per backend, each with only the options that backend reads.
#[derive(Debug, Clone)]
pub enum BackendOptions {
    /// The native CPU engine.
    Cpu(cpu::CpuOptions),
    /// MagicMind on an MLU370.
    Mlu(mlu::MluOptions),
}

impl BackendOptions {
    /// Engine instances to create.
    pub fn instances(&self) -> usize {
        match self {
            BackendOptions::Cpu(o) => o.instances,
            BackendOptions::Mlu(o) => o.instances,
        }
    }

    /// Largest batch per instance.
    pub fn max_batch(&self) -> usize {
        match self {
            BackendOptions::Cpu(o) => o.max_batch,
            BackendOptions::Mlu(o) => o.max_batch,
        }
    }
}

/// Build the engines `opts` selects: read the model, self-check the plugin ops, create the
/// instances, and warm each one up with zero batches (batch 1 on the CPU, every batch size
/// 1..=max_batch on the MLU; see `warm_up_batches`) so first requests do not pay for page
/// faults or shape planning, and broken weights are found before serving.
pub fn build(opts: &BackendOptions) -> Result<Engines, EngineError> {
    if opts.instances() == 0 || opts.max_batch() == 0 {
        return Err(EngineError::Options(
            "--instances and --max-batch must be at least 1".into(),
        ));
    }
    let mut engines = match opts {
        BackendOptions::Cpu(o) => cpu::build(o)?,
        BackendOptions::Mlu(o) => mlu::build(o)?,
    };
    warm_up(&mut engines.instances)?;
    Ok(engines)
}

/// Batch sizes the warm-up runs on an instance of `d`. The MagicMind model has a mutable batch:
/// the first `infer` of each input shape makes the runtime plan that shape (shape inference,
/// plugin `SetLocalVar`/`GetWorkspaceSize`, workspace), so every batch size the pool may hand an
/// MLU instance (1..=max_batch) runs once here instead of in the first request of that size. The
/// CPU engine plans its buffers for `max_batch` when the instance is built (cpu/buffers.rs), so
/// batch 1 is enough there: it touches the weights' pages and checks the weights.
fn warm_up_batches(d: &EngineDescription) -> std::ops::RangeInclusive<usize> {
    match d.backend {
        BackendKind::Mlu => 1..=d.max_batch,
        BackendKind::Cpu => 1..=1,
    }
}

/// Run zero batches of every size [`warm_up_batches`] names through every instance.
fn warm_up(engines: &mut [Box<dyn Engine>]) -> Result<(), EngineError> {
    for (i, engine) in engines.iter_mut().enumerate() {
        let d = engine.describe();
        let started = Instant::now();
        for batch in warm_up_batches(&d) {
            let input = vec![0f32; batch * d.image_len()];
            let mut logits = vec![0f32; batch * d.num_classes];
            engine.infer(&input, batch, &mut logits)?;
            if logits.iter().any(|v| !v.is_finite()) {
                return Err(EngineError::WarmUp(format!(
                    "warm-up of instance {i} (batch {batch}) produced non-finite logits: the weights are broken"
                )));
            }
        }
        tracing::info!(
            instance = i,
            batches = ?warm_up_batches(&d),
            ms = started.elapsed().as_secs_f32() * 1e3,
            "warm-up done"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::fake::{self, FakeControls, FakeEngine};

    /// `n` instances of `backend` (max batch `max_batch`, 5 classes), each recording its own
    /// batches; logits 0.5, or NaN for a batch of `nan_at`.
    fn instances(
        backend: BackendKind,
        max_batch: usize,
        n: usize,
        nan_at: Option<usize>,
    ) -> (Vec<Box<dyn Engine>>, Vec<Arc<FakeControls>>) {
        let engines: Vec<FakeEngine> = (0..n)
            .map(|_| {
                let description = EngineDescription {
                    backend,
                    ..fake::description(2, 5, max_batch)
                };
                let engine = FakeEngine::new(description).with_logits(|_, _| 0.5);
                match nan_at {
                    Some(batch) => engine.with_nan_logits_at_batch(batch),
                    None => engine,
                }
            })
            .collect();
        let controls = engines.iter().map(FakeEngine::controls).collect();
        let boxed = engines
            .into_iter()
            .map(|e| Box::new(e) as Box<dyn Engine>)
            .collect();
        (boxed, controls)
    }

    #[test]
    fn mlu_instances_warm_up_every_batch_size() {
        let (mut engines, controls) = instances(BackendKind::Mlu, 4, 2, None);
        warm_up(&mut engines).unwrap();
        for c in &controls {
            assert_eq!(c.batches(), vec![1, 2, 3, 4]);
        }
    }

    #[test]
    fn cpu_instances_warm_up_batch_one_only() {
        let (mut engines, controls) = instances(BackendKind::Cpu, 8, 3, None);
        warm_up(&mut engines).unwrap();
        for c in &controls {
            assert_eq!(c.batches(), vec![1]);
        }
    }

    #[test]
    fn non_finite_logits_at_any_batch_size_fail_the_warm_up() {
        let (mut engines, _) = instances(BackendKind::Mlu, 3, 1, Some(3));
        let err = warm_up(&mut engines).unwrap_err();
        assert!(err.to_string().contains("batch 3"), "{err}");
    }
}
