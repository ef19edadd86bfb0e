//! Heap history as lifetimes: one row per allocation instance, per edge and per
//! qstr, with the first and last snapshot it was seen in, instead of the same row
//! in every snapshot.
//!
//! MicroPython's GC never moves objects, so an allocation is identified by its
//! address, length and first word's type until it is freed. The trackers diff each
//! snapshot against the previous one in snapshot order (they run in the writer),
//! by a merge over rows the decoder already emits sorted, so the cost is linear in
//! the live heap and memory is bounded by it, not by the dump.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Schema, SchemaRef};

use super::per_snapshot::{arc, dict, edge_fields, f, qstr_fields, Columns, Dict, EdgeColumns, QstrColumns};
use crate::decode::{EdgeRow, Kind, SnapshotReport};
use crate::firmware::Firmware;

/// How an allocation's life ended.
fn end_name(collecting: bool) -> &'static str {
    if collecting {
        "swept"
    } else {
        "freed"
    }
}

#[derive(Clone, Debug)]
struct OpenAllocation {
    address: u64,
    blocks: u64,
    type_address: Option<u64>,
    kind: &'static str,
    name: Option<Arc<str>>,
    text: Option<String>,
    has_finaliser: bool,
    first: u64,
    last: u64,
    /// Seen in the snapshot before the run's range (the lead-in): it started earlier.
    primed: bool,
    /// Seen inside the run's range (a primed allocation gone at once is not).
    seen: bool,
}

/// Lifetime columns appended to an entity's own columns.
fn lifetime_fields() -> Vec<arrow::datatypes::Field> {
    use DataType::*;
    vec![
        f("first_snapshot", UInt64, false),
        f("last_snapshot", UInt64, false),
        f("end", dict(), false),
        f("open_start", Boolean, false),
    ]
}

/// Builders for [`lifetime_fields`].
#[derive(Default)]
struct LifetimeColumns {
    first: UInt64Builder,
    last: UInt64Builder,
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
    let mut fields = vec![
        f("address", UInt64, false),
        f("blocks", UInt64, false),
        f("bytes", UInt64, false),
        f("kind", dict(), false),
        f("type_address", UInt64, true),
        f("type_name", dict(), true),
        f("name", dict(), true),
        f("text", Utf8, true),
        f("has_finaliser", Boolean, false),
        f("snapshots", UInt64, false),
    ];
    fields.extend(lifetime_fields());
    Arc::new(Schema::new(fields))
}

#[derive(Default)]
pub(crate) struct AllocationRows {
    pub(crate) n: usize,
    address: UInt64Builder,
    blocks: UInt64Builder,
    bytes: UInt64Builder,
    kind: Dict,
    type_address: UInt64Builder,
    type_name: Dict,
    name: Dict,
    text: StringBuilder,
    has_finaliser: BooleanBuilder,
    snapshots: UInt64Builder,
    life: LifetimeColumns,
}

impl AllocationRows {
    fn push(&mut self, a: &OpenAllocation, end: &str, bpb: u64, open_start: bool, fw: &Firmware) {
        self.address.append_value(a.address);
        self.blocks.append_value(a.blocks);
        self.bytes.append_value(a.blocks * bpb);
        self.kind.append_value(a.kind);
        self.type_address.append_option(a.type_address);
        self.type_name.append_option(a.type_address.and_then(|t| fw.flash_names.get(&t)).map(String::as_str));
        self.name.append_option(a.name.as_deref());
        self.text.append_option(a.text.as_deref());
        self.has_finaliser.append_value(a.has_finaliser);
        self.snapshots.append_value(a.last - a.first + 1);
        self.life.push(a.first, a.last, end, open_start);
        self.n += 1;
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        let mut cols = vec![
            arc(self.address.finish()),
            arc(self.blocks.finish()),
            arc(self.bytes.finish()),
            arc(self.kind.finish()),
            arc(self.type_address.finish()),
            arc(self.type_name.finish()),
            arc(self.name.finish()),
            arc(self.text.finish()),
            arc(self.has_finaliser.finish()),
            arc(self.snapshots.finish()),
        ];
        self.life.finish(&mut cols);
        cols
    }
}

/// The type an allocation's first word names: a symbol in flash. Other first words
/// (a list's first item, an immediate that happens to fall in flash) are no type.
fn type_of(first_word_in_flash: Option<u64>, fw: &Firmware) -> Option<u64> {
    first_word_in_flash.filter(|a| fw.flash_names.contains_key(a))
}

/// Same object as far as its type tells: both typed alike, or one not yet typed
/// (an object under construction has a NULL first word).
fn same_type(a: Option<u64>, b: Option<u64>) -> bool {
    a.is_none() || b.is_none() || a == b
}

/// Allocation lifetimes across snapshots.
///
/// A run over `A..B` may be one part of a dump: it is primed with snapshot `A-1`
/// (allocations alive there started before the part: `open_start`) and finished
/// with snapshot `B` (what is gone there ended at `B-1`, freed or swept; what is
/// still there `continues` into the next part). Only the dump's last snapshot
/// leaves allocations `live`. Parts therefore stitch exactly.
pub(crate) struct AllocationTracker {
    open: Vec<OpenAllocation>,
    bytes_per_block: u64,
    prev_collecting: bool,
}

impl AllocationTracker {
    pub(crate) fn new() -> Self {
        AllocationTracker { open: Vec::new(), bytes_per_block: 16, prev_collecting: false }
    }

    /// Takes the snapshot before the run's range as the starting state.
    pub(crate) fn prime(&mut self, r: &SnapshotReport, fw: &Firmware) {
        self.observe(r, &mut AllocationRows::default(), fw);
        for o in &mut self.open {
            o.primed = true;
            o.seen = false;
        }
    }

    /// Diffs `r` against the previous snapshot; ended allocations become rows.
    pub(crate) fn observe(&mut self, r: &SnapshotReport, rows: &mut AllocationRows, fw: &Firmware) {
        self.bytes_per_block = r.geometry.bytes_per_block;
        // A snapshot with MARK states or orphan tails was logged by the sweep.
        let collecting = r.marked_blocks > 0 || r.orphan_tail_blocks > 0;
        let end = end_name(collecting || self.prev_collecting);
        let texts: HashMap<u64, &str> = r.strings.iter().map(|s| (s.block, s.text.as_str())).collect();
        let mut next = Vec::with_capacity(r.blocks.len());
        let mut old = std::mem::take(&mut self.open).into_iter().peekable();
        for b in &r.blocks {
            while let Some(o) = old.next_if(|o| o.address < b.address) {
                self.close(&o, end, rows, fw);
            }
            // Only string data has text; skip the lookup for everything else.
            let text = || (b.kind == Kind::StringData).then(|| texts.get(&b.address).map(|t| t.to_string())).flatten();
            let ty = type_of(b.type_address, fw);
            match old.next_if(|o| o.address == b.address) {
                Some(mut o) if o.blocks == b.blocks && same_type(o.type_address, ty) => {
                    o.type_address = o.type_address.or(ty);
                    if !o.seen {
                        // First sight inside the range of an object from before it.
                        o.first = r.index;
                        o.seen = true;
                    }
                    o.last = r.index;
                    o.kind = b.kind.name();
                    if b.name.is_some() && o.name != b.name {
                        o.name = b.name.clone();
                    }
                    if o.text.is_none() {
                        o.text = text();
                    }
                    o.has_finaliser |= b.has_finaliser;
                    next.push(o);
                    continue;
                }
                Some(o) => self.close(&o, end, rows, fw),
                None => {}
            }
            next.push(OpenAllocation {
                address: b.address,
                blocks: b.blocks,
                type_address: ty,
                kind: b.kind.name(),
                name: b.name.clone(),
                text: text(),
                has_finaliser: b.has_finaliser,
                first: r.index,
                last: r.index,
                primed: false,
                seen: true,
            });
        }
        for o in old {
            self.close(&o, end, rows, fw);
        }
        self.open = next;
        self.prev_collecting = collecting;
    }

    fn close(&self, o: &OpenAllocation, end: &str, rows: &mut AllocationRows, fw: &Firmware) {
        // A primed allocation never seen inside the range belongs to the part before.
        if !o.seen {
            return;
        }
        rows.push(o, end, self.bytes_per_block, o.primed, fw);
    }

    /// Ends the run: with `next` (the snapshot after the range) what is gone there
    /// was freed or swept and the rest `continues`; without it (the dump's end) what
    /// is left is `live`. Rows come out in address order.
    pub(crate) fn finish(&mut self, next: Option<&SnapshotReport>, rows: &mut AllocationRows, fw: &Firmware) {
        let Some(next) = next else {
            for o in std::mem::take(&mut self.open) {
                self.close(&o, "live", rows, fw);
            }
            return;
        };
        let collecting = next.marked_blocks > 0 || next.orphan_tail_blocks > 0;
        let end = end_name(collecting || self.prev_collecting);
        let mut there = next.blocks.iter().map(|b| (b.address, b.blocks, type_of(b.type_address, fw))).peekable();
        for o in std::mem::take(&mut self.open) {
            while there.next_if(|t| t.0 < o.address).is_some() {}
            let continues =
                there.peek().is_some_and(|t| t.0 == o.address && t.1 == o.blocks && same_type(o.type_address, t.2));
            self.close(&o, if continues { "continues" } else { end }, rows, fw);
        }
    }
}

/// An edge's identity: where the pointer sits and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EdgeKey {
    is_root: bool,
    from: u64,
    word: u32,
    to: u64,
}

fn edge_key(e: &EdgeRow) -> EdgeKey {
    match e.from_block {
        Some(b) => EdgeKey { is_root: false, from: b, word: e.from_word.unwrap_or(0), to: e.to_address },
        None => EdgeKey { is_root: true, from: e.root_address.unwrap_or(0), word: 0, to: e.to_address },
    }
}

#[derive(Clone, Debug)]
struct OpenEdge {
    key: EdgeKey,
    row: EdgeRow,
    first: u64,
    last: u64,
    primed: bool,
    seen: bool,
}

pub fn edge_history_schema() -> SchemaRef {
    let mut fields = edge_fields();
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
    fn push(&mut self, row: &C::Row, first: u64, last: u64, end: &str, open_start: bool) {
        self.columns.push_row(row);
        self.life.push(first, last, end, open_start);
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

fn push_edge(rows: &mut EdgeHistoryRows, o: &OpenEdge, end: &str) {
    if o.seen {
        rows.push(&o.row, o.first, o.last, end, o.primed);
    }
}

fn sorted_edges(r: &SnapshotReport) -> Vec<(EdgeKey, &EdgeRow)> {
    let mut current: Vec<(EdgeKey, &EdgeRow)> = r.edges.iter().map(|e| (edge_key(e), e)).collect();
    // The decoder emits block edges by (block, word) then roots by address; sort
    // only if that ever changes.
    if !current.is_sorted_by(|a, b| a.0 <= b.0) {
        current.sort_by(|a, b| a.0.cmp(&b.0));
    }
    current
}

/// Edge lifetimes: when each pointer appeared and when it went away (`gone`), with
/// the same lead-in and look-ahead as [`AllocationTracker`].
pub(crate) struct EdgeTracker {
    open: Vec<OpenEdge>,
}

impl EdgeTracker {
    pub(crate) fn new() -> Self {
        EdgeTracker { open: Vec::new() }
    }

    pub(crate) fn prime(&mut self, r: &SnapshotReport) {
        self.observe(r, &mut EdgeHistoryRows::default());
        for o in &mut self.open {
            o.primed = true;
            o.seen = false;
        }
    }

    pub(crate) fn finish(&mut self, next: Option<&SnapshotReport>, rows: &mut EdgeHistoryRows) {
        let there: Vec<EdgeKey> =
            next.map(|n| sorted_edges(n).into_iter().map(|(k, _)| k).collect()).unwrap_or_default();
        let mut there = there.into_iter().peekable();
        for o in std::mem::take(&mut self.open) {
            while there.next_if(|k| *k < o.key).is_some() {}
            let end = match next {
                None => "live",
                Some(_) if there.peek() == Some(&o.key) => "continues",
                Some(_) => "gone",
            };
            push_edge(rows, &o, end);
        }
    }

    pub(crate) fn observe(&mut self, r: &SnapshotReport, rows: &mut EdgeHistoryRows) {
        let current = sorted_edges(r);
        let mut next = Vec::with_capacity(current.len());
        let mut old = std::mem::take(&mut self.open).into_iter().peekable();
        for (key, e) in current {
            while let Some(o) = old.next_if(|o| o.key < key) {
                push_edge(rows, &o, "gone");
            }
            match old.next_if(|o| o.key == key) {
                Some(mut o) => {
                    if !o.seen {
                        o.first = r.index;
                        o.seen = true;
                    }
                    o.last = r.index;
                    // Keep the latest to_block/to_is_head/map_key; clone only on change.
                    if o.row != *e {
                        o.row = e.clone();
                    }
                    next.push(o);
                }
                None => next.push(OpenEdge {
                    key,
                    row: e.clone(),
                    first: r.index,
                    last: r.index,
                    primed: false,
                    seen: true,
                }),
            }
        }
        for o in old {
            push_edge(rows, &o, "gone");
        }
        self.open = next;
    }
}

pub fn qstr_history_schema() -> SchemaRef {
    let mut fields = qstr_fields();
    fields.extend(lifetime_fields());
    Arc::new(Schema::new(fields))
}

#[derive(Clone, Debug)]
struct OpenQstr {
    row: crate::decode::QstrRow,
    first: u64,
    last: u64,
    primed: bool,
    seen: bool,
}

fn push_qstr(rows: &mut QstrHistoryRows, o: &OpenQstr, end: &str) {
    if o.seen {
        rows.push(&o.row, o.first, o.last, end, o.primed);
    }
}

fn sorted_qstrs(r: &SnapshotReport) -> Vec<&crate::decode::QstrRow> {
    let mut current: Vec<&crate::decode::QstrRow> = r.qstrs.iter().collect();
    current.sort_by_key(|q| (q.id, q.address));
    current
}

/// Qstr lifetimes: interned strings only disappear when the interpreter restarts.
pub(crate) struct QstrTracker {
    open: Vec<OpenQstr>,
}

impl QstrTracker {
    pub(crate) fn new() -> Self {
        QstrTracker { open: Vec::new() }
    }

    pub(crate) fn prime(&mut self, r: &SnapshotReport) {
        self.observe(r, &mut QstrHistoryRows::default());
        for o in &mut self.open {
            o.primed = true;
            o.seen = false;
        }
    }

    pub(crate) fn finish(&mut self, next: Option<&SnapshotReport>, rows: &mut QstrHistoryRows) {
        let there: Vec<(u64, u64, &str)> = next
            .map(|n| sorted_qstrs(n).into_iter().map(|q| (q.id, q.address, q.text.as_str())).collect())
            .unwrap_or_default();
        let mut there = there.into_iter().peekable();
        for o in std::mem::take(&mut self.open) {
            while there.next_if(|t| (t.0, t.1) < (o.row.id, o.row.address)).is_some() {}
            let end = match next {
                None => "live",
                Some(_) if there.peek() == Some(&(o.row.id, o.row.address, o.row.text.as_str())) => "continues",
                Some(_) => "gone",
            };
            push_qstr(rows, &o, end);
        }
    }

    pub(crate) fn observe(&mut self, r: &SnapshotReport, rows: &mut QstrHistoryRows) {
        let current = sorted_qstrs(r);
        let mut next = Vec::with_capacity(current.len());
        let mut old = std::mem::take(&mut self.open).into_iter().peekable();
        for q in current {
            let key = (q.id, q.address);
            while let Some(o) = old.next_if(|o| (o.row.id, o.row.address) < key) {
                push_qstr(rows, &o, "gone");
            }
            if let Some(o) = old.next_if(|o| (o.row.id, o.row.address) == key && o.row.text != q.text) {
                push_qstr(rows, &o, "gone");
            }
            match old.next_if(|o| (o.row.id, o.row.address) == key) {
                Some(mut o) => {
                    if !o.seen {
                        o.first = r.index;
                        o.seen = true;
                    }
                    o.last = r.index;
                    next.push(o);
                }
                None => {
                    next.push(OpenQstr { row: q.clone(), first: r.index, last: r.index, primed: false, seen: true })
                }
            }
        }
        for o in old {
            push_qstr(rows, &o, "gone");
        }
        self.open = next;
    }
}
