//! The capture behind an output folder, opened again for the answers the
//! tables cannot give alone: a named path from a root to one allocation at one
//! snapshot needs that snapshot's pointers as decoded, with their names.
//!
//! The capture is the one given, else the folder holding the dump the manifest
//! names (with its firmware beside it). Either way it must be the capture,
//! firmware and profile the folder was made from: a path read from another
//! build would be wrong without a sign of it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::firmware::InputPaths;
use crate::outdir::Contents;
use crate::pipeline::{RamBounds, Session};
use crate::profile::Profile;

/// What to open: the capture's inputs as the CLI takes them (none: the
/// manifest's), and the profile the folder was made with (none: derived as
/// `analyze` derives it).
#[derive(Clone, Debug, Default)]
pub struct CaptureSource {
    pub inputs: Vec<PathBuf>,
    pub profile: Option<Profile>,
    pub ram: RamBounds,
}

/// The capture output folder `out` was made from, checked against its
/// manifest, and the inputs it was opened from.
pub fn reopen(out: &Path, contents: &Contents, source: &CaptureSource) -> Result<(Session, InputPaths)> {
    let inputs = if source.inputs.is_empty() {
        let dump = PathBuf::from(&contents.identity.capture.dump);
        let dir = dump.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        InputPaths::resolve(&[dir.to_path_buf()]).map_err(|_| Error::MissingInput {
            path: dir.to_path_buf(),
            expected: "the folder of the capture the manifest names, with its firmware (or give the capture)",
        })?
    } else {
        InputPaths::resolve(&source.inputs)?
    };
    let session = Session::open_with_ram(&inputs, source.profile.clone(), &source.ram)?;
    if let Some(why) = session.differs_from(&contents.identity) {
        return Err(Error::CaptureMismatch {
            path: inputs.ram.clone(),
            found: why,
            advice: format!(
                "give the capture, firmware, --profile and --ram-start/--ram-end that {} was made with",
                out.display()
            ),
        });
    }
    Ok((session, inputs))
}
