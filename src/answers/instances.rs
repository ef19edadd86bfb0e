//! Allocation instances from the `allocations` table, with shards stitched.
//!
//! A lifetime that crosses a shard boundary is written as two rows: the first
//! ends `continues`, the next starts `open_start` at the following snapshot
//! (README, "Shards"). The answers must not see two allocations there, nor a
//! new one at a shard's start, so they read instances: runs of such rows of one
//! (address, blocks), joined by the rules one run's lifetimes follow, so a
//! sharded folder answers as one run's does.

use std::path::Path;

use super::{bools, ints, read_columns, texts};
use crate::error::Result;

/// One allocation from its first sighting to its last.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instance {
    pub address: u64,
    pub blocks: u64,
    pub bytes: u64,
    pub kind: String,
    /// The reference's category (what the frames colour it by).
    pub category: String,
    pub type_name: Option<String>,
    /// Its Python name (a function's, a class's, a module's), when known.
    pub name: Option<String>,
    /// An instance's class, when it is one.
    pub class: Option<String>,
    pub holder_address: Option<u64>,
    pub holder_root: Option<String>,
    pub first: u64,
    pub last: u64,
    /// It was already there before the tables' first snapshot: it is older
    /// than `first` says.
    pub open_start: bool,
}

impl Instance {
    /// Whether it was alive at snapshot `s`.
    pub fn alive_at(&self, s: u64) -> bool {
        self.first <= s && s <= self.last
    }

    /// Its name, else its class.
    pub fn label(&self) -> Option<&str> {
        self.name.as_deref().or(self.class.as_deref())
    }
}

const COLUMNS: &[&str] = &[
    "address",
    "blocks",
    "bytes",
    "kind",
    "category",
    "type_name",
    "name",
    "class",
    "holder_address",
    "holder_root",
    "first_snapshot",
    "last_snapshot",
    "end",
    "open_start",
];

/// A row, and whether its lifetime goes on in the next shard.
struct Piece {
    instance: Instance,
    continues: bool,
}

/// Every allocation instance of output folder `out`, by address, then first
/// sighting.
pub fn instances(out: &Path) -> Result<Vec<Instance>> {
    let mut pieces = pieces(out)?;
    pieces.sort_by_key(|p| (p.instance.address, p.instance.blocks, p.instance.first));
    let mut joined: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        let i = &p.instance;
        match joined.last_mut() {
            Some(prev)
                if prev.continues
                    && i.open_start
                    && (prev.instance.address, prev.instance.blocks) == (i.address, i.blocks)
                    && prev.instance.last.checked_add(1) == Some(i.first) =>
            {
                join(&mut prev.instance, p.instance);
                prev.continues = p.continues;
            }
            _ => joined.push(p),
        }
    }
    Ok(joined.into_iter().map(|p| p.instance).collect())
}

/// Joins `next`, the following piece of one lifetime, onto `open`, by the
/// rules one run's lifetimes follow (`tables::lifetimes`): the first type;
/// the latest kind, but not `unknown` over a kind it had (a str's data
/// outlives its str until the sweep); the latest name, class and holder.
fn join(open: &mut Instance, next: Instance) {
    open.last = next.last;
    open.type_name = open.type_name.take().or(next.type_name);
    if next.kind != "unknown" || open.kind == "unknown" {
        (open.kind, open.category) = (next.kind, next.category);
    }
    open.name = next.name.or(open.name.take());
    open.class = next.class.or(open.class.take());
    (open.holder_address, open.holder_root) = (next.holder_address, next.holder_root);
    open.bytes = next.bytes;
}

fn pieces(out: &Path) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let u = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    for b in read_columns(out, "allocations", Some(COLUMNS))? {
        let (address, blocks, bytes) = (ints(&b, "address")?, ints(&b, "blocks")?, ints(&b, "bytes")?);
        // (Texts are taken out of their columns, not copied: a row's texts are
        // its own.)
        let (mut kind, mut type_name, mut name, mut class) =
            (texts(&b, "kind")?, texts(&b, "type_name")?, texts(&b, "name")?, texts(&b, "class")?);
        let mut category = texts(&b, "category")?;
        let (holder_address, mut holder_root) = (ints(&b, "holder_address")?, texts(&b, "holder_root")?);
        let (first, last) = (ints(&b, "first_snapshot")?, ints(&b, "last_snapshot")?);
        let (end, open) = (texts(&b, "end")?, bools(&b, "open_start")?);
        for i in 0..b.num_rows() {
            let instance = Instance {
                address: u(address[i]),
                blocks: u(blocks[i]),
                bytes: u(bytes[i]),
                kind: kind[i].take().unwrap_or_default(),
                category: category[i].take().unwrap_or_default(),
                type_name: type_name[i].take(),
                name: name[i].take(),
                class: class[i].take(),
                holder_address: holder_address[i].map(|a| a.max(0) as u64),
                holder_root: holder_root[i].take(),
                first: u(first[i]),
                last: u(last[i]),
                open_start: open[i].unwrap_or(false),
            };
            pieces.push(Piece { instance, continues: end[i].as_deref() == Some("continues") });
        }
    }
    Ok(pieces)
}
