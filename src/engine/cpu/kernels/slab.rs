//! Memory for weights packed at load: shared slabs on transparent huge pages.
//!
//! A forward pass at batch 1 reads every weight from DRAM once (113 MB for SwinV2-T, more than the
//! caches keep between passes). On 4 KiB pages that is a TLB miss and a page walk every 4 KiB of
//! each panel stream; on 2 MiB pages, one per 2 MiB (`linear::speed` shows the difference).
//!
//! Matrices are carved out of [`SLAB_BYTES`] slabs (2 MiB aligned, `madvise(MADV_HUGEPAGE)`: the
//! system's `transparent_hugepage` setting decides, `madvise` being the usual default), so the many
//! small matrices share huge pages instead of each sitting on small ones. A slab is freed when the
//! last matrix in it is dropped. Only touched pages are resident, so the unused end of the last
//! slab costs address space, not memory.
//!
//! The activation buffers an engine instance plans once ([`HugeBuffer`]) are advised the same way:
//! at batch 8 they are tens of MB each, streamed by every layer.

use std::sync::{Arc, Mutex, Weak};

/// Bytes of one transparent huge page (x86-64 Linux).
const HUGE_PAGE: usize = 2 << 20;
/// Bytes of one slab (a larger matrix gets a slab of its own size).
const SLAB_BYTES: usize = 32 << 20;
/// Offsets in a slab are multiples of 16 floats: every matrix starts on a cache line.
const ALIGN_FLOATS: usize = 16;

/// Ask the kernel to back `[ptr, ptr + bytes)` with transparent huge pages: `ptr` 2 MiB aligned,
/// the range inside one allocation or mapping of ours and not yet touched (the advice only takes
/// effect for pages faulted in after it). Failure (THP off, an old kernel) leaves small pages,
/// harmlessly; elsewhere than Linux it does nothing.
fn advise_huge_pages(ptr: *mut f32, bytes: usize) {
    // SAFETY: FFI. madvise reads no memory and only changes how the kernel backs the range, which
    // belongs to the caller's allocation (above).
    #[cfg(target_os = "linux")]
    unsafe {
        libc::madvise(ptr.cast(), bytes, libc::MADV_HUGEPAGE);
    }
    let _ = (ptr, bytes);
}

/// One allocation of huge pages.
struct Slab {
    ptr: std::ptr::NonNull<f32>,
    floats: usize,
}

// SAFETY: a slab is plain memory; its floats are written only through `WeightSlice::filled`, each
// call on a range reserved for it alone (under `CURRENT`'s lock), before any reader can see that
// range; afterwards they are only read.
unsafe impl Send for Slab {}
// SAFETY: as above.
unsafe impl Sync for Slab {}

impl Slab {
    fn layout(floats: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(floats * 4, HUGE_PAGE).expect("slab size")
    }

    /// A slab of `floats` (a multiple of a huge page), not yet touched.
    fn new(floats: usize) -> Self {
        let layout = Self::layout(floats);
        // SAFETY: the layout has a non-zero size (floats > 0, checked by the caller).
        let raw = unsafe { std::alloc::alloc(layout) }.cast::<f32>();
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        // The whole slab: just allocated, 2 MiB aligned, untouched.
        advise_huge_pages(raw, layout.size());
        Self { ptr, floats }
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; freed once, when the last slice is gone.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), Self::layout(self.floats)) }
    }
}

/// The slab new matrices are carved from, and how many of its floats are taken.
static CURRENT: Mutex<(Weak<Slab>, usize)> = Mutex::new((Weak::new(), 0));

/// `len` floats of a slab, written once when made ([`WeightSlice::filled`]) and read-only after:
/// clones share them.
#[derive(Clone)]
pub struct WeightSlice {
    slab: Arc<Slab>,
    offset: usize,
    len: usize,
}

impl WeightSlice {
    /// `len` floats, zeroed, then `fill`ed.
    pub fn filled(len: usize, fill: impl FnOnce(&mut [f32])) -> Self {
        let (slab, offset) = reserve(len.max(1));
        // SAFETY: [offset, offset + len) lies inside the slab and was reserved for this call alone
        // (`reserve`); nothing reads it before this slice exists (see `Slab`'s Send/Sync).
        let range = unsafe { std::slice::from_raw_parts_mut(slab.ptr.as_ptr().add(offset), len) };
        range.fill(0.0);
        fill(range);
        Self { slab, offset, len }
    }

    /// The floats.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: the range lies inside the slab (kept alive by `self.slab`), was initialised by
        // `filled` and is never written again.
        unsafe { std::slice::from_raw_parts(self.slab.ptr.as_ptr().add(self.offset), self.len) }
    }
}

/// A range of `len` floats of a slab for one matrix: the rest of the current slab when it fits,
/// else a new slab.
fn reserve(len: usize) -> (Arc<Slab>, usize) {
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let start = current.1.next_multiple_of(ALIGN_FLOATS);
    if let Some(slab) = current.0.upgrade() {
        if start + len <= slab.floats {
            current.1 = start + len;
            return (slab, start);
        }
    }
    let floats = (len * 4).max(SLAB_BYTES).next_multiple_of(HUGE_PAGE) / 4;
    let slab = Arc::new(Slab::new(floats));
    *current = (Arc::downgrade(&slab), len);
    (slab, 0)
}

/// A zeroed, mutable, owned `[f32]`. From 2 MiB up it is its own anonymous mapping, 2 MiB aligned
/// and advised as huge pages; smaller ones are ordinary allocations. Either way pages are zero-filled
/// by the kernel when first touched, so a buffer planned for a batch larger than the ones that come
/// costs no memory beyond what they touch.
pub struct HugeBuffer(BufferMemory);

enum BufferMemory {
    Heap(Vec<f32>),
    #[cfg(target_os = "linux")]
    Mapped {
        /// The mapping (what `munmap` gets back) and its length in bytes.
        base: *mut libc::c_void,
        map_len: usize,
        /// The 2 MiB aligned floats inside it.
        ptr: *mut f32,
        len: usize,
    },
}

// SAFETY: HugeBuffer owns its memory exclusively, like a Vec<f32>: shared access is read-only
// through `Deref`, mutation needs `&mut`.
unsafe impl Send for HugeBuffer {}
// SAFETY: as above.
unsafe impl Sync for HugeBuffer {}

impl HugeBuffer {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        #[cfg(target_os = "linux")]
        if len * 4 >= HUGE_PAGE {
            if let Some(memory) = Self::map(len) {
                return Self(memory);
            }
        }
        Self(BufferMemory::Heap(vec![0.0; len]))
    }

    #[cfg(target_os = "linux")]
    fn map(len: usize) -> Option<BufferMemory> {
        let bytes = len * 4;
        let map_len = bytes.next_multiple_of(HUGE_PAGE) + HUGE_PAGE;
        // SAFETY: FFI. A fresh private anonymous mapping (zero-filled on first touch); nothing else
        // refers to the range.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let skip = (base as usize).next_multiple_of(HUGE_PAGE) - base as usize;
        // SAFETY: skip < HUGE_PAGE, so base + skip + bytes (rounded up to a huge page) stays inside
        // the map_len bytes just mapped.
        let ptr = unsafe { base.cast::<u8>().add(skip) }.cast::<f32>();
        // The aligned whole huge pages inside the fresh mapping (skip + that ≤ map_len).
        advise_huge_pages(ptr, bytes.next_multiple_of(HUGE_PAGE));
        Some(BufferMemory::Mapped {
            base,
            map_len,
            ptr,
            len,
        })
    }
}

impl Drop for HugeBuffer {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let BufferMemory::Mapped { base, map_len, .. } = self.0 {
            // SAFETY: FFI. Unmaps exactly the mapping made in `map`, once; no slice of it outlives
            // `self`.
            unsafe { libc::munmap(base, map_len) };
        }
    }
}

impl std::ops::Deref for HugeBuffer {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &self.0 {
            BufferMemory::Heap(v) => v,
            #[cfg(target_os = "linux")]
            // SAFETY: ptr..ptr+len lies inside the mapping (see `map`), readable, owned by self.
            &BufferMemory::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr, len)
            },
        }
    }
}

impl std::ops::DerefMut for HugeBuffer {
    fn deref_mut(&mut self) -> &mut [f32] {
        match &mut self.0 {
            BufferMemory::Heap(v) => v,
            #[cfg(target_os = "linux")]
            // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
            &mut BufferMemory::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr, len)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_disjoint_aligned_and_keep_their_values() {
        let sizes = [
            1usize,
            17,
            1000,
            3,
            (SLAB_BYTES / 4) - 5,
            40_000,
            SLAB_BYTES / 2,
        ];
        let slices: Vec<WeightSlice> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                WeightSlice::filled(len, |s| {
                    s.iter_mut()
                        .enumerate()
                        .for_each(|(j, v)| *v = (i * 7 + j % 13) as f32)
                })
            })
            .collect();
        for (i, s) in slices.iter().enumerate() {
            assert_eq!(s.as_slice().len(), sizes[i]);
            assert_eq!(s.as_slice().as_ptr() as usize % 64, 0, "cache-line aligned");
            for (j, &v) in s.as_slice().iter().enumerate() {
                assert_eq!(v, (i * 7 + j % 13) as f32, "slice {i} float {j}");
            }
        }
        let clone = slices[2].clone();
        assert_eq!(clone.as_slice().as_ptr(), slices[2].as_slice().as_ptr());
    }

    #[test]
    fn huge_buffers_are_zeroed_and_writable() {
        for len in [0usize, 5, HUGE_PAGE / 4 + 3, 3 * HUGE_PAGE / 4] {
            let mut b = HugeBuffer::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&v| v == 0.0));
            b.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
            assert!(b.iter().enumerate().all(|(i, &v)| v == i as f32));
        }
    }
}
