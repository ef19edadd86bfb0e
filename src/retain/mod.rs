//! Who holds what: reachability from the GC's roots, immediate dominators and
//! retained sizes, for one snapshot.
//!
//! The graph is the one the firmware's mark phase walks (py/gc.c): its roots
//! are the words of `mp_state_ctx`'s root range and of the stack from the stack
//! pointer to its top; from a reachable allocation, every word holding the
//! address of an allocation's head is followed (with a collect table, only in
//! the blocks whose bit says they hold pointers). Each root field (and the
//! stack) is a node of its own under one super-root, so an allocation held by
//! one field alone is dominated by that field.
//!
//! The retained size of an allocation is what would be freed if it went: its
//! bytes and those of every allocation it dominates.

pub mod dominators;

use std::sync::Arc;

use crate::decode::Allocation;
use dominators::{dominators, Graph, NONE};

/// What holds an allocation: its immediate dominator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Holder {
    /// Nothing: it is garbage, waiting for the next collection.
    Garbage,
    /// Several roots, none through another.
    Roots,
    /// One root (its index in [`Retention::roots`]).
    Root(u32),
    /// Another allocation (its index).
    Allocation(u32),
}

/// Reachability and dominators of one snapshot's allocations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Retention {
    /// Per allocation: the GC would keep it.
    pub reachable: Vec<bool>,
    /// Per allocation: its immediate dominator.
    pub idom: Vec<Holder>,
    /// Per allocation: the bytes freed if it went (0 when unreachable).
    pub retained_bytes: Vec<u64>,
    /// The roots: a root field's name, or `stack`.
    pub roots: Vec<Arc<str>>,
}

/// One snapshot's heap as the mark phase sees it.
pub struct MarkGraph<'a> {
    /// The allocations, by first block.
    pub allocations: &'a [Allocation],
    pub bytes_per_block: u64,
    /// Per allocation: the mark phase scans its words (false where a collect
    /// table says the block holds no pointers).
    pub scanned: &'a [bool],
}

impl MarkGraph<'_> {
    /// The allocation starting at `block`.
    fn at(&self, block: u64) -> Option<u32> {
        self.allocations.binary_search_by_key(&block, |a| a.start_block).ok().map(|i| i as u32)
    }

    /// Reachability and dominators, from `heap` pointers (the first block of the
    /// allocation holding one, and the first block it points at) and `roots`
    /// (a root's name, and the first block it points at). Pointers that are not
    /// between allocations' heads are left out.
    pub fn retention(
        &self,
        heap: impl Iterator<Item = (u64, u64)>,
        roots: impl Iterator<Item = (Arc<str>, u64)>,
    ) -> Retention {
        let n = self.allocations.len();
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut root_edges: Vec<(u32, u32)> = Vec::new();
        for (name, to) in roots {
            let Some(to) = self.at(to) else { continue };
            let r = match names.iter().position(|x| *x == name) {
                Some(r) => r,
                None => {
                    names.push(name);
                    names.len() - 1
                }
            };
            root_edges.push((r as u32, to));
        }
        // Node 0 is the super-root, 1..=R the roots, then the allocations.
        let first = 1 + names.len() as u32;
        let mut edges: Vec<(u32, u32)> = (1..first).map(|r| (0, r)).collect();
        edges.extend(root_edges.iter().map(|&(r, to)| (1 + r, first + to)));
        for (from, to) in heap {
            let (Some(a), Some(b)) = (self.at(from), self.at(to)) else { continue };
            if self.scanned.get(a as usize).copied().unwrap_or(true) {
                edges.push((first + a, first + b));
            }
        }
        let graph = Graph::from_edges(first as usize + n, &edges);
        let d = dominators(&graph);
        let holder = |node: u32| match node {
            NONE => Holder::Garbage,
            0 => Holder::Roots,
            r if r < first => Holder::Root(r - 1),
            a => Holder::Allocation(a - first),
        };
        let mut retention = Retention {
            reachable: (0..n).map(|i| d.idom[first as usize + i] != NONE).collect(),
            idom: (0..n).map(|i| holder(d.idom[first as usize + i])).collect(),
            retained_bytes: vec![0; n],
            roots: names,
        };
        // A dominator comes before what it dominates in preorder: sum backwards.
        let mut retained: Vec<u64> = vec![0; graph.nodes()];
        for (i, a) in self.allocations.iter().enumerate() {
            retained[first as usize + i] = a.blocks.saturating_mul(self.bytes_per_block);
        }
        for &v in d.preorder.iter().skip(1).rev() {
            let up = d.idom[v as usize];
            if up != NONE {
                retained[up as usize] = retained[up as usize].saturating_add(retained[v as usize]);
            }
        }
        for i in 0..n {
            if retention.reachable[i] {
                retention.retained_bytes[i] = retained[first as usize + i];
            }
        }
        retention
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(start_block: u64, blocks: u64) -> Allocation {
        Allocation { start_block, blocks, marked: false }
    }

    /// A hand-built heap: `__main__`'s table (0) holds a list (1) whose items (2)
    /// hold two strs (3, 4); str 4's data (5) is also held by the stack; a
    /// cycle of two (6, 7) hangs from nothing.
    #[test]
    fn a_hand_built_heap() {
        let allocations =
            [alloc(0, 4), alloc(4, 1), alloc(5, 2), alloc(7, 1), alloc(8, 1), alloc(9, 3), alloc(12, 1), alloc(13, 1)];
        let scanned = [true; 8];
        let g = MarkGraph { allocations: &allocations, bytes_per_block: 16, scanned: &scanned };
        let heap = [(0, 4), (4, 5), (5, 7), (5, 8), (8, 9), (12, 13), (13, 12), (7, 6)];
        let main: Arc<str> = Arc::from("mp_state_ctx.vm.dict_main.map.table");
        let stack: Arc<str> = Arc::from("stack");
        let roots = [(main.clone(), 0), (stack.clone(), 9), (stack.clone(), 100)];
        let r = g.retention(heap.into_iter(), roots.into_iter());
        assert_eq!(r.roots, vec![main, stack]);
        assert_eq!(r.reachable, [true, true, true, true, true, true, false, false]);
        use Holder::*;
        // The data (5) is held by the stack and through str 4: by two roots.
        let expected = [Root(0), Allocation(0), Allocation(1), Allocation(2), Allocation(2), Roots, Garbage, Garbage];
        assert_eq!(r.idom, expected);
        // By hand: the table 64 + list 16 + items 32 + strs 16 + 16; the data (48)
        // is not retained by the table (the stack holds it too).
        assert_eq!(r.retained_bytes, [144, 80, 64, 16, 16, 48, 0, 0]);
    }

    #[test]
    fn blocks_the_collect_table_says_hold_no_pointers_are_not_followed() {
        let allocations = [alloc(0, 1), alloc(1, 1), alloc(2, 1)];
        let scanned = [true, false, true];
        let g = MarkGraph { allocations: &allocations, bytes_per_block: 16, scanned: &scanned };
        let r = g.retention([(0, 1), (1, 2)].into_iter(), [(Arc::from("stack"), 0)].into_iter());
        assert_eq!(r.reachable, [true, true, false]);
        assert_eq!(r.retained_bytes, [32, 16, 0]);
    }
}
