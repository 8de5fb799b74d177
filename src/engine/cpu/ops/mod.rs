//! The lab's plugin ops (`MyPlugin::CnnlRoll`, `MyPlugin::PluginReLU`) with CPU kernels.
//! OWNER: cpu-engine helper.
