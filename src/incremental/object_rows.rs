//! The per-snapshot rows (`--per-snapshot`: `blocks`, `edges`, `strings`,
//! `qstrs`) of a snapshot decoded from the one before.
//!
//! A focused decode makes rows only for the allocations it decodes again. So
//! that a carried-over allocation still has its rows, each slot keeps its
//! `blocks` and `strings` rows beside its edges when those tables are wanted,
//! and gives them again as they were. The roots' edges come from this
//! snapshot's root words, and the qstrs from the last whole decode: a focused
//! decode needs every qstr pool unchanged (see [`super`]). The rows come in a
//! whole decode's order (allocation order; each allocation's edges in word
//! order, then the roots' in address order), so the tables are byte for byte
//! those of whole decodes.

use super::Previous;
use crate::decode::{BlockRow, Decoder, SnapshotReport, StringRow};
use crate::tables::TableSet;

/// An allocation's rows in the per-snapshot tables, kept in its slot.
#[derive(Clone, Debug)]
pub(super) struct ObjectRows {
    pub(super) block: BlockRow,
    /// Its text, when it is a str's data or a REPL history line.
    pub(super) string: Option<StringRow>,
}

/// Whether slots keep their [`ObjectRows`] for `set`.
pub(super) fn kept_for(set: TableSet) -> bool {
    set.blocks || set.strings
}

/// Fills the per-snapshot rows `set` wants into `report`, from `p`: this
/// snapshot as the run decoder keeps it for the next.
pub(super) fn fill(report: &mut SnapshotReport, p: &Previous, decoder: &Decoder, set: TableSet) {
    // Every allocation has a slot: each decoded has a row, and the others
    // are carried from a snapshot that had them all (see `RunDecoder::slots`).
    debug_assert!(p.slots.iter().all(Option::is_some), "a slot is missing");
    let slots = || p.slots.iter().flatten();
    // (Collected through a filter, a vector would grow by doubling, each
    // time copied: the large ones are sized first.)
    if set.blocks {
        report.blocks = Vec::with_capacity(p.slots.len());
        report.blocks.extend(slots().filter_map(|s| Some(s.rows.as_ref()?.block.clone())));
        // The blocks' retention columns read it, by allocation.
        report.retention = p.flat.retention.clone();
    }
    if set.strings {
        report.strings = slots().filter_map(|s| s.rows.as_ref()?.string.clone()).collect();
    }
    if set.edges {
        let roots = p.root_words.iter().filter(|w| w.head);
        let mut edges = Vec::with_capacity(slots().map(|s| s.edges.len()).sum::<usize>() + roots.clone().count());
        edges.extend(slots().flat_map(|s| s.edges.iter().cloned()));
        edges.extend(roots.map(|w| decoder.root_edge(w.address, w.value, &report.geometry)));
        report.edges = edges;
    }
    if set.qstrs {
        report.qstrs = p.qstr_rows.clone();
    }
}
