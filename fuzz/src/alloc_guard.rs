//! A global allocator that aborts on any single allocation over [`MAX_ALLOC`] bytes, so that an
//! allocation the readers' limits should have prevented is a crash the fuzzer records (AFL++ sees
//! the abort) instead of a silent success on a machine with enough memory.
//!
//! The targets run with tight limits (tiny images, inputs of at most 1 MiB): nothing they
//! legitimately do comes near [`MAX_ALLOC`] (a 1 MiB checkpoint may expand to 4 MiB + 64 MiB of f32;
//! a compressed entry inflates to at most 32 MiB + 64 MiB).

use std::alloc::{GlobalAlloc, Layout, System};

/// Largest single allocation allowed: 256 MiB.
pub const MAX_ALLOC: usize = 256 << 20;

/// The guard: [`System`] with a size check.
pub struct Guard;

#[cold]
fn over_limit(size: usize) -> ! {
    // No formatting (it could allocate): a fixed message, then abort.
    let _ = size;
    const MSG: &[u8] = b"alloc_guard: allocation over MAX_ALLOC, aborting\n";
    use std::io::Write;
    let _ = std::io::stderr().write_all(MSG);
    std::process::abort()
}

// SAFETY: every call is forwarded unchanged to `System` (which upholds `GlobalAlloc`'s contract)
// after a size check that only ever aborts.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            over_limit(layout.size());
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            over_limit(layout.size());
        }
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC {
            over_limit(new_size);
        }
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}
