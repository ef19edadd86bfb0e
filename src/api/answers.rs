//! The answers read back from an output folder's tables alone: the run's
//! summary, its leak suspects, what changed between two snapshots, and the
//! report page. (With the capture too, see [`super::Capture`].)

use std::path::{Path, PathBuf};

use crate::answers;
use crate::error::Result;
use crate::outdir::Contents;
use crate::report::ReportOptions;

/// Leak suspects: owners whose retained bytes grow steadily after warm-up.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Leaks {
    /// Warm-up lasts until this snapshot (the first collection).
    pub warm_up_until: u64,
    /// Most growth first.
    pub suspects: Vec<answers::leaks::Suspect>,
}

/// The run's answers from the tables in `out`: heap figures, MemoryErrors and
/// their causes, the leak rate.
pub fn summary(out: &Path) -> Result<answers::summary::Summary> {
    answers::summary::summary(out)
}

/// Leak suspects from the tables in `out` alone (no example paths; see
/// [`super::Capture::leaks`]).
pub fn leaks(out: &Path) -> Result<Leaks> {
    let (suspects, warm_up_until) = answers::leaks::suspects(out)?;
    Ok(Leaks { warm_up_until, suspects })
}

/// What changed between snapshots `a` and `b` of the tables in `out`: counts,
/// by kind and owner, and the `top` largest survivors (no paths; see
/// [`super::Capture::diff`]).
pub fn diff(out: &Path, a: u64, b: u64, top: usize) -> Result<answers::diff::Diff> {
    answers::diff::diff(out, &Contents::read(out)?, a, b, top)
}

/// Writes the answers' tables of `out` (`culprits`, `memory_errors`) from the
/// tables in it, as `heapvis analyze` does after a run.
pub fn write_answers(out: &Path) -> Result<Vec<PathBuf>> {
    answers::export::write(out)
}

/// The HTML report of output folder `out`, as one self-contained page (no
/// example paths for the leak suspects; see [`super::Capture::report`]).
pub fn report_page(out: &Path, options: &ReportOptions) -> Result<String> {
    crate::report::report(out, options, None)
}
