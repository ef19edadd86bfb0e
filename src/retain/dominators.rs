//! Immediate dominators of a graph's nodes from node 0, by Lengauer and
//! Tarjan's algorithm ("A fast algorithm for finding dominators in a
//! flowgraph", 1979) with path compression: O(E log N) whatever the graph, so a
//! heap whose pointers are laid out to be slow costs no more than a real one.
//! Every step is a loop (no recursion): the depth of a heap's pointer chains
//! is input.

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
        let mut start = vec![0u32; nodes + 1];
        let n = nodes as u32;
        let valid = || edges.iter().filter(|&&(a, b)| a < n && b < n);
        for &(a, _) in valid() {
            start[a as usize + 1] += 1;
        }
        for k in 1..start.len() {
            start[k] += start[k - 1];
        }
        let mut fill = start.clone();
        let mut succ = vec![0u32; start[nodes] as usize];
        for &(a, b) in valid() {
            succ[fill[a as usize] as usize] = b;
            fill[a as usize] += 1;
        }
        Graph { start, succ }
    }

    pub fn nodes(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    pub fn successors(&self, n: u32) -> &[u32] {
        let (a, b) = (self.start[n as usize] as usize, self.start[n as usize + 1] as usize);
        &self.succ[a..b]
    }
}

/// What the dominator computation gives: per node, its immediate dominator
/// ([`NONE`] for node 0 and for nodes node 0 does not reach), and the nodes
/// reached in depth-first preorder (a dominator comes before what it
/// dominates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dominators {
    pub idom: Vec<u32>,
    pub preorder: Vec<u32>,
}

/// The immediate dominators of `g`'s nodes from node 0.
pub fn dominators(g: &Graph) -> Dominators {
    let n = g.nodes();
    if n == 0 {
        return Dominators::default();
    }
    let (preorder, parent, dfnum) = depth_first(g);
    let preds = predecessors(g, &dfnum);
    let mut semi: Vec<u32> = dfnum.clone();
    let mut label: Vec<u32> = (0..n as u32).collect();
    let mut ancestor = vec![NONE; n];
    let mut idom = vec![NONE; n];
    let mut bucket_head = vec![NONE; n];
    let mut bucket_next = vec![NONE; n];
    let mut path = Vec::new();
    for k in (1..preorder.len()).rev() {
        let w = preorder[k] as usize;
        for &v in preds.successors(w as u32) {
            let u = eval(v as usize, &mut ancestor, &mut label, &semi, &mut path);
            semi[w] = semi[w].min(semi[u as usize]);
        }
        // w joins the bucket of its semidominator.
        let s = preorder[semi[w] as usize] as usize;
        bucket_next[w] = bucket_head[s];
        bucket_head[s] = w as u32;
        let p = parent[w] as usize;
        ancestor[w] = p as u32;
        let mut v = std::mem::replace(&mut bucket_head[p], NONE);
        while v != NONE {
            let u = eval(v as usize, &mut ancestor, &mut label, &semi, &mut path);
            idom[v as usize] = if semi[u as usize] < semi[v as usize] { u } else { p as u32 };
            v = bucket_next[v as usize];
        }
    }
    for &w in preorder.iter().skip(1) {
        let w = w as usize;
        if idom[w] != preorder[semi[w] as usize] {
            idom[w] = idom[idom[w] as usize];
        }
    }
    Dominators { idom, preorder }
}

/// Depth-first preorder from node 0, each reached node's tree parent and its
/// preorder number ([`NONE`]: not reached).
fn depth_first(g: &Graph) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let n = g.nodes();
    let (mut preorder, mut parent, mut dfnum) = (Vec::with_capacity(n), vec![NONE; n], vec![NONE; n]);
    // (node, index of its next successor to visit)
    let mut stack: Vec<(u32, u32)> = vec![(0, 0)];
    dfnum[0] = 0;
    preorder.push(0);
    while let Some(&mut (v, ref mut next)) = stack.last_mut() {
        let succ = g.successors(v);
        if let Some(&w) = succ.get(*next as usize) {
            *next += 1;
            if dfnum[w as usize] == NONE {
                dfnum[w as usize] = preorder.len() as u32;
                parent[w as usize] = v;
                preorder.push(w);
                stack.push((w, 0));
            }
        } else {
            stack.pop();
        }
    }
    (preorder, parent, dfnum)
}

/// The predecessors of each reached node, among the reached nodes.
fn predecessors(g: &Graph, dfnum: &[u32]) -> Graph {
    let mut edges = Vec::with_capacity(g.succ.len());
    for v in 0..g.nodes() as u32 {
        if dfnum[v as usize] == NONE {
            continue;
        }
        edges.extend(g.successors(v).iter().map(|&w| (w, v)));
    }
    Graph::from_edges(g.nodes(), &edges)
}

/// The node of least semidominator on the forest path above `v` (`v` itself
/// when it is a forest root), compressing the path as it goes.
fn eval(v: usize, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], path: &mut Vec<usize>) -> u32 {
    if ancestor[v] == NONE {
        return v as u32;
    }
    compress(v, ancestor, label, semi, path);
    label[v]
}

/// Path compression, as a loop: from the node nearest the forest root down to
/// `v`, each takes its ancestor's label when that has a smaller semidominator,
/// and its ancestor's ancestor as its own.
fn compress(v: usize, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], path: &mut Vec<usize>) {
    path.clear();
    let mut x = v;
    while ancestor[ancestor[x] as usize] != NONE {
        path.push(x);
        x = ancestor[x] as usize;
    }
    while let Some(y) = path.pop() {
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
        assert_eq!(d.preorder, vec![0, 1, 2]);
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
            prop_assert_eq!(d.idom, brute_force(&g));
        }
    }
}
