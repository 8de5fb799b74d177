//! The real [`MluRuntime`]: calls into the C++ shim `mm_shim.h` / `mm_shim.cc` (bindings generated
//! by bindgen in build.rs) and `dlopen`s plugin libraries with `libloading`.
//!
//! Compiled with the `mlu` feature; it is only *used* (and the shim only linked) when build.rs
//! found the Neuware SDK (`cfg(neuware)`).
#![cfg_attr(not(neuware), allow(dead_code))]

use std::ffi::{c_char, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{self, NonNull};

use super::runtime::{
    MluRuntime, ModelInfo, RuntimeError, RuntimeErrorKind, SelfTestOutcome, SlotConfig, SlotInfo,
    TensorDataType, TensorSpec,
};

#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unsafe_op_in_unsafe_fn
)]
#[allow(clippy::all)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/mm_shim_bindings.rs"));
}

use bindings::*;

/// Name of the self-test entry point of libmagicmind_plugin.so (plugins/common/self_test.h).
const SELF_TEST_SYMBOL: &[u8] = b"swin_plugin_self_test\0";

/// MagicMind through the C++ shim.
pub(crate) struct FfiRuntime;

impl FfiRuntime {
    pub(crate) fn new() -> Self {
        Self
    }
}

/// A `magicmind::IModel` owned by the shim.
pub(crate) struct FfiModel(NonNull<MmShimModel>);
/// A `magicmind::IEngine` owned by the shim.
pub(crate) struct FfiEngine(NonNull<MmShimEngine>);
/// An IContext + queue + buffers owned by the shim.
pub(crate) struct FfiSlot(NonNull<MmShimSlot>);

// SAFETY: the model and the engine are created, read and destroyed by the pool from one thread at
// a time (creation under `create_engines_with`, destruction by the last `Shared` owner); MagicMind
// objects are not bound to a thread, only the current CNRT device is, and the pool selects it
// before every call.
unsafe impl Send for FfiModel {}
// SAFETY: see above; shared references are only used to create contexts during start-up.
unsafe impl Sync for FfiModel {}
// SAFETY: see FfiModel.
unsafe impl Send for FfiEngine {}
// SAFETY: see FfiModel.
unsafe impl Sync for FfiEngine {}
// SAFETY: a slot is used through `&mut` only, i.e. by one thread at a time, with its device set.
unsafe impl Send for FfiSlot {}

fn error_kind(code: i32) -> RuntimeErrorKind {
    match code as u32 {
        MM_SHIM_ERR_DEVICE => RuntimeErrorKind::Device,
        MM_SHIM_ERR_MAGICMIND => RuntimeErrorKind::MagicMind,
        MM_SHIM_ERR_INVALID_ARGUMENT => RuntimeErrorKind::InvalidArgument,
        _ => RuntimeErrorKind::Internal,
    }
}

fn c_text(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn check(code: i32, error: &MmShimError) -> Result<(), RuntimeError> {
    if code == MM_SHIM_OK as i32 {
        Ok(())
    } else {
        let message = c_text(&error.message);
        let message = if message.is_empty() {
            format!("shim error code {code}")
        } else {
            message
        };
        Err(RuntimeError::new(error_kind(code), message))
    }
}

fn path_to_c(path: &Path) -> Result<CString, RuntimeError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        RuntimeError::new(
            RuntimeErrorKind::InvalidArgument,
            format!("path {} contains NUL", path.display()),
        )
    })
}

fn data_type(code: i32) -> TensorDataType {
    match code as u32 {
        MM_SHIM_DTYPE_FLOAT32 => TensorDataType::Float32,
        MM_SHIM_DTYPE_FLOAT16 => TensorDataType::Float16,
        MM_SHIM_DTYPE_INT32 => TensorDataType::Int32,
        MM_SHIM_DTYPE_INT64 => TensorDataType::Int64,
        _ => TensorDataType::Other,
    }
}

impl FfiRuntime {
    fn tensor_spec(
        &self,
        model: &FfiModel,
        is_output: bool,
        index: i32,
    ) -> Result<TensorSpec, RuntimeError> {
        let mut spec = MmShimTensorSpec::default();
        let mut error = MmShimError::default();
        // SAFETY: `model` is a live shim model; `spec` and `error` are valid for writes.
        let code = unsafe {
            mm_shim_model_tensor_spec(
                model.0.as_ptr(),
                i32::from(is_output),
                index,
                &mut spec,
                &mut error,
            )
        };
        check(code, &error)?;
        let num_dims = (spec.num_dims.max(0) as usize).min(spec.dims.len());
        Ok(TensorSpec {
            name: c_text(&spec.name),
            data_type: data_type(spec.data_type),
            dims: spec.dims[..num_dims].to_vec(),
        })
    }
}

impl MluRuntime for FfiRuntime {
    type PluginLibrary = libloading::Library;
    type Model = FfiModel;
    type Engine = FfiEngine;
    type Slot = FfiSlot;

    fn open_plugin_library(&self, path: &Path) -> Result<Self::PluginLibrary, RuntimeError> {
        // SAFETY: loading a MagicMind plugin library runs its static initializers, which register
        // its ops with the MagicMind runtime; that is the purpose of the call.
        unsafe { libloading::Library::new(path) }
            .map_err(|e| RuntimeError::new(RuntimeErrorKind::Library, e.to_string()))
    }

    fn plugin_self_test(&self, library: &Self::PluginLibrary, op: &str) -> SelfTestOutcome {
        // SAFETY: when present, the symbol has the C signature of plugins/common/self_test.h, which
        // is the SwinPluginSelfTestFn type bindgen generated from mm_shim.h.
        let symbol = match unsafe { library.get::<SwinPluginSelfTestFn>(SELF_TEST_SYMBOL) } {
            Ok(symbol) => symbol,
            Err(_) => return SelfTestOutcome::NotAvailable,
        };
        let Some(self_test) = *symbol else {
            return SelfTestOutcome::NotAvailable;
        };
        let Ok(op_c) = CString::new(op) else {
            return SelfTestOutcome::NotAvailable;
        };
        let mut message = vec![0 as c_char; 512];
        // SAFETY: `op_c` is NUL-terminated; `message` is writable for its length, which is passed.
        let code = unsafe { self_test(op_c.as_ptr(), message.as_mut_ptr(), message.len()) };
        let text = c_text(&message);
        match code {
            0 => SelfTestOutcome::Passed(text),
            -1 => SelfTestOutcome::NotAvailable,
            _ => SelfTestOutcome::Failed(text),
        }
    }

    fn close_plugin_library(&self, library: Self::PluginLibrary) {
        if let Err(e) = library.close() {
            tracing::warn!(error = %e, "dlclose of a MagicMind plugin library failed");
        }
    }

    fn device_count(&self) -> Result<u32, RuntimeError> {
        let mut count = 0u32;
        let mut error = MmShimError::default();
        // SAFETY: both pointers are valid for writes.
        let code = unsafe { mm_shim_device_count(&mut count, &mut error) };
        check(code, &error).map(|()| count)
    }

    fn set_device(&self, device_id: i32) -> Result<(), RuntimeError> {
        let mut error = MmShimError::default();
        // SAFETY: `error` is valid for writes.
        let code = unsafe { mm_shim_set_device(device_id, &mut error) };
        check(code, &error)
    }

    fn load_model(&self, path: &Path) -> Result<Self::Model, RuntimeError> {
        let path_c = path_to_c(path)?;
        let mut model: *mut MmShimModel = ptr::null_mut();
        let mut error = MmShimError::default();
        // SAFETY: `path_c` is NUL-terminated; `model` and `error` are valid for writes.
        let code = unsafe { mm_shim_model_load(path_c.as_ptr(), &mut model, &mut error) };
        check(code, &error)?;
        NonNull::new(model).map(FfiModel).ok_or_else(|| {
            RuntimeError::new(
                RuntimeErrorKind::Internal,
                "mm_shim_model_load returned null",
            )
        })
    }

    fn model_info(&self, model: &Self::Model) -> Result<ModelInfo, RuntimeError> {
        let (mut num_inputs, mut num_outputs) = (0i32, 0i32);
        let mut error = MmShimError::default();
        // SAFETY: `model` is a live shim model; the out-pointers are valid for writes.
        let code = unsafe {
            mm_shim_model_io_count(
                model.0.as_ptr(),
                &mut num_inputs,
                &mut num_outputs,
                &mut error,
            )
        };
        check(code, &error)?;
        Ok(ModelInfo {
            inputs: (0..num_inputs)
                .map(|i| self.tensor_spec(model, false, i))
                .collect::<Result<_, _>>()?,
            outputs: (0..num_outputs)
                .map(|i| self.tensor_spec(model, true, i))
                .collect::<Result<_, _>>()?,
        })
    }

    fn destroy_model(&self, model: Self::Model) {
        // SAFETY: `model` came from mm_shim_model_load and is destroyed exactly once (moved in).
        unsafe { mm_shim_model_destroy(model.0.as_ptr()) }
    }

    fn create_engine(&self, model: &Self::Model) -> Result<Self::Engine, RuntimeError> {
        let mut engine: *mut MmShimEngine = ptr::null_mut();
        let mut error = MmShimError::default();
        // SAFETY: `model` is a live shim model; `engine` and `error` are valid for writes.
        let code = unsafe { mm_shim_engine_create(model.0.as_ptr(), &mut engine, &mut error) };
        check(code, &error)?;
        NonNull::new(engine).map(FfiEngine).ok_or_else(|| {
            RuntimeError::new(
                RuntimeErrorKind::Internal,
                "mm_shim_engine_create returned null",
            )
        })
    }

    fn destroy_engine(&self, engine: Self::Engine) {
        // SAFETY: `engine` came from mm_shim_engine_create and is destroyed exactly once (moved in).
        unsafe { mm_shim_engine_destroy(engine.0.as_ptr()) }
    }

    fn create_slot(
        &self,
        engine: &Self::Engine,
        config: &SlotConfig,
    ) -> Result<(Self::Slot, SlotInfo), RuntimeError> {
        let mut slot: *mut MmShimSlot = ptr::null_mut();
        let mut out_num_dims = 0i32;
        let mut out_dims = [0i64; MM_SHIM_MAX_DIMS as usize];
        let mut error = MmShimError::default();
        // SAFETY: `engine` is a live shim engine; `sample_dims` holds 3 values and `out_dims`
        // MM_SHIM_MAX_DIMS, as the header requires; the other pointers are valid for writes.
        let code = unsafe {
            mm_shim_slot_create(
                engine.0.as_ptr(),
                config.max_batch as i64,
                config.sample_dims.as_ptr(),
                &mut out_num_dims,
                out_dims.as_mut_ptr(),
                &mut slot,
                &mut error,
            )
        };
        check(code, &error)?;
        let slot = NonNull::new(slot).map(FfiSlot).ok_or_else(|| {
            RuntimeError::new(
                RuntimeErrorKind::Internal,
                "mm_shim_slot_create returned null",
            )
        })?;
        let n = (out_num_dims.max(0) as usize).min(out_dims.len());
        Ok((
            slot,
            SlotInfo {
                output_dims: out_dims[..n].to_vec(),
            },
        ))
    }

    fn infer(
        &self,
        slot: &mut Self::Slot,
        input: &[f32],
        input_dims: [i64; 4],
        output: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let mut error = MmShimError::default();
        // SAFETY: `slot` is a live shim slot borrowed mutably (one thread); `input` and `output`
        // are valid for their lengths, which are passed; `input_dims` holds 4 values.
        let code = unsafe {
            mm_shim_slot_infer(
                slot.0.as_ptr(),
                input.as_ptr(),
                input.len(),
                input_dims.as_ptr(),
                output.as_mut_ptr(),
                output.len(),
                &mut error,
            )
        };
        check(code, &error)
    }

    fn destroy_slot(&self, slot: Self::Slot) {
        // SAFETY: `slot` came from mm_shim_slot_create and is destroyed exactly once (moved in).
        unsafe { mm_shim_slot_destroy(slot.0.as_ptr()) }
    }
}
