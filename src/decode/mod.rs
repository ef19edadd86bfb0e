//! Decoding one snapshot of RAM into rows: blocks with their kinds, pointer edges
//! and root edges, qstrs, strings, free runs and the firmware's `gc_info` figures.
//!
//! [`Decoder::decode`] is a pure function of (firmware, profile, snapshot bytes): it
//! reads only through bounds-checked [`Memory`], allocates in proportion to the heap
//! it finds, and returns rows for the single writer to store.

pub mod alloc_table;
pub mod bytecode;
pub mod geometry;
pub mod kinds;
mod plausible;
pub mod qstr;
pub mod reads;
pub mod roots;
mod scan;

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::error::DecodeError;
use crate::firmware::Firmware;
use crate::memory::{Memory, Region};
use crate::profile::{BytecodePrelude, Immediate, Profile};
pub use alloc_table::{Allocation, FreeRun, GcInfo};
pub use bytecode::Prelude;
pub use geometry::{AreaState, HeapArea, HeapGeometry};
pub use kinds::Role;
use reads::{ReadLog, Reads, Tracker, GLOBAL, UNTRACKED};
pub use roots::{RootWord, Roots, RootsBefore};

/// What a block holds, with the reference's categories (and its colours).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    QstrPool,
    Function,
    Dict,
    Property,
    Map,
    Type,
    Tuple,
    Str,
    Bytearray,
    Instance,
    MapTable,
    StringData,
    Bytecode,
    QstrChunk,
    Unknown,
}

impl Category {
    pub const ALL: [Category; 15] = [
        Category::QstrPool,
        Category::Function,
        Category::Dict,
        Category::Property,
        Category::Map,
        Category::Type,
        Category::Tuple,
        Category::Str,
        Category::Bytearray,
        Category::Instance,
        Category::MapTable,
        Category::StringData,
        Category::Bytecode,
        Category::QstrChunk,
        Category::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::QstrPool => "qstr_pool",
            Category::Function => "function",
            Category::Dict => "dict",
            Category::Property => "property",
            Category::Map => "map",
            Category::Type => "type",
            Category::Tuple => "tuple",
            Category::Str => "str",
            Category::Bytearray => "bytearray",
            Category::Instance => "instance",
            Category::MapTable => "map_table",
            Category::StringData => "string_data",
            Category::Bytecode => "bytecode",
            Category::QstrChunk => "qstr_chunk",
            Category::Unknown => "unknown",
        }
    }

    /// The reference's Graphviz colour name for this kind.
    pub fn reference_colour(self) -> &'static str {
        match self {
            Category::QstrPool => "tomato",
            Category::Function => "green",
            Category::Dict => "red",
            Category::Property => "yellow",
            Category::Map => "blue",
            Category::Type => "orange",
            Category::Tuple => "skyblue",
            Category::Str => "pink",
            Category::Bytearray => "purple",
            Category::Instance => "plum",
            Category::MapTable => "gold",
            Category::StringData => "hotpink",
            Category::Bytecode => "lightseagreen",
            Category::QstrChunk => "lightsalmon",
            Category::Unknown => "gray",
        }
    }

    /// Roles given by who points at a block override what its first word says, in
    /// the order the reference applies them (map table last, so it wins).
    fn role_rank(self) -> u8 {
        match self {
            Category::MapTable => 4,
            Category::QstrChunk => 3,
            Category::Bytecode => 2,
            Category::StringData => 1,
            _ => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlockRow {
    pub address: u64,
    pub start_block: u64,
    pub blocks: u64,
    /// What it is (see [`kinds`]).
    pub kind: &'static str,
    /// The reference's category.
    pub category: Category,
    /// The object a block without a type of its own belongs to (a list's items
    /// belong to the list), or a closure that holds a cell.
    pub owner: Option<u64>,
    /// The first word when it points into flash (a built-in type object).
    pub type_address: Option<u64>,
    /// Python-level name: a class's name, an instance's class, a function's name.
    pub name: Option<Arc<str>>,
    pub has_finaliser: bool,
    /// CircuitPython's collect-table bit: the GC scans the block for pointers.
    /// `None` when the build has no collect table.
    pub collect: Option<bool>,
    pub marked: bool,
    pub prelude: Option<Prelude>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EdgeRow {
    /// The allocation holding the pointer (its address and first block), and the
    /// word index inside it; `None` for roots.
    pub from_address: Option<u64>,
    pub from_block: Option<u64>,
    pub from_word: Option<u32>,
    /// Where a root pointer sits outside the heap, and its name.
    pub root_address: Option<u64>,
    pub root_name: Option<Arc<str>>,
    pub to_address: u64,
    /// The allocation the target lies in, if any: its address and first block.
    pub to_alloc_address: Option<u64>,
    pub to_block: Option<u64>,
    /// The target is the head of an allocated block (what the GC follows).
    pub to_is_head: bool,
    /// For a value slot of a map table: its key, formatted like the reference.
    pub map_key: Option<Arc<str>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QstrRow {
    pub pool: u64,
    pub chunk: Option<u64>,
    pub id: u64,
    pub address: u64,
    pub hash: u64,
    pub length: u64,
    pub text: Arc<str>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StringRow {
    pub block: u64,
    /// The `str` object pointing at the data, when there is one.
    pub owner: Option<u64>,
    pub source: &'static str,
    pub length: u64,
    pub text: Arc<str>,
}

/// Everything decoded from one snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotReport {
    pub index: u64,
    pub geometry: HeapGeometry,
    /// Where the geometry came from: `gc_state` (the GC's own pointers in this
    /// snapshot) or `heap_symbol` (computed as gc_init does from the map's heap).
    pub geometry_source: &'static str,
    pub gc_info: GcInfo,
    pub marked_blocks: u64,
    pub orphan_tail_blocks: u64,
    pub finaliser_blocks: u64,
    pub allocations: u64,
    pub blocks: Vec<BlockRow>,
    pub edges: Vec<EdgeRow>,
    pub qstrs: Vec<QstrRow>,
    pub strings: Vec<StringRow>,
    pub free_runs: Vec<FreeRun>,
    /// Things a user may want to know that are not errors (a pointer to a block
    /// that is not allocated, a pool that is not a block).
    pub notes: Vec<String>,
    /// Why this snapshot is not one a GC could have left, when it was decoded
    /// with [`DecodeOptions::keep_suspect`].
    pub suspect: Option<String>,
    /// Decoded with [`DecodeOptions::metrics_only`]: only the geometry, `gc_info`
    /// and the block states' counts are known (no rows, no free-run list, no
    /// allocation count, no finaliser bits).
    pub metrics_only: bool,
}

/// An allocation's kind from its own first word (before roles given by pointers
/// to it), and that word when it names a type in flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseKind {
    pub kind: Category,
    pub type_address: Option<u64>,
}

/// The role pointers give an allocation: the reference's category, the detailed
/// role and the object that gave it.
pub type RoleOf = (Category, Role, Option<u64>);

/// What a focused decode makes again (see [`crate::incremental`]): the other
/// allocations' rows are known from the snapshot before.
#[derive(Clone, Debug, Default)]
pub struct Focus {
    /// Per allocation of this snapshot: its block row and edges are made,
    /// because something it read changed. The decode adds those whose role
    /// differs from `roles`.
    pub derive: Vec<bool>,
    /// Per allocation: its base kind when known from the snapshot before.
    pub known: Vec<Option<BaseKind>>,
    /// Per allocation: its role in the snapshot before, when carried over.
    pub roles: Vec<Option<RoleOf>>,
    /// Start blocks of the allocations holding qstr texts: the qstr pools did not
    /// change, so neither did these (a focused decode lists no qstrs).
    pub qstr_chunks: Vec<u64>,
}

/// What a planner sees of a snapshot before anything past its allocation table
/// is decoded.
pub struct PlanInput<'a> {
    pub ram: &'a [u8],
    pub geometry: &'a HeapGeometry,
    pub allocations: &'a [Allocation],
    /// Per pool block, the index of the allocation covering it (`u32::MAX`: none).
    pub owner: &'a [u32],
    /// Per allocation: its finaliser bit, and its collect bit (`None` when the
    /// build has no collect table).
    pub finaliser: &'a [bool],
    pub collect: &'a [Option<bool>],
}

/// Per-allocation facts a decode found, beside its report, for a run decoder to
/// carry to the next snapshot.
#[derive(Clone, Debug, Default)]
pub struct DecodeFacts {
    pub allocations: Vec<Allocation>,
    pub finaliser: Vec<bool>,
    pub collect: Vec<Option<bool>>,
    pub base: Vec<BaseKind>,
    /// Per allocation: the role pointers gave it.
    pub roles: Vec<RoleOf>,
    /// The focus the planner chose (`None`: every allocation was decoded).
    pub focus: Option<Focus>,
    /// The candidate roots, when asked for as words ([`Roots::Words`]).
    pub root_words: Vec<RootWord>,
    /// What each allocation's rows read, for a run decoder ([`Roots::Words`]).
    pub reads: Option<Reads>,
}

/// What to decode; the metrics-only path skips everything past the allocation table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    pub metrics_only: bool,
    /// Decode a snapshot that fails a plausibility check anyway, saying why in
    /// [`SnapshotReport::suspect`] (`inspect` shows such a snapshot); by default
    /// it is a [`DecodeError::Suspect`], and no rows of it are written.
    pub keep_suspect: bool,
    /// Make no edges, of pointers or of roots: no table asks for them.
    pub skip_edges: bool,
    /// Reads made for this purpose are not recorded ([`reads`]): what the
    /// incremental tests use to show that a dropped read is caught.
    #[doc(hidden)]
    pub drop_read: Option<&'static str>,
}

pub struct Decoder<'f> {
    pub firmware: &'f Firmware,
    pub profile: &'f Profile,
    pub geometry: Result<HeapGeometry, DecodeError>,
    pub options: DecodeOptions,
    /// Names of the RAM words outside the heap (where roots sit), made once: the
    /// same few roots recur in every snapshot.
    root_names: FxHashMap<u64, Arc<str>>,
}

/// What one worker carries from a snapshot to the next of its run: texts already
/// made, and the previous snapshot's row counts to size the next one's vectors.
/// It never changes what a decode returns, only how much it allocates.
#[derive(Default)]
pub struct DecodeCache {
    texts: qstr::TextCache,
    /// Map keys that are not qstrs (small ints, addresses), formatted.
    keys: FxHashMap<u64, Arc<str>>,
    edges: usize,
    /// Per-allocation and per-block working vectors, kept to save reallocating them.
    scratch: Scratch,
    /// Vectors of a decode's facts handed back by a run decoder once it is done
    /// with them ([`DecodeCache::recycle`]), to be refilled.
    recycled: DecodeFacts,
}

impl DecodeCache {
    /// Takes back the vectors of facts a decode returned, when their holder is
    /// done with them: the next decode refills them instead of allocating anew.
    pub fn recycle(&mut self, facts: DecodeFacts) {
        self.recycled = facts;
    }
}

#[derive(Default)]
struct Scratch {
    owner: Vec<u32>,
    kinds: Vec<Category>,
    type_addrs: Vec<Option<u64>>,
    roles: Vec<Category>,
    details: Vec<(Role, Option<u64>)>,
    names: Vec<Option<Arc<str>>>,
    preludes: Vec<Option<Prelude>>,
    derived: Vec<usize>,
    derive: Vec<bool>,
    bytecodes: Vec<(usize, usize)>,
}

/// The word at `offset` (from the profile) into the state at `state` (from the
/// map): both are input, so the sum is checked, an overflow read as out of range.
fn state_word(mem: &Memory, state: u64, offset: u64, what: &'static str) -> Result<u64, DecodeError> {
    let at = state.saturating_add(offset);
    Ok(mem.word(at, what)?)
}

/// `v` emptied and refilled with `n` copies of `x`, keeping its allocation.
fn refill<T: Clone>(mut v: Vec<T>, n: usize, x: T) -> Vec<T> {
    v.clear();
    v.resize(n, x);
    v
}

/// A table of a few bits a block, one per area, by the area's first block: the
/// finaliser and collect tables.
struct BitTables<'m> {
    areas: Vec<(u64, &'m [u8])>,
    /// Blocks a byte: 8, one bit each, for every build so far (the profile's).
    per_byte: u64,
}

impl<'m> BitTables<'m> {
    fn new(per_byte: u32) -> Self {
        BitTables { areas: Vec::new(), per_byte: per_byte.clamp(1, 8) as u64 }
    }

    /// Block `b`'s bit, `None` when no area's table covers it.
    fn bit(&self, b: u64) -> Option<bool> {
        let &(first, t) = self.areas.iter().rev().find(|(first, _)| *first <= b)?;
        let b = b - first;
        let shift = (b % self.per_byte) * (8 / self.per_byte);
        Some(t.get((b / self.per_byte) as usize).is_some_and(|byte| (byte >> shift) & 1 == 1))
    }
}

/// Per pool block, the index of the allocation covering it ([`NO_ALLOC`]:
/// none), in `reuse`'s memory.
fn owners(allocs: &[Allocation], pool_blocks: u64, reuse: Vec<u32>) -> Vec<u32> {
    let mut owner = refill(reuse, pool_blocks as usize, NO_ALLOC);
    for (i, a) in allocs.iter().enumerate() {
        for b in a.start_block..a.start_block + a.blocks {
            if let Some(slot) = owner.get_mut(b as usize) {
                *slot = i as u32;
            }
        }
    }
    owner
}

/// The qstr pools a decode lists: those in RAM, newest first, unless a focused
/// decode knows the chunks holding their text (by first block, sorted).
struct QstrPools<'a> {
    ram_pools: &'a [qstr::PoolHeader],
    known_chunks: Option<&'a [u64]>,
}

/// An allocation's Python name, when it has one.
type Name = Option<Arc<str>>;

/// What the role stages make: the roles, the REPL history's lines, and each
/// bytecode function with its bytecode's allocation.
struct RoleOut {
    roles: Roles,
    readline: Vec<usize>,
    bytecodes: Vec<(usize, usize)>,
}

/// What the walk of the allocation table gives the stages after it.
struct Walked<'m> {
    report: SnapshotReport,
    /// The facts' vectors to refill, the allocations filled.
    recycled: DecodeFacts,
    ftb: BitTables<'m>,
    ctb: BitTables<'m>,
}

/// What the block rows are made from, per allocation.
struct BlockRowsIn<'a> {
    derived: &'a [usize],
    kinds: &'a Kinds,
    roles: &'a Roles,
    finaliser: &'a [bool],
    collect: &'a [Option<bool>],
}

/// Per allocation: its category from its own first word, and that word when
/// it names a type in flash (its base kind).
struct Kinds {
    category: Vec<Category>,
    type_addrs: Vec<Option<u64>>,
}

impl Kinds {
    /// `n` unknown kinds, in the scratch's memory.
    fn refill(scratch: &mut Scratch, n: usize) -> Self {
        Kinds {
            category: refill(std::mem::take(&mut scratch.kinds), n, Category::Unknown),
            type_addrs: refill(std::mem::take(&mut scratch.type_addrs), n, None),
        }
    }

    /// The base kinds as a list, in `into`'s memory.
    fn base(&self, mut into: Vec<BaseKind>) -> Vec<BaseKind> {
        into.clear();
        into.extend(
            self.category.iter().zip(&self.type_addrs).map(|(&kind, &type_address)| BaseKind { kind, type_address }),
        );
        into
    }
}

/// Per allocation: its finaliser bit, and its collect bit (`None` without a
/// collect table).
struct TableBits {
    finaliser: Vec<bool>,
    collect: Vec<Option<bool>>,
}

/// Stage: the finaliser and collect bits of `allocs`, in the memory of `spare`.
fn table_bits(
    allocs: &[Allocation],
    ftb: &BitTables,
    ctb: &BitTables,
    (mut finaliser, mut collect): (Vec<bool>, Vec<Option<bool>>),
) -> TableBits {
    finaliser.clear();
    finaliser.extend(allocs.iter().map(|a| ftb.bit(a.start_block).unwrap_or(false)));
    collect.clear();
    collect.extend(allocs.iter().map(|a| ctb.bit(a.start_block)));
    TableBits { finaliser, collect }
}

/// The roles given by pointers, per allocation: the reference's category, and
/// the detailed role with the address of the object that gave it.
struct Roles {
    category: Vec<Category>,
    detail: Vec<(Role, Option<u64>)>,
}

impl Roles {
    /// Every allocation's role, in `into`'s memory.
    fn list(&self, mut into: Vec<RoleOf>) -> Vec<RoleOf> {
        into.clear();
        into.extend((0..self.category.len()).map(|i| self.of(i)));
        into
    }

    /// Allocation `i`'s role.
    fn of(&self, i: usize) -> RoleOf {
        let (category, (role, owner)) = (self.category[i], self.detail[i]);
        (category, role, owner)
    }

    /// Gives allocation `i` a role, unless it has one that ranks higher: the
    /// category's rank first (the reference's order), then the detailed role's.
    fn give(&mut self, i: usize, category: Category, role: Role, owner: Option<u64>) {
        let (Some(c), Some(d)) = (self.category.get_mut(i), self.detail.get_mut(i)) else { return };
        if (category.role_rank(), role) > (c.role_rank(), d.0) {
            if category.role_rank() > c.role_rank() {
                *c = category;
            }
            *d = (role, owner);
        }
    }
}

/// Words of a closure searched for its cells (`n_closed` is small: the
/// variables one function closes over).
const MAX_CLOSURE_WORDS: u64 = 256;

/// Areas of a split heap followed at most (real heaps have a handful).
const MAX_AREAS: usize = 256;

/// Map keys formatted per run at most (see [`qstr::TextCache`]).
const MAX_CACHED_KEYS: usize = 1 << 16;

const NO_ALLOC: u32 = u32::MAX;

/// Per-snapshot lookup from block number to the allocation covering it.
struct Heap<'a> {
    g: HeapGeometry,
    allocs: &'a [Allocation],
    owner: Vec<u32>,
}

impl Heap<'_> {
    /// Index of the allocation whose head is exactly `address`.
    fn head(&self, address: u64) -> Option<usize> {
        let b = self.g.block_of(address)?;
        if address != self.g.block_address(b) {
            return None;
        }
        let i = *self.owner.get(b as usize)?;
        (i != NO_ALLOC && self.allocs.get(i as usize)?.start_block == b).then_some(i as usize)
    }

    /// Index of the allocation covering `address` at any offset.
    fn containing(&self, address: u64) -> Option<usize> {
        let b = self.g.block_of(address)?;
        let i = *self.owner.get(b as usize)?;
        (i != NO_ALLOC).then_some(i as usize)
    }
}

/// One snapshot as the decoding stages read it: its memory and allocations,
/// with the lookups every stage makes.
struct View<'a> {
    mem: &'a Memory<'a>,
    /// Where the reads are recorded, when they are.
    log: &'a ReadLog,
    heap: &'a Heap<'a>,
    word: u64,
    /// Bytes of an `mp_obj_t` (a word, or 8 with NaN boxing on 32-bit).
    obj_bytes: u64,
}

impl<'a> View<'a> {
    fn addr_of(&self, i: usize) -> u64 {
        self.heap.g.block_address(self.heap.allocs[i].start_block)
    }

    /// Allocation `i`'s bytes (empty if they lie outside the snapshot), read
    /// for `what` (see [`reads`]).
    fn bytes_of(&self, i: usize, what: &'static str) -> &'a [u8] {
        let a = self.heap.allocs[i];
        let g = &self.heap.g;
        self.mem.bytes(g.block_address(a.start_block), a.blocks * g.bytes_per_block, what).unwrap_or(&[])
    }

    /// Index of the allocation whose head is exactly `address`, looked up for `what`.
    fn head(&self, address: u64, what: &'static str) -> Option<usize> {
        self.mem.note_lookup(address, what);
        self.heap.head(address)
    }

    /// Index of the allocation covering `address`, looked up for `what`.
    fn containing(&self, address: u64, what: &'static str) -> Option<usize> {
        self.mem.note_lookup(address, what);
        self.heap.containing(address)
    }

    /// Word `k` of `data`.
    fn word_at(&self, data: &[u8], k: u64) -> Option<u64> {
        data.get((k * self.word) as usize..((k + 1) * self.word) as usize).map(crate::memory::le_word)
    }

    /// `mp_obj_t` number `k` of `data`.
    fn obj_at(&self, data: &[u8], k: u64) -> Option<u64> {
        let n = self.obj_bytes;
        data.get((k * n) as usize..((k + 1) * n) as usize).map(crate::memory::le_word)
    }
}

impl<'f> Decoder<'f> {
    pub fn new(firmware: &'f Firmware, profile: &'f Profile, options: DecodeOptions) -> Self {
        let geometry = HeapGeometry::from_gc_init(firmware.heap_start, firmware.heap_bytes, &profile.heap);
        let mut root_names = FxHashMap::default();
        if let Ok(g) = &geometry {
            let word = profile.heap.word_bytes as u64;
            let mut a = firmware.ram_start.div_ceil(word).saturating_mul(word);
            while a.checked_add(word).is_some_and(|e| e <= firmware.ram_end) {
                if a >= g.heap_start && a < g.first.pool_end {
                    a = g.first.pool_end.div_ceil(word).saturating_mul(word);
                    continue;
                }
                if root_names.len() as u64 >= crate::firmware::symbols::MAX_NAMED_WORDS {
                    break; // the rest are named when met (see `root_name`)
                }
                root_names.insert(a, Arc::from(firmware.root_name(a)));
                a += word;
            }
        }
        Decoder { firmware, profile, geometry, options, root_names }
    }

    fn root_name(&self, address: u64) -> Arc<str> {
        self.root_names.get(&address).cloned().unwrap_or_else(|| Arc::from(self.firmware.root_name(address)))
    }

    fn memory<'a>(&'a self, ram: &'a [u8]) -> Memory<'a> {
        Memory {
            ram: Region::new(self.firmware.ram_start, ram),
            flash: Region::new(self.firmware.flash_base, &self.firmware.flash),
            word_bytes: self.profile.heap.word_bytes,
            tracker: None,
        }
    }

    /// One GC area as the snapshot's state says, read at `base` (where the offsets
    /// are counted from), if it adds up (see [`AreaState::area`]).
    fn area_at(&self, mem: &Memory, base: u64, first_block: u64) -> Option<HeapArea> {
        let state = AreaState::read(&mem.ram, base, &self.profile.state.gc, &self.profile.heap)?;
        state.area(&(self.firmware.ram_start..mem.ram.end()), &self.profile.heap, first_block)
    }

    /// The GC's geometry as the snapshot's own `mp_state_ctx.mem` says, if its
    /// first area adds up; further areas of a split heap are followed through
    /// `next` while they add up and do not overlap (a note says where the chain
    /// was cut).
    fn geometry_from_state(&self, mem: &Memory, notes: &mut Vec<String>) -> Option<HeapGeometry> {
        let gc = &self.profile.state.gc;
        if !gc.read {
            return None;
        }
        let state = self.firmware.state_address;
        let first = self.area_at(mem, state, 0)?;
        let bpb = self.profile.heap.bytes_per_block as u64;
        let mut g = HeapGeometry::from_area(&first, bpb);
        let Some(next_offset) = gc.next else { return Some(g) };
        let word = self.profile.heap.word_bytes;
        let mut next = state.checked_add(next_offset).and_then(|a| mem.ram.word(a, word)).unwrap_or(0);
        let mut first_block = first.blocks(bpb);
        while next != 0 {
            if g.more_areas.len() >= MAX_AREAS {
                notes.push(format!("the GC's area chain is longer than {MAX_AREAS}; the rest is left out"));
                break;
            }
            // The offsets are from mp_state_ctx; `next` is the area's first member.
            let base = next.wrapping_sub(next_offset);
            let area = self.area_at(mem, base, first_block).filter(|a| {
                let (lo, hi) = (a.alloc_table_start, a.pool_end);
                g.areas().all(|b| hi <= b.alloc_table_start || lo >= b.pool_end) && !(lo..hi).contains(&next)
            });
            let Some(area) = area else {
                notes.push(format!("GC area at 0x{next:08x} does not add up; it and the areas after it are left out"));
                break;
            };
            first_block += area.blocks(bpb);
            g.more_areas.push(area);
            next = mem.ram.word(next, word).unwrap_or(0);
        }
        Some(g)
    }

    /// The heap's geometry in one snapshot, and where it came from: the GC's own
    /// state when it adds up (`gc_state`), else gc_init's layout of the heap
    /// symbol (`heap_symbol`).
    fn snapshot_geometry(
        &self,
        mem: &Memory,
        notes: &mut Vec<String>,
    ) -> Result<(HeapGeometry, &'static str), DecodeError> {
        match self.geometry_from_state(mem, notes) {
            Some(g) => Ok((g, "gc_state")),
            None => Ok((self.geometry.clone()?, "heap_symbol")),
        }
    }

    /// [`Decoder::snapshot_geometry`] of the snapshot `ram`.
    pub fn geometry_of(&self, ram: &[u8]) -> Result<(HeapGeometry, &'static str), DecodeError> {
        self.snapshot_geometry(&self.memory(ram), &mut Vec::new())
    }

    pub fn decode(&self, index: u64, ram: &[u8]) -> Result<SnapshotReport, DecodeError> {
        self.decode_with(index, ram, &mut DecodeCache::default())
    }

    /// [`Decoder::decode`], reusing what `cache` kept from the snapshots before.
    pub fn decode_with(&self, index: u64, ram: &[u8], cache: &mut DecodeCache) -> Result<SnapshotReport, DecodeError> {
        self.decode_focused(index, ram, cache, Roots::Rows, |_| None).map(|(report, _)| report)
    }

    /// Whether a run decoder may decode this firmware's snapshots from one
    /// another: any layout, since what each row reads is recorded as it reads
    /// ([`reads`]); not for metrics only, which makes no rows.
    pub fn supports_focus(&self) -> bool {
        !self.options.metrics_only
    }

    /// [`Decoder::decode_with`], where `plan` may narrow the decode once the
    /// allocation table is read: with a [`Focus`], only its allocations (and
    /// those whose role changed) get block rows, edges and strings, the qstrs are
    /// not listed, and the base kinds it knows are taken as they are. `roots`
    /// says how the roots come out: as edge rows, or as words in the facts (see
    /// [`roots`]); with words, the decode is a run decoder's, and what each
    /// allocation's rows read is recorded in the facts ([`reads`]).
    pub fn decode_focused(
        &self,
        index: u64,
        ram: &[u8],
        cache: &mut DecodeCache,
        roots: Roots,
        plan: impl FnOnce(&PlanInput) -> Option<Focus>,
    ) -> Result<(SnapshotReport, DecodeFacts), DecodeError> {
        let log = ReadLog::new(self.options.drop_read);
        let mut mem = self.memory(ram);
        if matches!(roots, Roots::Words(_)) {
            mem.tracker = Some(Tracker { log: &log, pinned: None });
        }
        // The geometry, the allocation table and its bits are read whole for
        // every snapshot, and the planner compares them with the snapshot before.
        let walked = {
            let _untracked = log.scope(UNTRACKED);
            self.walk(index, &mem, cache)?
        };
        let Walked { mut report, mut recycled, ftb, ctb } = walked;
        if self.options.metrics_only {
            return Ok((report, DecodeFacts::default()));
        }
        let g = report.geometry.clone();
        let mut scratch = std::mem::take(&mut cache.scratch);
        let spare = (std::mem::take(&mut recycled.finaliser), std::mem::take(&mut recycled.collect));
        let bits = table_bits(&recycled.allocations, &ftb, &ctb, spare);
        report.finaliser_blocks = bits.finaliser.iter().filter(|f| **f).count() as u64;
        let allocs = &recycled.allocations;
        let owner = owners(allocs, g.pool_blocks(), std::mem::take(&mut scratch.owner));
        let (finaliser, collect) = (&bits.finaliser, &bits.collect);
        let input = PlanInput { ram, geometry: &g, allocations: allocs, owner: &owner, finaliser, collect };
        let n = allocs.len();
        let focus = plan(&input).filter(|f| f.derive.len() == n && f.known.len() == n && f.roles.len() == n);
        let heap = Heap { g: g.clone(), allocs, owner };
        let (word, obj_bytes) = (self.profile.heap.word_bytes as u64, self.profile.obj_bytes() as u64);
        let view = View { mem: &mem, log: &log, heap: &heap, word, obj_bytes };
        let mut derive = refill(std::mem::take(&mut scratch.derive), n, true);
        if let Some(f) = &focus {
            derive.copy_from_slice(&f.derive);
        }
        let (mut qstrs, ram_pools) = self.qstr_pools(&mem)?;

        // Base kinds, then roles given by pointers (made whole every snapshot).
        let mut kinds = Kinds::refill(&mut scratch, n);
        self.base_kinds(&view, &ram_pools, focus.as_ref().map(|f| &f.known[..]), &mut kinds);
        let chunks = focus.as_ref().map(|f| &f.qstr_chunks[..]);
        let pools = QstrPools { ram_pools: &ram_pools, known_chunks: chunks };
        let out = self.roles(&view, &kinds, &pools, &mut qstrs, &mut cache.texts, &mut report, &mut scratch)?;
        let RoleOut { roles, readline, bytecodes } = out;
        if let Some(f) = &focus {
            self.rederive_changed_roles(&view, &f.roles, &roles, &ram_pools, &mut derive, &mut kinds);
        }
        let mut derived = std::mem::take(&mut scratch.derived);
        derived.clear();
        derived.extend((0..n).filter(|&i| derive[i]));

        // The rows of the allocations made: strings, names, edges, blocks.
        report.strings = self.string_rows(&view, &derived, &roles, &readline, &mut cache.texts);
        let mut names = refill(std::mem::take(&mut scratch.names), n, None);
        let mut preludes = refill(std::mem::take(&mut scratch.preludes), n, None);
        let texts = &mut cache.texts;
        self.class_names(&view, &derived, &kinds.category, &mut qstrs, texts, &mut names);
        self.module_names(&view, &derived, &kinds.type_addrs, &mut qstrs, texts, &mut names);
        self.function_names(&view, &bytecodes, &derive, &roles, &mut qstrs, texts, (&mut names, &mut preludes));
        let mut root_words = std::mem::take(&mut recycled.root_words);
        root_words.clear();
        if !self.options.skip_edges {
            report.edges.reserve(cache.edges);
            self.pointer_edges(&view, &derived, &roles.category, &mut qstrs, cache, &mut report.edges);
            self.roots(&view, &roots, &mut report.edges, &mut root_words);
        }
        let rows = BlockRowsIn { derived: &derived, kinds: &kinds, roles: &roles, finaliser, collect };
        report.blocks = self.block_rows(&view, &rows, &mut names, &preludes);
        cache.edges = report.edges.len();

        // What a run decoder carries to the next snapshot.
        drop((view, qstrs));
        let ram_range = (self.firmware.ram_start, self.firmware.ram_start.saturating_add(ram.len() as u64));
        let reads = mem.tracker.is_some().then(|| log.finish(&g, allocs, &heap.owner, ram_range));
        let mut focus = focus;
        if let Some(f) = &mut focus {
            f.derive.copy_from_slice(&derive); // with the allocations whose role changed
        }
        let (base, role_list) =
            (kinds.base(std::mem::take(&mut recycled.base)), roles.list(std::mem::take(&mut recycled.roles)));
        names.clear();
        let (roles, details) = (roles.category, roles.detail);
        let (owner, (kinds, type_addrs)) = (heap.owner, (kinds.category, kinds.type_addrs));
        cache.scratch =
            Scratch { owner, kinds, type_addrs, roles, details, names, preludes, derived, derive, bytecodes };
        let facts = DecodeFacts {
            base,
            roles: role_list,
            allocations: recycled.allocations,
            finaliser: bits.finaliser,
            collect: bits.collect,
            focus,
            root_words,
            reads,
        };
        Ok((report, facts))
    }

    /// The qstr reader of a snapshot, at the chain from `vm.last_pool`, and the
    /// pools of the chain in RAM. Every row may name a qstr: what the pools
    /// read is read for all of them ([`GLOBAL`]).
    fn qstr_pools<'m>(&self, mem: &Memory<'m>) -> Result<(qstr::QstrReader<'m>, Vec<qstr::PoolHeader>), DecodeError> {
        let state = self.firmware.state_address;
        let last_pool = state_word(mem, state, self.profile.state.last_pool, "vm.last_pool")?;
        let qstrs = qstr::QstrReader::new(mem.pinned(GLOBAL), self.profile, last_pool);
        let in_ram = |w: u64| w > self.firmware.ram_start && w < self.firmware.ram_end;
        let ram_pools = qstrs.chain.iter().take_while(|h| in_ram(h.address)).copied().collect();
        Ok((qstrs, ram_pools))
    }

    /// Stage: the roles pointers give, from other objects, from the VM's state
    /// and from the qstr pools (with the qstrs' rows, in a whole decode).
    #[allow(clippy::too_many_arguments)]
    fn roles(
        &self,
        v: &View,
        kinds: &Kinds,
        pools: &QstrPools,
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        report: &mut SnapshotReport,
        scratch: &mut Scratch,
    ) -> Result<RoleOut, DecodeError> {
        let n = kinds.category.len();
        let roles = Roles {
            category: refill(std::mem::take(&mut scratch.roles), n, Category::Unknown),
            detail: refill(std::mem::take(&mut scratch.details), n, (Role::None, None)),
        };
        let mut bytecodes = std::mem::take(&mut scratch.bytecodes);
        bytecodes.clear();
        let mut out = RoleOut { roles, readline: Vec::new(), bytecodes };
        {
            // Made whole for every snapshot: a run decoder compares the roles.
            let _untracked = v.log.scope(UNTRACKED);
            self.object_roles(v, &kinds.category, &kinds.type_addrs, &mut out);
            self.state_roles(v, &mut out, &mut report.notes)?;
        }
        let mut qstr_out = (&mut report.qstrs, &mut report.notes);
        self.qstr_rows(v, pools, qstrs, texts, &mut out.roles, &mut qstr_out);
        Ok(out)
    }

    /// Stage (a focused decode): the allocations whose role differs from the
    /// snapshot before's are made again; their base kind was known, and is read
    /// again so that its reads are theirs.
    fn rederive_changed_roles(
        &self,
        v: &View,
        before: &[Option<RoleOf>],
        roles: &Roles,
        ram_pools: &[qstr::PoolHeader],
        derive: &mut [bool],
        kinds: &mut Kinds,
    ) {
        for i in 0..derive.len() {
            if !derive[i] && before[i] != Some(roles.of(i)) {
                derive[i] = true;
                let _s = v.log.scope(i as u32);
                (kinds.category[i], kinds.type_addrs[i]) = self.base_kind_of(v, i, ram_pools);
            }
        }
    }

    /// Stage: aligned words of RAM outside the heap that hold an allocation's
    /// address, as edge rows or (a run decoder's, to diff with the snapshot
    /// before's) as words.
    fn roots(&self, v: &View, roots: &Roots, edges: &mut Vec<EdgeRow>, words: &mut Vec<RootWord>) {
        let _untracked = v.log.scope(UNTRACKED);
        let (g, head) = (&v.heap.g, |w| v.heap.head(w).is_some());
        match roots {
            Roots::Rows => self.root_words(v.mem, g, None, head, |r| {
                if r.head {
                    edges.push(self.root_edge(r.address, r.value, g));
                }
            }),
            Roots::Words(before) => self.root_words(v.mem, g, before.as_ref(), head, |r| words.push(r)),
        }
    }

    /// Stage: the geometry, the allocation table walk (free runs, `gc_info`),
    /// the plausibility check and the finaliser and collect tables. The facts
    /// returned are the recycled vectors, the allocations refilled.
    fn walk<'m>(&self, index: u64, mem: &Memory<'m>, cache: &mut DecodeCache) -> Result<Walked<'m>, DecodeError> {
        let fw = self.firmware;
        let mut notes = Vec::new();
        let (g, geometry_source) = self.snapshot_geometry(mem, &mut notes)?;
        if g.heap_start < fw.ram_start || g.first.pool_end > mem.ram.end() {
            return Err(DecodeError::HeapOutsideRam {
                start: g.heap_start,
                end: g.first.pool_end,
                ram_start: fw.ram_start,
                ram_end: mem.ram.end(),
            });
        }
        let mut tables = Vec::with_capacity(1 + g.more_areas.len());
        for a in g.areas() {
            let atb = mem.bytes(a.alloc_table_start, a.alloc_table_bytes, "allocation table")?;
            tables.push((atb, a.first_block, a.pool_end - a.pool_start));
        }
        let mut recycled = std::mem::take(&mut cache.recycled);
        let walk = alloc_table::walk_areas_into(
            tables,
            g.bytes_per_block,
            !self.options.metrics_only,
            std::mem::take(&mut recycled.allocations),
        );
        recycled.allocations = walk.allocations;
        let mut report = SnapshotReport {
            index,
            geometry: g,
            geometry_source,
            gc_info: walk.gc_info,
            marked_blocks: walk.marked_blocks,
            orphan_tail_blocks: walk.orphan_tail_blocks,
            finaliser_blocks: 0,
            allocations: recycled.allocations.len() as u64,
            blocks: Vec::new(),
            edges: Vec::new(),
            qstrs: Vec::new(),
            strings: Vec::new(),
            free_runs: walk.free_runs,
            notes,
            suspect: None,
            metrics_only: self.options.metrics_only,
        };
        if let Some(why) = plausible::check(self.profile, mem, fw.state_address, geometry_source, walk.orphan_tail_runs)
        {
            if !self.options.keep_suspect {
                return Err(why);
            }
            report.suspect = Some(why.to_string());
        }
        let (ftb, ctb) = if self.options.metrics_only {
            (BitTables::new(1), BitTables::new(1))
        } else {
            self.bit_tables(mem, &report.geometry)?
        };
        Ok(Walked { report, recycled, ftb, ctb })
    }

    /// Stage: the block rows of the `derived` allocations.
    fn block_rows(&self, v: &View, r: &BlockRowsIn, names: &mut [Name], preludes: &[Option<Prelude>]) -> Vec<BlockRow> {
        let mut rows = Vec::with_capacity(r.derived.len());
        for &i in r.derived {
            let a = &v.heap.allocs[i];
            let (role, detail, owner) = r.roles.of(i);
            let (base, type_address) = (r.kinds.category[i], r.kinds.type_addrs[i]);
            let category = if role != Category::Unknown { role } else { base };
            let kind = detail.kind().unwrap_or_else(|| self.base_kind(base, type_address));
            rows.push(BlockRow {
                address: v.addr_of(i),
                start_block: a.start_block,
                blocks: a.blocks,
                kind,
                category,
                owner,
                type_address,
                name: names[i].take(),
                has_finaliser: r.finaliser[i],
                collect: r.collect[i],
                marked: a.marked,
                prelude: preludes[i],
            });
        }
        rows
    }

    /// Stage: the strings' rows of the `derived` allocations holding string
    /// data: a `str`'s (its length read from the `str` that gave the role) or a
    /// REPL history line's (up to its NUL).
    fn string_rows(
        &self,
        v: &View,
        derived: &[usize],
        roles: &Roles,
        readline: &[usize],
        texts: &mut qstr::TextCache,
    ) -> Vec<StringRow> {
        let objects = &self.profile.objects;
        let mut rows = Vec::new();
        for &sb in derived {
            let (_, role, owner) = roles.of(sb);
            let _s = v.log.scope(sb as u32);
            let row = match (role, owner) {
                (Role::StrData, Some(owner)) => {
                    let Some(si) = v.head(owner, "str length") else { continue };
                    let len = v.word_at(v.bytes_of(si, "str length"), objects.str_len_word as u64).unwrap_or(0);
                    let bytes = v.bytes_of(sb, "own bytes");
                    let text = bytes.get(..len.min(bytes.len() as u64) as usize).unwrap_or(&[]);
                    StringRow {
                        block: v.addr_of(sb),
                        owner: Some(owner),
                        source: "str",
                        length: len,
                        text: texts.text(text),
                    }
                }
                (Role::ReadlineLine, _) if readline.contains(&sb) => {
                    let text = v.bytes_of(sb, "own bytes").split(|b| *b == 0).next().unwrap_or(&[]);
                    let (block, length, text) = (v.addr_of(sb), text.len() as u64, texts.text(text));
                    StringRow { block, owner: None, source: "readline_hist", length, text }
                }
                _ => continue,
            };
            rows.push(row);
        }
        rows
    }

    /// Stage: each area's finaliser and collect tables, as tables of one bit a
    /// block (empty when the build has none).
    fn bit_tables<'m>(
        &self,
        mem: &Memory<'m>,
        g: &HeapGeometry,
    ) -> Result<(BitTables<'m>, BitTables<'m>), DecodeError> {
        let h = &self.profile.heap;
        let (mut ftb, mut ctb) = (BitTables::new(h.blocks_per_ftb), BitTables::new(h.blocks_per_ctb));
        for a in g.areas() {
            if let Some(start) = a.finaliser_table_start {
                ftb.areas.push((a.first_block, mem.bytes(start, a.finaliser_table_bytes, "finaliser table")?));
            }
            if let Some(start) = a.collect_table_start {
                let len = a.blocks(g.bytes_per_block).div_ceil(ctb.per_byte);
                ctb.areas.push((a.first_block, mem.bytes(start, len, "collect table")?));
            }
        }
        Ok((ftb, ctb))
    }

    /// Stage: the qstrs of the pools in RAM, oldest pool first (so the rows come
    /// out in id order), and the role of the chunks holding their text. A
    /// focused decode lists no qstrs: the pools did not change (what they read
    /// is read for every row), and it knows the chunks.
    fn qstr_rows(
        &self,
        v: &View,
        pools: &QstrPools,
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        roles: &mut Roles,
        (rows, notes): &mut (&mut Vec<QstrRow>, &mut Vec<String>),
    ) {
        let _global = v.log.scope(GLOBAL);
        if let Some(chunks) = pools.known_chunks {
            for &b in chunks {
                if let Some(i) = v.head(v.heap.g.block_address(b), "qstr chunk") {
                    roles.give(i, Category::QstrChunk, Role::QstrChunk, None);
                }
            }
            return;
        }
        let header_words = self.profile.objects.qstr_pool_header_words as u64;
        for h in pools.ram_pools.iter().rev() {
            let Some(pi) = v.head(h.address, "qstr pool") else {
                notes.push(format!("qstr pool 0x{:08x} is not an allocated block", h.address));
                continue;
            };
            let capacity = (v.bytes_of(pi, "qstr pool").len() as u64 / v.word).saturating_sub(header_words);
            for (id, d) in qstrs.entries(h, capacity) {
                let chunk = v.containing(d.address, "qstr chunk");
                if let Some(ci) = chunk {
                    roles.give(ci, Category::QstrChunk, Role::QstrChunk, None);
                }
                rows.push(QstrRow {
                    pool: h.address,
                    chunk: chunk.map(|c| v.addr_of(c)),
                    id,
                    address: d.address,
                    hash: d.hash,
                    length: d.text.len() as u64,
                    text: texts.text(d.text),
                });
            }
        }
    }

    /// Stage: the pointer edges of the `derived` allocations: every word whose
    /// value is a block-aligned RAM address, with its map key when the word is a
    /// value slot of a map table.
    fn pointer_edges(
        &self,
        v: &View,
        derived: &[usize],
        categories: &[Category],
        qstrs: &mut qstr::QstrReader,
        cache: &mut DecodeCache,
        edges: &mut Vec<EdgeRow>,
    ) {
        let (o, heap) = (&self.profile.objects, v.heap);
        let obj_words = (v.obj_bytes / v.word).max(1);
        // Only block-aligned RAM addresses (as `in_ram` has it): most words are not.
        let ram = self.firmware.ram_start.saturating_add(1)..self.firmware.ram_end;
        for &i in derived {
            let _s = v.log.scope(i as u32);
            let is_map_table = categories[i] == Category::MapTable;
            let (address, data) = (v.addr_of(i), v.bytes_of(i, "own bytes"));
            scan::candidates(data, v.word as usize, heap.g.bytes_per_block, ram.clone(), |k, w| {
                let k = k as u64;
                let to = v.containing(w, "pointer target");
                let mut map_key = None;
                // A value slot: the second `mp_obj_t` of a pair (its low word).
                if is_map_table && k % (2 * obj_words) == obj_words {
                    let key = v.obj_at(data, k / obj_words - 1).unwrap_or(0);
                    // MP_OBJ_NULL and MP_OBJ_SENTINEL mark empty and deleted slots.
                    if key != o.map_empty_key && key != o.map_deleted_key {
                        map_key = Some(self.key_text(key, qstrs, cache));
                    }
                }
                edges.push(EdgeRow {
                    from_address: Some(address),
                    from_block: Some(heap.allocs[i].start_block),
                    from_word: Some(k as u32),
                    root_address: None,
                    root_name: None,
                    to_address: w,
                    to_alloc_address: to.map(|j| v.addr_of(j)),
                    to_block: to.map(|j| heap.allocs[j].start_block),
                    to_is_head: to.is_some_and(|j| v.addr_of(j) == w),
                    map_key,
                });
            });
        }
    }

    /// A class's name: the qstr in its `mp_obj_type_t.name`.
    fn type_name(
        &self,
        v: &View,
        i: usize,
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        what: &'static str,
    ) -> Name {
        let o = &self.profile.objects;
        let (at, size) = (o.type_name_offset as usize, o.type_name_bytes.min(8) as usize);
        let q = v.bytes_of(i, what).get(at..at + size).map(crate::memory::le_word);
        q.and_then(|q| qstrs.text(q, texts))
    }

    /// Stage: the names of the classes made at run time, and of their instances
    /// (their class's name, read there).
    fn class_names(
        &self,
        v: &View,
        derived: &[usize],
        kinds: &[Category],
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        names: &mut [Name],
    ) {
        for &i in derived {
            let _s = v.log.scope(i as u32);
            names[i] = match kinds[i] {
                Category::Type => self.type_name(v, i, qstrs, texts, "own bytes"),
                Category::Instance => {
                    let ti = v.word_at(v.bytes_of(i, "own bytes"), 0).and_then(|p| v.head(p, "instance's class"));
                    let named = |ti: usize| self.type_name(v, ti, qstrs, texts, "instance's class");
                    ti.filter(|&ti| kinds[ti] == Category::Type).and_then(named)
                }
                _ => continue,
            };
        }
    }

    /// Stage: modules by the `__name__` in their globals' table (two pointers
    /// away: the module's globals dict, then its table).
    fn module_names(
        &self,
        v: &View,
        derived: &[usize],
        type_addrs: &[Option<u64>],
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        names: &mut [Name],
    ) {
        let (o, module) = (&self.profile.objects, self.firmware.types.module);
        let (repr, word_bytes) = (self.profile.object_repr, self.profile.heap.word_bytes);
        for &i in derived {
            if type_addrs[i].is_none() || type_addrs[i] != module {
                continue;
            }
            let _s = v.log.scope(i as u32);
            let own = v.bytes_of(i, "own bytes");
            let globals = v.word_at(own, o.module_globals_word as u64).and_then(|p| v.head(p, "module globals"));
            let table = globals.and_then(|g| v.word_at(v.bytes_of(g, "module globals"), o.dict_table_word as u64));
            let Some(table) = table.and_then(|p| v.head(p, "globals table")) else { continue };
            let table = v.bytes_of(table, "globals table");
            let pairs = table.len() as u64 / (2 * v.obj_bytes);
            for k in 0..pairs.min(1024) {
                let key = v.obj_at(table, 2 * k).unwrap_or(0);
                let Immediate::Qstr(kq) = repr.decode(key, word_bytes) else { continue };
                if qstrs.text(kq, texts).as_deref() != Some("__name__") {
                    continue;
                }
                let value = v.obj_at(table, 2 * k + 1).unwrap_or(0);
                if let Immediate::Qstr(vq) = repr.decode(value, word_bytes) {
                    names[i] = qstrs.text(vq, texts);
                }
                break;
            }
        }
    }

    /// Stage: each bytecode function and its bytecode, named by the simple name
    /// in the bytecode's prelude (parsed into `preludes`). A bytecode shared by
    /// several functions is named through the one that gave it its role.
    #[allow(clippy::too_many_arguments)]
    fn function_names(
        &self,
        v: &View,
        bytecodes: &[(usize, usize)],
        derive: &[bool],
        roles: &Roles,
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        (names, preludes): (&mut [Name], &mut [Option<Prelude>]),
    ) {
        for &(fi, bi) in bytecodes {
            if derive[fi] {
                let _s = v.log.scope(fi as u32);
                names[fi] = self.bytecode_name(v, fi, bi, qstrs, texts).1;
            }
            if derive[bi] && roles.of(bi).1 == Role::Bytecode && roles.of(bi).2 == Some(v.addr_of(fi)) {
                let _s = v.log.scope(bi as u32);
                (preludes[bi], names[bi]) = self.bytecode_name(v, fi, bi, qstrs, texts);
            }
        }
    }

    /// The prelude of function `fi`'s bytecode `bi`, and the name it gives.
    fn bytecode_name(
        &self,
        v: &View,
        fi: usize,
        bi: usize,
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
    ) -> (Option<Prelude>, Name) {
        let o = &self.profile.objects;
        let (p, q) = match o.bytecode_prelude {
            BytecodePrelude::Fixed => {
                let p = bytecode::parse_prelude(v.bytes_of(bi, "bytecode"), o.bytecode_qstr_bytes);
                (p, p.and_then(|p| p.simple_name))
            }
            BytecodePrelude::Packed => {
                let p = bytecode::parse_prelude_packed(v.bytes_of(bi, "bytecode"));
                let context = v.word_at(v.bytes_of(fi, "function context"), o.fun_bc_context_word as u64);
                (p, p.and_then(|p| p.simple_name).and_then(|n| self.qstr_of_name(v.mem, context, n)))
            }
        };
        (p, q.and_then(|q| qstrs.text(q, texts)))
    }

    /// Stage: the roles objects give the blocks they point at (a dict its
    /// table, a str its data, a function its bytecode, ...), with the functions'
    /// bytecode on the way. It runs whole for every snapshot (its reads are
    /// not recorded: a run decoder compares the roles).
    fn object_roles(&self, v: &View, kinds: &[Category], type_addrs: &[Option<u64>], out: &mut RoleOut) {
        let objects = &self.profile.objects;
        let head = |p: u64| v.heap.head(p);
        for (i, kind) in kinds.iter().enumerate() {
            let data = v.bytes_of(i, "roles");
            let w = |k: u32| v.word_at(data, k as u64);
            let roles = &mut out.roles;
            match kind {
                Category::Dict => {
                    if let Some(tb) = w(objects.dict_table_word).and_then(head) {
                        roles.give(tb, Category::MapTable, Role::DictTable, Some(v.addr_of(i)));
                    }
                }
                Category::Instance => {
                    if let Some(tb) = w(objects.instance_table_word).and_then(head) {
                        roles.give(tb, Category::MapTable, Role::InstanceTable, Some(v.addr_of(i)));
                    }
                }
                Category::Str => {
                    if let Some(sb) = w(objects.str_data_word).and_then(head) {
                        roles.give(sb, Category::StringData, Role::StrData, Some(v.addr_of(i)));
                    }
                }
                Category::Function => {
                    if let Some(bb) = w(objects.fun_bc_bytecode_word).and_then(head) {
                        roles.give(bb, Category::Bytecode, Role::Bytecode, Some(v.addr_of(i)));
                        out.bytecodes.push((i, bb));
                    }
                    self.give_owned_role(roles, i, type_addrs[i], data, v.heap, type_addrs, v.addr_of(i));
                }
                _ => self.give_owned_role(roles, i, type_addrs[i], data, v.heap, type_addrs, v.addr_of(i)),
            }
        }
    }

    /// Stage: the roles the VM's state gives: the tables of `__main__`'s and
    /// the modules' dicts, the items of `sys.path` and `sys.argv`, the REPL's
    /// history lines. Like [`Decoder::object_roles`], it runs whole.
    fn state_roles(&self, v: &View, out: &mut RoleOut, notes: &mut Vec<String>) -> Result<(), DecodeError> {
        let (state, s) = (self.firmware.state_address, &self.profile.state);
        let in_ram = |w: u64| w > self.firmware.ram_start && w < self.firmware.ram_end;
        for (offset, what) in [
            (s.dict_main_table, "vm.dict_main.map.table"),
            (s.loaded_modules_table, "vm.mp_loaded_modules_dict.map.table"),
        ] {
            let p = state_word(v.mem, state, offset, what)?;
            if let Some(tb) = v.heap.head(p) {
                out.roles.give(tb, Category::MapTable, Role::DictTable, None);
            } else if p != 0 && in_ram(p) {
                notes.push(format!("{what} points at 0x{p:08x}, which is not an allocated block"));
            }
        }
        // `sys.path` and `sys.argv` are lists inside the VM's state; their items
        // arrays are on the heap.
        for (offset, what) in
            [(s.sys_path_items, "vm.mp_sys_path_obj.items"), (s.sys_argv_items, "vm.mp_sys_argv_obj.items")]
        {
            if let Some(ib) = v.heap.head(state_word(v.mem, state, offset, what)?) {
                out.roles.give(ib, Category::Unknown, Role::ListItems, None);
            }
        }
        let Some(base) = s.readline_hist else { return Ok(()) };
        for k in 0..s.readline_hist_len as u64 {
            let p = state_word(v.mem, state, base.saturating_add(k * v.word), "vm.readline_hist")?;
            if let Some(sb) = v.heap.head(p) {
                out.roles.give(sb, Category::StringData, Role::ReadlineLine, None);
                out.readline.push(sb);
            }
        }
        Ok(())
    }

    /// Stage: each allocation's category from its own first word (a type in
    /// flash, a class on the heap, a qstr pool), or as the snapshot before had
    /// it when a focused decode `known`s it; `type_addrs` gets the flash words.
    fn base_kinds(
        &self,
        v: &View,
        ram_pools: &[qstr::PoolHeader],
        known: Option<&[Option<BaseKind>]>,
        kinds: &mut Kinds,
    ) {
        for i in 0..kinds.category.len() {
            (kinds.category[i], kinds.type_addrs[i]) = match known.and_then(|k| k[i]) {
                Some(k) => (k.kind, k.type_address),
                None => {
                    let _s = v.log.scope(i as u32);
                    self.base_kind_of(v, i, ram_pools)
                }
            };
        }
    }

    /// Allocation `i`'s category from its own first word, and that word when it
    /// lies in flash.
    fn base_kind_of(&self, v: &View, i: usize, ram_pools: &[qstr::PoolHeader]) -> (Category, Option<u64>) {
        let t = &self.firmware.types;
        let is = |opt: Option<u64>, w: u64| opt == Some(w);
        let address = v.addr_of(i);
        let w0 = v.word_at(v.bytes_of(i, "own bytes"), 0).unwrap_or(0);
        if ram_pools.iter().any(|p| p.address == address) {
            return (Category::QstrPool, None);
        }
        if w0 != 0 && v.mem.in_flash(w0) {
            let kind = if t.functions.contains(&w0) {
                Category::Function
            } else if is(t.dict, w0) {
                Category::Dict
            } else if is(t.property, w0) {
                Category::Property
            } else if is(t.map, w0) {
                Category::Map
            } else if is(t.type_type, w0) {
                Category::Type
            } else if is(t.tuple, w0) {
                Category::Tuple
            } else if is(t.str, w0) {
                Category::Str
            } else if is(t.bytearray, w0) {
                Category::Bytearray
            } else {
                Category::Unknown
            };
            return (kind, Some(w0));
        }
        // An instance of a class defined at run time: its type is a heap object
        // whose own type is `type`.
        let ti = v.head(w0, "instance's class");
        if ti.is_some_and(|ti| v.word_at(v.bytes_of(ti, "instance's class"), 0).is_some_and(|tw| is(t.type_type, tw))) {
            return (Category::Instance, None);
        }
        (Category::Unknown, None)
    }

    /// The kind an allocation has by itself, before any role: from its category
    /// where that says (a qstr pool, an instance of a Python class), else from its
    /// type in flash (see [`kinds`]).
    fn base_kind(&self, category: Category, type_address: Option<u64>) -> &'static str {
        match category {
            Category::QstrPool => "qstr_pool",
            Category::Instance => "instance",
            _ => type_address.and_then(|t| self.firmware.type_kinds.get(&t).copied()).unwrap_or("unknown"),
        }
    }

    /// The role an object of a built-in type without a reference category gives
    /// the blocks it owns: a list its items, a set its table, a bytes object or an
    /// array its data, a closure its cells. `data` is the object's own bytes.
    #[allow(clippy::too_many_arguments)]
    fn give_owned_role(
        &self,
        roles: &mut Roles,
        i: usize,
        type_address: Option<u64>,
        data: &[u8],
        heap: &Heap,
        type_addrs: &[Option<u64>],
        address: u64,
    ) {
        let (t, objects) = (&self.firmware.types, &self.profile.objects);
        let Some(ta) = type_address else { return };
        let word = self.profile.heap.word_bytes as u64;
        let word_at = |k: u64| data.get((k * word) as usize..((k + 1) * word) as usize).map(crate::memory::le_word);
        let head = |k: u32| word_at(k as u64).and_then(|p| heap.head(p));
        let is = |opt: Option<u64>| opt == Some(ta);
        let (at, role) = if is(t.list) {
            (head(objects.list_items_word), Role::ListItems)
        } else if is(t.set) || is(t.frozenset) {
            (head(objects.set_table_word), Role::SetTable)
        } else if is(t.bytearray) || is(t.array) {
            (head(objects.array_items_word), Role::ArrayItems)
        } else if is(t.bytes) {
            (head(objects.str_data_word), Role::BytesData)
        } else if is(t.fun_bc) {
            // Current MicroPython: the raw code of inner functions, and the
            // module context (typed when it is a module; the REPL's is not).
            if let Some(c) = objects.fun_bc_child_table_word.and_then(head) {
                roles.give(c, Category::Unknown, Role::ChildTable, Some(address));
            }
            let packed = objects.bytecode_prelude == BytecodePrelude::Packed;
            let context = head(objects.fun_bc_context_word).filter(|&c| packed && type_addrs[c].is_none());
            if let Some(c) = context {
                roles.give(c, Category::Unknown, Role::ModuleContext, None);
            }
            return;
        } else if is(t.int) {
            (head(objects.int_digits_word), Role::IntDigits)
        } else if self.firmware.type_kinds.get(&ta) == Some(&"exception") {
            (objects.exception_traceback_word.and_then(head), Role::Traceback)
        } else if is(t.module) && objects.context_qstr_table_word.is_some() {
            // Current MicroPython allocates every module as an `mp_module_context_t`.
            (objects.context_qstr_table_word.and_then(head), Role::QstrTable)
        } else if is(t.closure) && t.cell.is_some() {
            // `closed[]` follows `fun` and `n_closed`; the cells are the typed
            // objects among the words after the first.
            for k in 1..(data.len() as u64 / word).min(MAX_CLOSURE_WORDS) {
                let cell = word_at(k).and_then(|p| heap.head(p)).filter(|&c| type_addrs[c] == t.cell);
                if let Some(c) = cell {
                    roles.give(c, Category::Unknown, Role::Cell, Some(address));
                }
            }
            return;
        } else {
            return;
        };
        if let Some(target) = at.filter(|&b| b != i) {
            roles.give(target, Category::Unknown, role, Some(address));
        }
    }

    /// The qstr a packed prelude's name value stands for: the value itself, or (when
    /// the build's bytecode indexes a table) entry `index` of the module context's
    /// `constants.qstr_table`, a `qstr_short_t` (16-bit) array. `context` is the
    /// function's `context` word; every pointer is read bounds-checked.
    fn qstr_of_name(&self, mem: &Memory, context: Option<u64>, index: u64) -> Option<u64> {
        let objects = &self.profile.objects;
        let Some(table_word) = objects.context_qstr_table_word else { return Some(index) };
        let word = self.profile.heap.word_bytes as u64;
        let table = mem.word(context?.checked_add(table_word as u64 * word)?, "module qstr table").ok()?;
        let entry = mem.bytes(table.checked_add(index.checked_mul(2)?)?, 2, "module qstr table").ok()?;
        Some(crate::memory::le_word(entry))
    }

    /// A map key as the reference prints it; qstrs are looked up in this snapshot's
    /// pools, other keys are formatted once per run.
    fn key_text(&self, key: u64, qstrs: &mut qstr::QstrReader, cache: &mut DecodeCache) -> Arc<str> {
        let repr = self.profile.object_repr;
        if let Immediate::Qstr(q) = repr.decode(key, self.profile.heap.word_bytes) {
            return qstrs.text(q, &mut cache.texts).unwrap_or_else(|| Arc::from(format!("<qstr {q}>")));
        }
        if let Some(t) = cache.keys.get(&key) {
            return Arc::clone(t);
        }
        let t: Arc<str> = self.format_object(key, qstrs, &mut cache.texts).into();
        if cache.keys.len() < MAX_CACHED_KEYS {
            cache.keys.insert(key, Arc::clone(&t));
        }
        t
    }

    /// Which object representation the snapshot's `__main__` globals use: their
    /// keys are qstrs, valid ids under one encoding and not under the other. Debug
    /// info cannot tell A from C (`mp_obj_t` is a pointer in both); the heap can.
    /// `None` when the keys do not decide.
    pub fn infer_object_repr(&self, ram: &[u8]) -> Option<crate::profile::ObjectRepr> {
        use crate::profile::ObjectRepr;
        let mem = self.memory(ram);
        let state = self.firmware.state_address;
        let word = self.profile.heap.word_bytes as u64;
        // Every value here is read from the snapshot (or the map): checked.
        let s = &self.profile.state;
        let last_pool = mem.word(state.checked_add(s.last_pool)?, "vm.last_pool").ok()?;
        let qstrs = qstr::QstrReader::new(mem, self.profile, last_pool);
        let total = qstrs.chain.first().and_then(|h| h.total_prev_len.checked_add(h.len))?;
        let table_word = state.checked_add(s.dict_main_table)?;
        let table = mem.word(table_word, "vm.dict_main.map.table").ok()?;
        let before = word.checked_mul(self.profile.objects.map_alloc_words_before_table as u64)?;
        let alloc = mem.word(table_word.checked_sub(before)?, "vm.dict_main.map.alloc").ok()?;
        let (mut a, mut c) = (0, 0);
        for i in 0..alloc.min(4096) {
            let Some(at) = table.checked_add(2 * i * word) else { break };
            let Ok(key) = mem.word(at, "dict_main key") else { break };
            if key == self.profile.objects.map_empty_key || key == self.profile.objects.map_deleted_key {
                continue;
            }
            for (repr, hits) in [(ObjectRepr::A, &mut a), (ObjectRepr::C, &mut c)] {
                if let crate::profile::Immediate::Qstr(id) = repr.decode(key, self.profile.heap.word_bytes) {
                    if id < total {
                        *hits += 1;
                    }
                }
            }
        }
        match a.cmp(&c) {
            std::cmp::Ordering::Greater => Some(ObjectRepr::A),
            std::cmp::Ordering::Less => Some(ObjectRepr::C),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// An `mp_obj_t` as the reference prints a dict key: small ints in decimal,
    /// qstrs as their text, anything else as a hex address.
    pub fn format_object(&self, obj: u64, qstrs: &mut qstr::QstrReader, texts: &mut qstr::TextCache) -> String {
        match self.profile.object_repr.decode(obj, self.profile.heap.word_bytes) {
            Immediate::SmallInt(v) => v.to_string(),
            Immediate::Qstr(q) => qstrs.text(q, texts).map_or_else(|| format!("<qstr {q}>"), |t| t.to_string()),
            Immediate::Object(p) => format!("0x{p:08x}"),
        }
    }
}
