//! Building the slots of one model: [`create_engines_with`] runs the setup steps in the order the
//! MagicMind samples use (plugin libraries, device, model, engine, self-tests, slots) and returns
//! them as [`MluEngines`]. What the steps create for all slots is held by [`Shared`], which
//! releases it in reverse order — on an early return during setup, or when the last slot is
//! dropped.

use std::sync::Arc;

use super::error::backend_error;
use super::geometry::Geometry;
use super::options::MluOptions;
use super::plugins::{open_plugin_libraries, run_plugin_checks};
use super::runtime::{MluRuntime, SlotConfig};
use super::shared::Shared;
use super::slot::MluEngine;
use crate::engine::{Engine, EngineError, PluginCheck};

/// The slots created from one model, plus what the scheduler and the server need to know.
pub struct MluEngines {
    /// One engine per slot; dropping the last one tears the model down.
    pub engines: Vec<Box<dyn Engine>>,
    /// Device self-test of each plugin op.
    pub plugin_checks: Vec<PluginCheck>,
    /// Square input side in pixels.
    pub input_size: usize,
    /// Number of output classes.
    pub num_classes: usize,
}

/// [`create_engines`](super::create_engines) on any [`MluRuntime`] (the real one, or a fake in tests).
pub fn create_engines_with<R: MluRuntime>(
    runtime: Arc<R>,
    opts: &MluOptions,
) -> Result<MluEngines, EngineError> {
    if opts.instances == 0 {
        return Err(EngineError::InvalidInput(
            "--instances must be at least 1".into(),
        ));
    }
    if opts.device_id < 0 {
        return Err(EngineError::InvalidInput(format!(
            "MLU device id must be >= 0, got {}",
            opts.device_id
        )));
    }
    if !opts.model_path.is_file() {
        return Err(backend_error(format!(
            "MagicMind model file not found: {}",
            opts.model_path.display()
        )));
    }

    // Everything below is released by Shared's Drop, in reverse order, on any early return.
    let mut shared = Shared {
        runtime: Arc::clone(&runtime),
        device_id: opts.device_id,
        model_path: opts.model_path.clone(),
        plugins: Vec::new(),
        model: None,
        engine: None,
    };
    open_plugin_libraries(&*runtime, &opts.plugin_libs, &mut shared.plugins)?;

    let count = runtime.device_count().map_err(|e| {
        backend_error(format!("cannot query MLU devices (is the Cambricon driver loaded, /dev/cambricon_dev* visible?): {e}"))
    })?;
    if opts.device_id as u32 >= count {
        return Err(backend_error(format!(
            "MLU device {} does not exist: {count} device(s) visible",
            opts.device_id
        )));
    }
    runtime
        .set_device(opts.device_id)
        .map_err(|e| backend_error(format!("cannot select MLU device {}: {e}", opts.device_id)))?;

    let model = runtime.deserialize_model(&opts.model_path).map_err(|e| {
        backend_error(format!(
            "cannot load MagicMind model {}: {e}{}",
            opts.model_path.display(),
            if opts.plugin_libs.is_empty() {
                " (no --plugin-lib given: the SwinV2 model needs libmagicmind_plugin.so)"
            } else {
                ""
            }
        ))
    })?;
    let info = runtime.model_info(&model);
    shared.model = Some(model);
    let info = info.map_err(|e| {
        backend_error(format!(
            "cannot read the inputs/outputs of {}: {e}",
            opts.model_path.display()
        ))
    })?;
    let mut geometry = Geometry::from_model(&info, opts.max_batch).map_err(|e| {
        backend_error(format!(
            "unsupported MagicMind model {}: {e}",
            opts.model_path.display()
        ))
    })?;

    let engine = runtime
        .create_engine(shared.model.as_ref().expect("model set above"))
        .map_err(|e| backend_error(format!("cannot create the MagicMind engine: {e}")))?;
    shared.engine = Some(engine);

    let plugin_checks = run_plugin_checks(&*runtime, &shared.plugins);
    let shared = Arc::new(shared);

    let config = SlotConfig {
        device_id: opts.device_id,
        max_batch: geometry.slot_batch,
        sample_dims: [3, geometry.input_size as i64, geometry.input_size as i64],
    };
    let mut slots: Vec<MluEngine<R>> = Vec::with_capacity(opts.instances);
    for index in 0..opts.instances {
        let engine = shared.engine.as_ref().expect("engine set above");
        let (slot, slot_info) = runtime.create_slot(engine, &config).map_err(|e| {
            backend_error(format!(
                "cannot create MLU slot {} of {} (IContext + queue + buffers for batch {}): {e}",
                index + 1,
                opts.instances,
                geometry.slot_batch
            ))
        })?;
        let mut engine = MluEngine::new(
            Arc::clone(&shared),
            slot,
            index,
            opts.instances,
            geometry.clone(),
        );
        let num_classes = geometry
            .classes_from_slot(&slot_info.output_dims, &info)
            .map_err(|e| {
                backend_error(format!(
                    "unsupported MagicMind model {}: {e}",
                    opts.model_path.display()
                ))
            })?;
        geometry.num_classes = num_classes;
        engine.set_num_classes(num_classes);
        slots.push(engine);
    }

    tracing::info!(
        model = %opts.model_path.display(),
        device = opts.device_id,
        slots = opts.instances,
        max_batch = geometry.max_batch,
        fixed_batch = ?geometry.fixed_batch,
        input_size = geometry.input_size,
        num_classes = geometry.num_classes,
        "MLU engines ready"
    );
    Ok(MluEngines {
        engines: slots
            .into_iter()
            .map(|e| Box::new(e) as Box<dyn Engine>)
            .collect(),
        plugin_checks,
        input_size: geometry.input_size,
        num_classes: geometry.num_classes,
    })
}
