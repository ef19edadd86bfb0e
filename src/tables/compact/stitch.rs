//! The lifetime tables' pieces joined across shard boundaries, and emitted
//! when one run's tracker would have emitted them (see the parent module).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::StringDictionaryBuilder;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Int32Type, SchemaRef};

use super::{conform, int_column, parts, plain_text, History, Out};
use crate::error::{Error, Result};
use crate::tables::writer::{batch, TableFile, BATCH_ROWS, BATCH_TEXT_BYTES};

/// A lifetime table's entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::tables) enum Entity {
    Allocation,
    Edge,
    Qstr,
}

impl Entity {
    pub(super) fn name(self) -> &'static str {
        match self {
            Entity::Allocation => "allocations",
            Entity::Edge => "edge_history",
            Entity::Qstr => "qstr_history",
        }
    }

    fn schema(self) -> SchemaRef {
        match self {
            Entity::Allocation => crate::tables::lifetimes::allocations_schema(),
            Entity::Edge => crate::tables::lifetimes::edge_history_schema(),
            Entity::Qstr => crate::tables::lifetimes::qstr_history_schema(),
        }
    }
}

/// An entity's identity, ordered as its tracker orders keys.
type Key = (u64, u64, u64, u64);

/// One row of a batch read back.
#[derive(Clone)]
struct Piece {
    batch: Arc<RecordBatch>,
    row: usize,
}

/// A lifetime as far as it is known: where each column comes from, and the
/// columns the join computes.
#[derive(Clone)]
struct Life {
    key: Key,
    /// The source of each column (computed ones are ignored).
    from: Vec<Piece>,
    first: i64,
    last: i64,
    end: String,
    open_start: bool,
    finaliser: bool,
    /// Allocations: whether its kind is `unknown`, and its type, text and
    /// retention are known; the text's length.
    unknown_kind: bool,
    typed: bool,
    text_len: Option<usize>,
}

/// Column positions in a lifetime table's schema.
struct Columns {
    computed: HashSet<usize>,
    index: HashMap<&'static str, usize>,
}

const COMPUTED: [&str; 6] = ["first_snapshot", "last_snapshot", "end", "open_start", "snapshots", "has_finaliser"];

impl Columns {
    fn of(schema: &SchemaRef) -> Self {
        let mut index = HashMap::new();
        for name in [
            "kind",
            "category",
            "owner_address",
            "type_address",
            "type_name",
            "name",
            "class",
            "reachable",
            "holder_address",
            "holder_root",
            "retained_bytes",
            "text",
        ] {
            if let Ok(i) = schema.index_of(name) {
                index.insert(name, i);
            }
        }
        let computed = COMPUTED.iter().filter_map(|n| schema.index_of(n).ok()).collect();
        Columns { computed, index }
    }

    fn at(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// A batch read back, with the columns the join reads.
struct Read {
    batch: Arc<RecordBatch>,
    first: Int64Array,
    last: Int64Array,
    end: StringArray,
    open_start: BooleanArray,
    keys: Vec<Key>,
    kind: Option<StringArray>,
    finaliser: Option<BooleanArray>,
}

impl Read {
    fn new(b: RecordBatch, entity: Entity, schema: &SchemaRef) -> Result<Self> {
        let b = conform(b, schema, entity.name())?;
        let bools = |name: &str| -> Result<BooleanArray> {
            b.column_by_name(name).and_then(|c| c.as_boolean_opt()).cloned().ok_or_else(|| super::missing(name))
        };
        let keys = keys(&b, entity)?;
        Ok(Read {
            first: int_column(&b, "first_snapshot")?.clone(),
            last: int_column(&b, "last_snapshot")?.clone(),
            end: plain_text(&b, "end")?,
            open_start: bools("open_start")?,
            kind: (entity == Entity::Allocation).then(|| plain_text(&b, "kind")).transpose()?,
            finaliser: (entity == Entity::Allocation).then(|| bools("has_finaliser")).transpose()?,
            keys,
            batch: Arc::new(b),
        })
    }

    fn life(&self, i: usize) -> Life {
        let piece = Piece { batch: Arc::clone(&self.batch), row: i };
        let b = &self.batch;
        let valid = |name: &str| b.column_by_name(name).is_some_and(|c| c.is_valid(i));
        let text_len = b
            .column_by_name("text")
            .filter(|c| c.is_valid(i) && self.kind.is_some())
            .and_then(|c| c.as_string_opt::<i32>().map(|s| s.value(i).len()));
        Life {
            key: self.keys[i],
            from: vec![piece; b.num_columns()],
            first: self.first.value(i),
            last: self.last.value(i),
            end: self.end.value(i).to_string(),
            open_start: self.open_start.value(i),
            finaliser: self.finaliser.as_ref().is_some_and(|f| f.value(i)),
            unknown_kind: self.kind.as_ref().is_some_and(|k| k.value(i) == "unknown"),
            typed: valid("type_address"),
            text_len,
        }
    }
}

/// The tracker's key of each row.
fn keys(b: &RecordBatch, entity: Entity) -> Result<Vec<Key>> {
    let int = |name: &str| int_column(b, name);
    let n = b.num_rows();
    let at = |a: &Int64Array, i: usize| if a.is_valid(i) { a.value(i) as u64 } else { 0 };
    Ok(match entity {
        Entity::Allocation => {
            let a = int("address")?;
            (0..n).map(|i| (a.value(i) as u64, 0, 0, 0)).collect()
        }
        Entity::Edge => {
            let (from, root, word, to) =
                (int("from_address")?, int("root_address")?, int("from_word")?, int("to_address")?);
            (0..n)
                .map(|i| {
                    let is_root = from.is_null(i);
                    let origin = if is_root { at(root, i) } else { at(from, i) };
                    (is_root as u64, origin, at(word, i) as u32 as u64, to.value(i) as u64)
                })
                .collect()
        }
        Entity::Qstr => {
            let (id, address) = (int("id")?, int("address")?);
            (0..n).map(|i| (id.value(i) as u64, address.value(i) as u64, 0, 0)).collect()
        }
    })
}

/// `earlier` continued by `later` (the next shard's first piece): the
/// tracker's fold of sightings, column by column.
fn join(earlier: Life, later: Life, entity: Entity, cols: &Columns) -> Life {
    let mut out = later.clone();
    (out.first, out.open_start) = (earlier.first, earlier.open_start);
    if entity == Entity::Qstr {
        // A qstr is its first sighting.
        out.from = earlier.from;
        return out;
    }
    if entity == Entity::Edge {
        return out;
    }
    let mut keep_earlier = |names: &[&str]| {
        for n in names {
            if let Some(i) = cols.at(n) {
                out.from[i] = earlier.from[i].clone();
            }
        }
    };
    // The latest kind, but not `unknown` over a kind it had.
    if later.unknown_kind && !earlier.unknown_kind {
        keep_earlier(&["kind", "category", "owner_address"]);
        out.unknown_kind = false;
    }
    // The first type and the first text; the latest name, class and retention.
    if earlier.typed {
        keep_earlier(&["type_address", "type_name"]);
        out.typed = true;
    }
    if earlier.text_len.is_some() {
        keep_earlier(&["text"]);
        out.text_len = earlier.text_len;
    }
    let is_null = |l: &Life, name: &str| cols.at(name).is_none_or(|i| l.from[i].batch.column(i).is_null(l.from[i].row));
    for (name, group) in [
        ("name", &["name"][..]),
        ("class", &["class"]),
        ("reachable", &["reachable", "holder_address", "holder_root", "retained_bytes"]),
    ] {
        if is_null(&later, name) {
            keep_earlier(group);
        }
    }
    out.finaliser = earlier.finaliser || later.finaliser;
    out
}

/// Lifetimes waiting to be written as one batch.
struct Pending {
    entity: Entity,
    schema: SchemaRef,
    cols: Columns,
    rows: Vec<Life>,
    text: usize,
    /// The snapshot at which the rows pushed last were emitted.
    at: Option<u64>,
}

impl Pending {
    fn push(&mut self, life: Life) {
        self.text += life.text_len.unwrap_or(0);
        self.rows.push(life);
    }

    fn due(&self) -> bool {
        self.rows.len() >= BATCH_ROWS || (self.entity == Entity::Allocation && self.text >= BATCH_TEXT_BYTES)
    }

    /// Rows emitted at snapshot `e`: the writer flushes after each snapshot.
    fn emit(&mut self, file: &mut TableFile, e: u64, life: Life) -> Result<()> {
        if self.at.is_some_and(|at| at != e) {
            self.flush_due(file)?;
        }
        self.at = Some(e);
        self.push(life);
        Ok(())
    }

    fn flush_due(&mut self, file: &mut TableFile) -> Result<()> {
        if let (true, Some(at)) = (self.due(), self.at) {
            file.write(&self.take()?, at)?;
        }
        Ok(())
    }

    fn take(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.rows);
        self.text = 0;
        let name = self.entity.name();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (c, field) in self.schema.fields().iter().enumerate() {
            let col = if self.cols.computed.contains(&c) {
                computed(field.name(), &rows)
            } else {
                gathered(&rows, c).map_err(|source| Error::Arrow { table: name, source })?
            };
            columns.push(super::cast_to(col, field.data_type(), name)?);
        }
        batch(name, &self.schema, columns)
    }
}

/// Column `c` of `rows`, gathered from the batches they come from.
fn gathered(rows: &[Life], c: usize) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    let mut sources: HashMap<*const RecordBatch, usize> = HashMap::new();
    let mut arrays: Vec<&dyn Array> = Vec::new();
    let mut indices = Vec::with_capacity(rows.len());
    for r in rows {
        let p = &r.from[c];
        let k = *sources.entry(Arc::as_ptr(&p.batch)).or_insert_with(|| {
            arrays.push(p.batch.column(c).as_ref());
            arrays.len() - 1
        });
        indices.push((k, p.row));
    }
    arrow::compute::interleave(&arrays, &indices)
}

/// A column the join computes.
fn computed(name: &str, rows: &[Life]) -> ArrayRef {
    match name {
        "first_snapshot" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.first))),
        "last_snapshot" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.last))),
        "snapshots" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.last - r.first + 1))),
        "open_start" | "has_finaliser" => {
            let mut b = BooleanBuilder::with_capacity(rows.len());
            rows.iter().for_each(|r| b.append_value(if name == "open_start" { r.open_start } else { r.finaliser }));
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringDictionaryBuilder::<Int32Type>::new();
            rows.iter().for_each(|r| b.append_value(&r.end));
            Arc::new(b.finish())
        }
    }
}

/// Whether a piece's end says it was still there after its shard.
fn open_at_end(end: &str) -> bool {
    end == "continues" || end == "live"
}

impl Out<'_> {
    /// A lifetime table, its pieces joined and emitted as one run emits them.
    pub(super) fn lifetimes(
        &self,
        entity: Entity,
        shards: &[Range<u64>],
        history: &History,
        dump_end: bool,
    ) -> Result<Vec<PathBuf>> {
        let schema = entity.schema();
        let file = self.file(entity.name(), Arc::clone(&schema))?;
        let cols = Columns::of(&schema);
        let pending = Pending { entity, schema: Arc::clone(&schema), cols, rows: Vec::new(), text: 0, at: None };
        let mut st = Stitcher {
            entity,
            history,
            file,
            pending,
            carried: BTreeMap::new(),
            ended_at_boundary: Vec::new(),
            last_decoded: None,
        };
        let all_parts = parts(self.out, entity.name())?;
        for shard in shards {
            let within = |r: &Range<u64>| r.start >= shard.start && r.end <= shard.end;
            let files: Vec<&PathBuf> = all_parts.iter().filter(|(r, _)| within(r)).map(|(_, p)| p).collect();
            let Some(shard_last) = (shard.start..shard.end).rev().find(|s| history.decoded[*s as usize]) else {
                continue;
            };
            let reads = read_all(&files, entity, &schema)?;
            st.check_primed(self.out, shard)?;
            st.resume(&reads)?;
            st.shard(&reads, shard_last)?;
        }
        st.finish(dump_end, self.range.end.saturating_sub(1))
    }
}

/// One lifetime table's rewrite, shard by shard.
struct Stitcher<'h> {
    entity: Entity,
    history: &'h History,
    file: TableFile,
    pending: Pending,
    /// Still there at the end of the shards so far, by key.
    carried: BTreeMap<Key, Life>,
    /// What ended right at the end of the shards so far: emitted when the
    /// next snapshot is decoded.
    ended_at_boundary: Vec<Life>,
    last_decoded: Option<u64>,
}

impl Stitcher<'_> {
    /// The first decoded snapshot after the shards so far.
    fn resumed_at(&self) -> Option<u64> {
        self.last_decoded.and_then(|l| self.history.next_decoded(l))
    }

    /// Refuses a shard that was not primed while lifetimes are open before it.
    /// A shard is primed with the last snapshot before it that decodes (within
    /// LEAD_IN_SEARCH): its tracker then decided what goes on at its first
    /// decoded snapshot as one run's does, and said so in `open_start`.
    fn check_primed(&self, out: &std::path::Path, shard: &Range<u64>) -> Result<()> {
        let primed = self.last_decoded.is_some_and(|l| shard.start - l <= crate::pipeline::LEAD_IN_SEARCH);
        if primed || self.carried.is_empty() {
            return Ok(());
        }
        Err(Error::Unsupported {
            what: format!("rewriting the shards of {} as one run", out.display()),
            why: format!(
                "no snapshot of the {} before shard {}..{} decodes, so its lifetimes cannot be joined to the ones \
                 before it; the shards are kept",
                crate::pipeline::LEAD_IN_SEARCH,
                shard.start,
                shard.end
            ),
        })
    }

    /// Whether row `i` of `r` is the next shard's piece of a carried lifetime,
    /// the shard's first decoded snapshot being `resumed_at`.
    fn joins(&self, r: &Read, i: usize, resumed_at: Option<u64>) -> bool {
        r.open_start.value(i) && resumed_at == Some(r.first.value(i) as u64) && self.carried.contains_key(&r.keys[i])
    }

    /// At the next shard's first decoded snapshot: what nothing there
    /// continues ended before it, and goes out with what ended at the cut.
    fn resume(&mut self, reads: &[Read]) -> Result<()> {
        let Some(at) = self.resumed_at() else { return Ok(()) };
        let continuing: HashSet<Key> = reads
            .iter()
            .flat_map(|r| (0..r.batch.num_rows()).filter(|&i| self.joins(r, i, Some(at))).map(|i| r.keys[i]))
            .collect();
        let orphans: Vec<Key> = self.carried.keys().filter(|k| !continuing.contains(k)).copied().collect();
        for k in orphans {
            if let Some(mut life) = self.carried.remove(&k) {
                life.end = ended_name(self.entity, self.history, life.last as u64, at).to_string();
                self.ended_at_boundary.push(life);
            }
        }
        self.ended_at_boundary.sort_by_key(|l| l.key);
        for life in std::mem::take(&mut self.ended_at_boundary) {
            self.pending.emit(&mut self.file, at, life)?;
        }
        Ok(())
    }

    /// A shard's rows: each joined to the piece it continues, emitted when one
    /// run emits it, or (at the shard's last decoded snapshot) kept for the next.
    fn shard(&mut self, reads: &[Read], shard_last: u64) -> Result<()> {
        let mut at_finish = Vec::new();
        let resumed_at = self.resumed_at();
        for r in reads {
            for i in 0..r.batch.num_rows() {
                let joins = self.joins(r, i, resumed_at);
                let mut life = r.life(i);
                if joins {
                    if let Some(before) = self.carried.remove(&life.key) {
                        life = join(before, life, self.entity, &self.pending.cols);
                    }
                }
                if life.last as u64 == shard_last {
                    at_finish.push(life);
                } else {
                    let e = self.history.next_decoded(life.last as u64).ok_or_else(|| out_of_order(self.entity))?;
                    self.pending.emit(&mut self.file, e, life)?;
                }
            }
        }
        for life in at_finish {
            if open_at_end(&life.end) {
                self.carried.insert(life.key, life);
            } else {
                self.ended_at_boundary.push(life);
            }
        }
        self.last_decoded = Some(shard_last);
        Ok(())
    }

    /// The run's end: what is still open is there at the dump's end (`live`
    /// with `dump_end`), written with the rest at `last`, the range's last.
    fn finish(mut self, dump_end: bool, last: u64) -> Result<Vec<PathBuf>> {
        self.pending.flush_due(&mut self.file)?;
        let mut finish: Vec<Life> = std::mem::take(&mut self.carried).into_values().collect();
        if dump_end {
            finish.iter_mut().for_each(|l| l.end = "live".to_string());
        }
        finish.append(&mut self.ended_at_boundary);
        finish.sort_by_key(|l| l.key);
        finish.into_iter().for_each(|l| self.pending.push(l));
        if !self.pending.rows.is_empty() {
            self.file.write(&self.pending.take()?, last)?;
        }
        self.file.finish()
    }
}

/// How a lifetime that ended at the snapshot before `next` ended, as the
/// tracker names it when it applies `next`.
fn ended_name(entity: Entity, history: &History, last: u64, next: u64) -> &'static str {
    if entity != Entity::Allocation {
        return "gone";
    }
    let collecting = |s: u64| history.collecting.get(s as usize).copied().unwrap_or(false);
    if collecting(next) || collecting(last) {
        "swept"
    } else {
        "freed"
    }
}

fn out_of_order(entity: Entity) -> Error {
    Error::WrongInput {
        path: PathBuf::from(entity.name()),
        expected: "lifetimes that end before their shard's last decoded snapshot",
        found: "one that does not".into(),
    }
}

/// Every batch of `files`, read back.
fn read_all(files: &[&PathBuf], entity: Entity, schema: &SchemaRef) -> Result<Vec<Read>> {
    let mut reads = Vec::new();
    for path in files {
        super::batches_of(path, |b| {
            reads.push(Read::new(b, entity, schema)?);
            Ok(())
        })?;
    }
    Ok(reads)
}
