//! Stage: Python names: classes by their name qstr, instances by their class,
//! modules by the `__name__` in their globals, functions by the simple name in
//! their bytecode's prelude.

use super::*;

/// An allocation's Python name, when it has one.
pub(super) type Name = Option<Arc<str>>;

impl Decoder<'_> {
    /// A class's name: the qstr in its `mp_obj_type_t.name`.
    pub(super) fn type_name(
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
    pub(super) fn class_names(
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
                    let ti = v.object(i, "own bytes").type_word().and_then(|p| v.head(p, "instance's class"));
                    let named = |ti: usize| self.type_name(v, ti, qstrs, texts, "instance's class");
                    ti.filter(|&ti| kinds[ti] == Category::Type).and_then(named)
                }
                _ => continue,
            };
        }
    }

    /// Stage: modules by the `__name__` in their globals' table (two pointers
    /// away: the module's globals dict, then its table).
    pub(super) fn module_names(
        &self,
        v: &View,
        derived: &[usize],
        type_addrs: &[Option<u64>],
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        names: &mut [Name],
    ) {
        let module = self.firmware.types.module;
        let (repr, word_bytes, imm) =
            (self.profile.object_repr, self.profile.heap.word_bytes, self.profile.immediate_objects);
        for &i in derived {
            if type_addrs[i].is_none() || type_addrs[i] != module {
                continue;
            }
            let _s = v.log.scope(i as u32);
            let globals = v.object(i, "own bytes").targets_for("module globals").module_globals();
            let table = globals.and_then(|g| v.object(g, "module globals").targets_for("globals table").dict_table());
            let Some(table) = table.map(|t| v.bytes_of(t, "globals table")) else { continue };
            let pairs = table.len() as u64 / (2 * v.obj_bytes);
            for k in 0..pairs.min(1024) {
                let key = v.obj_at(table, 2 * k).unwrap_or(0);
                let Immediate::Qstr(kq) = repr.decode(key, word_bytes, imm) else { continue };
                if qstrs.text(kq, texts).as_deref() != Some("__name__") {
                    continue;
                }
                let value = v.obj_at(table, 2 * k + 1).unwrap_or(0);
                if let Immediate::Qstr(vq) = repr.decode(value, word_bytes, imm) {
                    names[i] = qstrs.text(vq, texts);
                }
                break;
            }
        }
    }

    /// Stage: each bytecode function decoded (`derive`) and each bytecode
    /// among `derived`, named by the simple name in the bytecode's prelude
    /// (parsed into `preludes`). A bytecode is named through the function that
    /// gave it its role (one of several that may share it): the role's owner.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn function_names(
        &self,
        v: &View,
        (bytecodes, derived): (&[(usize, usize)], &[usize]),
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
        }
        for &bi in derived {
            let (_, role, owner) = roles.of(bi);
            // (The owner of a bytecode's role is a function's head.)
            let Some(fi) = owner.filter(|_| role == Role::Bytecode).and_then(|a| v.heap.head(a)) else { continue };
            let _s = v.log.scope(bi as u32);
            (preludes[bi], names[bi]) = self.bytecode_name(v, fi, bi, qstrs, texts);
        }
    }

    /// The prelude of function `fi`'s bytecode `bi`, and the name it gives.
    pub(super) fn bytecode_name(
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
                let context = v.object(fi, "function context").fun_context_word();
                (p, p.and_then(|p| p.simple_name).and_then(|n| self.qstr_of_name(v.mem, context, n)))
            }
        };
        (p, q.and_then(|q| qstrs.text(q, texts)))
    }

    /// The qstr a packed prelude's name value stands for: the value itself, or (when
    /// the build's bytecode indexes a table) entry `index` of the module context's
    /// `constants.qstr_table`, a `qstr_short_t` (16-bit) array. `context` is the
    /// function's `context` word; every pointer is read bounds-checked.
    pub(super) fn qstr_of_name(&self, mem: &Memory, context: Option<u64>, index: u64) -> Option<u64> {
        let objects = &self.profile.objects;
        let Some(table_word) = objects.context_qstr_table_word else { return Some(index) };
        let word = self.profile.heap.word_bytes as u64;
        let table = mem.word(context?.checked_add(table_word as u64 * word)?, "module qstr table").ok()?;
        let entry = mem.bytes(table.checked_add(index.checked_mul(2)?)?, 2, "module qstr table").ok()?;
        Some(crate::memory::le_word(entry))
    }
}
