//! What changed between two snapshots of a run (`heapvis diff OUT A B`): the
//! allocations made and freed between them, by kind and type; the owners whose
//! retained bytes changed; the largest allocations made since A and still
//! alive at B, with the path that holds them.
//!
//! Allocations come from the `allocations` table as instances (shards
//! stitched, see [`super::instances`]): one made after A and alive at B is
//! new, one alive at A and gone by B is freed, one made and gone between them
//! is transient (churn the two snapshots alone would not show). Owners come
//! from `retainers`, whose figures at N are each (owner, kind)'s last row at or
//! before N.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::instances::{instances, Instance};
use super::leaks::{owner_changes, value_at};
use crate::error::{Error, Result};
use crate::outdir::Contents;
use crate::pipeline::Session;
use crate::retain::why::why;

/// How many allocations, and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    /// How many.
    pub allocations: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: u64) {
        self.allocations += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// The allocations of one kind, type and class made and freed between A and B.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindChange {
    /// The kind (`str`, `list_items`, …).
    pub kind: String,
    /// The type's symbol, when the allocation has one.
    pub type_name: Option<String>,
    /// The class of an instance, when known.
    pub class: Option<String>,
    /// Made after A, alive at B.
    pub new: Count,
    /// Alive at A, gone by B.
    pub freed: Count,
    /// Made after A and gone by B.
    pub transient: Count,
}

impl KindChange {
    /// Bytes at B less bytes at A.
    pub fn net_bytes(&self) -> i64 {
        self.new.bytes as i64 - self.freed.bytes as i64
    }
}

/// What one owner retained at A and at B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnerChange {
    /// The owner, as Python would name it (`__main__.history`).
    pub owner: String,
    /// What it retained at A.
    pub at_a: Count,
    /// What it retained at B.
    pub at_b: Count,
}

impl OwnerChange {
    /// Bytes retained at B less bytes at A.
    pub fn net_bytes(&self) -> i64 {
        self.at_b.bytes as i64 - self.at_a.bytes as i64
    }
}

/// An allocation made after A and still alive at B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Survivor {
    /// Its address.
    pub address: u64,
    /// Its size.
    pub bytes: u64,
    /// Its kind.
    pub kind: String,
    /// Its type's symbol, when it has one.
    pub type_name: Option<String>,
    /// Its Python name or class, when known.
    pub name: Option<String>,
    /// The snapshot it was first seen at.
    pub first_snapshot: u64,
    /// How B's GC roots reach it, as Python would write it
    /// (`__main__.history[3]`), when the capture was read (see [`add_paths`]).
    pub path: Option<String>,
    /// What would be freed at B if it went (with the capture).
    pub retained_bytes: Option<u64>,
    /// Whether B's roots reach it (with the capture): an unreachable one is
    /// garbage the next collection frees.
    pub reachable: Option<bool>,
}

/// The change from snapshot `a` to snapshot `b`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diff {
    /// The earlier snapshot.
    pub a: u64,
    /// The later snapshot.
    pub b: u64,
    /// Allocations alive at A.
    pub alive_at_a: Count,
    /// Allocations alive at B.
    pub alive_at_b: Count,
    /// Made after A and alive at B.
    pub new: Count,
    /// Alive at A and gone by B.
    pub freed: Count,
    /// Made after A and gone by B.
    pub transient: Count,
    /// By kind, type and class, the largest net change first.
    pub by_kind: Vec<KindChange>,
    /// By owner, the largest net change first; `None` without a `retainers`
    /// table (`--no-retention`).
    pub by_owner: Option<Vec<OwnerChange>>,
    /// The largest new survivors, largest first.
    pub survivors: Vec<Survivor>,
    /// Why the survivors have no paths, when they have none.
    pub paths_note: Option<String>,
}

/// The change from `a` to `b` in output folder `out`, with the `top` largest
/// survivors (without their paths: see [`add_paths`]).
pub fn diff(out: &Path, contents: &Contents, a: u64, b: u64, top: usize) -> Result<Diff> {
    check_snapshots(contents, a, b)?;
    let all = instances(out)?;
    let mut d = Diff {
        a,
        b,
        alive_at_a: Count::default(),
        alive_at_b: Count::default(),
        new: Count::default(),
        freed: Count::default(),
        transient: Count::default(),
        by_kind: Vec::new(),
        by_owner: owners(out, a, b)?,
        survivors: Vec::new(),
        paths_note: Some("the capture was not read".to_string()),
    };
    let mut groups: BTreeMap<(String, Option<String>, Option<String>), KindChange> = BTreeMap::new();
    let mut new: Vec<&Instance> = Vec::new();
    for i in &all {
        if i.alive_at(a) {
            d.alive_at_a.add(i.bytes);
        }
        if i.alive_at(b) {
            d.alive_at_b.add(i.bytes);
        }
        let Some(change) = Change::of(i, a, b) else { continue };
        let key = (i.kind.clone(), i.type_name.clone(), i.class.clone());
        let g = groups.entry(key).or_insert_with(|| KindChange {
            kind: i.kind.clone(),
            type_name: i.type_name.clone(),
            class: i.class.clone(),
            ..KindChange::default()
        });
        let (total, group) = match change {
            Change::New => {
                new.push(i);
                (&mut d.new, &mut g.new)
            }
            Change::Freed => (&mut d.freed, &mut g.freed),
            Change::Transient => (&mut d.transient, &mut g.transient),
        };
        total.add(i.bytes);
        group.add(i.bytes);
    }
    d.by_kind = groups.into_values().collect();
    d.by_kind.sort_by_key(|g| std::cmp::Reverse(g.net_bytes().unsigned_abs()));
    new.sort_by_key(|i| (std::cmp::Reverse(i.bytes), i.address));
    d.survivors = new.into_iter().take(top).map(survivor).collect();
    if d.survivors.is_empty() {
        // No survivor, no path missing: nothing to say, read or not.
        d.paths_note = None;
    }
    Ok(d)
}

/// How an allocation changed between A and B, if it did.
enum Change {
    New,
    Freed,
    Transient,
}

impl Change {
    fn of(i: &Instance, a: u64, b: u64) -> Option<Change> {
        let (made_after_a, gone_by_b) = (i.first > a, i.last < b);
        match (i.alive_at(a), i.alive_at(b)) {
            (false, true) => Some(Change::New),
            (true, false) => Some(Change::Freed),
            (false, false) if made_after_a && gone_by_b && i.first <= b => Some(Change::Transient),
            _ => None,
        }
    }
}

fn survivor(i: &Instance) -> Survivor {
    Survivor {
        address: i.address,
        bytes: i.bytes,
        kind: i.kind.clone(),
        type_name: i.type_name.clone(),
        name: i.label().map(str::to_string),
        first_snapshot: i.first,
        path: None,
        retained_bytes: None,
        reachable: None,
    }
}

/// Both snapshots lie in the folder's complete ranges, A before B.
fn check_snapshots(contents: &Contents, a: u64, b: u64) -> Result<()> {
    let bad = |reason: String| Err(Error::BadSelection { spec: format!("{a} {b}"), reason });
    if a >= b {
        return bad("A must come before B".to_string());
    }
    for s in [a, b] {
        if !contents.covers(s) {
            let ranges: Vec<String> = contents.complete.iter().map(|r| format!("{}..{}", r.start, r.end)).collect();
            return bad(format!("snapshot {s} is not in the folder's tables (they hold {})", ranges.join(", ")));
        }
    }
    Ok(())
}

/// Each owner's retained allocations and bytes at A and at B, from
/// `retainers`; `None` when the folder has no such table.
fn owners(out: &Path, a: u64, b: u64) -> Result<Option<Vec<OwnerChange>>> {
    if super::table_files(out, "retainers").map_or(true, |f| f.is_empty()) {
        return Ok(None);
    }
    let mut found = Vec::new();
    for (owner, kinds) in owner_changes(out)? {
        let (mut at_a, mut at_b) = (Count::default(), Count::default());
        for series in kinds.values() {
            let (va, vb) = (value_at(series, a), value_at(series, b));
            (at_a.bytes, at_a.allocations) = (at_a.bytes.saturating_add(va.0), at_a.allocations.saturating_add(va.1));
            (at_b.bytes, at_b.allocations) = (at_b.bytes.saturating_add(vb.0), at_b.allocations.saturating_add(vb.1));
        }
        if at_a != at_b {
            found.push(OwnerChange { owner, at_a, at_b });
        }
    }
    found.sort_by_key(|o| std::cmp::Reverse(o.net_bytes().unsigned_abs()));
    Ok(Some(found))
}

/// Fills in each survivor's path from B's roots and what it retains at B,
/// decoding snapshot B of `session` (the folder's capture, see
/// [`super::capture::reopen`]).
pub fn add_paths(d: &mut Diff, session: &Session) -> Result<()> {
    if d.survivors.is_empty() {
        return Ok(());
    }
    let report = session.decode_one(d.b)?;
    let Some(roots) = session.roots().of(d.b) else {
        d.paths_note = Some("the build gives no GC roots (no `state.roots_end` or `_estack`)".to_string());
        return Ok(());
    };
    for s in &mut d.survivors {
        let Some(w) = why(&report, &roots, s.address) else { continue };
        s.reachable = Some(w.reachable);
        if w.reachable {
            s.path = w.python.clone().or_else(|| {
                let steps: Vec<&str> = w.path.iter().map(|p| p.name.as_str()).collect();
                (!steps.is_empty()).then(|| steps.join(" -> "))
            });
            s.retained_bytes = Some(w.retained_bytes);
        }
    }
    d.paths_note = (!roots.exact())
        .then(|| "no stack pointer at B: the whole stack region was scanned, stale frames too".to_string());
    Ok(())
}
