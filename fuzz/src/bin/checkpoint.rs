//! AFL++ target `checkpoint`: see `fuzz/README.md` and [`swin_serve_fuzz::harness::checkpoint`].

#[global_allocator]
static GUARD: swin_serve_fuzz::alloc_guard::Guard = swin_serve_fuzz::alloc_guard::Guard;

fn main() {
    swin_serve_fuzz::single_threaded();
    afl::fuzz!(|data: &[u8]| {
        swin_serve_fuzz::harness::checkpoint(data);
    });
}
