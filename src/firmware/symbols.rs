//! The symbol table read from a firmware's link map: name → (address, size), and the
//! reverse lookup address → `symbol+offset` used to name root pointers.

use std::collections::HashMap;

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

    /// `symbol+offset` names for every 4-byte step of every symbol inside `lo..hi`.
    /// Only the window is materialised, so a bogus size in the map costs nothing.
    ///
    /// At most [`MAX_NAMED_WORDS`] words are named, in all: the range and the
    /// symbols' sizes come from the map, so a bogus `_estack` or a symbol
    /// claiming gigabytes must not make this table as large (words past the cap
    /// are shown in hex).
    pub fn address_names(&self, lo: u64, hi: u64) -> AddressNames {
        let mut names = HashMap::new();
        let mut budget = MAX_NAMED_WORDS;
        for d in &self.definitions {
            let end = d.address.saturating_add(d.span);
            if end <= lo || d.address >= hi {
                continue;
            }
            // First step of this definition at or after `lo`.
            let first = if d.address >= lo { 0 } else { (lo - d.address).div_ceil(4) * 4 };
            let mut offset = first;
            while offset < d.span && d.address.saturating_add(offset) < hi && budget > 0 {
                names.insert(d.address + offset, (d.symbol as u32, offset));
                offset += 4;
                budget -= 1;
            }
        }
        AddressNames { names }
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

/// Words of RAM named at most (16 MiB of RAM; an MCU has far less).
pub const MAX_NAMED_WORDS: u64 = 1 << 22;

/// Address → (symbol index, offset) inside one window of the address space.
#[derive(Clone, Debug, Default)]
pub struct AddressNames {
    names: HashMap<u64, (u32, u64)>,
}

impl AddressNames {
    pub fn lookup(&self, address: u64) -> Option<(u32, u64)> {
        self.names.get(&address).copied()
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
        assert!(names.names.len() as u64 <= MAX_NAMED_WORDS, "{}", names.names.len());
        assert_eq!(names.lookup(0x1000), Some((0, 0)));
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
    fn huge_sizes_only_cost_the_window() {
        let mut t = SymbolTable::new();
        t.add("everything", Some(0), Some(u64::MAX / 2));
        let names = t.address_names(0x2000_0000, 0x2000_0010);
        assert_eq!(names.lookup(0x2000_0008), Some((0, 0x2000_0008)));
        assert_eq!(names.lookup(0x2000_0010), None);
    }
}
