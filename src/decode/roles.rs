//! Stage: the roles pointers give the blocks they point at (a dict its table,
//! a list its items, the VM's state `__main__`'s table, ...). The stage runs
//! whole for every snapshot; a run decoder compares the roles with the
//! snapshot before's instead of recording what they read.

use super::*;

/// Words of a closure searched for its cells (`n_closed` is small: the
/// variables one function closes over).
pub(super) const MAX_CLOSURE_WORDS: u64 = 256;

/// What the role stages make: the roles, the REPL history's lines, and each
/// bytecode function with its bytecode's allocation.
pub(super) struct RoleOut {
    pub(super) roles: Roles,
    pub(super) readline: Vec<usize>,
    pub(super) bytecodes: Vec<(usize, usize)>,
}

/// The roles given by pointers, per allocation: the reference's category, and
/// the detailed role with the address of the object that gave it.
pub(super) struct Roles {
    pub(super) category: Vec<Category>,
    pub(super) detail: Vec<(Role, Option<u64>)>,
}

impl Roles {
    /// Every allocation's role, in `into`'s memory.
    pub(super) fn list(&self, mut into: Vec<RoleOf>) -> Vec<RoleOf> {
        into.clear();
        into.extend((0..self.category.len()).map(|i| self.of(i)));
        into
    }

    /// Allocation `i`'s role.
    pub(super) fn of(&self, i: usize) -> RoleOf {
        let (category, (role, owner)) = (self.category[i], self.detail[i]);
        (category, role, owner)
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

impl Decoder<'_> {
    /// Stage: the roles pointers give, from other objects, from the VM's state
    /// and from the qstr pools (with the qstrs' rows, in a whole decode).
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
    pub(super) fn rederive_changed_roles(
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

    /// Stage: the roles objects give the blocks they point at (a dict its
    /// table, a str its data, a function its bytecode, ...), with the functions'
    /// bytecode on the way. It runs whole for every snapshot (its reads are
    /// not recorded: a run decoder compares the roles).
    pub(super) fn object_roles(&self, v: &View, kinds: &[Category], type_addrs: &[Option<u64>], out: &mut RoleOut) {
        for (i, kind) in kinds.iter().enumerate() {
            let obj = v.object(i, "roles");
            let (roles, address) = (&mut out.roles, Some(v.addr_of(i)));
            match kind {
                Category::Dict => {
                    if let Some(tb) = obj.dict_table() {
                        roles.give(tb, Category::MapTable, Role::DictTable, address);
                    }
                }
                Category::Instance => {
                    if let Some(tb) = obj.instance_table() {
                        roles.give(tb, Category::MapTable, Role::InstanceTable, address);
                    }
                }
                Category::Str => {
                    if let Some(sb) = obj.str_data() {
                        roles.give(sb, Category::StringData, Role::StrData, address);
                    }
                }
                Category::Function => {
                    if let Some(bb) = obj.fun_bytecode() {
                        roles.give(bb, Category::Bytecode, Role::Bytecode, address);
                        out.bytecodes.push((i, bb));
                    }
                    self.give_owned_role(roles, i, &obj, type_addrs, v.addr_of(i));
                }
                _ => self.give_owned_role(roles, i, &obj, type_addrs, v.addr_of(i)),
            }
        }
    }

    /// Stage: the roles the VM's state gives: the tables of `__main__`'s and
    /// the modules' dicts, the items of `sys.path` and `sys.argv`, the REPL's
    /// history lines. Like [`Decoder::object_roles`], it runs whole.
    pub(super) fn state_roles(&self, v: &View, out: &mut RoleOut, notes: &mut Vec<String>) -> Result<(), DecodeError> {
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

    /// The role an object of a built-in type without a reference category gives
    /// the blocks it owns: a list its items, a set its table, a bytes object or an
    /// array its data, a closure its cells. `obj` is allocation `i`.
    pub(super) fn give_owned_role(
        &self,
        roles: &mut Roles,
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
