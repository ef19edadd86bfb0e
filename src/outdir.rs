//! The output folder: its manifest, a run's staging folder, and the commit that
//! moves a finished run's files into place.
//!
//! A finished result is never lost and two captures are never mixed:
//! - a run writes every file into a hidden staging folder of its own
//!   (`OUT/.heapvis-run-HOST-PID-NANOS/`), so what is visible is only ever
//!   complete files, and two runs never share a temporary name;
//! - when it has finished, it takes the folder's lock, removes the files of the
//!   snapshots it replaces and renames its own into place;
//! - `OUT/heapvis-manifest.toml` says which capture (dump size and a fingerprint
//!   of its content), firmware, profile, tables and version the folder holds,
//!   which snapshot ranges are complete, and which runs are in progress. A run
//!   for another capture or other options is refused before anything is
//!   written; a run whose process is gone shows as in progress until a new run
//!   of the folder clears it.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dump::Dump;
use crate::error::{Error, Result};
use crate::tables::{parse_part_name, OutputLayout};

/// The manifest's file name in an output folder.
pub const MANIFEST: &str = "heapvis-manifest.toml";
const LOCK: &str = ".heapvis.lock";
const STAGING_PREFIX: &str = ".heapvis-run-";
const FORMAT: &str = "heapvis-output/1";
/// Snapshots from the dump's start that its fingerprint covers, and how many of
/// them it hashes (spread evenly). A prefix, so a dump that grows keeps its
/// fingerprint.
const FINGERPRINT_SPAN: u64 = 4096;
const FINGERPRINT_SAMPLES: u64 = 32;
/// Bytes of each sampled snapshot hashed.
const FINGERPRINT_SNAPSHOT_BYTES: usize = 1 << 20;

/// What an output folder holds: it must be the same for every run into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub capture: CaptureId,
    /// Fingerprint of the firmware files (ELF, or bin and map).
    pub firmware: String,
    /// The layout profile's name and a fingerprint of all its fields.
    pub profile: String,
    /// The tables written, and how they are stored.
    pub tables: Vec<String>,
    pub layout: String,
}

/// Which capture: its snapshot size, and a fingerprint of its first snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureId {
    /// The dump's path and size when the folder was first written (for people;
    /// not compared, as a dump may move and grow).
    pub dump: String,
    pub dump_bytes: u64,
    pub snapshot_bytes: u64,
    /// How many snapshots from the start the fingerprint covers.
    pub fingerprint_snapshots: u64,
    pub fingerprint: String,
}

impl CaptureId {
    /// The identity of `dump`'s capture.
    pub fn of(dump: &Dump) -> Self {
        let span = dump.count().min(FINGERPRINT_SPAN);
        CaptureId {
            dump: dump.path().display().to_string(),
            dump_bytes: dump.len_bytes(),
            snapshot_bytes: dump.snapshot_bytes(),
            fingerprint_snapshots: span,
            fingerprint: capture_fingerprint(dump, span),
        }
    }

    /// Whether `dump` is this capture (perhaps grown since).
    fn matches(&self, dump: &Dump) -> bool {
        self.snapshot_bytes == dump.snapshot_bytes()
            && dump.count() >= self.fingerprint_snapshots
            && self.fingerprint == fingerprint_as(dump, self.fingerprint_snapshots, &self.fingerprint)
    }

    /// [`Self::matches`] for the `dump` whose identity is `ours`: when this
    /// fingerprint was made as `ours` was, over as many snapshots, the two are
    /// compared as they are, where the dump would be read again. (A run checks
    /// its folder at its start and at its commit; reading the samples each
    /// time cost a few ms of one core while the other waited.)
    fn matches_ours(&self, ours: &CaptureId, dump: &Dump) -> bool {
        let made_alike = self.fingerprint_snapshots == ours.fingerprint_snapshots
            && self.fingerprint.starts_with(WORD_HASH_TAG) == ours.fingerprint.starts_with(WORD_HASH_TAG);
        if made_alike && self.snapshot_bytes == ours.snapshot_bytes {
            return self.fingerprint == ours.fingerprint;
        }
        self.matches(dump)
    }
}

/// The tag of a fingerprint made by [`WordHash`]. A fingerprint without it is
/// FNV-1a over the same bytes, as heapvis wrote them up to release 18: an
/// output folder written then is still recognised.
const WORD_HASH_TAG: &str = "w64-";

/// The fingerprint of the snapshots sampled from the first `span` ones.
fn capture_fingerprint(dump: &Dump, span: u64) -> String {
    let mut h = WordHash::default();
    for_each_sample(dump, span, |bytes| h.write(bytes));
    format!("{WORD_HASH_TAG}{}", h.hex())
}

/// The fingerprint of the same samples made as `theirs` was made (by its tag).
fn fingerprint_as(dump: &Dump, span: u64, theirs: &str) -> String {
    if theirs.starts_with(WORD_HASH_TAG) {
        return capture_fingerprint(dump, span);
    }
    let mut h = Fnv::default();
    for_each_sample(dump, span, |bytes| h.write(bytes));
    h.hex()
}

/// Hands `f` the bytes hashed of each snapshot sampled from the first `span`.
fn for_each_sample(dump: &Dump, span: u64, mut f: impl FnMut(&[u8])) {
    let samples = span.min(FINGERPRINT_SAMPLES);
    for k in 0..samples {
        let i = k * span / samples.max(1);
        // Through a window of its own, unmapped at once: these samples must not
        // stay in the run's resident set (see `Dump::release_pages`).
        let window = dump.window(i..i + 1, crate::dump::Access::Sparse).ok();
        let snap = window.as_ref().and_then(|w| w.snapshot(i)).unwrap_or(&[]);
        f(&snap[..snap.len().min(FINGERPRINT_SNAPSHOT_BYTES)]);
    }
}

/// A stable 64-bit hash of bytes read as little-endian words, four lanes at a
/// time so that their multiplies overlap. FNV-1a's one multiply per byte, one
/// after the other, took about 10 ms per fingerprint of a busy capture, on
/// one core while the other waits (a run makes one, for its identity; a folder
/// written by an earlier release has its FNV-1a one made again to compare).
#[derive(Default)]
struct WordHash {
    lanes: [u64; 4],
    bytes: u64,
}

impl WordHash {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    fn write(&mut self, bytes: &[u8]) {
        let mut quads = bytes.chunks_exact(32);
        let [mut a, mut b, mut c, mut d] = self.lanes;
        for quad in &mut quads {
            let (ab, cd) = quad.split_at(16);
            let ((w0, w1), (w2, w3)) = (ab.split_at(8), cd.split_at(8));
            (a, b, c, d) = (Self::step(a, w0), Self::step(b, w1), Self::step(c, w2), Self::step(d, w3));
        }
        self.lanes = [a, b, c, d];
        // The tail, zero-padded; the length (below) tells it from zeros.
        let mut tail = [0u8; 32];
        let rest = quads.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        for (lane, word) in self.lanes.iter_mut().zip(tail.chunks_exact(8)) {
            *lane = Self::step(*lane, word);
        }
        self.bytes = self.bytes.wrapping_add(bytes.len() as u64);
    }

    fn step(lane: u64, word: &[u8]) -> u64 {
        let word = <[u8; 8]>::try_from(word).map_or(0, u64::from_le_bytes);
        let x = (lane ^ word).wrapping_mul(Self::MULTIPLIER);
        x ^ (x >> 29)
    }

    fn hex(&self) -> String {
        let mut h = self.bytes;
        for &lane in &self.lanes {
            h = Self::finish(h ^ lane).rotate_left(23);
        }
        format!("{:016x}", Self::finish(h))
    }

    /// SplitMix64's finaliser: every input bit reaches every output bit.
    fn finish(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// FNV-1a, 64 bits: a stable fingerprint (std's hashers may change between
/// releases, and a manifest outlives the binary that wrote it). Not a
/// cryptographic hash: it tells captures apart, it does not authenticate them.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The manifest as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    heapvis: String,
    identity: Identity,
    /// Snapshot ranges (half-open) whose tables are complete, one per run.
    complete: Vec<[u64; 2]>,
    in_progress: Vec<InProgress>,
}

/// What a finished output folder holds, as its manifest says: for the
/// answers that read it (`diff`, `summary`), without taking its lock.
#[derive(Clone, Debug)]
pub struct Contents {
    pub identity: Identity,
    /// Snapshot ranges (half-open) whose tables are complete.
    pub complete: Vec<Range<u64>>,
}

impl Contents {
    /// The manifest of `out`; an error when there is none or it is unreadable.
    pub fn read(out: &Path) -> Result<Self> {
        let path = out.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingInput {
                path: path.clone(),
                expected: "the manifest of an output folder (run `heapvis analyze` first)",
            },
            _ => Error::io(&path, e),
        })?;
        let m: Manifest = toml::from_str(&text).map_err(|e| Error::WrongInput {
            path: path.clone(),
            expected: "a manifest this heapvis can read",
            found: e.message().to_string(),
        })?;
        let complete = m.complete.iter().map(|r| r[0]..r[1]).collect();
        Ok(Contents { identity: m.identity, complete })
    }

    /// Whether snapshot `s` lies in a complete range.
    pub fn covers(&self, s: u64) -> bool {
        self.complete.iter().any(|r| r.contains(&s))
    }
}

impl Identity {
    /// Why `dump`, the firmware fingerprint and the profile id given are not
    /// the capture, firmware and profile this identity describes, or `None`
    /// when they are.
    pub fn differs_from(&self, dump: &Dump, firmware: &str, profile: &str) -> Option<String> {
        if !self.capture.matches(dump) {
            return Some(format!("the dump is not the capture of the folder (which was {})", self.capture.dump));
        }
        if self.firmware != firmware {
            return Some("the firmware files differ from the folder's".to_string());
        }
        if self.profile != profile {
            return Some(format!("the layout profile differs from the folder's ({})", self.profile));
        }
        None
    }
}

/// A run writing into the folder (or one whose process died).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InProgress {
    snapshots: [u64; 2],
    /// Its staging folder's name, which names its host and process.
    run: String,
}

/// What `begin` found that a user should know (a run that died, say).
pub type Notes = Vec<String>;

/// A run's output while it is being written: a staging folder in the output
/// folder, committed into place by [`StagedRun::commit`], or removed (with its
/// manifest entry) if dropped before that.
pub struct StagedRun {
    out: PathBuf,
    staging: PathBuf,
    range: Range<u64>,
    layout: OutputLayout,
    committed: bool,
}

impl StagedRun {
    /// Checks that `out` may take this run (the same capture, firmware, profile
    /// and tables, and no complete run overlapping only part of `range`), clears
    /// what runs that died left, records the run as in progress and makes its
    /// staging folder. With `overwrite`, whatever heapvis wrote in `out` before
    /// is removed first. Nothing of an earlier result is touched otherwise.
    pub fn begin(
        out: &Path,
        identity: &Identity,
        dump: &Dump,
        range: Range<u64>,
        layout: OutputLayout,
        overwrite: bool,
    ) -> Result<(Self, Notes)> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let staging = out.join(format!("{STAGING_PREFIX}{}", run_id()));
        let mut notes = Notes::new();
        with_manifest(out, |manifest| {
            if overwrite {
                *manifest = None;
                clear(out)?;
            }
            notes.extend(clear_dead_runs(out, manifest)?);
            let m = manifest.get_or_insert_with(|| Manifest::new(identity));
            check_fits(out, m, identity, dump, &range, layout)?;
            m.in_progress.push(InProgress { snapshots: [range.start, range.end], run: file_name(&staging) });
            Ok(())
        })?;
        std::fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok((StagedRun { out: out.to_path_buf(), staging, range, layout, committed: false }, notes))
    }

    /// The folder this run writes its files into.
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    /// Moves the run's files into place, replacing those of the snapshots it
    /// covers, and records its range as complete. `files` are staged paths;
    /// the same files' final paths are returned.
    pub fn commit(mut self, identity: &Identity, dump: &Dump, files: &[PathBuf]) -> Result<Vec<PathBuf>> {
        let (out, range, layout) = (self.out.clone(), self.range.clone(), self.layout);
        let finals = with_manifest(&out, |manifest| {
            let m = manifest.get_or_insert_with(|| Manifest::new(identity));
            check_fits(&out, m, identity, dump, &range, layout)?;
            remove_replaced(&out, &self.staging, &range, layout)?;
            let finals = move_into_place(&self.staging, &out, files)?;
            let ours = [range.start, range.end];
            let replaced = |r: &[u64; 2]| matches!(layout, OutputLayout::Files) || within(r, &range);
            m.complete.retain(|r| !replaced(r));
            m.complete.push(ours);
            m.complete.sort_unstable();
            let name = file_name(&self.staging);
            m.in_progress.retain(|p| p.run != name);
            Ok(finals)
        })?;
        self.committed = true;
        let _ = std::fs::remove_dir_all(&self.staging);
        Ok(finals)
    }
}

impl StagedRun {
    /// Commits a run that replaces every table of the folder at once (the
    /// rewrite of `--follow`'s shards as one run): each table's folder is
    /// swapped with the staged one in one step, so a reader listing it finds
    /// either every shard or the one run's parts, never both nor neither.
    pub fn commit_exchanging(mut self, identity: &Identity, dump: &Dump, files: &[PathBuf]) -> Result<Vec<PathBuf>> {
        let (out, range, layout) = (self.out.clone(), self.range.clone(), self.layout);
        let finals = with_manifest(&out, |manifest| {
            let m = manifest.get_or_insert_with(|| Manifest::new(identity));
            check_fits(&out, m, identity, dump, &range, layout)?;
            let covers_all = m.complete.iter().all(|r| within(r, &range));
            if !covers_all || !matches!(layout, OutputLayout::Parts { .. }) {
                return Err(conflict(&out, "the rewrite does not cover all it holds".into(), "run it again"));
            }
            for entry in std::fs::read_dir(&self.staging).map_err(|e| Error::io(&self.staging, e))?.flatten() {
                let (staged, there) = (entry.path(), out.join(entry.file_name()));
                if !staged.is_dir() || entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                if there.is_dir() {
                    crate::sys::exchange(&staged, &there).map_err(|e| Error::io(&there, e))?;
                } else {
                    rename(&staged, &there)?;
                }
            }
            m.complete = vec![[range.start, range.end]];
            let name = file_name(&self.staging);
            m.in_progress.retain(|p| p.run != name);
            Ok(files
                .iter()
                .map(|f| f.strip_prefix(&self.staging).map_or_else(|_| f.clone(), |rel| out.join(rel)))
                .collect())
        })?;
        self.committed = true;
        // (The staging folder now holds the shards' folders.)
        let _ = std::fs::remove_dir_all(&self.staging);
        Ok(finals)
    }
}

impl Drop for StagedRun {
    /// A run that failed or was abandoned leaves nothing behind. (One that is
    /// killed leaves its staging folder and entry, cleared by the next run.)
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        let name = file_name(&self.staging);
        let _ = with_manifest(&self.out, |m| {
            if let Some(m) = m.as_mut() {
                m.in_progress.retain(|p| p.run != name);
            }
            Ok(())
        });
    }
}

impl Manifest {
    fn new(identity: &Identity) -> Self {
        Manifest {
            format: FORMAT.to_string(),
            heapvis: env!("CARGO_PKG_VERSION").to_string(),
            identity: identity.clone(),
            complete: Vec::new(),
            in_progress: Vec::new(),
        }
    }
}

/// A name no other run has: host, process and time.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{}-{nanos}", host_name(), std::process::id())
}

fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
    if name.is_empty() {
        "host".to_string()
    } else {
        name
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether run range `r` lies inside `range`.
fn within(r: &[u64; 2], range: &Range<u64>) -> bool {
    r[0] >= range.start && r[1] <= range.end
}

/// Runs `f` on the folder's manifest (`None` if there is none) under the
/// folder's lock, and stores what `f` leaves when it succeeds.
fn with_manifest<T>(out: &Path, f: impl FnOnce(&mut Option<Manifest>) -> Result<T>) -> Result<T> {
    let lock_path = out.join(LOCK);
    let lock = File::options().create(true).truncate(false).write(true).open(&lock_path);
    let lock = lock.map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    let path = out.join(MANIFEST);
    let mut manifest = match std::fs::read_to_string(&path) {
        Ok(text) => Some(toml::from_str::<Manifest>(&text).map_err(|e| {
            conflict(
                out,
                format!("{MANIFEST} is not a manifest this heapvis can read ({})", e.message()),
                "pass --overwrite to replace what the folder holds, or choose another folder",
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&path, e)),
    };
    let result = f(&mut manifest)?;
    match &manifest {
        Some(m) => {
            let text = toml::to_string_pretty(m).unwrap_or_default();
            let tmp = out.join(format!(".{MANIFEST}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        }
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path, e)),
            _ => {}
        },
    }
    Ok(result)
}

fn conflict(out: &Path, found: String, advice: &str) -> Error {
    Error::OutputConflict { dir: out.to_path_buf(), found, advice: advice.to_string() }
}

/// Refuses a run that would mix: another capture, firmware, profile, tables or
/// layout; tables without a manifest; a complete run of which this run would
/// replace only a part.
fn check_fits(
    out: &Path,
    m: &Manifest,
    ours: &Identity,
    dump: &Dump,
    range: &Range<u64>,
    layout: OutputLayout,
) -> Result<()> {
    const REPLACE: &str = "pass --overwrite to replace what the folder holds, or choose another folder";
    let theirs = &m.identity;
    if m.format != FORMAT {
        return Err(conflict(out, format!("its manifest is of format {}, not {FORMAT}", m.format), REPLACE));
    }
    if m.complete.is_empty() && m.in_progress.is_empty() && holds_tables(out) {
        return Err(conflict(
            out,
            "it holds heapvis tables but no manifest (an older heapvis wrote them)".into(),
            REPLACE,
        ));
    }
    let differs = |what: &str, a: &str, b: &str| {
        conflict(out, format!("it holds tables {what} {a}, where this run's are {b}"), REPLACE)
    };
    if !theirs.capture.matches_ours(&ours.capture, dump) {
        let c = &theirs.capture;
        let found = format!(
            "it holds the tables of another capture ({}, {} bytes in snapshots of {} bytes, fingerprint {})",
            c.dump, c.dump_bytes, c.snapshot_bytes, c.fingerprint
        );
        return Err(conflict(out, found, REPLACE));
    }
    if theirs.firmware != ours.firmware {
        return Err(differs("of firmware files whose fingerprint is", &theirs.firmware, &ours.firmware));
    }
    if theirs.profile != ours.profile {
        return Err(differs("read with the layout profile", &theirs.profile, &ours.profile));
    }
    if theirs.tables != ours.tables || theirs.layout != ours.layout {
        let set = |t: &[String], layout: &str| format!("{} ({layout} layout)", t.join(", "));
        let (a, b) = (set(&theirs.tables, &theirs.layout), set(&ours.tables, &ours.layout));
        return Err(differs("of another set:", &a, &b));
    }
    let partial = m.complete.iter().find(|r| r[0] < range.end.max(range.start + 1) && range.start < r[1].max(r[0] + 1));
    match partial {
        Some(r) if matches!(layout, OutputLayout::Parts { .. }) && !within(r, range) => Err(conflict(
            out,
            format!(
                "it holds snapshots {}..{} from one run, of which a run of {}..{} would replace only a part",
                r[0], r[1], range.start, range.end
            ),
            "run a range that holds all of it, or pass --overwrite, or choose another folder",
        )),
        _ => Ok(()),
    }
}

/// Every table name heapvis writes, `symbols` included.
fn table_names() -> impl Iterator<Item = &'static str> {
    // With the answers' tables (`answers::export`), rewritten after each run.
    crate::tables::TABLE_NAMES.iter().copied().chain(["symbols", "culprits", "memory_errors"])
}

fn holds_tables(out: &Path) -> bool {
    table_names().any(|t| out.join(t).is_dir() || out.join(format!("{t}.parquet")).is_file())
}

/// `--overwrite`: removes what heapvis wrote in `out` (tables, frames, the
/// manifest, staging folders of runs that are gone), nothing else.
fn clear(out: &Path) -> Result<()> {
    for t in table_names() {
        remove_if_there(&out.join(t))?;
        remove_if_there(&out.join(format!("{t}.parquet")))?;
    }
    remove_if_there(&out.join("frames"))?;
    for (dir, run) in staging_dirs(out)? {
        if !run_is_alive(&run) {
            remove_if_there(&dir)?;
        }
    }
    Ok(())
}

fn remove_if_there(path: &Path) -> Result<()> {
    let result = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// The staging folders in `out`, with their run names.
fn staging_dirs(out: &Path) -> Result<Vec<(PathBuf, String)>> {
    let entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
        .filter(|(p, name)| name.starts_with(STAGING_PREFIX) && p.is_dir())
        .collect())
}

/// Whether the run named `run` (a staging folder's name) may still be going:
/// on another host it may; on this one, if its process is.
fn run_is_alive(run: &str) -> bool {
    let mut parts = run.trim_start_matches(STAGING_PREFIX).split('-');
    let (host, pid) = (parts.next().unwrap_or(""), parts.next().and_then(|p| p.parse::<u32>().ok()));
    match pid {
        Some(pid) if host == host_name() => Path::new(&format!("/proc/{pid}")).exists(),
        Some(_) => true,
        None => false,
    }
}

/// Removes the staging folders and entries of runs on this host whose process
/// is gone (killed, or a crash), and says which ranges they had not finished.
fn clear_dead_runs(out: &Path, manifest: &mut Option<Manifest>) -> Result<Notes> {
    let mut notes = Notes::new();
    for (dir, run) in staging_dirs(out)? {
        if !run_is_alive(&run) {
            remove_if_there(&dir)?;
        }
    }
    if let Some(m) = manifest.as_mut() {
        for p in m.in_progress.iter().filter(|p| !run_is_alive(&p.run)) {
            notes.push(format!(
                "an earlier run of snapshots {}..{} into {} did not finish (its process is gone); what it had \
                 written was discarded",
                p.snapshots[0],
                p.snapshots[1],
                out.display()
            ));
        }
        m.in_progress.retain(|p| run_is_alive(&p.run));
    }
    Ok(notes)
}

/// Removes the files of the snapshots `range` replaces: parts named by a range
/// inside it and their frames; in the files layout, every frame. A file the run
/// has one of the same name for stays: the rename replaces it at once, so a
/// reader never finds it missing.
fn remove_replaced(out: &Path, staging: &Path, range: &Range<u64>, layout: OutputLayout) -> Result<()> {
    let in_range = |r: &Range<u64>| matches!(layout, OutputLayout::Files) || within(&[r.start, r.end], range);
    let replaced = |r: &Range<u64>, rel: &Path| in_range(r) && !staging.join(rel).exists();
    for t in table_names() {
        let dir = out.join(t);
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let rel = Path::new(t).join(&name);
            if parse_part_name(&name.to_string_lossy()).is_some_and(|r| replaced(&r, &rel)) {
                remove_if_there(&entry.path())?;
            }
        }
    }
    let frames = out.join("frames");
    if frames.is_dir() {
        for entry in std::fs::read_dir(&frames).map_err(|e| Error::io(&frames, e))?.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let index = name.strip_prefix("heap_layout").and_then(|n| n.strip_suffix(".png")?.parse::<u64>().ok());
            if index.is_some_and(|i| replaced(&(i..i + 1), &Path::new("frames").join(&name))) {
                remove_if_there(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// Renames every file in `staging` (and its folders, one level down) to the
/// same place in `out`; returns the final paths of `files`.
fn move_into_place(staging: &Path, out: &Path, files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    // (Hidden names are files still being written: none are left at a commit.)
    let visible = |e: &std::fs::DirEntry| !e.file_name().to_string_lossy().starts_with('.');
    let mut entries: Vec<std::fs::DirEntry> =
        std::fs::read_dir(staging).map_err(|e| Error::io(staging, e))?.filter_map(|e| e.ok()).collect();
    // `snapshots` last: a reader that finds a snapshot there finds every
    // other table's rows of it (a run following a dump publishes while read).
    entries.sort_by_key(|e| (e.file_name() == "snapshots", e.file_name()));
    for entry in entries {
        if !visible(&entry) {
            continue;
        }
        let (from, to) = (entry.path(), out.join(entry.file_name()));
        if from.is_dir() {
            std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
            for inner in std::fs::read_dir(&from).map_err(|e| Error::io(&from, e))?.filter_map(|e| e.ok()) {
                if !visible(&inner) {
                    continue;
                }
                rename(&inner.path(), &to.join(inner.file_name()))?;
            }
        } else {
            rename(&from, &to)?;
        }
    }
    Ok(files.iter().map(|f| f.strip_prefix(staging).map_or_else(|_| f.clone(), |rel| out.join(rel))).collect())
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(to, e))
}

/// A file written under a hidden temporary name beside its final path, and
/// renamed to it when complete; removed if dropped before that.
pub struct TempFile {
    pub path: PathBuf,
    done: bool,
}

impl TempFile {
    /// `.NAME.heapvis-PID.EXT` beside `path` (the extension kept, as it names
    /// the format).
    pub fn beside(path: &Path) -> Self {
        let name = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.heapvis-{}{ext}", std::process::id()));
        TempFile { path: tmp, done: false }
    }

    pub fn persist(mut self, path: &Path) -> Result<()> {
        std::fs::rename(&self.path, path).map_err(|e| Error::io(path, e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a's published 64-bit test vectors: the legacy fingerprints, and the
    /// firmware's and profile's, are this hash.
    #[test]
    fn fnv_gives_the_published_vectors() {
        for (text, want) in [("", "cbf29ce484222325"), ("a", "af63dc4c8601ec8c"), ("foobar", "85944171f73967e8")] {
            let mut h = Fnv::default();
            h.write(text.as_bytes());
            assert_eq!(h.hex(), want, "{text:?}");
        }
    }

    /// The committed sample's fingerprint as release 17 wrote it in its manifest
    /// (`heapvis analyze data/sample`): a folder written then still matches.
    #[test]
    fn a_fingerprint_written_by_an_earlier_release_still_matches() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample/ram.bin");
        let dump = Dump::open(&path, 32768).expect("the committed sample");
        let written = CaptureId {
            dump: "data/sample/ram.bin".into(),
            dump_bytes: 7_864_320,
            snapshot_bytes: 32768,
            fingerprint_snapshots: 240,
            fingerprint: "b59dc744c0caffa8".into(),
        };
        assert!(written.matches(&dump));
        let ours = CaptureId::of(&dump);
        assert!(ours.fingerprint.starts_with(WORD_HASH_TAG) && ours.matches(&dump));
        let other = CaptureId { fingerprint: "b59dc744c0caffa9".into(), ..written };
        assert!(!other.matches(&dump));
    }

    /// Every byte sampled counts, in every lane and in a tail shorter than
    /// four words; so does the length (a tail of zeros is not no tail).
    #[test]
    fn the_word_hash_changes_with_any_byte_and_with_the_length() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let of = |b: &[u8]| {
            let mut h = WordHash::default();
            h.write(b);
            h.hex()
        };
        let base = of(&bytes);
        for at in [0, 7, 8, 15, 31, 32, 500, 991, 999] {
            let mut changed = bytes.clone();
            changed[at] ^= 0x80;
            assert_ne!(of(&changed), base, "byte {at}");
        }
        let mut zeros = bytes.clone();
        zeros.push(0);
        assert_ne!(of(&zeros), base);
        assert_eq!(of(&bytes), base, "stable");
    }

    /// A capture whose sampled snapshots differ in one byte is another one.
    #[test]
    fn a_capture_differing_in_one_sampled_byte_does_not_match() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (dir.path().join("a.bin"), dir.path().join("b.bin"));
        let bytes: Vec<u8> = (0..5 * 1000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&a, &bytes).expect("write");
        let mut other = bytes.clone();
        other[3 * 1000 + 999] ^= 1;
        std::fs::write(&b, &other).expect("write");
        let (a, b) = (Dump::open(&a, 1000).expect("a"), Dump::open(&b, 1000).expect("b"));
        let id = CaptureId::of(&a);
        assert!(id.matches(&a));
        assert!(!id.matches(&b));
        // Against a run's own identity, compared as made, without reading.
        let (ours_a, ours_b) = (CaptureId::of(&a), CaptureId::of(&b));
        assert!(id.matches_ours(&ours_a, &a));
        assert!(!id.matches_ours(&ours_b, &b));
        // Made otherwise (FNV-1a, or over fewer snapshots): read again.
        let mut fnv = Fnv::default();
        for_each_sample(&a, 5, |bytes| fnv.write(bytes));
        let older = CaptureId { fingerprint: fnv.hex(), ..id.clone() };
        assert!(older.matches_ours(&ours_a, &a) && !older.matches_ours(&ours_b, &b));
        let fewer = CaptureId { fingerprint_snapshots: 4, fingerprint: capture_fingerprint(&a, 4), ..id };
        assert!(fewer.matches_ours(&ours_a, &a) && !fewer.matches_ours(&ours_b, &b));
    }
}
