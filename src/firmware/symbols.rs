//! The symbol table read from a firmware's link map: name → (address, size), and the
//! reverse lookup address → `symbol+offset` used to name root pointers.

use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub address: Option<u64>,
    pub size: Option<u64>,
}

/// Two different addresses seen for one name; the first one is kept (as the reference does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub name: String,
    pub kept: u64,
    pub ignored: u64,
}

/// One definition as it was added, replayed in order to build address names: a later
/// definition covering the same address wins, like the reference's `symbol_lookup` dict.
#[derive(Clone, Debug)]
struct Definition {
    address: u64,
    /// Size used for naming (4 when the map gave none).
    span: u64,
    symbol: usize,
}

#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    symbols: Vec<Symbol>,
    by_name: HashMap<String, usize>,
    definitions: Vec<Definition>,
    pub conflicts: Vec<Conflict>,
}

impl SymbolTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or merges a symbol with the reference's rules: a name keeps its first
    /// address (a different later one is a conflict and is ignored), and a size or an
    /// address missing on one line is taken from another line for the same name.
    pub fn add(&mut self, name: &str, address: Option<u64>, size: Option<u64>) {
        let (address, size, idx) = match self.by_name.get(name) {
            Some(&idx) => {
                let old = &self.symbols[idx];
                if let (Some(new), Some(kept)) = (address, old.address) {
                    if new != kept {
                        self.conflicts.push(Conflict { name: name.to_string(), kept, ignored: new });
                        return;
                    }
                }
                (address.or(old.address), size.or(old.size), idx)
            }
            None => {
                let idx = self.symbols.len();
                self.symbols.push(Symbol { name: name.to_string(), address: None, size: None });
                self.by_name.insert(name.to_string(), idx);
                (address, size, idx)
            }
        };
        self.symbols[idx].address = address;
        self.symbols[idx].size = size;
        if let Some(address) = address {
            let span = size.filter(|s| *s > 0).unwrap_or(4);
            self.definitions.push(Definition { address, span, symbol: idx });
        }
    }

    pub fn get(&self, name: &str) -> Option<&Symbol> {
        self.by_name.get(name).map(|&i| &self.symbols[i])
    }

    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(|s| s.address)
    }

    /// Every symbol, in the order first seen in the map.
    pub fn iter(&self) -> impl Iterator<Item = &Symbol> {
        self.symbols.iter()
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// `symbol+offset` names for every 4-byte step of every symbol inside `lo..hi`,
    /// a later definition naming the words it shares with an earlier one.
    ///
    /// Kept as ranges, not a name per word: the window and the symbols' sizes
    /// come from the map, and a bogus `_estack` or a symbol claiming gigabytes
    /// costs a range like any other (found by fuzzing the map parser: a name per
    /// word made a 7 KiB map cost 4M table entries).
    pub fn address_names(&self, lo: u64, hi: u64) -> AddressNames {
        let mut names = AddressNames::default();
        for d in &self.definitions {
            let start = d.address.max(lo);
            let end = d.address.saturating_add(d.span).min(hi);
            if start < end {
                names.paint(start, end, d.symbol as u32, d.address);
            }
        }
        names
    }

    /// Symbols by exact start address, for naming the type a first word points at.
    /// Where several names share an address the first in the map wins, unless a later
    /// one is an `mp_type_*` name (aliases of a type object are rarer than labels).
    pub fn names_by_address(&self) -> HashMap<u64, String> {
        let mut out: HashMap<u64, String> = HashMap::new();
        for s in &self.symbols {
            if let Some(a) = s.address {
                match out.get(&a) {
                    Some(existing) if existing.starts_with("mp_type_") || !s.name.starts_with("mp_type_") => {}
                    _ => {
                        out.insert(a, s.name.clone());
                    }
                }
            }
        }
        out
    }

    pub fn name_of(&self, idx: u32) -> &str {
        self.symbols.get(idx as usize).map(|s| s.name.as_str()).unwrap_or("?")
    }
}

/// Address → (symbol index, offset) inside one window of the address space.
///
/// A definition names the words 4 bytes apart from its start, so the window is
/// kept per phase (address mod 4) as disjoint ranges, each holding the
/// definition painted there last: memory grows with the map, not the window.
#[derive(Clone, Debug, Default)]
pub struct AddressNames {
    /// Per phase: range start → (end, symbol index, the definition's address).
    phases: [BTreeMap<u64, (u64, u32, u64)>; 4],
}

impl AddressNames {
    pub fn lookup(&self, address: u64) -> Option<(u32, u64)> {
        let phase = &self.phases[(address % 4) as usize];
        let (_, &(end, symbol, at)) = phase.range(..=address).next_back()?;
        (address < end).then(|| (symbol, address - at))
    }

    /// Names `start..end` after the definition of `symbol` at `at`, over what
    /// named it before.
    fn paint(&mut self, start: u64, end: u64, symbol: u32, at: u64) {
        let phase = &mut self.phases[(at % 4) as usize];
        // The ranges overlapping `start..end`: disjoint and sorted, so the last
        // ones starting before `end`, back to the first ending after `start`.
        let overlapping: Vec<(u64, (u64, u32, u64))> =
            phase.range(..end).rev().take_while(|(_, (e, ..))| *e > start).map(|(&s, &v)| (s, v)).collect();
        for (s, (e, sym, a)) in overlapping {
            phase.remove(&s);
            if s < start {
                phase.insert(s, (start, sym, a));
            }
            if e > end {
                phase.insert(end, (e, sym, a));
            }
        }
        phase.insert(start, (end, symbol, at));
    }

    /// How many ranges it keeps (at most three per definition).
    pub fn ranges(&self) -> usize {
        self.phases.iter().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbol_claiming_gigabytes_names_a_bounded_number_of_words() {
        // Found by fuzzing the map parser: a size of 0x7fff0000 made one entry a word.
        let mut t = SymbolTable::new();
        t.add("huge", Some(0x1000), Some(0x7fff_0000));
        t.add("small", Some(0x2000_0000), Some(64));
        let names = t.address_names(0, 1 << 32);
        assert_eq!(names.ranges(), 3, "huge, cut in two by small");
        assert_eq!(names.lookup(0x1000), Some((0, 0)));
        assert_eq!(names.lookup(0x7000_0000), Some((0, 0x6fff_f000)));
        assert_eq!(names.lookup(0x7000_0002), None, "words 4 bytes apart from the start");
        assert_eq!(names.lookup(0x2000_0010), Some((1, 0x10)));
    }

    #[test]
    fn later_definitions_win_address_names_and_first_address_wins_the_name() {
        let mut t = SymbolTable::new();
        t.add("big", Some(0x100), Some(16));
        t.add("inner", Some(0x104), Some(8));
        t.add("big", Some(0x200), None);
        assert_eq!(t.address_of("big"), Some(0x100));
        assert_eq!(t.conflicts.len(), 1);
        let names = t.address_names(0, 0x1000);
        let name = |a| names.lookup(a).map(|(i, o)| format!("{}+{}", t.name_of(i), o));
        assert_eq!(name(0x100).as_deref(), Some("big+0"));
        assert_eq!(name(0x104).as_deref(), Some("inner+0"));
        assert_eq!(name(0x108).as_deref(), Some("inner+4"));
        assert_eq!(name(0x10c).as_deref(), Some("big+12"));
        assert_eq!(name(0x110), None);
    }

    #[test]
    fn ranges_name_every_word_as_a_name_per_word_would() {
        // Random overlapping definitions, at any byte alignment, against the
        // plain model: each definition in turn names its words 4 bytes apart.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..200 {
            let mut t = SymbolTable::new();
            for k in 0..next(12) + 1 {
                t.add(&format!("s{k}"), Some(0x100 + next(0x80)), Some(next(0x60)));
            }
            let (lo, hi) = (0x100 + next(0x40), 0x120 + next(0x80));
            let names = t.address_names(lo, hi);
            let mut model = HashMap::new();
            for d in &t.definitions {
                let mut offset = if d.address >= lo { 0 } else { (lo - d.address).div_ceil(4) * 4 };
                while offset < d.span && d.address + offset < hi {
                    model.insert(d.address + offset, (d.symbol as u32, offset));
                    offset += 4;
                }
            }
            for a in 0x0f0..0x200 {
                assert_eq!(names.lookup(a), model.get(&a).copied(), "0x{a:x} in {:?}", t.definitions);
            }
            assert!(names.ranges() <= 3 * t.definitions.len());
        }
    }

    #[test]
    fn huge_sizes_only_cost_the_window() {
        let mut t = SymbolTable::new();
        t.add("everything", Some(0), Some(u64::MAX / 2));
        let names = t.address_names(0x2000_0000, 0x2000_0010);
        assert_eq!(names.lookup(0x2000_0008), Some((0, 0x2000_0008)));
        assert_eq!(names.lookup(0x2000_0010), None);
    }
}
