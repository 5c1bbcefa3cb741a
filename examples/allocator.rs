//! The allocator of the examples whose steps free and take large blocks (the U-Net's and the
//! GAN's activation maps): each includes this file as `mod allocator;`.

/// mimalloc instead of the system allocator for the U-Net and GAN examples: glibc's returns every
/// large block (an activation map of a batch) to the kernel when it is freed, and the next
/// step's map then starts on fresh pages that the kernel must fault in and zero one by one.
/// (The autoencoder, whose maps are smaller, keeps the system allocator: as fast there, with
/// half the peak memory.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the same in its v2 and v3); the Rust bindings leave
/// the less common options without a constant.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to return freed memory to the kernel. A training step frees and
/// allocates the same large blocks every time; by default mimalloc hands them back a second
/// after they are freed, and the page faults of taking them again cost 40% of the CPU time of
/// a U-Net step (measured with `perf`: `clear_page_erms`, the kernel zeroing fresh pages). The
/// price is that the process keeps its peak memory until it ends, as PyTorch's caching
/// allocator does.
///
/// It must run before mimalloc initialises (at the first allocation): set later, the option
/// is read but the memory reserved at start-up is still purged (measured: 17,000 page faults
/// for 10 steps, against 900). So it runs as an ELF constructor, ahead of Rust's runtime, in
/// the `.init_array` section with a priority suffix, which the loader runs before the
/// unsuffixed constructors (mimalloc's own among them).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00100")]
static KEEP_FREED_MEMORY: extern "C" fn() = {
    extern "C" fn keep_freed_memory() {
        // SAFETY: sets a plain integer option; -1 is mimalloc's documented "never purge".
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    keep_freed_memory
};
