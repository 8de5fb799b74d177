/* Device self-test exported by libmagicmind_plugin.so, called by swin-serve at start-up (through
 * dlsym) to check both plugin kernels on the MLU before serving. C ABI. */
#ifndef SWIN_PLUGINS_COMMON_SELF_TEST_H_
#define SWIN_PLUGINS_COMMON_SELF_TEST_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Runs `op_name` ("MyPlugin::CnnlRoll" or "MyPlugin::PluginReLU") on the current device (the
 * caller has called cnrtSetDevice on this thread) against a host reference and writes a one-line
 * summary to `message` (NUL-terminated, truncated to `message_len`).
 * Returns 0 when the device result equals the reference, 1 on a mismatch, 2 when a CNRT/CNNL call
 * failed, -1 for an unknown op name. */
int32_t swin_plugin_self_test(const char *op_name, char *message, size_t message_len);

#ifdef __cplusplus
}
#endif
#endif /* SWIN_PLUGINS_COMMON_SELF_TEST_H_ */
