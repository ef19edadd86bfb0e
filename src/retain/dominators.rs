//! Immediate dominators of a graph's nodes from node 0.
//!
//! First by Cooper, Harvey and Kennedy's iteration ("A simple, fast dominance
//! algorithm", 2001) over the nodes in reverse postorder: a heap is nearly a
//! tree, most allocations have one holder, and the iteration settles in two
//! passes of a few steps a pointer. Its worst case is quadratic, though, and a
//! heap is input: past a budget of steps proportional to the graph it gives up,
//! and Lengauer and Tarjan's algorithm ("A fast algorithm for finding
//! dominators in a flowgraph", 1979) with path compression, O(E log N) whatever
//! the graph, computes the same tree (a graph has one dominator tree). Every
//! step is a loop (no recursion): the depth of a heap's pointer chains is
//! input.
//!
//! The work is done on the nodes' depth-first numbers, in arrays kept in a
//! [`Scratch`] from one snapshot to the next: a snapshot's graph is computed
//! without allocating, and the arrays are walked in order rather than by node.

/// A node no path from node 0 reaches, or the absence of a node.
pub const NONE: u32 = u32::MAX;

/// A directed graph in compressed rows: node `n`'s successors are
/// `succ[start[n]..start[n + 1]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    pub start: Vec<u32>,
    pub succ: Vec<u32>,
}

impl Graph {
    /// A graph of `nodes` nodes from `(from, to)` pairs (any order; pairs naming
    /// a node past the last are dropped).
    pub fn from_edges(nodes: usize, edges: &[(u32, u32)]) -> Self {
        let mut g = Graph::default();
        g.refill(nodes, edges);
        g
    }

    /// Makes this graph the one of `nodes` nodes and `edges`, in its own room.
    /// (Each row's edges come out last first.)
    pub fn refill(&mut self, nodes: usize, edges: &[(u32, u32)]) {
        self.refill_rows(nodes, nodes, edges);
    }

    /// Makes this graph's first `rows` rows those of `edges`, whose targets
    /// may be any of `nodes` nodes: the rows after are pushed
    /// ([`Graph::push_row`]).
    pub fn refill_rows(&mut self, rows: usize, nodes: usize, edges: &[(u32, u32)]) {
        let (r, n) = (rows as u32, nodes as u32);
        let valid = || edges.iter().filter(|&&(a, b)| a < r && b < n);
        fill_rows(&mut self.start, &mut self.succ, rows, valid().map(|&(a, _)| a), valid().copied());
    }

    /// Appends the next node's row.
    pub fn push_row(&mut self, successors: impl Iterator<Item = u32>) {
        self.succ.extend(successors);
        self.start.push(self.succ.len() as u32);
    }

    pub fn nodes(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    pub fn successors(&self, n: u32) -> &[u32] {
        let (a, b) = (self.start[n as usize] as usize, self.start[n as usize + 1] as usize);
        &self.succ[a..b]
    }
}

/// Compressed rows of `nodes` rows: counts the `sources` (each edge's row),
/// then places each `(row, value)` pair.
fn fill_rows(
    start: &mut Vec<u32>,
    values: &mut Vec<u32>,
    nodes: usize,
    sources: impl Iterator<Item = u32>,
    pairs: impl Iterator<Item = (u32, u32)>,
) {
    start.clear();
    start.resize(nodes + 1, 0);
    for a in sources {
        start[a as usize + 1] += 1;
    }
    for k in 1..start.len() {
        start[k] += start[k - 1];
    }
    values.clear();
    values.resize(start[nodes] as usize, 0);
    // Each row is filled from its end, counting `start[r + 1]` down to row
    // `r`'s start; then the bounds move back one place.
    for (a, b) in pairs {
        let at = &mut start[a as usize + 1];
        *at -= 1;
        values[*at as usize] = b;
    }
    for r in 0..nodes {
        start[r] = start[r + 1];
    }
    start[nodes] = values.len() as u32;
}

/// What the dominator computation gives: per node, its immediate dominator
/// ([`NONE`] for node 0 and for nodes node 0 does not reach), and the nodes
/// reached in an order in which a dominator comes before what it dominates
/// (reverse postorder, or preorder when the iteration gave up).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dominators {
    pub idom: Vec<u32>,
    pub order: Vec<u32>,
}

/// The working arrays of [`dominators_into`], by depth-first number, kept
/// from one graph to the next.
#[derive(Default)]
pub struct Scratch {
    dfnum: Vec<u32>,
    parent: Vec<u32>,
    postorder: Vec<u32>,
    rank: Vec<u32>,
    semi: Vec<u32>,
    label: Vec<u32>,
    ancestor: Vec<u32>,
    idom: Vec<u32>,
    bucket_head: Vec<u32>,
    bucket_next: Vec<u32>,
    pred_start: Vec<u32>,
    pred: Vec<u32>,
    stack: Vec<(u32, u32)>,
    path: Vec<u32>,
    /// Per node, its predecessors counted up to 2.
    indegree: Vec<u8>,
    /// The leaves reached (see [`depth_first`]) and the node holding each.
    leaves: Vec<(u32, u32)>,
    /// The edges between reached nodes but the leaves, as the search met them.
    edges: Vec<(u32, u32)>,
}

/// The immediate dominators of `g`'s nodes from node 0.
pub fn dominators(g: &Graph) -> Dominators {
    let mut out = Dominators::default();
    dominators_into(g, &mut Scratch::default(), &mut out);
    out
}

/// Steps the iteration may take per reached node and edge before it gives up.
const STEPS_PER_ITEM: usize = 16;

/// [`dominators`], in `scratch`'s and `out`'s room.
pub fn dominators_into(g: &Graph, scratch: &mut Scratch, out: &mut Dominators) {
    dominators_within(g, scratch, out, STEPS_PER_ITEM)
}

/// [`dominators_into`], the iteration allowed `steps` per node and edge.
fn dominators_within(g: &Graph, scratch: &mut Scratch, out: &mut Dominators, steps: usize) {
    let n = g.nodes();
    out.idom.clear();
    out.order.clear();
    if n == 0 {
        return;
    }
    out.idom.resize(n, NONE);
    let mut preorder = std::mem::take(&mut out.order);
    depth_first(g, scratch, &mut preorder);
    if iterate(n, scratch, steps) {
        out.order = preorder;
        out.order.clear();
        out.order.extend(scratch.postorder.iter().rev());
    } else {
        predecessors(scratch, preorder.len());
        semidominators(scratch, preorder.len());
        out.order = preorder;
    }
    let s = &*scratch;
    // Numbers back to nodes; node 0 has none.
    for (k, &v) in out.order.iter().enumerate().skip(1) {
        out.idom[v as usize] = out.order[s.idom[k] as usize];
    }
    for &(leaf, holder) in &s.leaves {
        out.idom[leaf as usize] = holder;
        out.order.push(leaf);
    }
}

/// Cooper, Harvey and Kennedy's iteration, by reverse postorder number, into
/// `s.idom`; false when it took more than `steps` per node and edge.
fn iterate(nodes: usize, s: &mut Scratch, steps: usize) -> bool {
    let reached = s.postorder.len();
    s.rank.clear();
    s.rank.resize(nodes, NONE);
    for (k, &v) in s.postorder.iter().rev().enumerate() {
        s.rank[v as usize] = k as u32;
    }
    let rank = &s.rank;
    let sources = s.edges.iter().map(|&(_, w)| rank[w as usize]);
    let pairs = s.edges.iter().map(|&(v, w)| (rank[w as usize], rank[v as usize]));
    fill_rows(&mut s.pred_start, &mut s.pred, reached, sources, pairs);
    s.idom.clear();
    s.idom.resize(reached, NONE);
    s.idom[0] = 0;
    let mut budget = steps.saturating_mul(reached + s.pred.len());
    let mut changed = true;
    while changed {
        changed = false;
        for w in 1..reached {
            let mut new = NONE;
            for &p in &s.pred[s.pred_start[w] as usize..s.pred_start[w + 1] as usize] {
                if s.idom[p as usize] == NONE {
                    continue; // not reached by this pass yet
                }
                new = if new == NONE { p } else { intersect(&s.idom, p, new, &mut budget) };
            }
            if budget == 0 {
                return false;
            }
            if s.idom[w] != new {
                s.idom[w] = new;
                changed = true;
            }
        }
    }
    true
}

/// The nearest common ancestor of `a` and `b` in the tree `idom` gives so far
/// (a parent's number is below its child's, so the larger number moves up),
/// each step taken from `budget`; once that is spent, an answer to discard.
fn intersect(idom: &[u32], mut a: u32, mut b: u32, budget: &mut usize) -> u32 {
    while a != b && *budget > 0 {
        *budget -= 1;
        if a > b {
            a = idom[a as usize];
        } else {
            b = idom[b as usize];
        }
    }
    a
}

/// A number for nodes reached as leaves (see [`depth_first`]).
const LEAF: u32 = NONE - 1;

/// Depth-first preorder from node 0 into `preorder`; each reached node's
/// number (`dfnum`, [`NONE`]: not reached), its tree parent's number, and the
/// postorder.
///
/// A node with one predecessor and no successors (a heap's strings, floats,
/// item arrays of numbers: most of its allocations) is dominated by that
/// predecessor and dominates nothing: it is set aside in `s.leaves`, numbered
/// [`LEAF`], and the algorithms run on the rest of the graph.
fn depth_first(g: &Graph, s: &mut Scratch, preorder: &mut Vec<u32>) {
    let n = g.nodes();
    s.indegree.clear();
    s.indegree.resize(n, 0);
    for &w in &g.succ {
        let d = &mut s.indegree[w as usize];
        *d = d.saturating_add(1).min(2);
    }
    let leaf = |w: u32| s.indegree[w as usize] == 1 && w != 0 && g.successors(w).is_empty();
    s.dfnum.clear();
    s.dfnum.resize(n, NONE);
    s.parent.clear();
    s.postorder.clear();
    s.leaves.clear();
    s.edges.clear();
    s.stack.clear();
    // (node, index of its next successor to visit)
    s.stack.push((0, 0));
    s.dfnum[0] = 0;
    s.parent.push(NONE);
    preorder.push(0);
    while let Some(&mut (v, ref mut next)) = s.stack.last_mut() {
        if let Some(&w) = g.successors(v).get(*next as usize) {
            *next += 1;
            if s.dfnum[w as usize] == NONE && leaf(w) {
                s.dfnum[w as usize] = LEAF;
                s.leaves.push((w, v));
                continue;
            }
            s.edges.push((v, w));
            if s.dfnum[w as usize] != NONE {
                continue;
            }
            s.dfnum[w as usize] = preorder.len() as u32;
            s.parent.push(s.dfnum[v as usize]);
            preorder.push(w);
            s.stack.push((w, 0));
        } else {
            s.postorder.push(v);
            s.stack.pop();
        }
    }
}

/// The predecessors of each reached node but the leaves, by number.
fn predecessors(s: &mut Scratch, reached: usize) {
    let dfnum = &s.dfnum;
    let sources = s.edges.iter().map(|&(_, w)| dfnum[w as usize]);
    let pairs = s.edges.iter().map(|&(v, w)| (dfnum[w as usize], dfnum[v as usize]));
    fill_rows(&mut s.pred_start, &mut s.pred, reached, sources, pairs);
}

/// Semidominators by Lengauer and Tarjan's first pass, then the immediate
/// dominators by their second, all by number, into `s.idom`.
fn semidominators(s: &mut Scratch, reached: usize) {
    for v in [&mut s.semi, &mut s.label] {
        v.clear();
        v.extend(0..reached as u32);
    }
    for v in [&mut s.ancestor, &mut s.idom, &mut s.bucket_head, &mut s.bucket_next] {
        v.clear();
        v.resize(reached, NONE);
    }
    for w in (1..reached).rev() {
        let (a, b) = (s.pred_start[w] as usize, s.pred_start[w + 1] as usize);
        for i in a..b {
            let u = eval(s.pred[i], &mut s.ancestor, &mut s.label, &s.semi, &mut s.path);
            s.semi[w] = s.semi[w].min(s.semi[u as usize]);
        }
        // w joins the bucket of its semidominator.
        let sd = s.semi[w] as usize;
        s.bucket_next[w] = s.bucket_head[sd];
        s.bucket_head[sd] = w as u32;
        let p = s.parent[w];
        s.ancestor[w] = p;
        let mut v = std::mem::replace(&mut s.bucket_head[p as usize], NONE);
        while v != NONE {
            let u = eval(v, &mut s.ancestor, &mut s.label, &s.semi, &mut s.path);
            s.idom[v as usize] = if s.semi[u as usize] < s.semi[v as usize] { u } else { p };
            v = s.bucket_next[v as usize];
        }
    }
    for w in 1..reached {
        if s.idom[w] != s.semi[w] {
            s.idom[w] = s.idom[s.idom[w] as usize];
        }
    }
}

/// The number of least semidominator on the forest path above `v` (`v` itself
/// when it is a forest root), compressing the path as it goes.
fn eval(v: u32, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], path: &mut Vec<u32>) -> u32 {
    if ancestor[v as usize] == NONE {
        return v;
    }
    compress(v, ancestor, label, semi, path);
    label[v as usize]
}

/// Path compression, as a loop: from the number nearest the forest root down
/// to `v`, each takes its ancestor's label when that has a smaller
/// semidominator, and its ancestor's ancestor as its own.
fn compress(v: u32, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], path: &mut Vec<u32>) {
    path.clear();
    let mut x = v as usize;
    while ancestor[ancestor[x] as usize] != NONE {
        path.push(x as u32);
        x = ancestor[x] as usize;
    }
    while let Some(y) = path.pop() {
        let y = y as usize;
        let a = ancestor[y] as usize;
        if semi[label[a] as usize] < semi[label[y] as usize] {
            label[y] = label[a];
        }
        ancestor[y] = ancestor[a];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Nodes reached from 0 when `removed` is taken out of the graph.
    fn reached_without(g: &Graph, removed: Option<u32>) -> Vec<bool> {
        let mut seen = vec![false; g.nodes()];
        if removed == Some(0) {
            return seen;
        }
        let mut stack = vec![0u32];
        seen[0] = true;
        while let Some(v) = stack.pop() {
            for &w in g.successors(v) {
                if Some(w) != removed && !seen[w as usize] {
                    seen[w as usize] = true;
                    stack.push(w);
                }
            }
        }
        seen
    }

    /// The definition: `d` dominates `v` when every path from 0 to `v` passes
    /// through `d`; the immediate dominator is the strict dominator every other
    /// strict dominator dominates (the one with the most dominators).
    fn brute_force(g: &Graph) -> Vec<u32> {
        let n = g.nodes();
        let all = reached_without(g, None);
        let without: Vec<Vec<bool>> = (0..n as u32).map(|d| reached_without(g, Some(d))).collect();
        let dominates = |d: usize, v: usize| d == v || (all[v] && !without[d][v]);
        let count = |v: usize| (0..n).filter(|&d| dominates(d, v)).count();
        (0..n)
            .map(|v| {
                if v == 0 || !all[v] {
                    return NONE;
                }
                let strict = (0..n).filter(|&d| d != v && dominates(d, v));
                strict.max_by_key(|&d| count(d)).map_or(NONE, |d| d as u32)
            })
            .collect()
    }

    #[test]
    fn the_papers_flowgraph() {
        // Lengauer and Tarjan's Figure 1: R=0 A=1 B=2 C=3 D=4 E=5 F=6 G=7 H=8 I=9 J=10 K=11 L=12.
        let edges = [
            (0, 1),
            (0, 2),
            (0, 3),
            (1, 4),
            (2, 1),
            (2, 4),
            (2, 5),
            (3, 6),
            (3, 7),
            (4, 12),
            (5, 8),
            (6, 9),
            (7, 9),
            (7, 10),
            (8, 5),
            (8, 11),
            (9, 11),
            (10, 9),
            (11, 9),
            (11, 0),
            (12, 8),
        ];
        let g = Graph::from_edges(13, &edges);
        let d = dominators(&g);
        //                 R     A  B  C  D  E  F  G  H  I  J  K  L
        let expected = [NONE, 0, 0, 0, 0, 0, 3, 3, 0, 0, 7, 0, 4];
        assert_eq!(d.idom, expected);
        assert_eq!(d.idom, brute_force(&g));
    }

    #[test]
    fn unreached_nodes_and_self_loops() {
        let g = Graph::from_edges(5, &[(0, 1), (1, 1), (1, 2), (3, 4), (4, 3), (9, 1)]);
        let d = dominators(&g);
        assert_eq!(d.idom, vec![NONE, 0, 1, NONE, NONE]);
        assert_eq!(d.order, vec![0, 1, 2]);
    }

    #[test]
    fn a_long_chain_is_no_deeper_than_a_loop() {
        // 200,000 nodes in a line: recursion would overflow the stack.
        let n = 200_000u32;
        let edges: Vec<(u32, u32)> = (0..n - 1).map(|k| (k, k + 1)).chain([(n - 1, 0)]).collect();
        let d = dominators(&Graph::from_edges(n as usize, &edges));
        assert!((1..n as usize).all(|k| d.idom[k] == k as u32 - 1));
    }

    proptest! {
        #[test]
        fn lengauer_tarjan_agrees_with_the_definition(
            n in 1usize..14,
            edges in proptest::collection::vec((0u32..14, 0u32..14), 0..40),
        ) {
            let g = Graph::from_edges(n, &edges);
            let d = dominators(&g);
            for (k, &v) in d.order.iter().enumerate().skip(1) {
                // A dominator comes first in the order.
                prop_assert!(d.order[..k].contains(&d.idom[v as usize]));
            }
            prop_assert_eq!(d.idom, brute_force(&g));
        }

        #[test]
        fn lengauer_tarjan_alone_agrees_too(
            n in 1usize..14,
            edges in proptest::collection::vec((0u32..14, 0u32..14), 0..40),
        ) {
            // No steps for the iteration: it gives up at once.
            let g = Graph::from_edges(n, &edges);
            let mut d = Dominators::default();
            dominators_within(&g, &mut Scratch::default(), &mut d, 0);
            prop_assert_eq!(&d.idom, &brute_force(&g));
            let first: Vec<u32> = d.order.iter().map(|&v| d.idom[v as usize]).collect();
            for (k, up) in first.iter().enumerate().skip(1) {
                // A dominator comes first in the order.
                prop_assert!(d.order[..k].contains(up));
            }
        }

        #[test]
        fn arrays_kept_from_another_graph_change_nothing(
            a in proptest::collection::vec((0u32..20, 0u32..20), 0..60),
            b in proptest::collection::vec((0u32..14, 0u32..14), 0..40),
        ) {
            // A larger graph first, then a smaller one, in the same room.
            let (mut scratch, mut out, mut g) = (Scratch::default(), Dominators::default(), Graph::default());
            g.refill(20, &a);
            dominators_into(&g, &mut scratch, &mut out);
            prop_assert_eq!(&out.idom, &brute_force(&g));
            g.refill(14, &b);
            dominators_into(&g, &mut scratch, &mut out);
            prop_assert_eq!(&out, &dominators(&Graph::from_edges(14, &b)));
            prop_assert_eq!(&out.idom, &brute_force(&g));
        }
    }
}
