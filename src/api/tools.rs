//! What the library offers besides captures and answers: layout profiles,
//! the gdb capture script, Graphviz rendering, files written whole, and the
//! process-wide settings a binary or a worker chooses.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::capture::gdb_script::{GdbScript, ScriptOptions};
use crate::error::{Error, Result};
use crate::outdir::TempFile;
use crate::pipeline::RamBounds;
use crate::profile::Profile;

/// The shipped layout profiles (`--profile NAME`): each name with its file's
/// header comment, a line per comment line.
pub fn shipped_profiles() -> Vec<(&'static str, Vec<&'static str>)> {
    crate::profile::shipped_summaries().collect()
}

/// A layout profile as the TOML `--profile` reads: `base` (a file or a
/// shipped name; none: the default), or with `elf`, the profile derived from
/// its debug info over `base`, with a comment line per field found and per
/// field kept (`heapvis profile`).
pub fn profile_toml(base: Option<&Path>, elf: Option<&Path>) -> Result<String> {
    let base = base.map(Profile::from_file_or_shipped).transpose()?.unwrap_or_default();
    let Some(elf) = elf else { return Ok(base.to_toml()) };
    let data = crate::firmware::elf::read_elf_file(elf)?;
    let derived = crate::firmware::dwarf::derive_profile(&data, elf, &base)?;
    let mut text = String::new();
    for f in &derived.found {
        text.push_str(&format!("# from DWARF: {f}\n"));
    }
    for m in &derived.missing {
        text.push_str(&format!("# not in the debug info, kept: {m}\n"));
    }
    text.push_str(&derived.profile.to_toml());
    Ok(text)
}

/// The gdb script that captures the build `elf`'s RAM at heap changes, with
/// its sidecar (`heapvis gdb-script`); `profile` as `--profile` takes it
/// (none: derived from the ELF as `analyze` derives it).
pub fn gdb_script(elf: &Path, profile: Option<&Path>, ram: &RamBounds, options: &ScriptOptions) -> Result<GdbScript> {
    let profile = profile.map(Profile::from_file_or_shipped).transpose()?;
    crate::capture::gdb_script::gdb_script(elf, profile, ram, options)
}

/// Renders DOT text to `out` with Graphviz's `dot`, in the format its
/// extension names (`.svg`, `.png`, `.pdf`).
pub fn render_dot(dot_text: &str, out: &Path) -> Result<()> {
    crate::render::dot::render_with_dot(dot_text, out)
}

/// Writes `bytes` to `path` whole: into a file beside it, renamed over it
/// once written, so `path` is never seen half written.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = TempFile::beside(path);
    std::fs::write(&tmp.path, bytes).map_err(|e| Error::io(&tmp.path, e))?;
    tmp.persist(path)
}

/// Serves allocations under `bytes` from the heap rather than each from its
/// own `mmap` (glibc): for a host process whose malloc settings make every
/// large per-snapshot buffer a fresh mapping, as Dask's workers' do (see
/// the README's Dask figures). Process-wide; the fan-out's tasks call it.
pub fn set_mmap_threshold(bytes: usize) {
    crate::sys::set_mmap_threshold(bytes);
}

/// From now on the first Ctrl-C (SIGINT) or SIGTERM sets the returned flag
/// instead of killing the process, so [`super::Capture::follow`] can finish
/// and publish what it has; a second one kills as usual. For a binary to call.
pub fn stop_on_interrupt() -> &'static AtomicBool {
    crate::sys::stop_on_interrupt()
}

/// From now on a SIGBUS (a mapped dump truncated while it is read) writes
/// `message` to stderr and ends the process with exit code 2, instead of
/// dying of the signal. For a binary to call: the library itself never exits.
pub fn exit_on_sigbus(message: String) {
    crate::sys::exit_on_sigbus(message)
}
