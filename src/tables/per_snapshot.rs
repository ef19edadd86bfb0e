//! Per-snapshot tables: `snapshots` (always written) and, with `--per-snapshot`,
//! every block, edge, qstr, string and free run of every snapshot.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, DictionaryArray, Float64Builder, Int32Builder, Int64Array, Int64Builder, StringArray,
    StringBuilder, StringDictionaryBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use rustc_hash::FxHashMap;

use super::lifetimes::AllocationSight;
use super::table::{Input, Rows};
use crate::decode::{EdgeRow, QstrRow, SnapshotReport};
use crate::error::DecodeError;
use crate::firmware::Firmware;

pub(crate) fn dict() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

pub(crate) fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

/// The whole-number columns of `snapshots` after `status` and `geometry_source`,
/// in order; `fragmentation` comes after the first [`SNAPSHOT_GC_COLUMNS`].
const SNAPSHOT_INT_COLUMNS: [&str; 32] = [
    "block_bytes",
    "heap_start",
    "heap_bytes",
    "alloc_table_start",
    "alloc_table_bytes",
    "finaliser_table_start",
    "finaliser_table_bytes",
    "pool_start",
    "pool_end",
    "pool_blocks",
    "pool_bytes",
    "total_bytes",
    "used_bytes",
    "free_bytes",
    "gc_max_free_blocks",
    "gc_max_free_bytes",
    "num_1block",
    "num_2block",
    "max_block_blocks",
    "max_block_bytes",
    // fragmentation
    "free_run_count",
    "longest_free_run_blocks",
    "longest_free_run_bytes",
    "allocation_count",
    "marked_blocks",
    "orphan_tail_blocks",
    "finaliser_count",
    "heap_areas",
    "stack_pointer",
    "reachable_allocations",
    "garbage_allocations",
    "garbage_bytes",
];

/// How many of [`SNAPSHOT_INT_COLUMNS`] come before `fragmentation`.
const SNAPSHOT_GC_COLUMNS: usize = 20;

pub fn snapshots_schema() -> SchemaRef {
    use DataType::*;
    let mut fields = vec![
        f("snapshot", Int64, false),
        f("dump_offset", Int64, false),
        f("status", Utf8, false),
        f("geometry_source", dict(), true),
    ];
    let ints = SNAPSHOT_INT_COLUMNS.iter().map(|n| f(n, Int64, true));
    fields.extend(ints.clone().take(SNAPSHOT_GC_COLUMNS));
    fields.push(f("fragmentation", Float64, true));
    fields.extend(ints.skip(SNAPSHOT_GC_COLUMNS));
    fields.push(f("reachability", dict(), true));
    fields.extend([
        f("time", Float64, true),
        f("event", dict(), true),
        f("requested_bytes", Int64, true),
        f("watched", dict(), true),
    ]);
    Arc::new(Schema::new(fields))
}

pub fn blocks_schema() -> SchemaRef {
    use DataType::*;
    let mut fields = vec![f("snapshot", Int64, false), f("address", Int64, false), f("block", Int64, false)];
    fields.extend(allocation_fields());
    fields.extend([
        f("marked", Boolean, false),
        f("n_state", Int64, true),
        f("n_exc_stack", Int64, true),
        f("scope_flags", Int64, true),
        f("n_pos_args", Int64, true),
        f("n_kwonly_args", Int64, true),
        f("n_def_pos_args", Int64, true),
        f("code_info_size", Int64, true),
        f("collect", Boolean, true),
    ]);
    Arc::new(Schema::new(fields))
}

/// What `blocks` and `allocations` both say of an allocation, after its address
/// and first block, in this order.
pub(crate) fn allocation_fields() -> Vec<Field> {
    use DataType::*;
    vec![
        f("blocks", Int64, false),
        f("bytes", Int64, false),
        f("kind", dict(), false),
        f("category", dict(), false),
        f("owner_address", Int64, true),
        f("type_address", Int64, true),
        f("type_name", dict(), true),
        f("name", dict(), true),
        f("class", dict(), true),
        f("has_finaliser", Boolean, false),
        f("reachable", Boolean, true),
        f("holder_address", Int64, true),
        f("holder_root", dict(), true),
        f("retained_bytes", Int64, true),
    ]
}

/// The columns of an edge, shared by `edges` and `edge_history`.
pub(crate) fn edge_fields() -> Vec<Field> {
    use DataType::*;
    vec![
        f("from_address", Int64, true),
        f("from_block", Int64, true),
        f("from_word", Int64, true),
        f("root_address", Int64, true),
        f("root_name", dict(), true),
        f("to_address", Int64, false),
        f("to_alloc_address", Int64, true),
        f("to_block", Int64, true),
        f("to_is_head", Boolean, false),
        f("map_key", dict(), true),
    ]
}

/// The columns of a qstr, shared by `qstrs` and `qstr_history`.
pub(crate) fn qstr_fields() -> Vec<Field> {
    use DataType::*;
    vec![
        f("pool_address", Int64, false),
        f("chunk_address", Int64, true),
        f("id", Int64, false),
        f("address", Int64, false),
        f("hash", Int64, false),
        f("length", Int64, false),
        f("text", dict(), false),
    ]
}

pub fn edges_schema() -> SchemaRef {
    let mut fields = vec![f("snapshot", DataType::Int64, false)];
    fields.extend(edge_fields());
    Arc::new(Schema::new(fields))
}

pub fn qstrs_schema() -> SchemaRef {
    let mut fields = vec![f("snapshot", DataType::Int64, false)];
    fields.extend(qstr_fields());
    Arc::new(Schema::new(fields))
}

pub fn strings_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", Int64, false),
        f("address", Int64, false),
        f("block", Int64, true),
        f("owner_address", Int64, true),
        f("source", dict(), false),
        f("length", Int64, false),
        f("text", Utf8, false),
    ]))
}

pub fn free_runs_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", Int64, false),
        f("block", Int64, false),
        f("address", Int64, false),
        f("blocks", Int64, false),
        f("bytes", Int64, false),
    ]))
}

pub(crate) type Dict = StringDictionaryBuilder<Int32Type>;

/// A dictionary column of a few strings that recur row after row (a kind, a
/// type's name, a class): a string is looked up first by where it is (the same
/// `&str` or `Arc<str>` comes back snapshot after snapshot), checked by content,
/// and hashed only when that misses. [`Dict`] hashes every value.
///
/// A text that cannot be another at its address is not read again: a
/// `&'static str` ([`RecurringDict::append_static`]), and an `Arc<str>` the
/// dictionary holds until the batch is finished
/// ([`RecurringDict::append_shared`]). The empty text is taken as the static
/// one: compared by content, the empty `Box<str>` kept as a value has a
/// dangling address, and glibc's AVX-512 `memcmp` of zero bytes there took
/// about 100 ns (a masked load at an unmapped page), a sixth of the writer's
/// time on a busy capture, whose `type_histogram` names "" on most rows.
#[derive(Default)]
pub(crate) struct RecurringDict {
    keys: Int32Builder,
    values: Vec<Box<str>>,
    by_address: FxHashMap<(usize, usize), i32>,
    by_text: FxHashMap<Box<str>, i32>,
    by_shared: FxHashMap<(usize, usize), i32>,
    /// The `Arc`s `by_shared` holds the addresses of.
    shared: Vec<Arc<str>>,
}

impl RecurringDict {
    pub(crate) fn append_option(&mut self, s: Option<&str>) {
        let Some(s) = s else {
            self.keys.append_null();
            return;
        };
        if s.is_empty() {
            return self.append_static("");
        }
        let at = (s.as_ptr() as usize, s.len());
        let key = match self.by_address.get(&at) {
            // (An address alone could be a freed string's, reused.)
            Some(&k) if self.values.get(k as usize).is_some_and(|v| **v == *s) => k,
            _ => {
                let k = self.key_of_text(s);
                self.by_address.insert(at, k);
                k
            }
        };
        self.keys.append_value(key);
    }

    /// [`RecurringDict::append_option`] for a shared text, found by address
    /// alone (see the type's doc).
    pub(crate) fn append_shared(&mut self, s: Option<&Arc<str>>) {
        let Some(s) = s else {
            self.keys.append_null();
            return;
        };
        if self.append_by_address(s) {
            self.shared.push(Arc::clone(s));
        }
    }

    /// [`RecurringDict::append_value`] for a text that is never freed, so its
    /// address names it: found by address alone.
    pub(crate) fn append_static(&mut self, s: &'static str) {
        self.append_by_address(s);
    }

    /// Appends the key of `s`, found by its address alone (the caller makes
    /// sure the address names `s` until the batch is finished); whether the
    /// address was new.
    fn append_by_address(&mut self, s: &str) -> bool {
        let at = (s.as_ptr() as usize, s.len());
        let (key, new) = match self.by_shared.get(&at) {
            Some(&k) => (k, false),
            None => {
                let k = self.key_of_text(s);
                self.by_shared.insert(at, k);
                (k, true)
            }
        };
        self.keys.append_value(key);
        new
    }

    /// The key of text `s`, a new one if it is new.
    fn key_of_text(&mut self, s: &str) -> i32 {
        let next = self.values.len() as i32;
        let k = *self.by_text.entry(Box::from(s)).or_insert(next);
        if k == next {
            self.values.push(Box::from(s));
        }
        k
    }

    pub(crate) fn append_value(&mut self, s: &str) {
        self.append_option(Some(s))
    }

    /// Makes room for `rows` keys (right after [`RecurringDict::finish`]).
    pub(crate) fn reserve(&mut self, rows: usize) {
        self.keys = Int32Builder::with_capacity(rows);
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        let values = StringArray::from_iter_values(self.values.iter().map(|v| &**v));
        let keys = self.keys.finish();
        self.values.clear();
        self.by_address.clear();
        self.by_text.clear();
        self.by_shared.clear();
        self.shared.clear();
        let len = keys.len();
        // Every key was made an index into `values`.
        match DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)) {
            Ok(a) => arc(a),
            Err(_) => arrow::array::new_null_array(&dict(), len),
        }
    }
}

/// A column of whole numbers: snapshot indices, counts, sizes and addresses.
/// Stored as `Int64`, so that `free - lag(free)` or `snapshot - 1` subtract as
/// a user expects in DuckDB and Polars (unsigned columns fail or wrap there).
/// Every value fits: target addresses are checked to lie below 2^63 when the
/// firmware is loaded, and counts and sizes are bounded by the dump's size.
#[derive(Default)]
pub(crate) struct IntColumn(Int64Builder);

impl IntColumn {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        IntColumn(Int64Builder::with_capacity(rows))
    }

    pub(crate) fn append_value<T: TryInto<i64>>(&mut self, v: T) {
        // (Past i64::MAX only with a bound the firmware's load refuses.)
        self.0.append_value(v.try_into().unwrap_or(i64::MAX));
    }

    pub(crate) fn append_option<T: TryInto<i64>>(&mut self, v: Option<T>) {
        match v {
            Some(v) => self.append_value(v),
            None => self.0.append_null(),
        }
    }

    pub(crate) fn finish(&mut self) -> Int64Array {
        self.0.finish()
    }
}

pub(crate) fn arc<A: arrow::array::Array + 'static>(a: A) -> ArrayRef {
    Arc::new(a)
}

#[derive(Default)]
pub(crate) struct SnapshotsRows {
    pub(crate) n: usize,
    snapshot: IntColumn,
    dump_offset: IntColumn,
    ints: Vec<IntColumn>,
    status: StringBuilder,
    geometry_source: RecurringDict,
    fragmentation: Float64Builder,
    reachability: RecurringDict,
    time: Float64Builder,
    event: RecurringDict,
    requested_bytes: IntColumn,
    watched: RecurringDict,
}

/// The figures of [`SNAPSHOT_INT_COLUMNS`] of a decoded snapshot.
fn snapshot_figures(r: &SnapshotReport) -> [Option<u64>; SNAPSHOT_INT_COLUMNS.len()] {
    let g = &r.geometry;
    let i = &r.gc_info;
    let bpb = g.bytes_per_block;
    // A metrics-only decode lists no free runs or allocations and reads no
    // finaliser table: those figures are unknown, not 0.
    let full = !r.metrics_only;
    let longest = r.free_runs.iter().map(|f| f.blocks).max().unwrap_or(0);
    [
        Some(bpb),
        Some(g.heap_start),
        Some(g.heap_bytes),
        Some(g.first.alloc_table_start),
        Some(g.first.alloc_table_bytes),
        g.first.finaliser_table_start,
        Some(g.first.finaliser_table_bytes),
        Some(g.first.pool_start),
        Some(g.first.pool_end),
        Some(g.pool_blocks()),
        Some(g.pool_blocks() * bpb),
        Some(i.total),
        Some(i.used),
        Some(i.free),
        Some(i.max_free),
        Some(i.max_free * bpb),
        Some(i.num_1block),
        Some(i.num_2block),
        Some(i.max_block),
        Some(i.max_block * bpb),
        full.then_some(r.free_runs.len() as u64),
        full.then_some(longest),
        full.then_some(longest * bpb),
        full.then_some(r.allocations),
        Some(r.marked_blocks),
        Some(r.orphan_tail_blocks),
        full.then_some(r.finaliser_blocks),
        Some(1 + g.more_areas.len() as u64),
        r.reachability.as_ref().and_then(|h| h.stack_pointer),
        r.reachability.as_ref().map(|h| h.reachable_allocations),
        r.reachability.as_ref().map(|h| h.garbage_allocations),
        r.reachability.as_ref().map(|h| h.garbage_bytes),
    ]
}

impl SnapshotsRows {
    pub(crate) fn new() -> Self {
        SnapshotsRows {
            ints: SNAPSHOT_INT_COLUMNS.iter().map(|_| IntColumn::default()).collect(),
            ..Default::default()
        }
    }

    pub(crate) fn push(&mut self, index: u64, offset: u64, outcome: Result<&SnapshotReport, &DecodeError>) {
        let values = outcome.map_or([None; SNAPSHOT_INT_COLUMNS.len()], snapshot_figures);
        self.snapshot.append_value(index);
        self.dump_offset.append_value(offset);
        for (b, v) in self.ints.iter_mut().zip(values) {
            b.append_option(v);
        }
        match outcome {
            Ok(r) => {
                self.status.append_value("ok");
                self.geometry_source.append_value(r.geometry_source);
                let free = r.gc_info.free;
                let max_free = r.gc_info.max_free * r.geometry.bytes_per_block;
                self.fragmentation.append_option((free > 0).then(|| 1.0 - max_free as f64 / free as f64));
                let exact = r.reachability.as_ref().map(|h| h.exact);
                self.reachability.append_option(exact.map(|e| if e { "exact" } else { "over_approximation" }));
            }
            Err(e) => {
                self.status.append_value(e.status());
                self.geometry_source.append_option(None);
                self.fragmentation.append_null();
                self.reachability.append_option(None);
            }
        }
        self.n += 1;
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        let mut cols: Vec<ArrayRef> = vec![
            arc(self.snapshot.finish()),
            arc(self.dump_offset.finish()),
            arc(self.status.finish()),
            self.geometry_source.finish(),
        ];
        let ints: Vec<ArrayRef> = self.ints.iter_mut().map(|b| arc(b.finish()) as ArrayRef).collect();
        cols.extend(ints[..SNAPSHOT_GC_COLUMNS].iter().cloned());
        cols.push(arc(self.fragmentation.finish()));
        cols.extend(ints[SNAPSHOT_GC_COLUMNS..].iter().cloned());
        cols.push(self.reachability.finish());
        cols.extend([
            arc(self.time.finish()) as ArrayRef,
            self.event.finish(),
            arc(self.requested_bytes.finish()),
            self.watched.finish(),
        ]);
        cols
    }
}

/// Builders for [`allocation_fields`].
#[derive(Default)]
pub(crate) struct AllocationColumns {
    blocks: IntColumn,
    bytes: IntColumn,
    kind: RecurringDict,
    category: RecurringDict,
    owner_address: IntColumn,
    type_address: IntColumn,
    type_name: RecurringDict,
    name: RecurringDict,
    class: RecurringDict,
    has_finaliser: BooleanBuilder,
    reachable: BooleanBuilder,
    holder_address: IntColumn,
    holder_root: RecurringDict,
    retained_bytes: IntColumn,
}

impl AllocationColumns {
    pub(crate) fn push(&mut self, a: &AllocationSight, bytes_per_block: u64, fw: &Firmware) {
        self.blocks.append_value(a.blocks);
        self.bytes.append_value(a.blocks * bytes_per_block);
        self.kind.append_static(a.kind);
        self.category.append_static(a.category);
        self.owner_address.append_option(a.owner);
        self.type_address.append_option(a.type_address);
        self.type_name.append_shared(a.type_address.and_then(|t| fw.flash_names.get(&t)));
        self.name.append_shared(a.name.as_ref());
        self.class.append_shared(a.class.as_ref());
        self.has_finaliser.append_value(a.has_finaliser);
        let held = a.held.as_ref();
        self.reachable.append_option(held.map(|h| h.reachable));
        self.holder_address.append_option(held.and_then(|h| h.holder_address));
        self.holder_root.append_shared(held.and_then(|h| h.holder_root.as_ref()));
        self.retained_bytes.append_option(held.and_then(|h| h.retained_bytes));
    }

    pub(crate) fn finish(&mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(arc(self.blocks.finish()));
        cols.push(arc(self.bytes.finish()));
        cols.push(self.kind.finish());
        cols.push(self.category.finish());
        cols.push(arc(self.owner_address.finish()));
        cols.push(arc(self.type_address.finish()));
        cols.push(self.type_name.finish());
        cols.push(self.name.finish());
        cols.push(self.class.finish());
        cols.push(arc(self.has_finaliser.finish()));
        cols.push(arc(self.reachable.finish()));
        cols.push(arc(self.holder_address.finish()));
        cols.push(self.holder_root.finish());
        cols.push(arc(self.retained_bytes.finish()));
    }
}

#[derive(Default)]
pub(crate) struct BlocksRows {
    pub(crate) n: usize,
    snapshot: IntColumn,
    address: IntColumn,
    block: IntColumn,
    allocation: AllocationColumns,
    marked: BooleanBuilder,
    n_state: IntColumn,
    n_exc_stack: IntColumn,
    scope_flags: IntColumn,
    n_pos_args: IntColumn,
    n_kwonly_args: IntColumn,
    n_def_pos_args: IntColumn,
    code_info_size: IntColumn,
    collect: BooleanBuilder,
}

impl BlocksRows {
    pub(crate) fn push(&mut self, r: &SnapshotReport, fw: &Firmware) {
        let bpb = r.geometry.bytes_per_block;
        let held = super::lifetimes::held_of(r);
        for (i, b) in r.blocks.iter().enumerate() {
            self.snapshot.append_value(r.index);
            self.address.append_value(b.address);
            self.block.append_value(b.start_block);
            // (Set in place: `with_held` moved the whole sight.)
            let mut sight = AllocationSight::of(b, |_| None, fw);
            sight.held = held(i);
            self.allocation.push(&sight, bpb, fw);
            self.marked.append_value(b.marked);
            let p = b.prelude.as_ref();
            self.n_state.append_option(p.map(|p| p.n_state));
            self.n_exc_stack.append_option(p.map(|p| p.n_exc_stack));
            self.scope_flags.append_option(p.map(|p| p.scope_flags));
            self.n_pos_args.append_option(p.map(|p| p.n_pos_args));
            self.n_kwonly_args.append_option(p.map(|p| p.n_kwonly_args));
            self.n_def_pos_args.append_option(p.map(|p| p.n_def_pos_args));
            self.code_info_size.append_option(p.map(|p| p.code_info_size));
            self.collect.append_option(b.collect);
            self.n += 1;
        }
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        let mut cols = vec![arc(self.snapshot.finish()), arc(self.address.finish()), arc(self.block.finish())];
        self.allocation.finish(&mut cols);
        cols.extend([
            arc(self.marked.finish()),
            arc(self.n_state.finish()),
            arc(self.n_exc_stack.finish()),
            arc(self.scope_flags.finish()),
            arc(self.n_pos_args.finish()),
            arc(self.n_kwonly_args.finish()),
            arc(self.n_def_pos_args.finish()),
            arc(self.code_info_size.finish()),
            arc(self.collect.finish()),
        ]);
        cols
    }
}

/// Builders for [`edge_fields`].
#[derive(Default)]
pub(crate) struct EdgeColumns {
    from_address: IntColumn,
    from_block: IntColumn,
    from_word: IntColumn,
    root_address: IntColumn,
    root_name: Dict,
    to_address: IntColumn,
    to_alloc_address: IntColumn,
    to_block: IntColumn,
    to_is_head: BooleanBuilder,
    map_key: Dict,
}

impl EdgeColumns {
    pub(crate) fn push(&mut self, e: &EdgeRow) {
        self.from_address.append_option(e.from_address);
        self.from_block.append_option(e.from_block);
        self.from_word.append_option(e.from_word);
        self.root_address.append_option(e.root_address);
        self.root_name.append_option(e.root_name.as_deref());
        self.to_address.append_value(e.to_address);
        self.to_alloc_address.append_option(e.to_alloc_address);
        self.to_block.append_option(e.to_block);
        self.to_is_head.append_value(e.to_is_head());
        self.map_key.append_option(e.map_key.as_deref());
    }

    pub(crate) fn finish(&mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(arc(self.from_address.finish()));
        cols.push(arc(self.from_block.finish()));
        cols.push(arc(self.from_word.finish()));
        cols.push(arc(self.root_address.finish()));
        cols.push(arc(self.root_name.finish()));
        cols.push(arc(self.to_address.finish()));
        cols.push(arc(self.to_alloc_address.finish()));
        cols.push(arc(self.to_block.finish()));
        cols.push(arc(self.to_is_head.finish()));
        cols.push(arc(self.map_key.finish()));
    }
}

/// Builders for [`qstr_fields`].
#[derive(Default)]
pub(crate) struct QstrColumns {
    pool: IntColumn,
    chunk: IntColumn,
    id: IntColumn,
    address: IntColumn,
    hash: IntColumn,
    length: IntColumn,
    text: Dict,
}

impl QstrColumns {
    pub(crate) fn push(&mut self, q: &QstrRow) {
        self.pool.append_value(q.pool);
        self.chunk.append_option(q.chunk);
        self.id.append_value(q.id);
        self.address.append_value(q.address);
        self.hash.append_value(q.hash);
        self.length.append_value(q.length);
        self.text.append_value(&q.text);
    }

    pub(crate) fn finish(&mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(arc(self.pool.finish()));
        cols.push(arc(self.chunk.finish()));
        cols.push(arc(self.id.finish()));
        cols.push(arc(self.address.finish()));
        cols.push(arc(self.hash.finish()));
        cols.push(arc(self.length.finish()));
        cols.push(arc(self.text.finish()));
    }
}

/// Builders for one entity's columns, shared by a per-snapshot table and a
/// lifetime table.
pub(crate) trait Columns: Default {
    type Row;
    fn push_row(&mut self, row: &Self::Row);
    fn finish_into(&mut self, cols: &mut Vec<ArrayRef>);
}

impl Columns for EdgeColumns {
    type Row = EdgeRow;
    fn push_row(&mut self, row: &EdgeRow) {
        self.push(row);
    }
    fn finish_into(&mut self, cols: &mut Vec<ArrayRef>) {
        self.finish(cols);
    }
}

impl Columns for QstrColumns {
    type Row = QstrRow;
    fn push_row(&mut self, row: &QstrRow) {
        self.push(row);
    }
    fn finish_into(&mut self, cols: &mut Vec<ArrayRef>) {
        self.finish(cols);
    }
}

/// A per-snapshot table of one entity: `snapshot`, then the entity's columns.
pub(crate) struct PerSnapshotRows<C: Columns> {
    pub(crate) n: usize,
    snapshot: IntColumn,
    columns: C,
    rows: fn(&SnapshotReport) -> &[C::Row],
}

impl<C: Columns> PerSnapshotRows<C> {
    pub(crate) fn new(rows: fn(&SnapshotReport) -> &[C::Row]) -> Self {
        PerSnapshotRows { n: 0, snapshot: IntColumn::default(), columns: C::default(), rows }
    }

    pub(crate) fn push(&mut self, r: &SnapshotReport) {
        for row in (self.rows)(r) {
            self.snapshot.append_value(r.index);
            self.columns.push_row(row);
            self.n += 1;
        }
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        let mut cols = vec![arc(self.snapshot.finish())];
        self.columns.finish_into(&mut cols);
        cols
    }
}

pub(crate) type EdgesRows = PerSnapshotRows<EdgeColumns>;
pub(crate) type QstrsRows = PerSnapshotRows<QstrColumns>;

#[derive(Default)]
pub(crate) struct StringsRows {
    pub(crate) n: usize,
    /// Bytes of `text` since the last batch.
    pub(crate) text_bytes: usize,
    snapshot: IntColumn,
    address: IntColumn,
    block: IntColumn,
    owner_address: IntColumn,
    source: Dict,
    length: IntColumn,
    text: StringBuilder,
}

impl StringsRows {
    /// Pushes the snapshot's string rows from `from` on, stopping early once the
    /// text buffered reaches a batch's worth; returns where it stopped.
    pub(crate) fn push_from(&mut self, r: &SnapshotReport, from: usize) -> usize {
        for (i, s) in r.strings.iter().enumerate().skip(from) {
            if self.text_bytes >= super::writer::BATCH_TEXT_BYTES {
                return i;
            }
            self.snapshot.append_value(r.index);
            self.address.append_value(s.block);
            self.block.append_option(r.geometry.block_of(s.block));
            self.owner_address.append_option(s.owner);
            self.source.append_value(s.source);
            self.length.append_value(s.length);
            self.text.append_value(&s.text);
            self.text_bytes += s.text.len();
            self.n += 1;
        }
        r.strings.len()
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        self.text_bytes = 0;
        vec![
            arc(self.snapshot.finish()),
            arc(self.address.finish()),
            arc(self.block.finish()),
            arc(self.owner_address.finish()),
            arc(self.source.finish()),
            arc(self.length.finish()),
            arc(self.text.finish()),
        ]
    }
}

#[derive(Default)]
pub(crate) struct FreeRunsRows {
    pub(crate) n: usize,
    snapshot: IntColumn,
    block: IntColumn,
    address: IntColumn,
    blocks: IntColumn,
    bytes: IntColumn,
}

impl FreeRunsRows {
    pub(crate) fn push(&mut self, r: &SnapshotReport) {
        let g = &r.geometry;
        for run in &r.free_runs {
            self.snapshot.append_value(r.index);
            self.block.append_value(run.start_block);
            self.address.append_value(g.block_address(run.start_block));
            self.blocks.append_value(run.blocks);
            self.bytes.append_value(run.blocks * g.bytes_per_block);
            self.n += 1;
        }
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        vec![
            arc(self.snapshot.finish()),
            arc(self.block.finish()),
            arc(self.address.finish()),
            arc(self.blocks.finish()),
            arc(self.bytes.finish()),
        ]
    }
}

// The per-snapshot tables as the writer drives them (see `super::table`).

/// The decoded snapshot of `input`, when it was decoded.
pub(crate) fn report<'a>(input: &'a Input) -> Option<&'a SnapshotReport> {
    input.outcome.as_ref().ok().map(|p| &p.report)
}

impl Rows for SnapshotsRows {
    const NAME: &'static str = "snapshots";
    fn schema() -> SchemaRef {
        snapshots_schema()
    }
    fn new() -> Self {
        SnapshotsRows::new()
    }
    fn push(&mut self, input: &Input, _from: usize) -> Option<usize> {
        SnapshotsRows::push(self, input.index, input.dump_offset, input.outcome.as_ref().map(|p| &p.report));
        self.time.append_option(input.event.and_then(|e| e.time));
        self.event.append_option(input.event.and_then(|e| e.event.as_deref()));
        self.requested_bytes.append_option(input.event.and_then(|e| e.requested_bytes));
        self.watched.append_option(input.event.and_then(|e| e.watched.as_deref()));
        None
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        SnapshotsRows::finish(self)
    }
}

/// `Rows` for a table of what a decoded snapshot holds (a failed one adds no
/// rows): its name, schema, constructor, and how it adds a report's rows. With
/// `own_encoder:` first, its batches are encoded on a thread of its own
/// ([`Rows::OWN_ENCODER`]).
macro_rules! decoded_rows {
    (own_encoder: $($table:tt)*) => {
        $crate::tables::per_snapshot::decoded_rows!(@ true, $($table)*);
    };
    (@ $own:literal, $rows:ty, $name:literal, $schema:path, $new:expr, |$this:ident, $r:ident, $input:ident| $push:expr) => {
        impl Rows for $rows {
            const NAME: &'static str = $name;
            const OWN_ENCODER: bool = $own;
            fn schema() -> SchemaRef {
                $schema()
            }
            fn new() -> Self {
                $new
            }
            fn push(&mut self, $input: &Input, _from: usize) -> Option<usize> {
                let $this = self;
                if let Some($r) = report($input) {
                    $push;
                }
                None
            }
            fn finish(&mut self) -> Vec<ArrayRef> {
                <$rows>::finish(self)
            }
        }
    };
    ($($table:tt)*) => {
        $crate::tables::per_snapshot::decoded_rows!(@ false, $($table)*);
    };
}
pub(crate) use decoded_rows;

decoded_rows!(own_encoder: BlocksRows, "blocks", blocks_schema, BlocksRows::default(), |rows, r, input| rows
    .push(r, input.firmware));
decoded_rows!(own_encoder: EdgesRows, "edges", edges_schema, EdgesRows::new(|r| &r.edges), |rows, r, _input| rows.push(r));
decoded_rows!(QstrsRows, "qstrs", qstrs_schema, QstrsRows::new(|r| &r.qstrs), |rows, r, _input| rows.push(r));
decoded_rows!(FreeRunsRows, "free_runs", free_runs_schema, FreeRunsRows::default(), |rows, r, _input| rows.push(r));

impl Rows for StringsRows {
    const NAME: &'static str = "strings";
    const OWN_ENCODER: bool = true;
    fn schema() -> SchemaRef {
        strings_schema()
    }
    fn new() -> Self {
        StringsRows::default()
    }
    /// Stops when a batch's worth of text is buffered: many rows can name one
    /// large text (hostile input can).
    fn push(&mut self, input: &Input, from: usize) -> Option<usize> {
        let r = report(input)?;
        let stop = self.push_from(r, from);
        (stop < r.strings.len()).then_some(stop)
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        StringsRows::finish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    #[test]
    fn a_recurring_dictionary_reads_back_as_its_strings() {
        let mut d = RecurringDict::default();
        let shared: Arc<str> = Arc::from("Blinker");
        // The same text from one place, from another place, absent, and new.
        let other = String::from("Blinker");
        let values = [Some(&*shared), Some("int"), None, Some(other.as_str()), Some(&*shared), Some("str")];
        for v in values {
            d.append_option(v);
        }
        let a = d.finish();
        let a = a.as_dictionary::<Int32Type>();
        let strings = a.values().as_string::<i32>();
        let got: Vec<Option<&str>> =
            (0..a.len()).map(|i| a.is_valid(i).then(|| strings.value(a.keys().value(i) as usize))).collect();
        assert_eq!(got, values.to_vec());
        assert_eq!(strings.len(), 3, "one value per distinct text");
        // A finished column starts afresh.
        d.append_value("x");
        assert_eq!(d.finish().len(), 1);
    }

    /// Texts found by address (static, shared, empty) and by content make one
    /// dictionary: one value per text, keys in the order texts are first met.
    #[test]
    fn texts_found_by_address_or_by_content_share_their_keys() {
        let mut d = RecurringDict::default();
        let (blinker, again): (Arc<str>, Arc<str>) = (Arc::from("Blinker"), Arc::from("Blinker"));
        let owned = String::from("int");
        d.append_shared(Some(&blinker));
        d.append_static("int");
        d.append_value("");
        d.append_option(Some(owned.as_str()));
        d.append_shared(Some(&again));
        d.append_static("");
        let empty = String::with_capacity(8); // "" at an address of its own
        d.append_value(&empty);
        d.append_shared(None);
        d.append_value("Blinker");
        let a = d.finish();
        let a = a.as_dictionary::<Int32Type>();
        let strings = a.values().as_string::<i32>();
        let values: Vec<&str> = (0..strings.len()).map(|i| strings.value(i)).collect();
        assert_eq!(values, ["Blinker", "int", ""]);
        let keys: Vec<Option<i32>> = (0..a.len()).map(|i| a.is_valid(i).then(|| a.keys().value(i))).collect();
        assert_eq!(keys, [Some(0), Some(1), Some(2), Some(1), Some(0), Some(2), Some(2), None, Some(0)]);
    }
}
