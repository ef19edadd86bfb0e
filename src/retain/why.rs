//! Why an allocation is alive: the shortest path to it from a GC root, its
//! chain of dominators, and what it retains, each step named as Python would
//! name it (`__main__.history`, `[3]`, `['key']`, `<Node instance at
//! 0x20001230>.children`, `Sensor.readings`), or, for the steps Python does not
//! show, by what the pointer is (`(items)` from a list to its item array).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::decode::{BlockRow, EdgeRow, SnapshotReport};

use rustc_hash::FxHashMap;

use super::{owners, GcRoots, Holder, Retention, SEVERAL_ROOTS, STACK};

/// One allocation on a path or a chain, and how the step into it is named.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// The step as Python would write it (`.history`, `[3]`, `['key']`).
    pub name: String,
    /// The allocation's address.
    pub address: u64,
    /// Its kind.
    pub kind: &'static str,
    /// Its size.
    pub bytes: u64,
}

/// The answer for one allocation of one snapshot.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Why {
    /// The allocation asked about.
    pub target: Step,
    /// Whether the GC's roots reach it.
    pub reachable: bool,
    /// The stack was scanned from the stack pointer (else: the whole region).
    pub exact: bool,
    /// The root the shortest path starts at.
    pub root: Option<String>,
    /// The steps of that path, from the root's to the target.
    pub path: Vec<Step>,
    /// The target as a Python expression, from the last named step.
    pub python: Option<String>,
    /// Its dominators, nearest first, ending at the root (or `roots`).
    pub dominators: Vec<String>,
    /// The bytes it retains (what would be freed if it went), its own included.
    pub retained_bytes: u64,
    /// The allocations it retains, itself included.
    pub retained_allocations: u64,
    /// What it retains by kind: (kind, allocations, bytes).
    pub retained_by_kind: Vec<(&'static str, u64, u64)>,
}

/// Walks from the roots through at most this many allocations (a heap has at
/// most one per block; this only bounds a hostile snapshot's work).
const MAX_VISITS: usize = 1 << 24;

/// Why the allocation covering `address` in `report` is alive. `None` when no
/// allocation covers it, or the report has no retention.
pub fn why(report: &SnapshotReport, roots: &GcRoots, address: u64) -> Option<Why> {
    let ret = report.retention.as_ref()?;
    let blocks = &report.blocks;
    let bpb = report.geometry.bytes_per_block;
    let target = blocks.iter().position(|b| address >= b.address && address < b.address + b.blocks * bpb)?;
    let index: HashMap<u64, usize> = blocks.iter().enumerate().map(|(i, b)| (b.start_block, i)).collect();
    let names = Names::new(report, roots);
    let step = |i: usize, name: String| Step {
        name,
        address: blocks[i].address,
        kind: blocks[i].kind,
        bytes: blocks[i].blocks * bpb,
    };
    let (root, path) = match shortest_path(report, &index, ret, roots, target) {
        Some((root, edges)) => (Some(root), edges.into_iter().map(|(i, e)| step(i, names.step(e))).collect()),
        None => (None, Vec::new()),
    };
    let python = python_name(&path);
    let (retained_allocations, retained_by_kind) = retained(ret, blocks, bpb, target);
    let exact = report.reachability.as_ref().is_some_and(|r| r.exact);
    Some(Why {
        target: step(target, String::new()),
        reachable: ret.reachable[target],
        exact,
        root,
        path,
        python,
        dominators: dominators(ret, blocks, target),
        retained_bytes: ret.retained_bytes[target],
        retained_allocations,
        retained_by_kind,
    })
}

/// The root and the steps (allocation, edge into it) of a shortest path from a
/// root to `target`, breadth first over the pointers the GC follows.
fn shortest_path<'r>(
    report: &'r SnapshotReport,
    index: &HashMap<u64, usize>,
    ret: &Retention,
    gc_roots: &GcRoots,
    target: usize,
) -> Option<(String, Vec<(usize, &'r EdgeRow)>)> {
    if !ret.reachable[target] {
        return None;
    }
    let mut out: HashMap<usize, Vec<&EdgeRow>> = HashMap::new();
    for e in report.edges.iter().filter(|e| e.to_is_head() && e.from_block.is_some()) {
        if let Some(&from) = e.from_block.and_then(|b| index.get(&b)) {
            out.entry(from).or_default().push(e);
        }
    }
    let scanned = |i: usize| report.blocks[i].collect.unwrap_or(true);
    // Each allocation's edge in, from the first root (in address order) reaching it.
    let mut came: HashMap<usize, &EdgeRow> = HashMap::new();
    let mut queue = VecDeque::new();
    // Only the roots the GC scans: a word of the state's root range or of the
    // stack above the stack pointer. The edges also hold words the GC does not
    // scan (stale frames below the stack pointer, the rest of RAM); a path
    // from one of those would contradict the dominators.
    let scanned_root = |a: u64| gc_roots.scans(a);
    let mut roots: Vec<&EdgeRow> =
        report.edges.iter().filter(|e| e.to_is_head() && e.root_address.is_some_and(scanned_root)).collect();
    roots.sort_by_key(|e| e.root_address);
    for e in roots {
        let Some(&to) = e.to_block.and_then(|b| index.get(&b)) else { continue };
        if ret.reachable[to] && !came.contains_key(&to) {
            came.insert(to, e);
            queue.push_back(to);
        }
    }
    let mut visits = 0;
    while let Some(v) = queue.pop_front() {
        visits += 1;
        if v == target || visits > MAX_VISITS {
            break;
        }
        if !scanned(v) {
            continue;
        }
        for e in out.get(&v).into_iter().flatten() {
            let Some(&to) = e.to_block.and_then(|b| index.get(&b)) else { continue };
            if ret.reachable[to] && !came.contains_key(&to) {
                came.insert(to, e);
                queue.push_back(to);
            }
        }
    }
    let mut steps = Vec::new();
    let mut v = target;
    while let Some(&e) = came.get(&v) {
        steps.push((v, e));
        match e.from_block.and_then(|b| index.get(&b)) {
            Some(&from) if steps.len() <= report.blocks.len() => v = from,
            _ => break,
        }
    }
    steps.reverse();
    let root = steps.first().and_then(|(_, e)| e.root_name.as_deref().map(str::to_owned))?;
    Some((root, steps))
}

/// What the steps' names need: which tables hold names (`__main__`'s, a
/// module's globals, a class's attributes: [`owners::scopes`]), and each
/// allocation by its address.
struct Names<'r> {
    blocks: &'r [BlockRow],
    by_address: HashMap<u64, usize>,
    /// Table address → the scope whose names it holds.
    scopes: FxHashMap<u64, Arc<str>>,
    roots: &'r GcRoots,
}

impl<'r> Names<'r> {
    fn new(report: &'r SnapshotReport, roots: &'r GcRoots) -> Self {
        let nodes = super::nodes_of_rows(report);
        let main_tables = super::main_tables_of_rows(report, roots);
        let scopes = owners::scopes(&nodes, &main_tables, roots.module_globals_word);
        let by_address = report.blocks.iter().enumerate().map(|(i, b)| (b.address, i)).collect();
        Names { blocks: &report.blocks, by_address, scopes, roots }
    }

    /// How the step along edge `e` is named.
    fn step(&self, e: &EdgeRow) -> String {
        let Some(from) = e.from_address.and_then(|a| self.by_address.get(&a)).map(|&i| &self.blocks[i]) else {
            return match e.root_address {
                Some(a) if self.roots.stack.contains(&a) => format!("{STACK} (0x{a:08x})"),
                _ => e.root_name.as_deref().map_or_else(|| "(a root)".to_string(), str::to_owned),
            };
        };
        let word = e.from_word.unwrap_or(0);
        if let Some(key) = &e.map_key {
            return self.key_step(from, key);
        }
        match from.kind {
            "list_items" | "array_items" => format!("[{word}]"),
            "tuple" if word >= 2 => format!("[{}]", word - 2),
            "list" | "bytearray" | "array" => "(items)".to_string(),
            "str" | "bytes" => "(data)".to_string(),
            "dict" | "set" | "frozenset" => "(table)".to_string(),
            "module" => "(globals)".to_string(),
            "function" | "closure" | "bound_method" if word == 0 => "(type)".to_string(),
            "instance" if word == 0 => "(class)".to_string(),
            "instance" => "(attributes)".to_string(),
            kind => format!("({kind} word {word})"),
        }
    }

    /// A value slot of a map table with key `key`: a global, a class or an
    /// instance attribute, or a dict's item.
    fn key_step(&self, table: &BlockRow, key: &Arc<str>) -> String {
        if let Some(scope) = self.scopes.get(&table.address) {
            return format!("{scope}.{key}");
        }
        let owner = table.owner.and_then(|o| self.by_address.get(&o)).map(|&i| &self.blocks[i]);
        match owner {
            Some(o) if o.kind == "instance" => {
                format!("<{} instance at 0x{:08x}>.{key}", o.name.as_deref().unwrap_or("?"), o.address)
            }
            _ => subscript(key),
        }
    }
}

/// `[3]` for a small int key, `['key']` for any other.
fn subscript(key: &str) -> String {
    if key.parse::<i64>().is_ok() {
        format!("[{key}]")
    } else {
        format!("['{key}']")
    }
}

/// The target as Python names it: from the last step naming an object
/// (`module.name`, `Class.name`, `<... instance ...>.name`), then its
/// subscripts; steps in parentheses are internal.
fn python_name(path: &[Step]) -> Option<String> {
    let start =
        path.iter().rposition(|s| !s.name.starts_with('[') && !s.name.starts_with('(') && s.name.contains('.'))?;
    let mut name = path[start].name.clone();
    for s in &path[start + 1..] {
        if s.name.starts_with('[') {
            name.push_str(&s.name);
        }
    }
    Some(name)
}

/// The dominator chain of `target`, nearest first, named by kind and address.
fn dominators(ret: &Retention, blocks: &[BlockRow], target: usize) -> Vec<String> {
    let mut chain = Vec::new();
    let mut v = target;
    for _ in 0..blocks.len() {
        match ret.idom.get(v).copied().unwrap_or(Holder::Garbage) {
            Holder::Allocation(j) => {
                let b = &blocks[j as usize];
                let name = b.name.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
                chain.push(format!("{}{name} at 0x{:08x}", b.kind, b.address));
                v = j as usize;
            }
            Holder::Root(r) => {
                chain.push(ret.roots.get(r as usize).map_or_else(String::new, |n| n.to_string()));
                break;
            }
            Holder::Roots => {
                chain.push(format!("{SEVERAL_ROOTS} (several, none through another)"));
                break;
            }
            Holder::Garbage => break,
        }
    }
    chain
}

/// The allocations `target` dominates (itself included), and by kind:
/// (kind, allocations, bytes), most bytes first.
fn retained(ret: &Retention, blocks: &[BlockRow], bpb: u64, target: usize) -> (u64, Vec<(&'static str, u64, u64)>) {
    if !ret.reachable[target] {
        return (0, Vec::new());
    }
    // Per allocation: dominated by the target or not, found once (a walk up
    // the chain stops at the first allocation already known).
    const UNKNOWN: u8 = 0;
    const INSIDE: u8 = 1;
    const OUTSIDE: u8 = 2;
    let mut state = vec![UNKNOWN; blocks.len()];
    state[target] = INSIDE;
    let mut walk = Vec::new();
    for v in 0..blocks.len() {
        let mut u = v;
        while state[u] == UNKNOWN {
            walk.push(u);
            match ret.idom[u] {
                Holder::Allocation(j) if (j as usize) < blocks.len() => u = j as usize,
                _ => break,
            }
        }
        let found = if state[u] == UNKNOWN { OUTSIDE } else { state[u] };
        for w in walk.drain(..) {
            state[w] = found;
        }
    }
    let mut by_kind: HashMap<&'static str, (u64, u64)> = HashMap::new();
    let mut count = 0;
    for (_, b) in blocks.iter().enumerate().filter(|(v, _)| state[*v] == INSIDE) {
        count += 1;
        let e = by_kind.entry(b.kind).or_default();
        e.0 += 1;
        e.1 += b.blocks * bpb;
    }
    let mut kinds: Vec<(&'static str, u64, u64)> = by_kind.into_iter().map(|(k, (n, b))| (k, n, b)).collect();
    kinds.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    (count, kinds)
}
