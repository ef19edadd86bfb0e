//! A layout profile derived from the firmware's DWARF debug info.
//!
//! Every offset the decoder needs is the offset of a named member in a named
//! struct of the build (`mp_state_ctx_t`'s `vm.last_pool`, `mp_obj_str_t`'s `data`,
//! …). gimli reads the DIEs; this module only builds a small tree of structs,
//! typedefs and members and looks paths up in it ([`derive`] sets the profile's
//! fields from them). Whatever the debug info lacks keeps the base profile's
//! value and is reported, so a partial build still works.

use std::collections::HashMap;
use std::path::Path;

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection};

use crate::error::{Error, Result};

mod derive;

pub use derive::{derive_profile, Derived};

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// Words of `mp_state_ctx` named at most (a real build has a few hundred).
const MAX_ROOT_NAMES: usize = 4096;
/// Nesting of DIEs read (a real build nests a few levels: unit, struct, member,
/// a nested type or two); deeper ones are an error, not a stack overflow.
const MAX_DIE_DEPTH: u32 = 64;
/// Arrays of arrays (and nested structs) followed when sizing or naming a type.
const MAX_TYPE_DEPTH: u32 = 16;
/// Members and array items visited when naming `mp_state_ctx`'s words: a few
/// thousand in a real build.
const MAX_NAMING_STEPS: u32 = 200_000;

/// The bounds of a walk over a type graph the input controls.
struct Walk {
    depth: u32,
    steps: u32,
}

impl Walk {
    fn new() -> Self {
        Walk { depth: 0, steps: 0 }
    }

    /// Goes one level deeper, if the depth allows it.
    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_TYPE_DEPTH {
            self.depth -= 1;
            return false;
        }
        true
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// One more member or item visited, if the budget allows it.
    fn step(&mut self) -> bool {
        self.steps += 1;
        self.steps <= MAX_NAMING_STEPS
    }
}

#[derive(Clone, Debug)]
struct Node {
    tag: gimli::DwTag,
    name: Option<String>,
    ty: Option<UnitOffset>,
    byte_size: Option<u64>,
    member_offset: Option<u64>,
    /// For an array: the element count of its subrange.
    count: Option<u64>,
    children: Vec<UnitOffset>,
}

/// The type graph of one compilation unit.
struct TypeTree {
    nodes: HashMap<UnitOffset, Node>,
    address_size: u64,
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::BadElf { path: path.into(), message: message.into() }
}

/// Reads a DIE and its children into `nodes`, at most [`MAX_DIE_DEPTH`] deep.
fn walk(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    node: gimli::EntriesTreeNode<R<'_>>,
    nodes: &mut HashMap<UnitOffset, Node>,
    depth: u32,
) -> std::result::Result<UnitOffset, String> {
    if depth > MAX_DIE_DEPTH {
        return Err(format!("DWARF: entries nested more than {MAX_DIE_DEPTH} deep"));
    }
    let e = node.entry();
    let offset = e.offset();
    let mut n = Node {
        tag: e.tag(),
        name: None,
        ty: None,
        byte_size: None,
        member_offset: None,
        count: None,
        children: Vec::new(),
    };
    if let Some(v) = e.attr_value(gimli::DW_AT_name) {
        n.name = dwarf.attr_string(unit, v).ok().map(|s| s.to_string_lossy().into_owned());
    }
    if let Some(AttributeValue::UnitRef(t)) = e.attr_value(gimli::DW_AT_type) {
        n.ty = Some(t);
    }
    n.byte_size = e.attr_value(gimli::DW_AT_byte_size).and_then(|v| v.udata_value());
    n.member_offset = e.attr_value(gimli::DW_AT_data_member_location).and_then(|v| v.udata_value());
    n.count = e
        .attr_value(gimli::DW_AT_count)
        .and_then(|v| v.udata_value())
        .or_else(|| e.attr_value(gimli::DW_AT_upper_bound).and_then(|v| v.udata_value()).map(|u| u + 1));
    let mut children = node.children();
    while let Some(child) = children.next().map_err(|e| format!("DWARF: {e}"))? {
        let c = walk(dwarf, unit, child, nodes, depth + 1)?;
        n.children.push(c);
    }
    nodes.insert(offset, n);
    Ok(offset)
}

impl TypeTree {
    /// Follows typedefs and qualifiers to the type itself.
    fn strip(&self, mut t: UnitOffset) -> Option<&Node> {
        for _ in 0..32 {
            let n = self.nodes.get(&t)?;
            match n.tag {
                gimli::DW_TAG_typedef | gimli::DW_TAG_const_type | gimli::DW_TAG_volatile_type => t = n.ty?,
                _ => return Some(n),
            }
        }
        None
    }

    /// A struct by its typedef or tag name (`mp_state_ctx_t` or `_mp_state_ctx_t`).
    fn find_struct(&self, name: &str) -> Option<&Node> {
        let tagged = format!("_{name}");
        self.nodes.values().find_map(|n| match n.tag {
            gimli::DW_TAG_structure_type if n.name.as_deref() == Some(&tagged) && !n.children.is_empty() => Some(n),
            gimli::DW_TAG_typedef if n.name.as_deref() == Some(name) => {
                self.strip(n.ty?).filter(|s| s.tag == gimli::DW_TAG_structure_type && !s.children.is_empty())
            }
            _ => None,
        })
    }

    fn member<'a>(&'a self, s: &'a Node, name: &str) -> Option<&'a Node> {
        s.children
            .iter()
            .filter_map(|c| self.nodes.get(c))
            .find(|m| m.tag == gimli::DW_TAG_member && m.name.as_deref() == Some(name))
    }

    /// Byte offset of a dotted member path inside struct `root`, and the member.
    fn path(&self, root: &str, path: &str) -> Option<(u64, &Node)> {
        let mut s = self.find_struct(root)?;
        let mut offset = 0;
        let mut last = None;
        for (i, part) in path.split('.').enumerate() {
            if i > 0 {
                s = self.strip(last.and_then(|m: &Node| m.ty)?)?;
            }
            let m = self.member(s, part)?;
            offset += m.member_offset?;
            last = Some(m);
        }
        Some((offset, last?))
    }

    fn size_of_typedef(&self, name: &str) -> Option<u64> {
        let t = self.nodes.values().find(|n| n.tag == gimli::DW_TAG_typedef && n.name.as_deref() == Some(name))?;
        self.strip(t.ty?)?.byte_size
    }

    /// Every word-sized member inside struct node `s` (recursing into nested
    /// structs and into arrays), as (byte offset, dotted path): the names of the
    /// words where root pointers sit. The walk is bounded by `walk` (depth,
    /// nodes visited, names made): a crafted type graph (a struct holding
    /// itself a dozen times) cannot make it exponential.
    fn word_members(
        &self,
        s: &Node,
        base: u64,
        prefix: &str,
        word: u64,
        out: &mut Vec<(u64, String)>,
        walk: &mut Walk,
    ) {
        if !walk.enter() {
            return;
        }
        for m in s.children.iter().filter_map(|c| self.nodes.get(c)) {
            if out.len() >= MAX_ROOT_NAMES || !walk.step() {
                break;
            }
            let (Some(name), Some(offset), Some(ty)) = (m.name.as_deref(), m.member_offset, m.ty) else { continue };
            let path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
            let (Some(t), Some(at)) = (self.strip(ty), base.checked_add(offset)) else { continue };
            self.word_items(t, at, &path, word, out, walk);
        }
        walk.leave();
    }

    fn word_items(&self, t: &Node, at: u64, path: &str, word: u64, out: &mut Vec<(u64, String)>, walk: &mut Walk) {
        match t.tag {
            gimli::DW_TAG_structure_type => self.word_members(t, at, path, word, out, walk),
            gimli::DW_TAG_array_type => {
                let n = t.children.iter().filter_map(|c| self.nodes.get(c)).find_map(|s| s.count).unwrap_or(0);
                let Some(element) = t.ty.and_then(|e| self.strip(e)) else { return };
                let Some(size) = self.size_of(element) else { return };
                if !walk.enter() {
                    return;
                }
                for i in 0..n.min(256) {
                    let Some(item) = i.checked_mul(size).and_then(|o| at.checked_add(o)) else { break };
                    if out.len() >= MAX_ROOT_NAMES || !walk.step() {
                        break;
                    }
                    self.word_items(element, item, &format!("{path}[{i}]"), word, out, walk);
                }
                walk.leave();
            }
            _ if t.byte_size == Some(word) && at.is_multiple_of(word) && out.len() < MAX_ROOT_NAMES => {
                out.push((at, path.to_string()));
            }
            _ => {}
        }
    }

    /// Bytes of a type (an array's from its element and count), following at
    /// most [`MAX_TYPE_DEPTH`] arrays of arrays (an array may name itself).
    fn size_of(&self, t: &Node) -> Option<u64> {
        let (mut t, mut count) = (t, 1u64);
        for _ in 0..MAX_TYPE_DEPTH {
            if let Some(n) = t.byte_size {
                return n.checked_mul(count);
            }
            if t.tag != gimli::DW_TAG_array_type {
                return None;
            }
            let n = t.children.iter().filter_map(|c| self.nodes.get(c)).find_map(|s| s.count)?;
            count = count.checked_mul(n)?;
            t = self.strip(t.ty?)?;
        }
        None
    }

    fn array_len(&self, member: &Node) -> Option<u64> {
        let a = self.strip(member.ty?)?;
        (a.tag == gimli::DW_TAG_array_type)
            .then(|| a.children.iter().filter_map(|c| self.nodes.get(c)).find_map(|s| s.count))
            .flatten()
    }
}

/// A member found in one unit, with that unit to resolve its type in.
struct Member<'a> {
    tree: &'a TypeTree,
    node: &'a Node,
}

impl Member<'_> {
    fn type_size(&self) -> Option<u64> {
        self.tree.strip(self.node.ty?)?.byte_size
    }

    fn array_len(&self) -> Option<u64> {
        self.tree.array_len(self.node)
    }
}

/// Every unit's types. DWARF describes a type only in the units that use it, so
/// a struct is looked up in the unit defining the interpreter state first, then in
/// the others, in order (a build's structs are the same in every unit).
struct Units<'a> {
    order: Vec<&'a TypeTree>,
}

impl<'a> Units<'a> {
    fn new(trees: &'a [TypeTree], first: &'a TypeTree) -> Self {
        let mut order = vec![first];
        order.extend(trees.iter().filter(|t| !std::ptr::eq(*t, first)));
        Units { order }
    }

    fn path(&self, root: &str, path: &str) -> Option<(u64, Member<'a>)> {
        self.order.iter().find_map(|t| t.path(root, path).map(|(offset, node)| (offset, Member { tree: t, node })))
    }

    fn size_of_typedef(&self, name: &str) -> Option<u64> {
        self.order.iter().find_map(|t| t.size_of_typedef(name))
    }
}

fn load_trees(data: &[u8], path: &Path) -> Result<Vec<TypeTree>> {
    let file = object::File::parse(data).map_err(|e| bad(path, format!("not a readable ELF file: {e}")))?;
    let endian = if file.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
    let load = |id: gimli::SectionId| -> std::result::Result<R<'_>, gimli::Error> {
        let bytes = file.section_by_name(id.name()).and_then(|s| s.data().ok()).unwrap_or(&[]);
        Ok(EndianSlice::new(bytes, endian))
    };
    let dwarf = gimli::Dwarf::load(load).map_err(|e| bad(path, format!("DWARF: {e}")))?;
    let mut trees = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(|e| bad(path, format!("DWARF: {e}")))? {
        let unit = dwarf.unit(header).map_err(|e| bad(path, format!("DWARF: {e}")))?;
        let mut nodes = HashMap::new();
        let mut tree = unit.entries_tree(None).map_err(|e| bad(path, format!("DWARF: {e}")))?;
        let root = tree.root().map_err(|e| bad(path, format!("DWARF: {e}")))?;
        walk(&dwarf, &unit, root, &mut nodes, 0).map_err(|e| bad(path, e))?;
        trees.push(TypeTree { nodes, address_size: unit.header.address_size() as u64 });
    }
    if trees.is_empty() {
        return Err(bad(path, "no DWARF debug info (build with -g, or give a profile with --profile)"));
    }
    Ok(trees)
}

/// The lowest address of a loadable section with contents (code or data).
fn lowest_loadable_address(file: &object::File) -> Option<u64> {
    use object::{Object, ObjectSection, SectionKind};
    file.sections()
        .filter(|s| matches!(s.kind(), SectionKind::Text | SectionKind::Data | SectionKind::ReadOnlyData))
        .filter(|s| s.size() > 0)
        .map(|s| s.address())
        .min()
}
