//! Heap history as lifetimes: one row per allocation instance, per edge and per
//! qstr, with the first and last snapshot it was seen in, instead of the same row
//! in every snapshot.
//!
//! MicroPython's GC never moves objects, so an allocation is identified by its
//! address, length and first word's type until it is freed.
//!
//! The work is split so that the one writer thread does as little as possible:
//! - each decoding worker turns a snapshot into [`LifetimeRows`] (what the trackers
//!   need of it, sorted by key) and, walking a run of consecutive snapshots, diffs
//!   it against the previous one into [`Changes`]: only the rows that differ, and
//!   the keys that went away. Consecutive snapshots of a soak test differ by an
//!   allocation or two, so that is a handful of rows instead of the whole heap;
//! - the writer applies the changes, in snapshot order, to one [`Tracker`] per
//!   entity. A run's first snapshot (and a worker's first) comes whole, and is
//!   merged against the tracker's state: both paths end in the same per-key rule,
//!   so the tables do not depend on how snapshots were split among workers.

use rustc_hash::FxHashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, StringBuilder};
use arrow::datatypes::{DataType, Schema, SchemaRef};

use super::per_snapshot::{
    allocation_fields, arc, dict, edge_fields, f, qstr_fields, AllocationColumns, Columns, Dict, EdgeColumns,
    IntColumn, QstrColumns,
};
use crate::decode::{BlockRow, Category, EdgeRow, QstrRow, SnapshotReport, StringRow};
use crate::firmware::Firmware;
use crate::retain::Held;

/// One entity whose lifetime is tracked across snapshots.
pub(crate) trait Lifetime: Clone + PartialEq {
    type Key: Ord + Clone + std::hash::Hash;
    fn key(&self) -> Self::Key;
    /// Whether `new`, seen at the open instance's key, is the same instance.
    fn continues(open: &Self, new: &Self) -> bool;
    /// Folds a later sight of the same instance into the open one.
    fn update(open: &mut Self, new: &Self);
}

/// Sorts by key and keeps the first row of each key (input-controlled data may
/// repeat one).
pub(crate) fn sorted_unique<T: Lifetime>(mut rows: Vec<T>) -> Vec<T> {
    if !rows.is_sorted_by(|a, b| a.key() < b.key()) {
        rows.sort_by_key(|r| r.key());
        rows.dedup_by(|b, a| a.key() == b.key());
    }
    rows
}

/// One snapshot's rows for the trackers, or what changed since the snapshot before.
#[derive(Clone, Debug)]
pub(crate) struct Changes<T: Lifetime> {
    /// `rows` is the whole snapshot (and `gone` is empty): keys the tracker has
    /// open and `rows` lacks are gone.
    pub(crate) full: bool,
    /// Rows new or different since the previous snapshot (all rows when `full`).
    pub(crate) rows: Vec<T>,
    /// Keys of the previous snapshot absent from this one.
    pub(crate) gone: Vec<T::Key>,
}

impl<T: Lifetime> Changes<T> {
    /// What changed since the snapshot before, both lists sorted by key.
    pub(crate) fn partial(rows: Vec<T>, gone: Vec<T::Key>) -> Self {
        Changes { full: false, rows, gone }
    }

    /// The whole snapshot.
    pub(crate) fn all(rows: Vec<T>) -> Self {
        Changes { full: true, rows, gone: Vec::new() }
    }

    pub(crate) fn full(rows: &[T]) -> Self {
        Changes { full: true, rows: rows.to_vec(), gone: Vec::new() }
    }

    /// A merge of two sorted snapshots: linear, and allocating only for the changes.
    pub(crate) fn between(prev: &[T], cur: &[T]) -> Self {
        let (mut rows, mut gone) = (Vec::new(), Vec::new());
        let mut old = prev.iter().peekable();
        for row in cur {
            let key = row.key();
            while let Some(o) = old.next_if(|o| o.key() < key) {
                gone.push(o.key());
            }
            match old.next_if(|o| o.key() == key) {
                Some(o) if o == row => {}
                _ => rows.push(row.clone()),
            }
        }
        gone.extend(old.map(|o| o.key()));
        Changes { full: false, rows, gone }
    }
}

/// How an open instance left the tracker.
/// What follows a run's range: the snapshot after it, the dump's end, or
/// nothing yet (a dump still being written: `analyze --follow`).
#[derive(Clone, Copy, Debug)]
pub enum After<T> {
    Snapshot(T),
    DumpEnd,
    Growing,
}

impl<T> After<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> After<U> {
        match self {
            After::Snapshot(t) => After::Snapshot(f(t)),
            After::DumpEnd => After::DumpEnd,
            After::Growing => After::Growing,
        }
    }

    pub(crate) fn as_ref(&self) -> After<&T> {
        match self {
            After::Snapshot(t) => After::Snapshot(t),
            After::DumpEnd => After::DumpEnd,
            After::Growing => After::Growing,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Absent from a later snapshot of the run, or from the snapshot after it.
    Ended,
    /// Still there in the snapshot after the run's range (the next shard has it).
    Continues,
    /// Still there at the end of the dump.
    Live,
}

#[derive(Clone, Debug)]
pub(crate) struct Open<T> {
    pub(crate) item: T,
    pub(crate) first: u64,
    /// Seen in the snapshot before the run's range (the lead-in): it started earlier.
    pub(crate) primed: bool,
    /// Seen inside the run's range (a primed instance gone at once is not).
    seen: bool,
    /// The last whole snapshot that had it ([`Tracker::apply_whole`]'s count).
    stamp: u64,
}

/// The instances open after the last snapshot applied, by key.
///
/// A run over `A..B` may be one part of a dump: it is primed with snapshot `A-1`
/// (what is there started before the part: `open_start`) and finished with
/// snapshot `B` (what is gone there ended at `B-1`; what is still there
/// `continues` into the next part). Only the dump's last snapshot leaves instances
/// `live`. Parts therefore stitch exactly. Every open instance was in the last
/// snapshot applied, so its last snapshot is that one: it is not stored.
///
/// The instances are hashed by key, not kept in order: a snapshot's few
/// changes are looked up where an ordered map shifted its nodes' entries
/// (an edge's is a hundred bytes) at every insertion and removal. What
/// comes out still comes in key order: the changes are sorted, a whole
/// snapshot sorts what it ends before closing it, and the run's end sorts
/// every instance still open.
pub(crate) struct Tracker<T: Lifetime> {
    open: FxHashMap<T::Key, Open<T>>,
    last: u64,
    /// Whole snapshots applied.
    wholes: u64,
}

impl<T: Lifetime> Open<T> {
    /// An instance first seen as `row` in snapshot `index`.
    fn new(row: &T, index: u64) -> Self {
        Open { item: row.clone(), first: index, primed: false, seen: true, stamp: 0 }
    }
}

impl<T: Lifetime> Tracker<T> {
    pub(crate) fn new() -> Self {
        Tracker { open: FxHashMap::default(), last: 0, wholes: 0 }
    }

    /// Takes the snapshot before the run's range as the starting state.
    pub(crate) fn prime(&mut self, index: u64, rows: &[T]) {
        self.apply(index, &Changes::full(rows), |_, _, _| {});
        for o in self.open.values_mut() {
            o.primed = true;
            o.seen = false;
        }
    }

    /// Applies snapshot `index`; instances that ended go to `ended` (with their
    /// last snapshot) in key order. Primed instances never seen in the range are
    /// the previous part's and are dropped silently.
    pub(crate) fn apply(&mut self, index: u64, changes: &Changes<T>, mut ended: impl FnMut(&Open<T>, u64, Ending)) {
        let last = self.last;
        let mut close = |o: &Open<T>| {
            if o.seen {
                ended(o, last, Ending::Ended);
            }
        };
        if changes.full {
            self.apply_whole(index, &changes.rows, &mut close);
        } else {
            self.apply_changes(index, changes, &mut close);
        }
        self.last = index;
    }

    /// [`Tracker::apply`] of what changed: each row and each key gone is
    /// looked up (a handful a snapshot). Both lists are sorted and disjoint:
    /// they are walked together so ended rows come out in key order.
    fn apply_changes(&mut self, index: u64, changes: &Changes<T>, close: &mut impl FnMut(&Open<T>)) {
        let mut gone = changes.gone.iter().peekable();
        for row in &changes.rows {
            let key = row.key();
            while let Some(k) = gone.next_if(|k| **k < key) {
                if let Some(o) = self.open.remove(k) {
                    close(&o);
                }
            }
            match self.open.get_mut(&key) {
                Some(o) if T::continues(&o.item, row) => Self::seen_again(o, row, index),
                Some(o) => {
                    close(o);
                    *o = Open::new(row, index);
                }
                None => {
                    self.open.insert(key, Open::new(row, index));
                }
            }
        }
        for k in gone {
            if let Some(o) = self.open.remove(k) {
                close(&o);
            }
        }
    }

    /// [`Tracker::apply`] of a whole snapshot (`rows`, sorted by key): each
    /// row looked up, and what ended (gone, or replaced by another instance
    /// at its key) closed in key order once every row is seen.
    fn apply_whole(&mut self, index: u64, rows: &[T], close: &mut impl FnMut(&Open<T>)) {
        self.wholes += 1;
        let stamp = self.wholes;
        // Ended: the key, and the row replacing it (none when gone).
        let mut ended: Vec<(T::Key, Option<&T>)> = Vec::new();
        let mut fresh: Vec<(T::Key, &T)> = Vec::new();
        for row in rows {
            let key = row.key();
            match self.open.get_mut(&key) {
                // (A key repeated among the rows, which `sorted_unique` rules
                // out, keeps its first row.)
                Some(o) if o.stamp == stamp => {}
                Some(o) if T::continues(&o.item, row) => {
                    Self::seen_again(o, row, index);
                    o.stamp = stamp;
                }
                Some(o) => {
                    o.stamp = stamp;
                    ended.push((key, Some(row)));
                }
                None => fresh.push((key, row)),
            }
        }
        ended.extend(self.open.iter().filter(|(_, o)| o.stamp != stamp).map(|(k, _)| (k.clone(), None)));
        ended.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, replaced_by) in ended {
            match replaced_by {
                Some(row) => {
                    if let Some(o) = self.open.get_mut(&key) {
                        close(o);
                        *o = Open { stamp, ..Open::new(row, index) };
                    }
                }
                None => {
                    if let Some(o) = self.open.remove(&key) {
                        close(&o);
                    }
                }
            }
        }
        for (key, row) in fresh {
            self.open.entry(key).or_insert_with(|| Open { stamp, ..Open::new(row, index) });
        }
    }

    /// Folds a later sight `row` of the open instance `o` into it.
    fn seen_again(o: &mut Open<T>, row: &T, index: u64) {
        T::update(&mut o.item, row);
        if !o.seen {
            // First sight inside the range of an instance from before it.
            o.first = index;
            o.seen = true;
        }
    }

    /// Ends the run: with `next` (the snapshot after the range, sorted) what is gone
    /// there ended and the rest continues; at the dump's end what is left is
    /// live; at the end of a dump still growing it continues (the next
    /// snapshot is not written yet). Instances come out in key order.
    pub(crate) fn finish(&mut self, next: After<&[T]>, mut ended: impl FnMut(&Open<T>, u64, Ending)) {
        let mut there = match next {
            After::Snapshot(rows) => rows.iter().peekable(),
            _ => [].iter().peekable(),
        };
        let mut open: Vec<(T::Key, Open<T>)> = std::mem::take(&mut self.open).into_iter().collect();
        open.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, o) in open {
            if !o.seen {
                continue;
            }
            let how = match next {
                After::DumpEnd => Ending::Live,
                After::Growing => Ending::Continues,
                After::Snapshot(_) => {
                    while there.next_if(|t| t.key() < key).is_some() {}
                    match there.peek() {
                        Some(t) if t.key() == key && T::continues(&o.item, t) => Ending::Continues,
                        _ => Ending::Ended,
                    }
                }
            };
            ended(&o, self.last, how);
        }
    }
}

/// What the allocation lifetimes need of one allocated block.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AllocationSight {
    address: u64,
    pub(crate) blocks: u64,
    /// The first word when it names a type in flash (the first such, once
    /// folded over sightings).
    pub(crate) type_address: Option<u64>,
    /// The latest sighting's `type_address`: what the next sighting is held
    /// to. Only the snapshot before decides whether an allocation goes on, so
    /// a shard primed with it decides as one run does.
    last_type: Option<u64>,
    pub(crate) kind: &'static str,
    pub(crate) category: &'static str,
    pub(crate) owner: Option<u64>,
    /// Its own Python name (a class's, a function's, a module's).
    pub(crate) name: Option<Arc<str>>,
    /// An instance's class.
    pub(crate) class: Option<Arc<str>>,
    /// For string data: the text of the `str` pointing at it.
    text: Option<Arc<str>>,
    pub(crate) has_finaliser: bool,
    /// Reachability and what holds it, when computed (see [`crate::retain`]).
    pub(crate) held: Option<Held>,
}

/// Same object as far as its type tells: both typed alike, or one not yet typed
/// (an object under construction has a NULL first word).
fn same_type(a: Option<u64>, b: Option<u64>) -> bool {
    a.is_none() || b.is_none() || a == b
}

impl AllocationSight {
    /// The sight of block `b`; `text` is the text of the `str` pointing at it
    /// (only string data keeps one).
    pub(crate) fn of(b: &BlockRow, text: impl FnOnce(u64) -> Option<Arc<str>>, fw: &Firmware) -> Self {
        // The decoder names an instance by its class: here that is `class`.
        let instance = b.category == Category::Instance;
        let type_address = b.type_address.filter(|a| fw.flash_names.contains_key(a));
        AllocationSight {
            address: b.address,
            blocks: b.blocks,
            type_address,
            last_type: type_address,
            kind: b.kind,
            category: b.category.name(),
            owner: b.owner,
            name: if instance { None } else { b.name.clone() },
            class: if instance { b.name.clone() } else { None },
            text: (b.category == Category::StringData).then(|| text(b.address)).flatten(),
            has_finaliser: b.has_finaliser,
            held: None,
        }
    }

    /// The same sight with its retention.
    pub(crate) fn with_held(mut self, held: Option<Held>) -> Self {
        self.held = held;
        self
    }

    pub(crate) fn blocks(&self) -> u64 {
        self.blocks
    }
}

/// The texts of a snapshot's strings by data block, sorted by block; where several
/// rows name one block, the last one's.
pub(crate) fn texts_by_block(strings: &[StringRow]) -> Vec<(u64, &Arc<str>)> {
    let mut texts: Vec<(u64, &Arc<str>)> = strings.iter().rev().map(|s| (s.block, &s.text)).collect();
    texts.sort_by_key(|t| t.0);
    texts.dedup_by_key(|t| t.0);
    texts
}

/// Per block row of a whole decode (by index), its retention, when computed.
pub(crate) fn held_of(r: &SnapshotReport) -> impl Fn(usize) -> Option<Held> + '_ {
    let several: Arc<str> = Arc::from(crate::retain::SEVERAL_ROOTS);
    move |i| {
        let ret = r.retention.as_ref()?;
        Some(ret.held(i, &several, |j| r.blocks.get(j).map_or(0, |b| b.address)))
    }
}

/// The text [`texts_by_block`] has for `block`.
pub(crate) fn text_of(texts: &[(u64, &Arc<str>)], block: u64) -> Option<Arc<str>> {
    texts.binary_search_by_key(&block, |t| t.0).ok().map(|i| Arc::clone(texts[i].1))
}

impl Lifetime for AllocationSight {
    type Key = u64;
    fn key(&self) -> u64 {
        self.address
    }
    fn continues(open: &Self, new: &Self) -> bool {
        open.blocks == new.blocks && same_type(open.last_type, new.type_address)
    }
    fn update(open: &mut Self, new: &Self) {
        open.type_address = open.type_address.or(new.type_address);
        open.last_type = new.type_address;
        // The latest kind and name (a role can come later: a table once its dict
        // exists), but not `unknown` over a kind it had: a str's data outlives
        // the str until the sweep, and is still its data. The first text; a
        // finaliser ever set.
        if new.kind != "unknown" || open.kind == "unknown" {
            (open.kind, open.category, open.owner) = (new.kind, new.category, new.owner);
        }
        if new.name.is_some() && open.name != new.name {
            open.name = new.name.clone();
        }
        if new.class.is_some() && open.class != new.class {
            open.class = new.class.clone();
        }
        if open.text.is_none() {
            open.text = new.text.clone();
        }
        open.has_finaliser |= new.has_finaliser;
        // Retention at the last sighting.
        if new.held.is_some() {
            open.held = new.held.clone();
        }
    }
}

/// An edge's identity: where the pointer sits and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EdgeKey {
    is_root: bool,
    from: u64,
    word: u32,
    to: u64,
}

impl EdgeKey {
    /// The key of a root edge: the word at `address` holds `to`.
    pub(crate) fn root(address: u64, to: u64) -> Self {
        EdgeKey { is_root: true, from: address, word: 0, to }
    }
}

impl Lifetime for EdgeRow {
    type Key = EdgeKey;
    fn key(&self) -> EdgeKey {
        match self.from_address {
            Some(b) => EdgeKey { is_root: false, from: b, word: self.from_word.unwrap_or(0), to: self.to_address },
            None => EdgeKey::root(self.root_address.unwrap_or(0), self.to_address),
        }
    }
    fn continues(_: &Self, _: &Self) -> bool {
        true
    }
    /// Keeps the latest target block, head flag and map key.
    fn update(open: &mut Self, new: &Self) {
        if open != new {
            *open = new.clone();
        }
    }
}

impl Lifetime for QstrRow {
    type Key = (u64, u64);
    fn key(&self) -> (u64, u64) {
        (self.id, self.address)
    }
    /// Interned strings only change when the interpreter restarts and reuses the
    /// slot: a different text is a different qstr.
    fn continues(open: &Self, new: &Self) -> bool {
        open.text == new.text
    }
    fn update(_: &mut Self, _: &Self) {}
}

/// What the trackers need of one snapshot, each list sorted by key.
#[derive(Clone, Debug, Default)]
pub(crate) struct LifetimeRows {
    allocations: Vec<AllocationSight>,
    edges: Vec<EdgeRow>,
    qstrs: Vec<QstrRow>,
    /// A snapshot with MARK states or orphan tails was logged by the sweep: what
    /// vanished around it was swept, not freed.
    collecting: bool,
}

/// One snapshot's changes for every tracker.
#[derive(Clone, Debug)]
pub(crate) struct LifetimeChanges {
    allocations: Changes<AllocationSight>,
    edges: Changes<EdgeRow>,
    qstrs: Changes<QstrRow>,
    collecting: bool,
}

impl LifetimeChanges {
    pub(crate) fn new(
        allocations: Changes<AllocationSight>,
        edges: Changes<EdgeRow>,
        qstrs: Changes<QstrRow>,
        collecting: bool,
    ) -> Self {
        LifetimeChanges { allocations, edges, qstrs, collecting }
    }
}

impl LifetimeRows {
    /// Takes what the wanted lifetimes need out of `r` (its edges and qstrs are
    /// moved when `take` is set, cloned otherwise).
    pub(crate) fn from_report(r: &mut SnapshotReport, want: Wanted, take: bool, fw: &Firmware) -> Self {
        let allocations = if want.allocations {
            // Texts by their data block; the last string row of a block wins.
            let texts = texts_by_block(&r.strings);
            let held = held_of(r);
            let sight = |(i, b)| AllocationSight::of(b, |a| text_of(&texts, a), fw).with_held(held(i));
            r.blocks.iter().enumerate().map(sight).collect()
        } else {
            Vec::new()
        };
        fn grab<T: Clone>(v: &mut Vec<T>, wanted: bool, take: bool) -> Vec<T> {
            match (wanted, take) {
                (false, _) => Vec::new(),
                (true, true) => std::mem::take(v),
                (true, false) => v.clone(),
            }
        }
        let edges = grab(&mut r.edges, want.edges, take);
        let qstrs = grab(&mut r.qstrs, want.qstrs, take);
        LifetimeRows {
            allocations: sorted_unique(allocations),
            edges: sorted_unique(edges),
            qstrs: sorted_unique(qstrs),
            collecting: r.marked_blocks > 0 || r.orphan_tail_blocks > 0,
        }
    }

    /// The changes from `prev` (the snapshot before, when the same worker decoded
    /// it), or the whole snapshot.
    pub(crate) fn changes_since(&self, prev: Option<&LifetimeRows>) -> LifetimeChanges {
        match prev {
            Some(p) => LifetimeChanges {
                allocations: Changes::between(&p.allocations, &self.allocations),
                edges: Changes::between(&p.edges, &self.edges),
                qstrs: Changes::between(&p.qstrs, &self.qstrs),
                collecting: self.collecting,
            },
            None => LifetimeChanges {
                allocations: Changes::full(&self.allocations),
                edges: Changes::full(&self.edges),
                qstrs: Changes::full(&self.qstrs),
                collecting: self.collecting,
            },
        }
    }
}

/// Which lifetime tables a run writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) allocations: bool,
    pub(crate) edges: bool,
    pub(crate) qstrs: bool,
}

impl Wanted {
    pub(crate) fn any(&self) -> bool {
        self.allocations || self.edges || self.qstrs
    }
}

/// The three trackers and their tables' rows.
pub(crate) struct Lifetimes {
    allocations: Option<(Tracker<AllocationSight>, AllocationRows)>,
    edges: Option<(Tracker<EdgeRow>, EdgeHistoryRows)>,
    qstrs: Option<(Tracker<QstrRow>, QstrHistoryRows)>,
    prev_collecting: bool,
    bytes_per_block: u64,
}

/// How an allocation's life ended, when it was not still there.
fn end_name(collecting: bool) -> &'static str {
    if collecting {
        "swept"
    } else {
        "freed"
    }
}

fn ending_name(how: Ending, ended: &'static str) -> &'static str {
    match how {
        Ending::Ended => ended,
        Ending::Continues => "continues",
        Ending::Live => "live",
    }
}

impl Lifetimes {
    pub(crate) fn new(want: Wanted) -> Self {
        Lifetimes {
            allocations: want.allocations.then(|| (Tracker::new(), AllocationRows::default())),
            edges: want.edges.then(|| (Tracker::new(), EdgeHistoryRows::default())),
            qstrs: want.qstrs.then(|| (Tracker::new(), QstrHistoryRows::default())),
            prev_collecting: false,
            bytes_per_block: 16,
        }
    }

    pub(crate) fn prime(&mut self, index: u64, rows: &LifetimeRows) {
        if let Some((t, _)) = self.allocations.as_mut() {
            t.prime(index, &rows.allocations);
        }
        if let Some((t, _)) = self.edges.as_mut() {
            t.prime(index, &rows.edges);
        }
        if let Some((t, _)) = self.qstrs.as_mut() {
            t.prime(index, &rows.qstrs);
        }
        self.prev_collecting = rows.collecting;
    }

    /// Applies one snapshot, in snapshot order; ended lifetimes become rows.
    pub(crate) fn apply(&mut self, index: u64, bytes_per_block: u64, c: &LifetimeChanges, fw: &Firmware) {
        self.bytes_per_block = bytes_per_block;
        let freed = end_name(c.collecting || self.prev_collecting);
        if let Some((t, rows)) = self.allocations.as_mut() {
            t.apply(index, &c.allocations, |o, last, how| {
                rows.push(o, last, ending_name(how, freed), bytes_per_block, fw)
            });
        }
        if let Some((t, rows)) = self.edges.as_mut() {
            t.apply(index, &c.edges, |o, last, how| rows.push(o, last, ending_name(how, "gone")));
        }
        if let Some((t, rows)) = self.qstrs.as_mut() {
            t.apply(index, &c.qstrs, |o, last, how| rows.push(o, last, ending_name(how, "gone")));
        }
        self.prev_collecting = c.collecting;
    }

    /// Ends every open lifetime, looking at `next` (what follows the range).
    pub(crate) fn finish(&mut self, next: After<&LifetimeRows>, fw: &Firmware) {
        let next_collecting = matches!(next, After::Snapshot(n) if n.collecting);
        let freed = end_name(next_collecting || self.prev_collecting);
        let bpb = self.bytes_per_block;
        if let Some((t, rows)) = self.allocations.as_mut() {
            t.finish(next.map(|n| &n.allocations[..]), |o, last, how| {
                rows.push(o, last, ending_name(how, freed), bpb, fw)
            });
        }
        if let Some((t, rows)) = self.edges.as_mut() {
            t.finish(next.map(|n| &n.edges[..]), |o, last, how| rows.push(o, last, ending_name(how, "gone")));
        }
        if let Some((t, rows)) = self.qstrs.as_mut() {
            t.finish(next.map(|n| &n.qstrs[..]), |o, last, how| rows.push(o, last, ending_name(how, "gone")));
        }
    }

    pub(crate) fn allocation_rows(&mut self) -> Option<&mut AllocationRows> {
        self.allocations.as_mut().map(|(_, r)| r)
    }
    pub(crate) fn edge_rows(&mut self) -> Option<&mut EdgeHistoryRows> {
        self.edges.as_mut().map(|(_, r)| r)
    }
    pub(crate) fn qstr_rows(&mut self) -> Option<&mut QstrHistoryRows> {
        self.qstrs.as_mut().map(|(_, r)| r)
    }
    /// The rows of all three tables at once, to be written side by side.
    pub(crate) fn all_rows(
        &mut self,
    ) -> (Option<&mut AllocationRows>, Option<&mut EdgeHistoryRows>, Option<&mut QstrHistoryRows>) {
        (
            self.allocations.as_mut().map(|(_, r)| r),
            self.edges.as_mut().map(|(_, r)| r),
            self.qstrs.as_mut().map(|(_, r)| r),
        )
    }
}

/// Lifetime columns appended to an entity's own columns.
fn lifetime_fields() -> Vec<arrow::datatypes::Field> {
    use DataType::*;
    vec![
        f("first_snapshot", Int64, false),
        f("last_snapshot", Int64, false),
        f("end", dict(), false),
        f("open_start", Boolean, false),
    ]
}

/// Builders for [`lifetime_fields`].
#[derive(Default)]
struct LifetimeColumns {
    first: IntColumn,
    last: IntColumn,
    end: Dict,
    open_start: BooleanBuilder,
}

impl LifetimeColumns {
    fn push(&mut self, first: u64, last: u64, end: &str, open_start: bool) {
        self.first.append_value(first);
        self.last.append_value(last);
        self.end.append_value(end);
        self.open_start.append_value(open_start);
    }

    fn finish(&mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(arc(self.first.finish()));
        cols.push(arc(self.last.finish()));
        cols.push(arc(self.end.finish()));
        cols.push(arc(self.open_start.finish()));
    }
}

pub fn allocations_schema() -> SchemaRef {
    use DataType::*;
    let mut fields = vec![f("address", Int64, false)];
    fields.extend(allocation_fields());
    fields.extend([f("text", Utf8, true), f("snapshots", Int64, false)]);
    fields.extend(lifetime_fields());
    Arc::new(Schema::new(fields))
}

#[derive(Default)]
pub(crate) struct AllocationRows {
    pub(crate) n: usize,
    /// Bytes of `text` since the last batch.
    pub(crate) text_bytes: usize,
    address: IntColumn,
    allocation: AllocationColumns,
    text: StringBuilder,
    snapshots: IntColumn,
    life: LifetimeColumns,
}

impl AllocationRows {
    fn push(&mut self, o: &Open<AllocationSight>, last: u64, end: &str, bpb: u64, fw: &Firmware) {
        let a = &o.item;
        self.address.append_value(a.address);
        self.allocation.push(a, bpb, fw);
        self.text.append_option(a.text.as_deref());
        self.text_bytes += a.text.as_deref().map_or(0, str::len);
        self.snapshots.append_value(last - o.first + 1);
        self.life.push(o.first, last, end, o.primed);
        self.n += 1;
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        self.text_bytes = 0;
        let mut cols = vec![arc(self.address.finish())];
        self.allocation.finish(&mut cols);
        cols.extend([arc(self.text.finish()) as ArrayRef, arc(self.snapshots.finish())]);
        self.life.finish(&mut cols);
        cols
    }
}

pub fn edge_history_schema() -> SchemaRef {
    let mut fields = edge_fields();
    fields.extend(lifetime_fields());
    Arc::new(Schema::new(fields))
}

pub fn qstr_history_schema() -> SchemaRef {
    let mut fields = qstr_fields();
    fields.extend(lifetime_fields());
    Arc::new(Schema::new(fields))
}

/// A lifetime table of one entity: its columns, then the lifetime columns.
#[derive(Default)]
pub(crate) struct HistoryRows<C: Columns> {
    pub(crate) n: usize,
    columns: C,
    life: LifetimeColumns,
}

impl<C: Columns> HistoryRows<C> {
    fn push(&mut self, o: &Open<C::Row>, last: u64, end: &str) {
        self.columns.push_row(&o.item);
        self.life.push(o.first, last, end, o.primed);
        self.n += 1;
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        let mut cols = Vec::new();
        self.columns.finish_into(&mut cols);
        self.life.finish(&mut cols);
        cols
    }
}

pub(crate) type EdgeHistoryRows = HistoryRows<EdgeColumns>;
pub(crate) type QstrHistoryRows = HistoryRows<QstrColumns>;

#[cfg(test)]
mod tests {
    use super::*;

    fn sight(type_address: Option<u64>) -> AllocationSight {
        AllocationSight {
            address: 0x2000_0100,
            blocks: 2,
            type_address,
            last_type: type_address,
            kind: "unknown",
            category: "unknown",
            owner: None,
            name: None,
            class: None,
            text: None,
            has_finaliser: false,
            held: None,
        }
    }

    /// (first, last, primed) of each instance a tracker ends, from `from` on,
    /// primed with the sighting before it.
    fn pieces(types: &[Option<u64>], from: usize) -> Vec<(u64, u64, bool)> {
        let mut t = Tracker::new();
        let mut out = Vec::new();
        if from > 0 {
            t.prime(from as u64 - 1, &[sight(types[from - 1])]);
        }
        for (i, ty) in types.iter().enumerate().skip(from) {
            t.apply(i as u64, &Changes::all(vec![sight(*ty)]), |o, last, _| out.push((o.first, last, o.primed)));
        }
        t.finish(After::DumpEnd, |o, last, _| out.push((o.first, last, o.primed)));
        out
    }

    #[test]
    fn whether_an_allocation_goes_on_depends_on_the_sighting_before_only() {
        // A first word that names a type, then none (overwritten), then
        // another type: a shard starting anywhere must cut where one run cuts.
        let (a, b) = (Some(0x1000), Some(0x2000));
        for types in [vec![a, None, b, b], vec![a, a, None, a, b], vec![None, a, None, None, b, a]] {
            let whole = pieces(&types, 0);
            for from in 1..types.len() {
                let shard = pieces(&types, from);
                // The shard's first piece went on from before it exactly when one
                // run's piece spans the cut.
                let spans = whole.iter().any(|&(f, l, _)| f < from as u64 && l >= from as u64);
                assert_eq!(shard[0].2, spans, "{types:?} cut at {from}: {whole:?} vs {shard:?}");
                // And the run cuts the rest where the shard does.
                let after: Vec<(u64, u64)> =
                    whole.iter().filter(|p| p.1 >= from as u64).map(|p| (p.0.max(from as u64), p.1)).collect();
                let theirs: Vec<(u64, u64)> = shard.iter().map(|p| (p.0, p.1)).collect();
                assert_eq!(after, theirs, "{types:?} cut at {from}");
            }
        }
    }
}
