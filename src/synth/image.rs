//! The synthetic firmware build: memory layout of a board, the flash image
//! (`firmware.bin`, from `_sfixed`) with type objects and the ROM qstr pool, and a
//! GNU ld map describing both, in the shapes real CircuitPython 3.0 maps have
//! (one-line and wrapped input sections, COMMON symbols, linker assignments,
//! discarded sections, debug sections).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::rng::Rng;
pub use super::{Board, Flavor};


impl std::str::FromStr for Board {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "samd21" => Ok(Board::Samd21),
            "samd51" => Ok(Board::Samd51),
            _ => Err(format!("unknown board `{s}` (expected samd21 or samd51)")),
        }
    }
}

impl Board {
    /// The board's name (`samd21`).
    pub fn name(self) -> &'static str {
        match self {
            Board::Samd21 => "samd21",
            Board::Samd51 => "samd51",
        }
    }
    /// The RAM each snapshot holds.
    pub fn ram_bytes(self) -> u64 {
        match self {
            Board::Samd21 => 32 * 1024,
            Board::Samd51 => 192 * 1024,
        }
    }
    /// `PORT_HEAP_SIZE` in ports/atmel-samd/mpconfigport.h at 619b0ec164.
    pub fn heap_bytes(self) -> u64 {
        match self {
            Board::Samd21 => 16384 + 4096,
            Board::Samd51 => 0x20000,
        }
    }
    /// Flash after the UF2 bootloader.
    pub fn flash_start(self) -> u64 {
        match self {
            Board::Samd21 => 0x2000,
            Board::Samd51 => 0x4000,
        }
    }
}

pub const RAM_START: u64 = 0x2000_0000;


impl std::str::FromStr for Flavor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "circuitpython3" | "circuitpython-3.0" | "cp3" => Ok(Flavor::CircuitPython3),
            "micropython" | "micropython-1.2x" | "mp" => Ok(Flavor::MicroPython),
            "micropython64" | "micropython-1.2x-64bit" | "mp64" => Ok(Flavor::MicroPython64),
            "circuitpython10" | "circuitpython-10" | "circuitpython9" | "cp10" => Ok(Flavor::CircuitPython10),
            _ => Err(format!(
                "unknown layout `{s}` (expected circuitpython3, micropython, micropython64 or circuitpython10)"
            )),
        }
    }
}

/// Offsets inside `mp_state_ctx` that the simulator writes: py/mpstate.h at
/// 619b0ec164 (atmel-samd) for CircuitPython 3.0, tests/support/mp_layout_v1_2x.c
/// for the MicroPython flavour and tests/support/cp_layout_v10.c for CircuitPython
/// 10 (the same numbers their DWARF gives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateMap {
    pub last_pool: u64,
    /// `mp_obj_dict_t`s and `mp_obj_list_t`s (their start).
    pub loaded_modules: u64,
    pub dict_main: u64,
    pub sys_path: u64,
    pub sys_argv: u64,
    pub readline_hist: u64,
    pub readline_hist_len: u64,
    /// End of the root-pointer section (`vm.qstr_last_chunk`): the GC scans up to here.
    pub qstr_last_chunk: u64,
    pub qstr_last_alloc: u64,
    pub qstr_last_used: u64,
    /// The GC state: allocation table start and length, finaliser table, weakref
    /// table (MicroPython), pool start and end.
    pub gc_alloc_table_start: u64,
    pub gc_alloc_table_byte_len: u64,
    pub gc_finaliser_table_start: u64,
    pub gc_weakref_table_start: Option<u64>,
    pub gc_pool_start: u64,
    pub gc_pool_end: u64,
    /// Split heaps: `mem.area.next` (the area's first member), the collect table,
    /// and the size of `mp_state_mem_area_t` (placed before each added area).
    pub gc_next: Option<u64>,
    pub gc_collect_table_start: Option<u64>,
    pub area_bytes: u64,
    pub size: u64,
}

impl StateMap {
    pub const CIRCUITPYTHON3: StateMap = StateMap {
        last_pool: 20,
        loaded_modules: 56,
        dict_main: 76,
        sys_path: 92,
        sys_argv: 108,
        readline_hist: 128,
        readline_hist_len: 8,
        qstr_last_chunk: 160,
        qstr_last_alloc: 164,
        qstr_last_used: 168,
        gc_alloc_table_start: 176,
        gc_alloc_table_byte_len: 180,
        gc_finaliser_table_start: 184,
        gc_weakref_table_start: None,
        gc_pool_start: 188,
        gc_pool_end: 192,
        gc_next: None,
        gc_collect_table_start: None,
        area_bytes: 0,
        size: 476,
    };
    pub const MICROPYTHON: StateMap = StateMap {
        last_pool: 20,
        loaded_modules: 40,
        dict_main: 60,
        sys_path: 76,
        sys_argv: 92,
        readline_hist: 108,
        readline_hist_len: 8,
        qstr_last_chunk: 140,
        qstr_last_alloc: 144,
        qstr_last_used: 148,
        gc_alloc_table_start: 152,
        gc_alloc_table_byte_len: 156,
        gc_finaliser_table_start: 160,
        gc_weakref_table_start: Some(164),
        gc_pool_start: 168,
        gc_pool_end: 172,
        gc_next: None,
        gc_collect_table_start: None,
        area_bytes: 0,
        size: 456,
    };
    /// tests/support/mp_layout_v1_2x.c built for a 64-bit target.
    pub const MICROPYTHON64: StateMap = StateMap {
        last_pool: 40,
        loaded_modules: 80,
        dict_main: 120,
        sys_path: 152,
        sys_argv: 184,
        readline_hist: 216,
        readline_hist_len: 8,
        qstr_last_chunk: 280,
        qstr_last_alloc: 288,
        qstr_last_used: 296,
        gc_alloc_table_start: 304,
        gc_alloc_table_byte_len: 312,
        gc_finaliser_table_start: 320,
        gc_weakref_table_start: Some(328),
        gc_pool_start: 336,
        gc_pool_end: 344,
        gc_next: None,
        gc_collect_table_start: None,
        area_bytes: 0,
        size: 912,
    };
    pub const CIRCUITPYTHON10: StateMap = StateMap {
        last_pool: 24,
        loaded_modules: 60,
        dict_main: 76,
        sys_path: 92,
        sys_argv: 108,
        readline_hist: 124,
        readline_hist_len: 8,
        qstr_last_chunk: 156,
        qstr_last_alloc: 160,
        qstr_last_used: 164,
        gc_alloc_table_start: 172,
        gc_alloc_table_byte_len: 176,
        gc_finaliser_table_start: 180,
        gc_weakref_table_start: None,
        gc_pool_start: 188,
        gc_pool_end: 192,
        gc_next: Some(168),
        gc_collect_table_start: Some(184),
        area_bytes: 36,
        size: 744,
    };
}

impl Flavor {
    /// Where the firmware keeps its state (the GC's and the VM's) in this flavour.
    pub fn state_map(self) -> StateMap {
        match self {
            Flavor::CircuitPython3 => StateMap::CIRCUITPYTHON3,
            Flavor::MicroPython => StateMap::MICROPYTHON,
            Flavor::MicroPython64 => StateMap::MICROPYTHON64,
            Flavor::CircuitPython10 => StateMap::CIRCUITPYTHON10,
        }
    }

    /// Bytes in a machine word and a pointer.
    pub fn word_bytes(self) -> u64 {
        if self == Flavor::MicroPython64 {
            8
        } else {
            4
        }
    }

    /// A current firmware (MicroPython 1.2x's data formats: qstr arrays, 16-bit
    /// type names, the gap byte), as opposed to CircuitPython 3.0.
    pub fn current(self) -> bool {
        self != Flavor::CircuitPython3
    }

    /// The GC's geometry parameters.
    pub fn heap_layout(self) -> crate::profile::HeapLayout {
        let base = crate::profile::HeapLayout::default();
        match self {
            Flavor::CircuitPython3 => base,
            Flavor::MicroPython => crate::profile::HeapLayout { blocks_per_wtb: 8, alloc_table_gap_bytes: 1, ..base },
            Flavor::MicroPython64 => crate::profile::HeapLayout {
                word_bytes: 8,
                bytes_per_block: 32,
                blocks_per_wtb: 8,
                alloc_table_gap_bytes: 1,
                ..base
            },
            Flavor::CircuitPython10 => {
                crate::profile::HeapLayout { blocks_per_ctb: 8, alloc_table_gap_bytes: 1, ..base }
            }
        }
    }

    /// The symbol the dump starts at.
    pub fn ram_start_symbol(self) -> &'static str {
        match self {
            Flavor::CircuitPython3 | Flavor::CircuitPython10 => "_srelocate",
            Flavor::MicroPython | Flavor::MicroPython64 => "_sdata",
        }
    }

    /// A qstr as an `mp_obj_t`.
    pub fn qstr_obj(self, id: u64) -> u64 {
        match self {
            // Current firmware has immediate objects: qstrs one bit higher.
            Flavor::CircuitPython3 => (id << 3) | 6,
            Flavor::CircuitPython10 => (id << 4) | 6,
            Flavor::MicroPython | Flavor::MicroPython64 => (id << 3) | 2,
        }
    }

    /// The qstr id in an `mp_obj_t`, if it is one.
    pub fn qstr_id(self, obj: u64) -> Option<u64> {
        match self {
            Flavor::CircuitPython3 => (obj & 7 == 6).then_some(obj >> 3),
            Flavor::CircuitPython10 => (obj & 0xf == 6).then_some(obj >> 4),
            Flavor::MicroPython | Flavor::MicroPython64 => (obj & 7 == 2).then_some(obj >> 3),
        }
    }

    /// The profile that reads this flavour's captures: the reference's for
    /// CircuitPython 3.0, else the shipped `data/profiles/` file, which is what the
    /// DWARF of the flavour's `tests/support/*.c` gives plus what debug info cannot
    /// tell (the object representation, MicroPython's RAM symbol). The tests check
    /// both halves of that claim.
    pub fn profile(self) -> crate::profile::Profile {
        let text = match self {
            Flavor::CircuitPython3 => return crate::profile::Profile::default(),
            Flavor::MicroPython => include_str!("../../data/profiles/micropython-1.2x-synthetic.toml"),
            Flavor::MicroPython64 => include_str!("../../data/profiles/micropython-1.2x-64bit-synthetic.toml"),
            Flavor::CircuitPython10 => include_str!("../../data/profiles/circuitpython-10-synthetic.toml"),
        };
        // Compiled in and parsed by a test: it cannot fail at run time.
        crate::profile::Profile::from_toml_str(text).unwrap_or_default()
    }

    /// Bytes of the heap in a second area (CircuitPython 10's split heap): a
    /// quarter of the board's heap, taken from the first area.
    pub fn second_area_bytes(self, board: Board) -> u64 {
        match self {
            Flavor::CircuitPython10 => board.heap_bytes() / 4,
            _ => 0,
        }
    }
}

/// Types the simulated firmware has in flash, by symbol name.
pub const TYPE_NAMES: &[&str] = &[
    "mp_type_type",
    "mp_type_object",
    "mp_type_str",
    "mp_type_bytes",
    "mp_type_bytearray",
    "mp_type_dict",
    "mp_type_map",
    "mp_type_list",
    "mp_type_tuple",
    "mp_type_int",
    "mp_type_float",
    "mp_type_property",
    "mp_type_fun_bc",
    "mp_type_fun_builtin_0",
    "mp_type_fun_builtin_1",
    "mp_type_fun_builtin_2",
    "mp_type_fun_builtin_3",
    "mp_type_fun_builtin_var",
    "mp_type_bound_meth",
    "mp_type_closure",
    "mp_type_gen_instance",
    "mp_type_module",
    "busio_i2c_type",
    "digitalio_digitalinout_type",
    "pulseio_pwmout_type",
];

/// Types only the simulated current MicroPython builds have in flash (added after
/// the CircuitPython 3.0 sample was made, which they would otherwise move).
pub const CURRENT_TYPE_NAMES: &[&str] = &["mp_type_cell", "mp_type_set"];

/// The types of a build: current or 1.9-era (`mp`).
fn type_names(mp: bool) -> impl Iterator<Item = &'static str> + Clone {
    TYPE_NAMES.iter().chain(if mp { CURRENT_TYPE_NAMES } else { &[] }).copied()
}

/// Qstrs compiled into the firmware (`mp_qstr_const_pool`), after the two fixed ones.
pub const ROM_QSTRS: &[&str] = &[
    "__init__",
    "__main__",
    "__name__",
    "__class__",
    "__dict__",
    "__del__",
    "self",
    "print",
    "len",
    "range",
    "append",
    "pop",
    "get",
    "keys",
    "values",
    "items",
    "update",
    "read",
    "write",
    "value",
    "time",
    "sleep",
    "board",
    "busio",
    "digitalio",
    "pulseio",
    "I2C",
    "SPI",
    "UART",
    "D13",
    "A0",
    "direction",
    "pull",
    "frequency",
    "duty_cycle",
    "monotonic",
    "gc",
    "collect",
    "mem_free",
    "sys",
    "path",
    "argv",
    "os",
    "listdir",
    "format",
    "join",
    "split",
    "strip",
    "encode",
    "decode",
    "int",
    "str",
    "dict",
    "list",
    "tuple",
    "bytearray",
    "object",
    "type",
    "property",
    "main.py",
    "code.py",
    "<stdin>",
    "<module>",
    "lib",
];

/// Qstr hash as py/qstr.c computes it (djb2, masked, never zero).
pub fn qstr_hash(bytes: &[u8], hash_bytes: u32) -> u64 {
    let mut h: u64 = 5381;
    for b in bytes {
        h = (h.wrapping_shl(5).wrapping_add(h)) ^ (*b as u64);
    }
    let mask = if hash_bytes == 1 { 0xff } else { 0xffff };
    let h = h & mask;
    if h == 0 {
        1
    } else {
        h
    }
}

/// Where everything sits in RAM and flash for one synthetic build.
#[derive(Clone, Debug)]
pub struct Layout {
    pub board: Board,
    pub flavor: Flavor,
    pub state_map: StateMap,
    pub ram_start: u64,
    pub ram_end: u64,
    pub flash_start: u64,
    pub state: u64,
    pub heap_start: u64,
    pub heap_bytes: u64,
    /// A split heap's second region (start, bytes): `mp_state_mem_area_t`, then
    /// the area's tables and pool, as `gc_add` lays it out.
    pub second_region: Option<(u64, u64)>,
    /// Top of the stack (`_estack`) and how deep the simulated stack may go.
    pub stack_top: u64,
    pub stack_bytes: u64,
    pub types: BTreeMap<&'static str, u64>,
    pub rom_pool: u64,
    /// ROM qstr texts by id (0 and 1 are the empty qstrs).
    pub rom_qstrs: Vec<String>,
    /// Flash contents from `flash_start`.
    pub flash: Vec<u8>,
    /// The map text.
    pub map: String,
}

struct Section {
    kind: &'static str,
    name: String,
    address: u64,
    size: u64,
    file: String,
    symbols: Vec<(u64, String)>,
}

impl Layout {
    /// Lays out a build for `board`; `heap_misalign` shifts the heap array off a
    /// 16-byte boundary by that many bytes (0, 4, 8 or 12), as `static char heap[]`
    /// may be in a real link.
    pub fn new(board: Board, heap_misalign: u64, seed: u64) -> Self {
        Self::with_flavor(board, heap_misalign, seed, Flavor::CircuitPython3)
    }

    /// The same for a given firmware flavour.
    pub fn with_flavor(board: Board, heap_misalign: u64, seed: u64, flavor: Flavor) -> Self {
        let state_map = flavor.state_map();
        let mp = flavor.current();
        let mut rng = Rng::new(seed ^ 0x1a7e_5eed);
        let mut flash = FlashImage { start: board.flash_start(), bytes: Vec::new(), sections: Vec::new(), word_bytes: flavor.word_bytes() as usize };
        flash.code(&mut rng);
        let (rom_qstrs, qstr_addrs) = flash.rom_qstr_texts(mp);
        let types = flash.type_objects(&mut rng, mp, &rom_qstrs);
        let rom_pool = flash.rom_qstr_pool(mp, &rom_qstrs, &qstr_addrs);
        flash.align(4);
        let etext = flash.here();
        let ram = RamLayout::new(board, flavor, heap_misalign, state_map.size);
        // .data's initial values live in flash after the text (_sidata).
        let data_image: Vec<u8> = (0..(ram.data_end - RAM_START)).map(|_| rng.below(8) as u8).collect();
        flash.bytes.extend_from_slice(&data_image);
        let map = write_map(MapParts {
            board,
            state_size: state_map.size,
            ram_start_symbol: flavor.ram_start_symbol(),
            flash_start: flash.start,
            etext,
            sections: &flash.sections,
            ram_start: RAM_START,
            ram_end: ram.end,
            data_end: ram.data_end,
            bss_start: ram.bss_start,
            bss_end: ram.bss_end,
            ram_sections: &ram.sections,
        });
        Layout {
            board,
            flavor,
            state_map,
            ram_start: RAM_START,
            ram_end: ram.end,
            flash_start: flash.start,
            state: ram.state,
            heap_start: ram.heap_start,
            heap_bytes: ram.heap_bytes,
            second_region: ram.second_region,
            stack_top: ram.end,
            stack_bytes: 0x800u64.min(ram.end - ram.bss_end),
            types,
            rom_pool,
            rom_qstrs,
            flash: flash.bytes,
            map,
        }
    }

    /// The build as heapvis reads it: the map parsed and resolved with `profile`,
    /// as if `firmware.map` and `firmware.bin` had been written and read back.
    pub fn firmware(&self, profile: &crate::profile::Profile) -> crate::error::Result<crate::firmware::Firmware> {
        let symbols = crate::firmware::map::parse_map(&self.map);
        crate::firmware::Firmware::from_parts(symbols, self.flash.clone(), "firmware.map".as_ref(), profile)
    }

    pub fn type_address(&self, name: &str) -> u64 {
        self.types.get(name).copied().unwrap_or(0)
    }
}

/// The Python-visible name of a type symbol (`mp_type_dict` → `dict`).
pub fn type_python_name(symbol: &str) -> &str {
    symbol.strip_prefix("mp_type_").or_else(|| symbol.strip_suffix("_type")).unwrap_or(symbol)
}

/// The flash image being laid out: its bytes from `start`, and the input
/// sections the map lists for them.
struct FlashImage {
    start: u64,
    bytes: Vec<u8>,
    sections: Vec<Section>,
    /// The target's word size.
    word_bytes: usize,
}

impl FlashImage {
    /// The address of the next byte.
    fn here(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// Appends `bytes`; their address.
    fn push(&mut self, bytes: &[u8]) -> u64 {
        let at = self.here();
        self.bytes.extend_from_slice(bytes);
        at
    }

    fn align(&mut self, a: usize) {
        while !self.bytes.len().is_multiple_of(a) {
            self.bytes.push(0);
        }
    }

    /// A little-endian word of the target.
    fn word(&self, v: u64) -> Vec<u8> {
        v.to_le_bytes()[..self.word_bytes].to_vec()
    }

    /// Appends `bytes` as an input section of `kind` from `file`, the symbol
    /// `symbol` (if any) at its start; its address.
    fn section(&mut self, kind: &'static str, name: String, file: String, symbol: Option<&str>, bytes: &[u8]) -> u64 {
        let at = self.push(bytes);
        let symbols = symbol.map(|s| vec![(at, s.to_string())]).unwrap_or_default();
        self.sections.push(Section { kind, name, address: at, size: bytes.len() as u64, file, symbols });
        at
    }

    /// The vector table, then some functions of random code.
    fn code(&mut self, rng: &mut Rng) {
        let vectors: Vec<u8> = (0..45u32).flat_map(|i| (0x2000_0000u32 + i * 0x11).to_le_bytes()).collect();
        let file = "build-board/asf4/samd/gcc/gcc/startup_samd.o".to_string();
        self.section(".vectors", ".vectors".into(), file, Some("exception_table"), &vectors);
        for f in CODE_SYMBOLS {
            self.align(4);
            let n = rng.range(40, 400) as usize & !1;
            let code: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
            let file = format!("build-board/py/{}.o", f.split('_').next().unwrap_or("main"));
            self.section(".text", format!(".text.{f}"), file, Some(f), &code);
        }
    }

    /// The ROM qstrs' data: hash, len, bytes, NUL (MicroPython: bytes, NUL; the
    /// hash and length go in the pool's arrays). The qstrs, and each one's address.
    fn rom_qstr_texts(&mut self, mp: bool) -> (Vec<String>, Vec<u64>) {
        let mut rom_qstrs: Vec<String> = vec![String::new(), String::new()];
        rom_qstrs.extend(ROM_QSTRS.iter().map(|s| s.to_string()));
        rom_qstrs.extend(type_names(mp).map(|s| type_python_name(s).to_string()));
        rom_qstrs.dedup();
        let mut seen = std::collections::HashSet::new();
        rom_qstrs.retain(|q| q.is_empty() || seen.insert(q.clone()));
        self.align(4);
        let str_start = self.here();
        let mut qstr_addrs = Vec::new();
        for q in &rom_qstrs {
            let mut b = if mp { Vec::new() } else { vec![qstr_hash(q.as_bytes(), 1) as u8, q.len() as u8] };
            b.extend_from_slice(q.as_bytes());
            b.push(0);
            qstr_addrs.push(self.push(&b));
        }
        self.sections.push(Section {
            kind: ".rodata",
            name: ".rodata.str1.1".into(),
            address: str_start,
            size: self.here() - str_start,
            file: "build-board/py/qstr.o".into(),
            symbols: vec![],
        });
        (rom_qstrs, qstr_addrs)
    }

    /// Type objects: base.type, name qstr, then slots pointing into code. Each
    /// type's address by its symbol.
    fn type_objects(&mut self, rng: &mut Rng, mp: bool, rom_qstrs: &[String]) -> BTreeMap<&'static str, u64> {
        self.align(4);
        let first_type = self.here();
        let type_bytes = 0x38u64 / 4 * self.word_bytes as u64;
        let types: BTreeMap<_, _> =
            type_names(mp).enumerate().map(|(i, name)| (name, first_type + i as u64 * type_bytes)).collect();
        for name in type_names(mp) {
            let mut b = self.word(types["mp_type_type"]);
            let qid = rom_qstrs.iter().position(|q| q == type_python_name(name)).unwrap_or(0) as u32;
            if mp {
                // uint16_t flags, uint16_t name, then four slot indices (padded to a word).
                b.extend_from_slice(&(qid << 16).to_le_bytes());
                b.extend_from_slice(&[1, 2, 0, 0]);
                b.resize(3 * self.word_bytes, 0);
            } else {
                b.extend_from_slice(&qid.to_le_bytes());
            }
            while (b.len() as u64) < type_bytes {
                let slot = if rng.chance(50) { 0 } else { (self.start + 0x100 + rng.below(0x400)) | 1 };
                b.extend_from_slice(&self.word(slot));
            }
            let file = format!("build-board/py/obj{}.o", type_python_name(name));
            self.section(".rodata", format!(".rodata.{name}"), file, Some(name), &b);
        }
        types
    }

    /// The ROM qstr pool: prev NULL, total_prev_len 0, alloc 10 (so the first
    /// RAM pool holds 20), len, then pointers to the texts at `qstr_addrs`;
    /// its address.
    fn rom_qstr_pool(&mut self, mp: bool, rom_qstrs: &[String], qstr_addrs: &[u64]) -> u64 {
        self.align(4);
        let mut b = Vec::new();
        let n = rom_qstrs.len() as u64;
        if mp {
            // prev, total_prev_len 0 with is_sorted set, alloc, len, hashes, lengths,
            // qstrs[], then the two arrays.
            let wb = self.word_bytes as u64;
            let hashes = self.here() + 6 * wb + wb * n;
            for w in [0, 1 << (8 * wb - 1), 10, n, hashes, hashes + n] {
                b.extend_from_slice(&self.word(w));
            }
        } else {
            for w in [0u32, 0, 10, n as u32] {
                b.extend_from_slice(&w.to_le_bytes());
            }
        }
        for a in qstr_addrs {
            b.extend_from_slice(&self.word(*a));
        }
        if mp {
            b.extend(rom_qstrs.iter().map(|q| qstr_hash(q.as_bytes(), 1) as u8));
            b.extend(rom_qstrs.iter().map(|q| q.len() as u8));
        }
        let (name, file) = (".rodata.mp_qstr_const_pool".to_string(), "build-board/py/qstr.o".to_string());
        self.section(".rodata", name, file, Some("mp_qstr_const_pool"), &b)
    }
}

/// The functions the simulated build's code holds, each its own section.
const CODE_SYMBOLS: [&str; 14] = [
    "gc_alloc",
    "gc_free",
    "gc_realloc",
    "gc_collect",
    "gc_info",
    "qstr_from_strn",
    "mp_execute_bytecode",
    "mp_obj_new_str",
    "mp_obj_new_dict",
    "mp_map_lookup",
    "mp_call_function_n_kw",
    "readline_process_char",
    "common_hal_busio_i2c_construct",
    "main",
];

/// RAM as the simulated build lays it out: .data, then .bss (buffers, the
/// heap, CircuitPython's second heap area, the interpreter state in COMMON),
/// then the stack up to the end.
struct RamLayout {
    sections: Vec<Section>,
    end: u64,
    data_end: u64,
    bss_start: u64,
    bss_end: u64,
    heap_start: u64,
    heap_bytes: u64,
    second_region: Option<(u64, u64)>,
    state: u64,
}

impl RamLayout {
    fn new(board: Board, flavor: Flavor, heap_misalign: u64, state_size: u64) -> Self {
        let wb = flavor.word_bytes();
        let mut sections = Vec::new();
        let mut add = |kind, name: &str, address, size, file: &str, symbol: Option<&str>| {
            let symbols = symbol.map(|s| vec![(address, s.to_string())]).unwrap_or_default();
            sections.push(Section { kind, name: name.into(), address, size, file: file.into(), symbols });
        };
        let mut cursor = RAM_START;
        for (name, size) in [("SystemCoreClock", 4u64), ("autoreload_delay_ms", 4), ("usb_serial_connected", 4)] {
            add(".data", &format!(".data.{name}"), cursor, size, "build-board/supervisor/shared/serial.o", None);
            cursor += size;
        }
        let data_end = cursor;
        let bss_start = (cursor + 15) & !15;
        add(".bss", ".bss.usb_rx_buf", bss_start, 0x40, "build-board/supervisor/shared/usb.o", Some("usb_rx_buf"));
        cursor = bss_start + 0x40;
        // The heap array: aligned as the linker may place a char array.
        let heap_start = ((cursor + 15) & !15) + (heap_misalign & 12);
        let second_bytes = flavor.second_area_bytes(board);
        let heap_bytes = board.heap_bytes() - second_bytes;
        add(".bss", ".bss.heap.lto_priv.0", heap_start, heap_bytes, "/tmp/ccAbCdEf.ltrans0.ltrans.o", None);
        cursor = heap_start + heap_bytes;
        let mut second_region = None;
        if second_bytes > 0 {
            // The area CircuitPython adds when the first fills (gc_add from the
            // supervisor's allocator), here at a fixed place in .bss.
            cursor = (cursor + 0x3f) & !0x3f;
            let file = "build-board/supervisor/shared/memory.o";
            add(".bss", ".bss.supervisor_heap", cursor, second_bytes, file, Some("supervisor_heap"));
            second_region = Some((cursor, second_bytes));
            cursor += second_bytes;
        }
        let state = (cursor + wb - 1) & !(wb - 1);
        add("COMMON", "COMMON", state, state_size, "build-board/py/mpstate.o", Some("mp_state_ctx"));
        cursor = state + state_size;
        add(".bss", ".bss.filesystem_flash", cursor, 0x80, "build-board/supervisor/internal_flash.o", None);
        let bss_end = cursor + 0x80;
        let end = RAM_START + board.ram_bytes();
        RamLayout { sections, end, data_end, bss_start, bss_end, heap_start, heap_bytes, second_region, state }
    }
}


struct MapParts<'a> {
    board: Board,
    state_size: u64,
    ram_start_symbol: &'static str,
    flash_start: u64,
    etext: u64,
    sections: &'a [Section],
    ram_start: u64,
    ram_end: u64,
    data_end: u64,
    bss_start: u64,
    bss_end: u64,
    ram_sections: &'a [Section],
}

/// One input section line as ld prints it: on one line when the name is short,
/// wrapped onto a second line when it is 15 characters or longer.
fn section_lines(out: &mut String, s: &Section) {
    if s.name.len() >= 15 {
        let _ = writeln!(out, " {}", s.name);
        let _ = writeln!(out, "                0x{:016x}     0x{:x} {}", s.address, s.size, s.file);
    } else {
        let _ = writeln!(out, " {:<14} 0x{:016x}     0x{:x} {}", s.name, s.address, s.size, s.file);
    }
    for (a, n) in &s.symbols {
        let _ = writeln!(out, "                0x{:016x}                {}", a, n);
    }
}

fn write_map(p: MapParts) -> String {
    let mut m = String::new();
    let board = p.board.name();
    let _ = writeln!(m, "Archive member included to satisfy reference by file (symbol)\n");
    let _ = writeln!(m, "/usr/lib/gcc/arm-none-eabi/7.3.1/thumb/v6-m/libgcc.a(_udivsi3.o)");
    let _ = writeln!(m, "                              build-{board}/py/gc.o (__aeabi_uidiv)\n");
    let _ = writeln!(m, "Allocating common symbols");
    let _ = writeln!(m, "Common symbol       size              file\n");
    let _ = writeln!(m, "mp_state_ctx        0x{:x}             build-{board}/py/mpstate.o", p.state_size);
    let _ = writeln!(m, "usb_cdc_line_coding_with_a_long_name");
    let _ = writeln!(m, "                    0x8               build-{board}/supervisor/usb.o\n");
    let _ = writeln!(m, "Discarded input sections\n");
    let _ = writeln!(m, " .text          0x0000000000000000        0x0 build-{board}/main.o");
    let _ = writeln!(m, " .data          0x0000000000000000        0x0 build-{board}/main.o");
    let _ = writeln!(m, " .text.unused_helper");
    let _ = writeln!(m, "                0x0000000000000000       0x2c build-{board}/lib/utils/pyexec.o\n");
    let _ = writeln!(m, "Memory Configuration\n");
    let _ = writeln!(m, "Name             Origin             Length             Attributes");
    let _ = writeln!(m, "FLASH            0x{:016x} 0x{:016x} xr", p.flash_start, 0x40000 - p.flash_start);
    let _ = writeln!(m, "RAM              0x{:016x} 0x{:016x} xrw", p.ram_start, p.ram_end - p.ram_start);
    let _ = writeln!(m, "*default*        0x0000000000000000 0xffffffffffffffff\n");
    let _ = writeln!(m, "Linker script and memory map\n");
    let _ = writeln!(m, "LOAD build-{board}/main.o");
    let _ = writeln!(m, "                0x{:016x}                _sfixed = .", p.flash_start);
    let _ = writeln!(m, "\n.text           0x{:016x}     0x{:x}", p.flash_start, p.etext - p.flash_start);
    let _ = writeln!(m, " *(.vectors .vectors.*)");
    for s in p.sections {
        section_lines(&mut m, s);
    }
    let _ = writeln!(m, "                0x{:016x}                _etext = .", p.etext);
    let _ = writeln!(m, "                0x{:016x}                _sidata = _etext", p.etext);
    let _ = writeln!(
        m,
        "\n.relocate       0x{:016x}     0x{:x} load address 0x{:016x}",
        p.ram_start,
        p.data_end - p.ram_start,
        p.etext
    );
    let _ = writeln!(m, "                0x{:016x}                . = ALIGN (0x4)", p.ram_start);
    let _ = writeln!(m, "                0x{:016x}                {} = .", p.ram_start, p.ram_start_symbol);
    let _ = writeln!(m, " *(.ramfunc .ramfunc.*)");
    for s in p.ram_sections.iter().filter(|s| s.kind == ".data") {
        section_lines(&mut m, s);
    }
    let _ = writeln!(m, "                0x{:016x}                _erelocate = .", p.data_end);
    let _ = writeln!(m, "\n.bss            0x{:016x}     0x{:x}", p.bss_start, p.bss_end - p.bss_start);
    let _ = writeln!(m, "                0x{:016x}                _sbss = .", p.bss_start);
    for s in p.ram_sections.iter().filter(|s| s.kind != ".data") {
        section_lines(&mut m, s);
    }
    let _ = writeln!(m, "                0x{:016x}                _ebss = .", p.bss_end);
    let _ = writeln!(m, "                0x{:016x}                _estack = (ORIGIN (RAM) + LENGTH (RAM))", p.ram_end);
    let _ = writeln!(m, "OUTPUT(build-{board}/firmware.elf elf32-littlearm)");
    let _ = writeln!(m, "\n.ARM.attributes 0x0000000000000000       0x28");
    let _ = writeln!(m, "\n.comment        0x0000000000000000       0x6e");
    let _ = writeln!(m, " .comment       0x0000000000000000       0x6e build-{board}/main.o");
    let _ = writeln!(m, "\n.debug_info     0x0000000000000000    0x1f2e3");
    let _ = writeln!(m, " .debug_info    0x0000000000000000      0x4d1 build-{board}/main.o");
    let _ = writeln!(m, "\n.debug_str      0x0000000000000000     0x8a1c");
    let _ = writeln!(m, " .debug_str     0x0000000000000000     0x1a3f build-{board}/main.o");
    let _ = writeln!(m, "                                       0x1b2a (size before relaxing)");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped profiles parse, and agree with the offsets the simulator writes
    /// at (two independent sources: the DWARF of the test structs, and StateMap).
    #[test]
    fn shipped_profiles_agree_with_the_simulated_state() {
        for flavor in [Flavor::MicroPython, Flavor::MicroPython64, Flavor::CircuitPython10] {
            let text = match flavor {
                Flavor::MicroPython => include_str!("../../data/profiles/micropython-1.2x-synthetic.toml"),
                Flavor::MicroPython64 => include_str!("../../data/profiles/micropython-1.2x-64bit-synthetic.toml"),
                _ => include_str!("../../data/profiles/circuitpython-10-synthetic.toml"),
            };
            let p = crate::profile::Profile::from_toml_str(text).unwrap();
            let m = flavor.state_map();
            assert_eq!(p.state.last_pool, m.last_pool);
            // mp_obj_dict_t: base, then the map's bits, alloc and table words.
            let table = 3 * flavor.word_bytes();
            assert_eq!(p.state.dict_main_table, m.dict_main + table);
            assert_eq!(p.state.loaded_modules_table, m.loaded_modules + table);
            assert_eq!(p.state.readline_hist, Some(m.readline_hist));
            let gc = &p.state.gc;
            assert_eq!(
                (gc.alloc_table_start, gc.pool_start, gc.pool_end),
                (m.gc_alloc_table_start, m.gc_pool_start, m.gc_pool_end)
            );
            assert_eq!((gc.next, gc.collect_table_start), (m.gc_next, m.gc_collect_table_start));
            assert_eq!(p.heap, flavor.heap_layout());
            assert_eq!(p.state.root_names.get("vm.last_pool"), Some(&m.last_pool));
        }
    }
}
