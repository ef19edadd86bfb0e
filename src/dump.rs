//! The RAM dump: a file of fixed-size snapshots, memory-mapped and split.
//!
//! Two kinds of mapping (made in `sys`): the whole dump for random access, and
//! one window at a time for streaming. Snapshots are handed out as borrowed
//! slices of a mapping, so decoding never copies a dump.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use memmap2::{Advice, Mmap};

use crate::error::{Error, Result};

/// A memory-mapped dump split into `count` snapshots of `snapshot_bytes` each.
pub struct Dump {
    path: PathBuf,
    file: File,
    map: Mmap,
    snapshot_bytes: u64,
    count: u64,
}

impl Dump {
    /// Maps `path`; fails when it holds less than one snapshot.
    pub fn open(path: &Path, snapshot_bytes: u64) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if snapshot_bytes == 0 || len < snapshot_bytes {
            return Err(Error::DumpTooShort { path: path.into(), bytes: len, snapshot_bytes });
        }
        let map = crate::sys::map_file(&file).map_err(|e| Error::io(path, e))?;
        // Advice is a hint; a kernel that ignores it changes nothing we rely on.
        advise_streaming(&map);
        Ok(Dump { path: path.into(), file, map, snapshot_bytes, count: len / snapshot_bytes })
    }

    /// The dump's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole dump, for checks that look across snapshot boundaries.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The dump's size.
    pub fn len_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    /// Bytes per snapshot.
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes
    }

    /// Whole snapshots in the dump.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bytes after the last whole snapshot (a capture cut short); they are ignored.
    pub fn trailing_bytes(&self) -> u64 {
        self.len_bytes() - self.count * self.snapshot_bytes
    }

    /// Where snapshot `index` starts in the dump.
    pub fn offset_of(&self, index: u64) -> u64 {
        index * self.snapshot_bytes
    }

    /// Snapshot `index`, or `None` past the last whole one.
    pub fn snapshot(&self, index: u64) -> Option<&[u8]> {
        if index >= self.count {
            return None;
        }
        let start = (index * self.snapshot_bytes) as usize;
        self.map.get(start..start + self.snapshot_bytes as usize)
    }

    /// Lets the pages read through [`Dump::snapshot`] and [`Dump::bytes`] go
    /// from the resident set: read from a dump on disk, the page cache holds it
    /// in 2 MiB folios, and each sampled snapshot stayed mapped as 2 MiB (the
    /// checks and the fingerprint sample 40 snapshots: 80 MiB of peak RSS).
    pub fn release_pages(&self) {
        crate::sys::unmap_touched_pages(&self.map);
    }
}

/// Sequential reads, and huge pages where the kernel can: a dump read from disk
/// through such a mapping goes into the page cache in 2 MiB folios, which later
/// faults map with one page-table entry each instead of 512. Mapping 4 KiB pages
/// and unmapping them again cost a fifth of a soak analysis's CPU time.
///
/// A window's pages are not let go as its run goes: with 2 MiB pages a worker
/// would still hold two of them at times and one at others, and the peak memory
/// of a run would then depend on how long it ran (when the highs of every
/// thread coincide). A whole window mapped is a fixed bound.
fn advise_streaming(map: &Mmap) {
    let _ = map.advise(Advice::HugePage);
    let _ = map.advise(Advice::Sequential);
}

/// How a window's snapshots will be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Every byte, in order (decoding): sequential, in huge pages.
    Whole,
    /// A few kilobytes of each snapshot (its allocation table, for the metrics):
    /// pages read from disk as they are touched, without readahead, so that a
    /// dump on disk is not read whole for them (huge-page readahead would read
    /// the 2 MiB around each table). Pages already cached in large folios are
    /// still mapped a folio at a time.
    Sparse,
}

/// A mapping of just the snapshots `first..first+count`, for streaming: dropping it
/// unmaps its pages, so a long run never keeps more than its windows resident.
pub struct Window {
    map: Mmap,
    /// Bytes between the page-aligned mapping start and the first snapshot.
    skew: usize,
    first: u64,
    count: u64,
    snapshot_bytes: u64,
}

impl Window {
    /// Snapshot `index` (a dump index), if it is in this window.
    pub fn snapshot(&self, index: u64) -> Option<&[u8]> {
        let i = index.checked_sub(self.first).filter(|i| *i < self.count)?;
        let start = self.skew + (i * self.snapshot_bytes) as usize;
        self.map.get(start..start + self.snapshot_bytes as usize)
    }
}

impl Dump {
    /// Maps the snapshots in `range` (clipped to the dump) on their own, for
    /// `access`.
    pub fn window(&self, range: Range<u64>, access: Access) -> Result<Window> {
        let first = range.start.min(self.count);
        let count = range.end.min(self.count).saturating_sub(first);
        let start = first * self.snapshot_bytes;
        const PAGE: u64 = 4096;
        let aligned = start / PAGE * PAGE;
        let len = (start - aligned + count * self.snapshot_bytes).max(1);
        // Within the file's length checked at open. Not MAP_POPULATE: measured
        // slower here (the kernel walks every page; touching them lets
        // fault-around map 16 pages per fault).
        let map = crate::sys::map_range(&self.file, aligned, len as usize).map_err(|e| Error::io(&self.path, e))?;
        match access {
            Access::Whole => advise_streaming(&map),
            Access::Sparse => {
                let _ = map.advise(Advice::NoHugePage);
                let _ = map.advise(Advice::Random);
            }
        }
        Ok(Window { map, skew: (start - aligned) as usize, first, count, snapshot_bytes: self.snapshot_bytes })
    }
}

/// Which snapshots to analyse: `all`, `last`, `N`, or a half-open range `A..B`
/// (`A..` to the end, `..B` from the start, `A..=B` inclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every snapshot.
    All,
    /// The last snapshot.
    Last,
    /// One snapshot.
    One(u64),
    /// Snapshots `start..end` (to the dump's end when `end` is `None`).
    Range {
        /// The first snapshot.
        start: u64,
        /// The snapshot after the last, or the dump's end.
        end: Option<u64>,
    },
}

impl FromStr for Selection {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadSelection { spec: spec.to_string(), reason: reason.to_string() };
        let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad("expected all, last, N, A..B, A.. or ..B"));
        let s = spec.trim();
        match s {
            "all" => return Ok(Selection::All),
            "last" => return Ok(Selection::Last),
            _ => {}
        }
        if let Some((a, b)) = s.split_once("..") {
            let start = if a.is_empty() { 0 } else { num(a)? };
            let end = if let Some(b) = b.strip_prefix('=') {
                Some(num(b)?.checked_add(1).ok_or_else(|| bad("end too large"))?)
            } else if b.is_empty() {
                None
            } else {
                Some(num(b)?)
            };
            if end.is_some_and(|e| e <= start) {
                return Err(bad("the range is empty"));
            }
            return Ok(Selection::Range { start, end });
        }
        Ok(Selection::One(num(s)?))
    }
}

impl Selection {
    /// The snapshot indices this selects in a dump of `count` snapshots. A range
    /// that runs past the end is cut at the end, and a note says so (the caller
    /// warns); one that starts past the end, or a snapshot that is not there, is
    /// an error naming what the dump holds.
    pub fn resolve(&self, count: u64) -> Result<(Range<u64>, Option<String>)> {
        let holds = || match count {
            0 => "the dump holds no whole snapshot".to_string(),
            1 => "the dump holds one snapshot, 0".to_string(),
            n => format!("the dump holds {n} snapshots, 0 to {} (`last`)", n - 1),
        };
        let out_of = |what: String| Error::BadSelection { spec: what, reason: holds() };
        match *self {
            Selection::All => Ok((0..count, None)),
            Selection::Last if count > 0 => Ok((count - 1..count, None)),
            Selection::Last => Err(out_of("last".to_string())),
            Selection::One(n) if n < count => Ok((n..n + 1, None)),
            Selection::One(n) => Err(out_of(n.to_string())),
            Selection::Range { start, .. } if start >= count => Err(out_of(self.to_string())),
            Selection::Range { start, end } => match end {
                Some(end) if end > count => {
                    let note =
                        format!("--snapshots {self}: {}; taking {start}..{count} (to snapshot {})", holds(), count - 1);
                    Ok((start..count, Some(note)))
                }
                end => Ok((start..end.unwrap_or(count), None)),
            },
        }
    }
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selection::All => write!(f, "all"),
            Selection::Last => write!(f, "last"),
            Selection::One(n) => write!(f, "{n}"),
            Selection::Range { start, end: Some(end) } => write!(f, "{start}..{end}"),
            Selection::Range { start, end: None } => write!(f, "{start}.."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_parse_and_resolve() {
        let r = |s: &str, n| s.parse::<Selection>().and_then(|sel| sel.resolve(n)).map(|(range, _)| range);
        assert_eq!(r("all", 5).unwrap(), 0..5);
        assert_eq!(r("last", 5).unwrap(), 4..5);
        assert_eq!(r("2", 5).unwrap(), 2..3);
        assert_eq!(r("1..3", 5).unwrap(), 1..3);
        assert_eq!(r("1..=3", 5).unwrap(), 1..4);
        assert_eq!(r("3..", 5).unwrap(), 3..5);
        assert_eq!(r("..2", 5).unwrap(), 0..2);
        assert!(r("5", 5).is_err());
        assert!(r("3..3", 5).is_err());
        assert!(r("x", 5).is_err());
        assert!(r("last", 0).is_err() && r("5..", 5).is_err() && r("7..9", 5).is_err());
        // Past the end: cut there, with a note naming the last snapshot.
        let (range, note) = "2..9".parse::<Selection>().unwrap().resolve(5).unwrap();
        assert_eq!(range, 2..5);
        let note = note.unwrap();
        assert!(note.contains("0 to 4") && note.contains("taking 2..5 (to snapshot 4)"), "{note}");
        let err = r("7..9", 5).unwrap_err().to_string();
        assert!(err.contains("7..9") && err.contains("5 snapshots, 0 to 4"), "{err}");
    }

    /// A window hands out the file's snapshots, and only those of its range.
    #[test]
    fn windows_read_the_file() {
        let snapshot = 192 * 1024u64;
        let count = 40u64; // 7.5 MiB
        let bytes: Vec<u8> = (0..snapshot * count).map(|i| (i * 7 + i / 4093) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ram.bin");
        std::fs::write(&path, &bytes).unwrap();
        let dump = Dump::open(&path, snapshot).unwrap();
        let w = dump.window(3..37, Access::Whole).unwrap();
        let expect = |i: u64| &bytes[(i * snapshot) as usize..((i + 1) * snapshot) as usize];
        assert!(w.snapshot(2).is_none() && w.snapshot(37).is_none());
        for i in 3..37 {
            assert_eq!(w.snapshot(i).unwrap(), expect(i));
        }
        assert_eq!(dump.snapshot(39).unwrap(), expect(39));
        assert!(dump.snapshot(40).is_none());
        let sparse = dump.window(38..45, Access::Sparse).unwrap();
        assert_eq!(sparse.snapshot(39).unwrap(), expect(39));
        assert!(sparse.snapshot(40).is_none(), "clipped to the dump");
    }
}
