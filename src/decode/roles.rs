//! Stage: the roles pointers give the blocks they point at (a dict its table,
//! a list its items, the VM's state `__main__`'s table, ...). Made whole, the
//! stage visits every allocation; a run decoder keeps the gifts in a
//! [`GiftBook`] and, from the snapshot before, gives again only the gifts of
//! the allocations decoded again ([`super::gifts`]).

use super::gifts::{Gift, GiftBook, Giving};
use super::*;

/// Words of a closure searched for its cells (`n_closed` is small: the
/// variables one function closes over).
pub(super) const MAX_CLOSURE_WORDS: u64 = 256;

/// Allocations whose roles were made again, each with the role it had in the
/// snapshot before when carried over.
pub(super) type Compared = Vec<(usize, Option<RoleOf>)>;

/// Allocation `i`'s role in `roles` when `focus` carried it over from the
/// snapshot before.
fn carried_role(focus: &Focus, roles: &Roles, i: usize) -> Option<RoleOf> {
    (focus.carried.get(i) == Some(&true)).then(|| roles.get(i)).flatten()
}

/// What the role stages make: the roles, the REPL history's lines, and each
/// bytecode function with its bytecode's allocation.
pub(super) struct RoleOut {
    pub(super) roles: Roles,
    pub(super) readline: Vec<usize>,
    pub(super) bytecodes: Vec<(usize, usize)>,
}

/// The roles given by pointers, per allocation: the reference's category, and
/// the detailed role with the address of the object that gave it.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    pub category: Vec<Category>,
    pub detail: Vec<(Role, Option<u64>)>,
}

impl Roles {
    /// `n` allocations with no role yet.
    #[cfg(test)]
    pub(super) fn new(n: usize) -> Self {
        Roles { category: vec![Category::Unknown; n], detail: vec![(Role::None, None); n] }
    }

    /// Whether it holds `n` allocations' roles.
    pub fn holds(&self, n: usize) -> bool {
        self.category.len() == n && self.detail.len() == n
    }

    /// Allocation `i` without a role.
    pub(super) fn reset(&mut self, i: usize) {
        if let (Some(c), Some(d)) = (self.category.get_mut(i), self.detail.get_mut(i)) {
            (*c, *d) = (Category::Unknown, (Role::None, None));
        }
    }

    /// Allocation `i`'s role.
    pub(super) fn of(&self, i: usize) -> RoleOf {
        let (category, (role, owner)) = (self.category[i], self.detail[i]);
        (category, role, owner)
    }

    /// Allocation `i`'s role, `None` past the allocations.
    pub(super) fn get(&self, i: usize) -> Option<RoleOf> {
        let (&category, &(role, owner)) = (self.category.get(i)?, self.detail.get(i)?);
        Some((category, role, owner))
    }

    /// Gives allocation `i` a role, unless it has one that ranks higher: the
    /// category's rank first (the reference's order), then the detailed role's.
    pub(super) fn give(&mut self, i: usize, category: Category, role: Role, owner: Option<u64>) {
        let (Some(c), Some(d)) = (self.category.get_mut(i), self.detail.get_mut(i)) else { return };
        if (category.role_rank(), role) > (c.role_rank(), d.0) {
            if category.role_rank() > c.role_rank() {
                *c = category;
            }
            *d = (role, owner);
        }
    }
}

/// What the roles stage starts from: the plan's focus, and a run decoder's
/// book of the snapshot before (`tracked`: the decode is a run decoder's).
pub(super) struct RolesIn<'a> {
    pub(super) focus: Option<&'a Focus>,
    /// With a focus: the snapshot before's roles, where `focus.carried` says
    /// (taken out of the focus, to be given again where they change).
    pub(super) before: Option<Roles>,
    pub(super) book: Option<GiftBook>,
    pub(super) tracked: bool,
}

impl Decoder<'_> {
    /// Stage: the roles, from the book of the snapshot before when decoded
    /// from it, else whole (into a new book, for a run decoder); then, with a
    /// focus, the allocations whose role changed are decoded again (they are
    /// added to `derive`). Returns the roles and the book for the next
    /// snapshot.
    pub(super) fn roles_stage(
        &self,
        v: &View,
        (kinds, pools): (&mut Kinds, &QstrPools),
        (qstrs, texts): (&mut qstr::QstrReader, &mut qstr::TextCache),
        (report, scratch): (&mut SnapshotReport, &mut Scratch),
        RolesIn { focus, before, book, tracked }: RolesIn,
        derive: &mut [bool],
    ) -> Result<(RoleOut, Option<GiftBook>), DecodeError> {
        let (mut out, compared, book) = match (focus, before, book) {
            (Some(f), Some(before), Some(mut b)) => {
                let working = (report, scratch);
                let (out, compared) = self.roles_from_book(v, kinds, pools, qstrs, texts, working, (f, before, &mut b))?;
                (out, Some(compared), Some(b))
            }
            (focus, before, _) => {
                let mut fresh = tracked.then(GiftBook::default);
                let out = self.roles(v, kinds, pools, qstrs, texts, report, scratch, fresh.as_mut())?;
                // With a focus, every allocation is compared with what it had.
                let was = |f: &Focus, i: usize| before.as_ref().and_then(|b| carried_role(f, b, i));
                let compared = focus.map(|f| (0..derive.len()).map(|i| (i, was(f, i))).collect::<Vec<_>>());
                (out, compared, fresh)
            }
        };
        if let Some(compared) = compared {
            self.rederive_changed_roles(v, &compared, &out.roles, pools.ram_pools, derive, kinds, &mut out.bytecodes);
        }
        Ok((out, book))
    }

    /// Stage: the roles pointers give, from other objects, from the VM's state
    /// and from the qstr pools (with the qstrs' rows, in a whole decode),
    /// every allocation visited. With a `book` (a run decoder's), each object's
    /// reads are recorded as its own and its gifts kept in the book.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn roles(
        &self,
        v: &View,
        kinds: &Kinds,
        pools: &QstrPools,
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        report: &mut SnapshotReport,
        scratch: &mut Scratch,
        mut book: Option<&mut GiftBook>,
    ) -> Result<RoleOut, DecodeError> {
        let n = kinds.category.len();
        let roles = Roles {
            category: refill(std::mem::take(&mut scratch.roles), n, Category::Unknown),
            detail: refill(std::mem::take(&mut scratch.details), n, (Role::None, None)),
        };
        let mut out = RoleOut { roles, readline: Vec::new(), bytecodes: std::mem::take(&mut scratch.bytecodes) };
        out.bytecodes.clear();
        if let Some(b) = book.as_deref_mut() {
            *b = GiftBook::default();
        }
        let tracked = book.is_some();
        let untracked = (!tracked).then(|| v.log.scope(UNTRACKED));
        let (roles, bytecodes) = (&mut out.roles, &mut out.bytecodes);
        let mut giving = Giving { roles: Some(roles), book: book.as_deref_mut(), giver: 0, starts: v.heap.allocs, touched: None };
        for (i, a) in v.heap.allocs.iter().enumerate() {
            let _s = tracked.then(|| v.log.scope(i as u32));
            giving.giver = a.start_block;
            self.object_gifts(v, i, (&kinds.category, &kinds.type_addrs), &mut giving, bytecodes);
        }
        drop(untracked);
        let globals = self.global_gifts(v, pools, (qstrs, texts), report, &mut out.readline)?;
        for &(i, g) in &globals {
            out.roles.give(i, g.category, g.role, g.owner);
        }
        if let Some(b) = book {
            b.replace_globals(by_block(v, &globals), &mut Vec::new());
        }
        Ok(out)
    }

    /// Stage (a focused decode, with the `book` of the snapshot before): the
    /// gifts of the allocations of the snapshot before that changed or are
    /// decoded again (`focus.regive`) are dropped, those decoded again
    /// (`focus.derive`) give theirs, and the roles of the allocations not
    /// carried over, and of those the gifts went to, are made again from the
    /// book. Returns them too, sorted: the others are the snapshot before's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn roles_from_book(
        &self,
        v: &View,
        kinds: &Kinds,
        pools: &QstrPools,
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        (report, scratch): (&mut SnapshotReport, &mut Scratch),
        (focus, before, book): (&Focus, Roles, &mut GiftBook),
    ) -> Result<(RoleOut, Compared), DecodeError> {
        let mut out = RoleOut { roles: before, readline: Vec::new(), bytecodes: std::mem::take(&mut scratch.bytecodes) };
        out.bytecodes.clear();
        let mut touched = Vec::new();
        for &giver in &focus.regive {
            book.drop_giver(giver, &mut touched);
        }
        let allocs = v.heap.allocs;
        for (i, a) in allocs.iter().enumerate().filter(|&(i, _)| focus.derive.get(i) == Some(&true)) {
            let _s = v.log.scope(i as u32);
            let mut giving =
                Giving { roles: None, book: Some(&mut *book), giver: a.start_block, starts: allocs, touched: Some(&mut touched) };
            self.object_gifts(v, i, (&kinds.category, &kinds.type_addrs), &mut giving, &mut out.bytecodes);
        }
        let globals = self.global_gifts(v, pools, (qstrs, texts), report, &mut out.readline)?;
        book.replace_globals(by_block(v, &globals), &mut touched);
        let mut remade: Vec<usize> = (0..allocs.len()).filter(|&i| focus.carried.get(i) != Some(&true)).collect();
        remade.extend(touched.iter().filter_map(|&b| v.heap.head(v.heap.g.block_address(b))));
        remade.sort_unstable();
        remade.dedup();
        let compared: Compared = remade.iter().map(|&i| (i, carried_role(focus, &out.roles, i))).collect();
        for &(i, _) in &compared {
            book.role_of(i, allocs[i].start_block, &mut out.roles);
        }
        Ok((out, compared))
    }

    /// Stage (a focused decode): the allocations `compared` whose role differs
    /// from the snapshot before's are made again; their base kind was
    /// known, and is read again so that its reads are theirs, and so are what
    /// they read to give their roles (the gifts are the same: their bytes
    /// and what they point at are).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rederive_changed_roles(
        &self,
        v: &View,
        compared: &[(usize, Option<RoleOf>)],
        roles: &Roles,
        ram_pools: &[qstr::PoolHeader],
        derive: &mut [bool],
        kinds: &mut Kinds,
        bytecodes: &mut Vec<(usize, usize)>,
    ) {
        for &(i, before) in compared {
            if !derive[i] && before != roles.get(i) {
                derive[i] = true;
                let _s = v.log.scope(i as u32);
                (kinds.category[i], kinds.type_addrs[i]) = self.base_kind_of(v, i, ram_pools);
                let mut giving = Giving { roles: None, book: None, giver: 0, starts: v.heap.allocs, touched: None };
                self.object_gifts(v, i, (&kinds.category, &kinds.type_addrs), &mut giving, bytecodes);
            }
        }
    }

    /// The roles object `i` gives the blocks it points at (a dict its table, a
    /// str its data, a function its bytecode, ...), with a function's bytecode
    /// pushed to `bytecodes`. (Inlined: the loop over a whole heap's
    /// allocations calls it for each.)
    #[inline]
    pub(super) fn object_gifts(
        &self,
        v: &View,
        i: usize,
        (kinds, type_addrs): (&[Category], &[Option<u64>]),
        giving: &mut Giving,
        bytecodes: &mut Vec<(usize, usize)>,
    ) {
        let Some(&kind) = kinds.get(i) else { return };
        // (Its own words are read as "role target" too: a read of its own
        // bytes is never recorded.)
        let obj = v.object(i, "role target");
        let address = Some(v.addr_of(i));
        match kind {
            Category::Dict => {
                if let Some(tb) = obj.dict_table() {
                    giving.give(tb, Category::MapTable, Role::DictTable, address);
                }
            }
            Category::Instance => {
                if let Some(tb) = obj.instance_table() {
                    giving.give(tb, Category::MapTable, Role::InstanceTable, address);
                }
            }
            Category::Str => {
                if let Some(sb) = obj.str_data() {
                    giving.give(sb, Category::StringData, Role::StrData, address);
                }
            }
            Category::Function => {
                if let Some(bb) = obj.fun_bytecode() {
                    giving.give(bb, Category::Bytecode, Role::Bytecode, address);
                    bytecodes.push((i, bb));
                }
                self.give_owned_role(giving, i, &obj, type_addrs, v.addr_of(i));
            }
            _ => self.give_owned_role(giving, i, &obj, type_addrs, v.addr_of(i)),
        }
    }

    /// The roles the VM's state and the qstr pools give, in order (with the
    /// REPL's history lines in `readline`, and the qstrs' rows in a whole
    /// decode).
    fn global_gifts(
        &self,
        v: &View,
        pools: &QstrPools,
        (qstrs, texts): (&mut qstr::QstrReader, &mut qstr::TextCache),
        report: &mut SnapshotReport,
        readline: &mut Vec<usize>,
    ) -> Result<Vec<(usize, Gift)>, DecodeError> {
        let mut globals = Vec::new();
        self.state_roles(v, &mut globals, readline, &mut report.notes)?;
        let mut qstr_out = (&mut report.qstrs, &mut report.notes);
        self.qstr_rows(v, pools, qstrs, texts, &mut globals, &mut qstr_out);
        Ok(globals)
    }

    /// Stage: the roles the VM's state gives: the tables of `__main__`'s and
    /// the modules' dicts, the items of `sys.path` and `sys.argv`, the REPL's
    /// history lines, as global gifts: given after the objects', made whole
    /// for every snapshot (a few words of the VM's state).
    pub(super) fn state_roles(
        &self,
        v: &View,
        globals: &mut Vec<(usize, Gift)>,
        readline: &mut Vec<usize>,
        notes: &mut Vec<String>,
    ) -> Result<(), DecodeError> {
        let _untracked = v.log.scope(UNTRACKED);
        let mut give = |i: usize, category, role| globals.push((i, Gift { category, role, owner: None }));
        let (state, s) = (self.firmware.state_address, &self.profile.state);
        let in_ram = |w: u64| w > self.firmware.ram_start && w < self.firmware.ram_end;
        for (offset, what) in [
            (s.dict_main_table, "vm.dict_main.map.table"),
            (s.loaded_modules_table, "vm.mp_loaded_modules_dict.map.table"),
        ] {
            let p = state_word(v.mem, state, offset, what)?;
            if let Some(tb) = v.heap.head(p) {
                give(tb, Category::MapTable, Role::DictTable);
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
                give(ib, Category::Unknown, Role::ListItems);
            }
        }
        let Some(base) = s.readline_hist else { return Ok(()) };
        for k in 0..s.readline_hist_len as u64 {
            let p = state_word(v.mem, state, base.saturating_add(k * v.word), "vm.readline_hist")?;
            if let Some(sb) = v.heap.head(p) {
                give(sb, Category::StringData, Role::ReadlineLine);
                readline.push(sb);
            }
        }
        Ok(())
    }

    /// The role an object of a built-in type without a reference category gives
    /// the blocks it owns: a list its items, a set its table, a bytes object or an
    /// array its data, a closure its cells. `obj` is allocation `i`.
    pub(super) fn give_owned_role(
        &self,
        roles: &mut Giving,
        i: usize,
        obj: &Struct,
        type_addrs: &[Option<u64>],
        address: u64,
    ) {
        let t = &self.firmware.types;
        let Some(ta) = type_addrs[i] else { return };
        let is = |opt: Option<u64>| opt == Some(ta);
        let (at, role) = if is(t.list) {
            (obj.list_items(), Role::ListItems)
        } else if is(t.set) || is(t.frozenset) {
            (obj.set_table(), Role::SetTable)
        } else if is(t.bytearray) || is(t.array) {
            (obj.array_items(), Role::ArrayItems)
        } else if is(t.bytes) {
            (obj.str_data(), Role::BytesData)
        } else if is(t.fun_bc) {
            // Current MicroPython: the raw code of inner functions, and the
            // module context (typed when it is a module; the REPL's is not).
            if let Some(c) = obj.fun_child_table() {
                roles.give(c, Category::Unknown, Role::ChildTable, Some(address));
            }
            let packed = self.profile.objects.bytecode_prelude == BytecodePrelude::Packed;
            if let Some(c) = obj.fun_context().filter(|&c| packed && type_addrs[c].is_none()) {
                roles.give(c, Category::Unknown, Role::ModuleContext, None);
            }
            return;
        } else if is(t.int) {
            (obj.int_digits(), Role::IntDigits)
        } else if self.firmware.type_kinds.get(&ta) == Some(&"exception") {
            (obj.exception_traceback(), Role::Traceback)
        } else if is(t.module) && self.profile.objects.context_qstr_table_word.is_some() {
            // Current MicroPython allocates every module as an `mp_module_context_t`.
            (obj.module_qstr_table(), Role::QstrTable)
        } else if is(t.closure) && t.cell.is_some() {
            // `closed[]` follows `fun` and `n_closed`; the cells are the typed
            // objects among the words after the first.
            for p in obj.words_after_first(MAX_CLOSURE_WORDS) {
                if let Some(c) = obj.head_of(p).filter(|&c| type_addrs[c] == t.cell) {
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
}

/// Global gifts by their target's first block, for the book.
fn by_block(v: &View, globals: &[(usize, Gift)]) -> Vec<(u64, Gift)> {
    globals.iter().filter_map(|&(i, g)| Some((v.heap.allocs.get(i)?.start_block, g))).collect()
}
