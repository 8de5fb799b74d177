/* TEST-ONLY stand-in for the Cambricon Neuware SDK (see tests/neuware_stub/README.md).
 * Never use for a release build: define SWIN_SERVE_NEUWARE_STUB only in syntax checks. */
#ifndef SWIN_SERVE_NEUWARE_STUB_GUARD_H_
#define SWIN_SERVE_NEUWARE_STUB_GUARD_H_
#ifndef SWIN_SERVE_NEUWARE_STUB
#error "tests/neuware_stub holds TEST-ONLY stand-in headers; build against $NEUWARE_HOME/include instead"
#endif
#endif
