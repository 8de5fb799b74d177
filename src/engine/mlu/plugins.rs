//! MagicMind plugin libraries: loading them (before the model, which refers to their ops) and their
//! device self-tests (`swin_plugin_self_test`), reported as one [`PluginCheck`] per plugin op.

use std::path::{Path, PathBuf};

use super::error::backend_error;
use super::runtime::{MluRuntime, SelfTestOutcome};
use crate::engine::{EngineError, PluginCheck};

/// The plugin ops the SwinV2 MagicMind model uses: (registered op name, short name for logs).
pub const PLUGIN_OPS: [(&str, &str); 2] = [
    ("MyPlugin::CnnlRoll", "roll"),
    ("MyPlugin::PluginReLU", "relu"),
];

/// `dlopen` each library of `paths`, in order. Each one is pushed onto `opened` as soon as it is
/// open, so that when a later one fails the caller's teardown closes those already open.
pub(super) fn open_plugin_libraries<R: MluRuntime>(
    runtime: &R,
    paths: &[PathBuf],
    opened: &mut Vec<(PathBuf, R::PluginLibrary)>,
) -> Result<(), EngineError> {
    for path in paths {
        let path = resolve_library_path(path);
        let library = runtime.open_plugin_library(&path).map_err(|e| {
            backend_error(format!(
                "cannot load MagicMind plugin library {}: {e}",
                path.display()
            ))
        })?;
        tracing::info!(library = %path.display(), "MLU plugin library loaded");
        opened.push((path, library));
    }
    Ok(())
}

/// A plugin path naming an existing file is made absolute: `dlopen` only searches the library
/// path for bare names, so `--plugin-lib libmagicmind_plugin.so` in the current directory would not
/// be found otherwise. Other names are passed on unchanged for the library search.
fn resolve_library_path(path: &Path) -> PathBuf {
    if path.is_file() {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    }
}

/// One [`PluginCheck`] per op of [`PLUGIN_OPS`]: the self-test of the first loaded library that has
/// one for the op (`ok=false`, with the reason, when none has or it failed).
pub(super) fn run_plugin_checks<R: MluRuntime>(
    runtime: &R,
    plugins: &[(PathBuf, R::PluginLibrary)],
) -> Vec<PluginCheck> {
    PLUGIN_OPS
        .iter()
        .map(|&(op, short_name)| {
            let mut outcome = None;
            for (path, library) in plugins {
                match runtime.plugin_self_test(library, op) {
                    SelfTestOutcome::NotAvailable => continue,
                    SelfTestOutcome::Passed(detail) => {
                        outcome = Some((true, format!("{detail} ({})", path.display())));
                    }
                    SelfTestOutcome::Failed(detail) => {
                        outcome = Some((false, format!("device self-test failed: {detail} ({})", path.display())));
                    }
                }
                break;
            }
            let (ok, detail) = outcome.unwrap_or_else(|| {
                let detail = if plugins.is_empty() {
                    "not checked: no plugin library given (--plugin-lib)".to_string()
                } else {
                    format!(
                        "not checked: no loaded plugin library exports swin_plugin_self_test for this op ({})",
                        plugins.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    )
                };
                (false, detail)
            });
            if ok {
                tracing::info!(op, %detail, "MLU plugin self-test passed");
            } else {
                tracing::warn!(op, %detail, "MLU plugin self-test did not pass");
            }
            PluginCheck { op: op.to_string(), short_name: short_name.to_string(), ok, detail }
        })
        .collect()
}
