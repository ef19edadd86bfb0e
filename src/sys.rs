//! Every `unsafe` call of the crate, each with its `# Safety` argument: the
//! dump's memory maps, glibc's `malloc_trim`, and the SIGBUS handler that turns
//! a dump truncated under a mapping into a message instead of a crash.

use std::fs::File;
use std::sync::OnceLock;

use memmap2::{Mmap, MmapOptions};

/// Maps the whole of `file`, read-only.
///
/// # Safety
/// The mapping is read-only and private to this process. A dump that gdb appends
/// to only grows past what was mapped. One truncated while mapped makes a read
/// of the lost pages raise SIGBUS; [`exit_on_sigbus`] turns that into a message
/// and exit code 2, and nothing is published (see `outdir`). It never yields
/// wrong bytes.
pub fn map_file(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: see above.
    unsafe { Mmap::map(file) }
}

/// Maps `len` bytes of `file` from `offset` (a multiple of the page size),
/// read-only: the same argument as [`map_file`].
pub fn map_range(file: &File, offset: u64, len: usize) -> std::io::Result<Mmap> {
    // SAFETY: as for `map_file`; the caller keeps the range within the file's
    // length as it was checked at open.
    unsafe { MmapOptions::new().offset(offset).len(len).map(file) }
}

/// Unmaps the pages of `map` a process has touched, so they no longer count in
/// its resident set; the next read maps them again from the page cache.
///
/// # Safety argument
/// `map` is a read-only shared mapping of a file: `MADV_DONTNEED` only drops
/// the process's page-table entries, and every later read sees the file's
/// bytes as before (no private copy exists that could be lost).
pub fn unmap_touched_pages(map: &Mmap) {
    // SAFETY: see above; a failure leaves the pages mapped, which is harmless.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}

/// Hands memory the allocator holds free back to the system (glibc only).
pub fn malloc_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes no pointers and may be called from any
        // thread at any time; it only returns free pages to the kernel.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// The line [`exit_on_sigbus`]'s handler writes, made before any signal.
static SIGBUS_MESSAGE: OnceLock<Vec<u8>> = OnceLock::new();

/// From now on a SIGBUS (a mapped dump truncated while it is read) writes
/// `message` and a newline to stderr and ends the process with exit code 2,
/// instead of dying of the signal. For the binary to call: a library never exits.
pub fn exit_on_sigbus(message: String) {
    let mut line = message.into_bytes();
    line.push(b'\n');
    if SIGBUS_MESSAGE.set(line).is_err() {
        return; // installed already
    }
    // SAFETY: the handler calls only async-signal-safe functions (write, _exit)
    // on a buffer made before the handler was installed and never changed.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

extern "C" fn on_sigbus(_signal: libc::c_int) {
    if let Some(line) = SIGBUS_MESSAGE.get() {
        // SAFETY: write and _exit are async-signal-safe; the buffer is static.
        unsafe {
            libc::write(2, line.as_ptr().cast(), line.len());
        }
    }
    // SAFETY: as above.
    unsafe { libc::_exit(2) }
}
