//! Every `unsafe` call of the crate, each with its `# Safety` argument: the
//! dump's memory maps, glibc's `malloc_trim`, the SIGBUS handler that turns
//! a dump truncated under a mapping into a message instead of a crash, the
//! inotify watch `--follow` sleeps on, and its Ctrl-C flag.

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

/// Serves allocations under `bytes` from the heap rather than each from a
/// fresh `mmap` (glibc only). glibc raises its threshold by itself as large
/// blocks are freed, unless the process set a trim threshold, as Dask's
/// workers do (`MALLOC_TRIM_THRESHOLD_=65536`): then every per-snapshot
/// buffer over 128 KiB is mapped, faulted in and unmapped again, and a run
/// takes 35% longer. The trim threshold still returns freed memory.
pub fn set_mmap_threshold(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        let value = std::ffi::c_int::try_from(bytes).unwrap_or(std::ffi::c_int::MAX);
        // SAFETY: mallopt takes no pointers and may be called at any time; it
        // changes only where later allocations come from.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, value);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
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

/// A watch on a folder (Linux inotify): [`FolderWatch::wait`] sleeps until a
/// file in it is written, created or moved in, or the time is up. `--follow`
/// sleeps on it rather than polling the disk.
pub struct FolderWatch {
    fd: std::os::fd::OwnedFd,
}

impl FolderWatch {
    /// Watches `dir`; `None` where inotify is not available (the caller then
    /// polls with back-off).
    pub fn new(dir: &std::path::Path) -> Option<Self> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: inotify_init1 takes flags only; a non-negative result is a new
        // descriptor this process owns, handed to OwnedFd at once.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: as above.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let mask = libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_ATTRIB;
        use std::os::fd::AsRawFd;
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) };
        (wd >= 0).then_some(FolderWatch { fd })
    }

    /// Sleeps until something in the folder changed (`true`) or `timeout` went
    /// by, or a signal came (`false`); drains the pending events either way.
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        use std::os::fd::AsRawFd;
        let mut poll = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one pollfd, valid for the call.
        let ready = unsafe { libc::poll(&mut poll, 1, ms) } > 0;
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a buffer of the length given; the descriptor is
        // non-blocking, so this returns at once when nothing is pending.
        while unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        ready
    }
}

/// Set by the first SIGINT or SIGTERM once [`stop_on_interrupt`] ran.
static STOP_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on the first Ctrl-C (SIGINT) or SIGTERM sets the returned flag
/// instead of killing the process, so a `--follow` run can finish what it has
/// and publish it; a second one kills as usual. For the binary to call.
pub fn stop_on_interrupt() -> &'static std::sync::atomic::AtomicBool {
    // SAFETY: the handler only stores to an atomic (async-signal-safe);
    // SA_RESETHAND restores the default action for the second signal.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_stop_signal as *const () as usize;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
    &STOP_REQUESTED
}

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    STOP_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Swaps two paths in one step (Linux `renameat2` with `RENAME_EXCHANGE`):
/// a reader that lists either path sees all of one or all of the other.
/// Fails where the file system or kernel cannot (the caller falls back).
pub fn exchange(a: &std::path::Path, b: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &std::path::Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are NUL-terminated paths that outlive the call; AT_FDCWD
    // resolves them as given.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
