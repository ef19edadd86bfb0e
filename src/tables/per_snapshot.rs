//! Per-snapshot tables: `snapshots` (always written) and, with `--per-snapshot`,
//! every block, edge, qstr, string and free run of every snapshot.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, DictionaryArray, Float64Builder, Int32Builder, StringArray, StringBuilder,
    StringDictionaryBuilder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use rustc_hash::FxHashMap;

use crate::decode::{EdgeRow, QstrRow, SnapshotReport};
use crate::error::DecodeError;
use crate::firmware::Firmware;

pub(crate) fn dict() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

pub(crate) fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

pub fn snapshots_schema() -> SchemaRef {
    use DataType::*;
    let u = |n: &str| f(n, UInt64, false);
    let un = |n: &str| f(n, UInt64, true);
    Arc::new(Schema::new(vec![
        u("snapshot"),
        u("dump_offset"),
        f("status", Utf8, false),
        f("geometry_source", dict(), true),
        un("heap_start"),
        un("heap_bytes"),
        un("alloc_table_start"),
        un("alloc_table_bytes"),
        un("finaliser_table_start"),
        un("finaliser_table_bytes"),
        un("pool_start"),
        un("pool_end"),
        un("pool_blocks"),
        un("total"),
        un("used"),
        un("free"),
        un("max_free"),
        un("num_1block"),
        un("num_2block"),
        un("max_block"),
        f("fragmentation", Float64, true),
        un("free_runs"),
        un("longest_free_run"),
        un("allocations"),
        un("marked_blocks"),
        un("orphan_tail_blocks"),
        un("finaliser_blocks"),
        un("heap_areas"),
    ]))
}

pub fn blocks_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", UInt64, false),
        f("address", UInt64, false),
        f("block", UInt64, false),
        f("blocks", UInt64, false),
        f("bytes", UInt64, false),
        f("kind", dict(), false),
        f("type_address", UInt64, true),
        f("type_name", dict(), true),
        f("name", dict(), true),
        f("has_finaliser", Boolean, false),
        f("marked", Boolean, false),
        f("n_state", UInt64, true),
        f("n_exc_stack", UInt64, true),
        f("scope_flags", UInt8, true),
        f("n_pos_args", UInt8, true),
        f("n_kwonly_args", UInt8, true),
        f("n_def_pos_args", UInt8, true),
        f("code_info_size", UInt64, true),
        f("collect", Boolean, true),
    ]))
}

/// The columns of an edge, shared by `edges` and `edge_history`.
pub(crate) fn edge_fields() -> Vec<Field> {
    use DataType::*;
    vec![
        f("from_block", UInt64, true),
        f("from_word", UInt32, true),
        f("root_address", UInt64, true),
        f("root_name", dict(), true),
        f("to_address", UInt64, false),
        f("to_block", UInt64, true),
        f("to_is_head", Boolean, false),
        f("map_key", dict(), true),
    ]
}

/// The columns of a qstr, shared by `qstrs` and `qstr_history`.
pub(crate) fn qstr_fields() -> Vec<Field> {
    use DataType::*;
    vec![
        f("pool", UInt64, false),
        f("chunk", UInt64, true),
        f("id", UInt64, false),
        f("address", UInt64, false),
        f("hash", UInt64, false),
        f("length", UInt64, false),
        f("text", dict(), false),
    ]
}

pub fn edges_schema() -> SchemaRef {
    let mut fields = vec![f("snapshot", DataType::UInt64, false)];
    fields.extend(edge_fields());
    Arc::new(Schema::new(fields))
}

pub fn qstrs_schema() -> SchemaRef {
    let mut fields = vec![f("snapshot", DataType::UInt64, false)];
    fields.extend(qstr_fields());
    Arc::new(Schema::new(fields))
}

pub fn strings_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", UInt64, false),
        f("block", UInt64, false),
        f("owner", UInt64, true),
        f("source", dict(), false),
        f("length", UInt64, false),
        f("text", Utf8, false),
    ]))
}

pub fn free_runs_schema() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("snapshot", UInt64, false),
        f("block", UInt64, false),
        f("address", UInt64, false),
        f("blocks", UInt64, false),
        f("bytes", UInt64, false),
    ]))
}

pub(crate) type Dict = StringDictionaryBuilder<Int32Type>;

/// A dictionary column of a few strings that recur row after row (a kind, a
/// type's name, a class): a string is looked up first by where it is (the same
/// `&str` or `Arc<str>` comes back snapshot after snapshot), checked by content,
/// and hashed only when that misses. [`Dict`] hashes every value.
#[derive(Default)]
pub(crate) struct RecurringDict {
    keys: Int32Builder,
    values: Vec<Box<str>>,
    by_address: FxHashMap<(usize, usize), i32>,
    by_text: FxHashMap<Box<str>, i32>,
}

impl RecurringDict {
    pub(crate) fn append_option(&mut self, s: Option<&str>) {
        let Some(s) = s else {
            self.keys.append_null();
            return;
        };
        let at = (s.as_ptr() as usize, s.len());
        let key = match self.by_address.get(&at) {
            // (An address alone could be a freed string's, reused.)
            Some(&k) if self.values.get(k as usize).is_some_and(|v| **v == *s) => k,
            _ => {
                let next = self.values.len() as i32;
                let k = *self.by_text.entry(Box::from(s)).or_insert(next);
                if k == next {
                    self.values.push(Box::from(s));
                }
                self.by_address.insert(at, k);
                k
            }
        };
        self.keys.append_value(key);
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
        let len = keys.len();
        // Every key was made an index into `values`.
        match DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)) {
            Ok(a) => arc(a),
            Err(_) => arrow::array::new_null_array(&dict(), len),
        }
    }
}

pub(crate) fn arc<A: arrow::array::Array + 'static>(a: A) -> ArrayRef {
    Arc::new(a)
}

#[derive(Default)]
pub(crate) struct SnapshotsRows {
    pub(crate) n: usize,
    u: Vec<UInt64Builder>,
    status: StringBuilder,
    geometry_source: RecurringDict,
    fragmentation: Float64Builder,
}

const SNAPSHOT_U64_COLUMNS: usize = 25;

impl SnapshotsRows {
    pub(crate) fn new() -> Self {
        SnapshotsRows { u: (0..SNAPSHOT_U64_COLUMNS).map(|_| UInt64Builder::new()).collect(), ..Default::default() }
    }

    pub(crate) fn push(&mut self, index: u64, offset: u64, outcome: Result<&SnapshotReport, &DecodeError>) {
        let values: [Option<u64>; SNAPSHOT_U64_COLUMNS - 2] = match outcome {
            Ok(r) => {
                let g = &r.geometry;
                let i = &r.gc_info;
                let full = !r.metrics_only;
                [
                    Some(g.heap_start),
                    Some(g.heap_bytes),
                    Some(g.first.alloc_table_start),
                    Some(g.first.alloc_table_bytes),
                    g.first.finaliser_table_start,
                    Some(g.first.finaliser_table_bytes),
                    Some(g.first.pool_start),
                    Some(g.first.pool_end),
                    Some(g.pool_blocks()),
                    Some(i.total),
                    Some(i.used),
                    Some(i.free),
                    Some(i.max_free),
                    Some(i.num_1block),
                    Some(i.num_2block),
                    Some(i.max_block),
                    // A metrics-only decode lists no free runs or allocations and
                    // reads no finaliser table: those figures are unknown, not 0.
                    full.then(|| r.free_runs.len() as u64),
                    full.then(|| r.free_runs.iter().map(|f| f.blocks).max().unwrap_or(0)),
                    full.then_some(r.allocations),
                    Some(r.marked_blocks),
                    Some(r.orphan_tail_blocks),
                    full.then_some(r.finaliser_blocks),
                    Some(1 + g.more_areas.len() as u64),
                ]
            }
            Err(_) => [None; SNAPSHOT_U64_COLUMNS - 2],
        };
        self.u[0].append_value(index);
        self.u[1].append_value(offset);
        for (b, v) in self.u[2..].iter_mut().zip(values) {
            b.append_option(v);
        }
        match outcome {
            Ok(r) => {
                self.status.append_value("ok");
                self.geometry_source.append_value(r.geometry_source);
                let free = r.gc_info.free;
                let max_free = r.gc_info.max_free * r.geometry.bytes_per_block;
                self.fragmentation.append_option((free > 0).then(|| 1.0 - max_free as f64 / free as f64));
            }
            Err(e) => {
                self.status.append_value(e.status());
                self.geometry_source.append_option(None);
                self.fragmentation.append_null();
            }
        }
        self.n += 1;
    }

    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.n = 0;
        let mut cols: Vec<ArrayRef> = Vec::new();
        let mut u = self.u.iter_mut().map(|b| arc(b.finish()));
        cols.push(u.next().unwrap_or_else(|| arc(UInt64Builder::new().finish())));
        cols.push(u.next().unwrap_or_else(|| arc(UInt64Builder::new().finish())));
        cols.push(arc(self.status.finish()));
        cols.push(self.geometry_source.finish());
        let rest: Vec<ArrayRef> = u.collect();
        // heap_start .. max_block (17 columns), fragmentation, then the counts.
        cols.extend(rest[..16].iter().cloned());
        cols.push(arc(self.fragmentation.finish()));
        cols.extend(rest[16..].iter().cloned());
        cols
    }
}

#[derive(Default)]
pub(crate) struct BlocksRows {
    pub(crate) n: usize,
    snapshot: UInt64Builder,
    address: UInt64Builder,
    block: UInt64Builder,
    blocks: UInt64Builder,
    bytes: UInt64Builder,
    kind: Dict,
    type_address: UInt64Builder,
    type_name: Dict,
    name: Dict,
    has_finaliser: BooleanBuilder,
    marked: BooleanBuilder,
    n_state: UInt64Builder,
    n_exc_stack: UInt64Builder,
    scope_flags: UInt8Builder,
    n_pos_args: UInt8Builder,
    n_kwonly_args: UInt8Builder,
    n_def_pos_args: UInt8Builder,
    code_info_size: UInt64Builder,
    collect: BooleanBuilder,
}

impl BlocksRows {
    pub(crate) fn push(&mut self, r: &SnapshotReport, fw: &Firmware) {
        let bpb = r.geometry.bytes_per_block;
        for b in &r.blocks {
            self.snapshot.append_value(r.index);
            self.address.append_value(b.address);
            self.block.append_value(b.start_block);
            self.blocks.append_value(b.blocks);
            self.bytes.append_value(b.blocks * bpb);
            self.kind.append_value(b.kind.name());
            self.type_address.append_option(b.type_address);
            self.type_name.append_option(b.type_address.and_then(|a| fw.flash_names.get(&a)).map(String::as_str));
            self.name.append_option(b.name.as_deref());
            self.has_finaliser.append_value(b.has_finaliser);
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
        vec![
            arc(self.snapshot.finish()),
            arc(self.address.finish()),
            arc(self.block.finish()),
            arc(self.blocks.finish()),
            arc(self.bytes.finish()),
            arc(self.kind.finish()),
            arc(self.type_address.finish()),
            arc(self.type_name.finish()),
            arc(self.name.finish()),
            arc(self.has_finaliser.finish()),
            arc(self.marked.finish()),
            arc(self.n_state.finish()),
            arc(self.n_exc_stack.finish()),
            arc(self.scope_flags.finish()),
            arc(self.n_pos_args.finish()),
            arc(self.n_kwonly_args.finish()),
            arc(self.n_def_pos_args.finish()),
            arc(self.code_info_size.finish()),
            arc(self.collect.finish()),
        ]
    }
}

/// Builders for [`edge_fields`].
#[derive(Default)]
pub(crate) struct EdgeColumns {
    from_block: UInt64Builder,
    from_word: UInt32Builder,
    root_address: UInt64Builder,
    root_name: Dict,
    to_address: UInt64Builder,
    to_block: UInt64Builder,
    to_is_head: BooleanBuilder,
    map_key: Dict,
}

impl EdgeColumns {
    pub(crate) fn push(&mut self, e: &EdgeRow) {
        self.from_block.append_option(e.from_block);
        self.from_word.append_option(e.from_word);
        self.root_address.append_option(e.root_address);
        self.root_name.append_option(e.root_name.as_deref());
        self.to_address.append_value(e.to_address);
        self.to_block.append_option(e.to_block);
        self.to_is_head.append_value(e.to_is_head);
        self.map_key.append_option(e.map_key.as_deref());
    }

    pub(crate) fn finish(&mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(arc(self.from_block.finish()));
        cols.push(arc(self.from_word.finish()));
        cols.push(arc(self.root_address.finish()));
        cols.push(arc(self.root_name.finish()));
        cols.push(arc(self.to_address.finish()));
        cols.push(arc(self.to_block.finish()));
        cols.push(arc(self.to_is_head.finish()));
        cols.push(arc(self.map_key.finish()));
    }
}

/// Builders for [`qstr_fields`].
#[derive(Default)]
pub(crate) struct QstrColumns {
    pool: UInt64Builder,
    chunk: UInt64Builder,
    id: UInt64Builder,
    address: UInt64Builder,
    hash: UInt64Builder,
    length: UInt64Builder,
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
    snapshot: UInt64Builder,
    columns: C,
    rows: fn(&SnapshotReport) -> &[C::Row],
}

impl<C: Columns> PerSnapshotRows<C> {
    pub(crate) fn new(rows: fn(&SnapshotReport) -> &[C::Row]) -> Self {
        PerSnapshotRows { n: 0, snapshot: UInt64Builder::new(), columns: C::default(), rows }
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
    snapshot: UInt64Builder,
    block: UInt64Builder,
    owner: UInt64Builder,
    source: Dict,
    length: UInt64Builder,
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
            self.block.append_value(s.block);
            self.owner.append_option(s.owner);
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
            arc(self.block.finish()),
            arc(self.owner.finish()),
            arc(self.source.finish()),
            arc(self.length.finish()),
            arc(self.text.finish()),
        ]
    }
}

#[derive(Default)]
pub(crate) struct FreeRunsRows {
    pub(crate) n: usize,
    snapshot: UInt64Builder,
    block: UInt64Builder,
    address: UInt64Builder,
    blocks: UInt64Builder,
    bytes: UInt64Builder,
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
}
