//! Decoding one snapshot of RAM into rows: blocks with their kinds, pointer edges
//! and root edges, qstrs, strings, free runs and the firmware's `gc_info` figures.
//!
//! [`Decoder::decode`] is a pure function of (firmware, profile, snapshot bytes): it
//! reads only through bounds-checked [`Memory`], allocates in proportion to the heap
//! it finds, and returns rows for the single writer to store.

pub mod alloc_table;
mod base;
pub mod bytecode;
pub mod geometry;
mod gifts;
pub mod kinds;
pub mod kept_walk;
mod names;
mod plausible;
pub mod qstr;
pub mod reads;
mod roles;
pub mod roots;
mod rows;
mod scan;
pub mod stages;
mod view;

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;

use crate::error::DecodeError;
use crate::firmware::Firmware;
use crate::memory::{Memory, Region};
use crate::profile::{BytecodePrelude, Immediate, ObjectLayout, Profile};
pub use alloc_table::{Allocation, FreeRun, GcInfo};
pub use base::Kinds;
pub use bytecode::Prelude;
pub use geometry::{AreaState, HeapArea, HeapGeometry, Table, TableSpan};
pub use gifts::GiftBook;
pub use kinds::Role;
use kept_walk::KeptWalk;
use names::Name;
use reads::{ReadLog, Reads, Tracker, GLOBAL, UNTRACKED};
use roles::{RoleOut, RolesIn};
pub use roles::Roles;
pub use roots::{RootWord, Roots, RootsBefore};
use rows::BlockRowsIn;
use stages::{lap, Stage};
use view::{owners, owners_carried, BitTables, Heap, Struct, View};

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
    /// For a value slot of a map table: its key, formatted like the reference.
    pub map_key: Option<Arc<str>>,
}

impl EdgeRow {
    /// The target is the head of an allocated block (what the GC follows):
    /// the pointer holds the address its allocation starts at.
    ///
    /// (Derived, not stored: a row of 128 bytes is copied inline, where one a
    /// byte longer, as it was with a flag, took a call to `memcpy` at each
    /// of the half-dozen moves a row makes, from the decode to the writer.)
    pub fn to_is_head(&self) -> bool {
        self.to_alloc_address == Some(self.to_address)
    }
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
    /// Reachability and dominators of the blocks' allocations, when the pipeline
    /// computed them for a whole decode (see [`crate::retain`]).
    pub retention: Option<crate::retain::Retention>,
    /// The snapshot's reachability figures, when computed.
    pub reachability: Option<crate::retain::Reachability>,
    /// What each top-level owner retains, by kind, when computed. Shared: an
    /// incremental decode keeps the rows for the next snapshot's, and the
    /// writer keeps them to compare the next snapshot's with (each a clone of
    /// a hundred owner names otherwise).
    pub retainers: Option<std::sync::Arc<Vec<crate::retain::owners::Retained>>>,
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
    /// Per allocation: its base kind and role are carried over from the
    /// snapshot before (in `base` and `roles`; the others hold none).
    pub carried: Vec<bool>,
    pub base: Kinds,
    pub roles: Roles,
    /// Start blocks of the allocations holding qstr texts: the qstr pools did not
    /// change, so neither did these (a focused decode lists no qstrs).
    pub qstr_chunks: Vec<u64>,
    /// First blocks of the snapshot before's allocations whose gifts of roles
    /// go: those gone or changed, and those decoded again (see [`GiftBook`]).
    pub regive: Vec<u64>,
}

impl Focus {
    /// Whether it is a focus for `n` allocations (every column `n` long).
    fn fits(&self, n: usize) -> bool {
        self.derive.len() == n && self.carried.len() == n && self.base.holds(n) && self.roles.holds(n)
    }
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
    /// Per allocation: its base kind.
    pub base: Kinds,
    /// Per allocation: the role pointers gave it.
    pub roles: Roles,
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
    root_names: RootNames,
}

/// Names of the RAM words outside the heap (where roots sit), each made the
/// first time a root is met there and then kept: the same few roots recur in
/// every snapshot, and the keys compare their names by address. Naming every
/// word when the decoder was made cost a run 5 ms before its first snapshot
/// and 2 ms more freeing the names, on one core while the other waited, for
/// the few hundred words that ever hold a root.
struct RootNames {
    /// The first word's address, the word size, and where the heap's words
    /// (which have no slot) start and end.
    first: u64,
    word: u64,
    heap: Range<u64>,
    slots: Vec<OnceLock<Arc<str>>>,
}

/// Words of RAM outside the heap whose names are kept (6 MB of slots); a
/// root past them is named each time it is met.
const MAX_KEPT_ROOT_NAMES: u64 = 1 << 18;

impl RootNames {
    fn new(ram: Range<u64>, heap: Range<u64>, word: u64) -> Self {
        let word = word.max(1);
        let first = ram.start.div_ceil(word).saturating_mul(word);
        // Both ends on a word, so that the words past the heap keep their
        // alignment once its length is taken off (each address has one slot).
        let align = |a: u64| a.div_ceil(word).saturating_mul(word);
        let start = align(heap.start.max(first));
        let heap = start..align(heap.end).max(start);
        let outside = ram.end.saturating_sub(first).saturating_sub(heap.end - heap.start) / word;
        let slots = (0..outside.min(MAX_KEPT_ROOT_NAMES)).map(|_| OnceLock::new()).collect();
        RootNames { first, word, heap, slots }
    }

    /// The slot of the word at `address`, if it has one.
    fn slot(&self, address: u64) -> Option<&OnceLock<Arc<str>>> {
        let below_heap = if address >= self.heap.end {
            address - (self.heap.end - self.heap.start)
        } else if address < self.heap.start {
            address
        } else {
            return None;
        };
        let at = below_heap.checked_sub(self.first).filter(|d| d % self.word == 0)? / self.word;
        self.slots.get(usize::try_from(at).ok()?)
    }
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
    /// The room of a report's edges, handed back emptied
    /// ([`DecodeCache::recycle_edges`]).
    edges_room: Vec<EdgeRow>,
    /// Time per stage, when asked for ([`DecodeCache::time_stages`]).
    pub stage_times: Option<stages::StageTimes>,
    /// The room of the last decode's read log.
    read_room: reads::ReadRoom,
    /// The roles the last snapshot decoded (by a run decoder) gave, for the
    /// next one decoded from it; none after a decode that failed.
    gifts: Option<GiftBook>,
    /// Whether the allocation-table walk is carried from one snapshot to the
    /// next ([`DecodeCache::carry_walk`]), and the last walk.
    carry_walk: bool,
    walk: Option<KeptWalk>,
    /// The walk whose allocations the owners' index kept in `scratch` is of
    /// ([`KeptWalk::generation`]).
    owner_walk: Option<u64>,
}

impl DecodeCache {
    /// Walks each snapshot's allocation tables from the last one's walk,
    /// again only where they differ ([`kept_walk`]): the same walk, cheaper.
    /// Off by default, so that a decode asked to be whole is whole.
    pub fn carry_walk(&mut self) {
        self.carry_walk = true;
    }

    /// Per pool block, the allocation covering it: the index of the walk
    /// before (`before`, kept in the scratch) followed through this walk's
    /// changes when this walk was carried from it, else made whole.
    fn owners(&self, allocs: &[Allocation], pool_blocks: u64, before: Vec<u32>) -> Vec<u32> {
        match (&self.walk, self.owner_walk) {
            (Some(w), Some(of)) if w.carried_from == Some(of) => owners_carried(allocs, pool_blocks, before, &w.stretches),
            _ => owners(allocs, pool_blocks, before),
        }
    }

    /// Keeps the time spent per stage from now on (see [`stages`]).
    pub fn time_stages(&mut self) {
        self.stage_times.get_or_insert_with(Default::default);
    }

    /// Takes back the vectors of facts a decode returned, when their holder is
    /// done with them: the next decode refills them instead of allocating anew.
    pub fn recycle(&mut self, facts: DecodeFacts) {
        self.recycled = facts;
    }

    /// Takes back a report's edge vector, once emptied: a snapshot's edges
    /// can take more than the allocator keeps for reuse (128 KiB), and a
    /// vector that size made and freed at every snapshot is mapped and
    /// unmapped each time.
    pub fn recycle_edges(&mut self, mut edges: Vec<EdgeRow>) {
        edges.clear();
        self.edges_room = edges;
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

impl Scratch {
    /// The kinds the base-kinds stage fills, and the snapshot before's roles:
    /// with a focus, taken out of it ([`Scratch::take_carried`]); else `n`
    /// unknown kinds in this scratch's room, and no roles.
    fn kinds_for(&mut self, focus: Option<&mut Focus>, n: usize) -> (Kinds, Option<Roles>) {
        match focus {
            Some(f) => self.take_carried(f),
            None => (Kinds::refill(self, n), None),
        }
    }

    /// A focused decode's kinds, and the snapshot before's roles, taken out
    /// of the focus `f`, which gets this scratch's room in their place (the
    /// focus goes back to the planner for the next snapshot).
    fn take_carried(&mut self, f: &mut Focus) -> (Kinds, Option<Roles>) {
        use std::mem::{replace, take};
        let room = Kinds { category: take(&mut self.kinds), type_addrs: take(&mut self.type_addrs) };
        let base = replace(&mut f.base, room);
        let room = Roles { category: take(&mut self.roles), detail: take(&mut self.details) };
        (base, Some(replace(&mut f.roles, room)))
    }
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

/// The qstr pools a decode lists: those in RAM, newest first, unless a focused
/// decode knows the chunks holding their text (by first block, sorted).
struct QstrPools<'a> {
    ram_pools: &'a [qstr::PoolHeader],
    known_chunks: Option<&'a [u64]>,
}

/// What the walk of the allocation table gives the stages after it.
struct Walked<'m> {
    report: SnapshotReport,
    /// The facts' vectors to refill, the allocations filled.
    recycled: DecodeFacts,
    ftb: BitTables<'m>,
    ctb: BitTables<'m>,
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
    ftb.each_bit(allocs, &mut finaliser, |bit| bit.unwrap_or(false));
    collect.clear();
    ctb.each_bit(allocs, &mut collect, |bit| bit);
    TableBits { finaliser, collect }
}

/// Areas of a split heap followed at most (real heaps have a handful).
const MAX_AREAS: usize = 256;

impl<'f> Decoder<'f> {
    pub fn new(firmware: &'f Firmware, profile: &'f Profile, options: DecodeOptions) -> Self {
        let geometry = HeapGeometry::from_gc_init(firmware.heap_start, firmware.heap_bytes, &profile.heap);
        let heap = geometry.as_ref().map_or(0..0, |g| g.heap_start..g.first.pool_end);
        let root_names = RootNames::new(firmware.ram_start..firmware.ram_end, heap, profile.heap.word_bytes as u64);
        Decoder { firmware, profile, geometry, options, root_names }
    }

    /// The name of a RAM word outside the heap (a root's).
    pub fn root_name(&self, address: u64) -> Arc<str> {
        let make = || Arc::from(self.firmware.root_name(address));
        match self.root_names.slot(address) {
            Some(slot) => Arc::clone(slot.get_or_init(make)),
            None => make(),
        }
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
        if let Some(t) = &mut cache.stage_times {
            t.start();
        }
        let log = ReadLog::new(self.options.drop_read, std::mem::take(&mut cache.read_room));
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
        lap(&mut cache.stage_times, Stage::Walk);
        let g = report.geometry.clone();
        let mut scratch = std::mem::take(&mut cache.scratch);
        let spare = (std::mem::take(&mut recycled.finaliser), std::mem::take(&mut recycled.collect));
        let bits = table_bits(&recycled.allocations, &ftb, &ctb, spare);
        report.finaliser_blocks = bits.finaliser.iter().filter(|f| **f).count() as u64;
        let allocs = &recycled.allocations;
        let owner = cache.owners(allocs, g.pool_blocks(), std::mem::take(&mut scratch.owner));
        let (finaliser, collect) = (&bits.finaliser, &bits.collect);
        let input = PlanInput { ram, geometry: &g, allocations: allocs, owner: &owner, finaliser, collect };
        let n = allocs.len();
        lap(&mut cache.stage_times, Stage::Owners);
        let mut focus = plan(&input).filter(|f| f.fits(n));
        let heap = Heap { g: g.clone(), allocs, owner };
        let (word, obj_bytes) = (self.profile.heap.word_bytes as u64, self.profile.obj_bytes() as u64);
        let view = View { mem: &mem, log: &log, heap: &heap, word, obj_bytes, objects: &self.profile.objects };
        let mut derive = refill(std::mem::take(&mut scratch.derive), n, true);
        if let Some(f) = &focus {
            derive.copy_from_slice(&f.derive);
        }
        lap(&mut cache.stage_times, Stage::Plan);
        let (mut qstrs, ram_pools) = self.qstr_pools(&mem)?;

        // Base kinds, then roles given by pointers (made whole every snapshot).
        let (mut kinds, before_roles) = scratch.kinds_for(focus.as_mut(), n);
        self.base_kinds(&view, &ram_pools, focus.as_ref().map(|f| &f.carried[..]), &mut kinds);
        lap(&mut cache.stage_times, Stage::BaseKinds);
        let chunks = focus.as_ref().map(|f| &f.qstr_chunks[..]);
        let pools = QstrPools { ram_pools: &ram_pools, known_chunks: chunks };
        // A run decoder keeps the roles given in a book (`tracked`).
        let book = cache.gifts.take().filter(|_| mem.tracker.is_some());
        let reading = (&mut qstrs, &mut cache.texts);
        let working = (&mut report, &mut scratch);
        let stage = RolesIn { focus: focus.as_ref(), before: before_roles, book, tracked: mem.tracker.is_some() };
        let (RoleOut { roles, readline, bytecodes }, book) =
            self.roles_stage(&view, (&mut kinds, &pools), reading, working, stage, &mut derive)?;
        lap(&mut cache.stage_times, Stage::Roles);
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
        self.function_names(&view, (&bytecodes, &derived), &derive, &roles, &mut qstrs, texts, (&mut names, &mut preludes));
        lap(&mut cache.stage_times, Stage::Names);
        let mut root_words = std::mem::take(&mut recycled.root_words);
        root_words.clear();
        if !self.options.skip_edges {
            report.edges = std::mem::take(&mut cache.edges_room);
            report.edges.reserve(cache.edges);
            self.pointer_edges(&view, &derived, &roles.category, &mut qstrs, cache, &mut report.edges);
            self.roots(&view, &roots, &mut report.edges, &mut root_words);
        }
        lap(&mut cache.stage_times, Stage::Edges);
        let rows = BlockRowsIn { derived: &derived, kinds: &kinds, roles: &roles, finaliser, collect };
        report.blocks = self.block_rows(&view, &rows, &mut names, &preludes);
        cache.edges = report.edges.len();

        // What a run decoder carries to the next snapshot.
        drop((view, qstrs));
        let ram_range = (self.firmware.ram_start, self.firmware.ram_start.saturating_add(ram.len() as u64));
        let reads = mem.tracker.is_some().then(|| log.finish((&g, allocs, &heap.owner), ram_range, &mut cache.read_room));
        if let Some(f) = &mut focus {
            f.derive.copy_from_slice(&derive); // with the allocations whose role changed
        }
        names.clear();
        // The kinds and roles go on with the facts; the snapshot before's
        // before that (recycled) give their room to the next decode.
        let (base, role_list) = (kinds, roles);
        let Kinds { category: kinds, type_addrs } = std::mem::take(&mut recycled.base);
        let Roles { category: roles, detail: details } = std::mem::take(&mut recycled.roles);
        let owner = heap.owner;
        cache.scratch =
            Scratch { owner, kinds, type_addrs, roles, details, names, preludes, derived, derive, bytecodes };
        cache.owner_walk = cache.walk.as_ref().map(|w| w.generation);
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
        cache.gifts = book;
        lap(&mut cache.stage_times, Stage::Rows);
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
        let (bpb, want_rows, room) =
            (g.bytes_per_block, !self.options.metrics_only, std::mem::take(&mut recycled.allocations));
        let walk = if cache.carry_walk {
            let (walk, kept) = KeptWalk::walk(cache.walk.take(), &tables, bpb, want_rows, room);
            cache.walk = Some(kept);
            walk
        } else {
            alloc_table::walk_areas_into(tables, bpb, want_rows, room)
        };
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
            retention: None,
            reachability: None,
            retainers: None,
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

    /// Stage: each area's finaliser and collect tables, as tables of one bit a
    /// block (empty when the build has none).
    fn bit_tables<'m>(
        &self,
        mem: &Memory<'m>,
        g: &HeapGeometry,
    ) -> Result<(BitTables<'m>, BitTables<'m>), DecodeError> {
        let h = &self.profile.heap;
        let (mut ftb, mut ctb) = (BitTables::new(h.blocks_per_ftb), BitTables::new(h.blocks_per_ctb));
        for t in g.table_spans(h.blocks_per_ftb, h.blocks_per_ctb) {
            let (into, what) = match t.table {
                Table::Allocation => continue,
                Table::Finaliser => (&mut ftb, "finaliser table"),
                Table::Collect => (&mut ctb, "collect table"),
            };
            into.areas.push((t.first_block, mem.bytes(t.address, t.bytes, what)?));
        }
        Ok((ftb, ctb))
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
                if let crate::profile::Immediate::Qstr(id) =
                    repr.decode(key, self.profile.heap.word_bytes, self.profile.immediate_objects)
                {
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
        match self.profile.object_repr.decode(obj, self.profile.heap.word_bytes, self.profile.immediate_objects) {
            Immediate::SmallInt(v) => v.to_string(),
            Immediate::Qstr(q) => qstrs.text(q, texts).map_or_else(|| format!("<qstr {q}>"), |t| t.to_string()),
            Immediate::Object(p) => format!("0x{p:08x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EdgeRow, RootNames};

    /// An edge row is at most 128 bytes, which a move copies inline (see
    /// [`EdgeRow::to_is_head`]); and its head flag is the one a row had.
    #[test]
    fn an_edge_row_fits_in_128_bytes_and_knows_a_head() {
        assert!(std::mem::size_of::<EdgeRow>() <= 128, "{} bytes", std::mem::size_of::<EdgeRow>());
        let row = |to_alloc_address| EdgeRow {
            from_address: Some(0x2000_0100),
            from_block: Some(0),
            from_word: Some(1),
            root_address: None,
            root_name: None,
            to_address: 0x2000_0120,
            to_alloc_address,
            to_block: Some(2),
            map_key: None,
        };
        assert!(row(Some(0x2000_0120)).to_is_head());
        assert!(!row(Some(0x2000_0110)).to_is_head(), "inside an allocation");
        assert!(!row(None).to_is_head(), "in no allocation");
    }

    /// Every word of RAM outside the heap has a slot of its own, in order;
    /// the heap's words, a word not on a word boundary and one past RAM
    /// have none, whether the heap starts on a word or not.
    #[test]
    fn each_word_outside_the_heap_has_a_slot_of_its_own() {
        for (heap, word) in [(0x2000_0100..0x2000_0200, 4), (0x2000_0106..0x2000_01fe, 4), (0x2000_0100..0x2000_0200, 8)] {
            let ram = 0x2000_0000..0x2000_0400u64;
            let names = RootNames::new(ram.clone(), heap.clone(), word);
            let slot_of = |a: u64| names.slot(a).map(|s| s as *const _ as usize);
            let outside: Vec<u64> = ram
                .clone()
                .step_by(word as usize)
                .filter(|&a| a < heap.start || a >= heap.end.div_ceil(word) * word)
                .collect();
            let slots: Vec<usize> = outside.iter().map(|&a| slot_of(a).expect("a slot")).collect();
            assert!(slots.windows(2).all(|w| w[1] > w[0]), "one slot each, in order");
            assert_eq!(slots.len(), names.slots.len());
            for a in ram.clone().filter(|a| !outside.contains(a)) {
                assert_eq!(slot_of(a), None, "{a:#x}");
            }
            assert_eq!(slot_of(ram.end), None);
            assert_eq!(slot_of(ram.start - word), None);
        }
    }
}
