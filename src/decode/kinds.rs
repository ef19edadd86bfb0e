//! What an allocation is, in the words of a Python programmer: the `kind` column.
//!
//! The reference's fifteen categories ([`super::Category`]) say `unknown` for most
//! of a current heap: lists, floats, bytes, closures, cells, modules, generators
//! and the arrays that belong to other objects. A kind says what each one is:
//! - an object whose type is a built-in type in flash gets that type's kind
//!   (`mp_type_list` → `list`, `mp_type_fun_bc` → `function`, any exception
//!   type → `exception`); an object of a type a port or a native module defines
//!   in C (`machine_pin_type`, `busio_i2c_type`) is a `native_object`;
//! - an instance of a class defined in Python is an `instance`, a class a `type`;
//! - a block with no type of its own is named by the object it belongs to, given
//!   by that object's pointer ([`Role`]): a list's items, a dict's table, a str's
//!   data, a function's bytecode, with the owner's address beside it;
//! - `unknown` when nothing can be said.

/// The kinds of the core's built-in types, by the type object's symbol. A type
/// symbol not listed here is named by its shape (see [`of_type_symbol`]).
const BUILT_IN: &[(&str, &str)] = &[
    // Sorted by symbol (looked up by binary search). Iterators are `iterator`:
    // what they iterate is in `type_name`.
    ("mp_type_array", "array"),
    ("mp_type_array_it", "iterator"),
    ("mp_type_attrtuple", "tuple"),
    ("mp_type_bound_meth", "bound_method"),
    ("mp_type_bytearray", "bytearray"),
    ("mp_type_bytes", "bytes"),
    ("mp_type_bytesio", "bytesio"),
    ("mp_type_cell", "cell"),
    ("mp_type_checked_fun", "function"),
    ("mp_type_classmethod", "classmethod"),
    ("mp_type_closure", "closure"),
    ("mp_type_code", "code"),
    ("mp_type_complex", "complex"),
    ("mp_type_deque", "deque"),
    ("mp_type_dict", "dict"),
    ("mp_type_dict_view", "dict_view"),
    ("mp_type_dict_view_it", "iterator"),
    ("mp_type_enumerate", "iterator"),
    ("mp_type_filter", "iterator"),
    ("mp_type_float", "float"),
    ("mp_type_frame", "frame"),
    ("mp_type_frozenset", "frozenset"),
    ("mp_type_fun_asm", "native_function"),
    ("mp_type_fun_bc", "function"),
    ("mp_type_fun_builtin_0", "builtin_function"),
    ("mp_type_fun_builtin_1", "builtin_function"),
    ("mp_type_fun_builtin_2", "builtin_function"),
    ("mp_type_fun_builtin_3", "builtin_function"),
    ("mp_type_fun_builtin_var", "builtin_function"),
    ("mp_type_fun_native", "native_function"),
    ("mp_type_fun_viper", "native_function"),
    ("mp_type_gen_instance", "generator"),
    ("mp_type_gen_wrap", "generator_function"),
    ("mp_type_int", "int"),
    ("mp_type_it", "iterator"),
    ("mp_type_list", "list"),
    ("mp_type_map", "iterator"),
    ("mp_type_memoryview", "memoryview"),
    ("mp_type_module", "module"),
    ("mp_type_native_gen_wrap", "generator_function"),
    ("mp_type_object", "object"),
    ("mp_type_ordereddict", "dict"),
    ("mp_type_polymorph_iter", "iterator"),
    ("mp_type_polymorph_iter_with_finaliser", "iterator"),
    ("mp_type_property", "property"),
    ("mp_type_range", "range"),
    ("mp_type_range_it", "iterator"),
    ("mp_type_reversed", "iterator"),
    ("mp_type_set", "set"),
    ("mp_type_slice", "slice"),
    ("mp_type_staticmethod", "staticmethod"),
    ("mp_type_str", "str"),
    ("mp_type_stringio", "stringio"),
    ("mp_type_super", "super"),
    ("mp_type_tuple", "tuple"),
    ("mp_type_type", "type"),
    ("mp_type_zip", "iterator"),
];

/// The kind of an object whose first word is the flash symbol `symbol`, or `None`
/// when the symbol does not name a type (a pointer to a constant, such as
/// `mp_const_none_obj`, in the first word of a data block says nothing about it).
pub fn of_type_symbol(symbol: &str) -> Option<&'static str> {
    if let Ok(i) = BUILT_IN.binary_search_by_key(&symbol, |(s, _)| s) {
        return Some(BUILT_IN[i].1);
    }
    if let Some(rest) = symbol.strip_prefix("mp_type_") {
        // `mp_type_ValueError`, `mp_type_MemoryError`, ...: exception types are
        // the core's only capitalised type names.
        if rest.starts_with(|c: char| c.is_ascii_uppercase()) && rest != "NoneType" {
            return Some("exception");
        }
        return Some("native_object");
    }
    // A port's or a native module's type (`machine_pin_type`, `busio_i2c_type`).
    (symbol.ends_with("_type") || symbol.contains("_type_")).then_some("native_object")
}

/// What a block without a type of its own is for, given by the object pointing
/// at it. Ranked: where two objects claim one block, the higher rank wins, in the
/// reference's order for the roles it knows (see [`super::Category`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    #[default]
    None,
    /// A closure's cell (the cell is typed; the role names its owner).
    Cell,
    /// `mp_obj_fun_bc_t.context` when it has no type of its own: the
    /// `mp_module_context_t` of code compiled at run time (the REPL, `exec`),
    /// shared by its functions (no one owner).
    ModuleContext,
    /// `mp_obj_fun_bc_t.child_table`: the raw code of the functions defined
    /// inside a function.
    ChildTable,
    /// `mp_obj_exception_t.traceback_data`.
    Traceback,
    /// `mp_obj_int_t.mpz.dig`: a long int's digits.
    IntDigits,
    /// `mp_module_context_t.constants.qstr_table`: the qstrs a module's
    /// bytecode names by index (current MicroPython).
    QstrTable,
    /// `mp_obj_array_t.items` of a `bytearray` or an `array`.
    ArrayItems,
    /// `mp_obj_set_t.set.table` of a `set` or `frozenset`.
    SetTable,
    /// `mp_obj_list_t.items`.
    ListItems,
    /// `mp_obj_str_t.data` of a `bytes` object made at run time.
    BytesData,
    /// `mp_obj_str_t.data` of a `str` made at run time.
    StrData,
    /// A line of the REPL's history (`vm.readline_hist`).
    ReadlineLine,
    /// `mp_obj_fun_bc_t.bytecode`.
    Bytecode,
    /// Holds the text of qstrs interned at run time.
    QstrChunk,
    /// `mp_obj_instance_t.members.table`.
    InstanceTable,
    /// `mp_obj_dict_t.map.table`, or the table of one of the VM's dicts.
    DictTable,
}

impl Role {
    /// The kind this role gives, `None` for [`Role::None`] and for a cell (which
    /// keeps its own type's kind).
    pub fn kind(self) -> Option<&'static str> {
        Some(match self {
            Role::None | Role::Cell => return None,
            Role::ModuleContext => "module_context",
            Role::ChildTable => "child_table",
            Role::Traceback => "traceback",
            Role::IntDigits => "int_digits",
            Role::QstrTable => "qstr_table",
            Role::ArrayItems => "array_items",
            Role::SetTable => "set_table",
            Role::ListItems => "list_items",
            Role::BytesData => "bytes_data",
            Role::StrData => "str_data",
            Role::ReadlineLine => "readline_line",
            Role::Bytecode => "bytecode",
            Role::QstrChunk => "qstr_chunk",
            Role::InstanceTable => "instance_table",
            Role::DictTable => "dict_table",
        })
    }
}

/// Every kind a block can get, for the README and its test.
pub const ALL: &[&str] = &[
    "array",
    "array_items",
    "bound_method",
    "builtin_function",
    "bytearray",
    "bytecode",
    "bytes",
    "bytes_data",
    "bytesio",
    "cell",
    "child_table",
    "classmethod",
    "closure",
    "code",
    "complex",
    "deque",
    "dict",
    "dict_table",
    "dict_view",
    "exception",
    "float",
    "frame",
    "frozenset",
    "function",
    "generator",
    "generator_function",
    "instance",
    "instance_table",
    "int",
    "int_digits",
    "iterator",
    "list",
    "list_items",
    "memoryview",
    "module",
    "module_context",
    "native_function",
    "native_object",
    "object",
    "property",
    "qstr_chunk",
    "qstr_pool",
    "qstr_table",
    "range",
    "readline_line",
    "set",
    "set_table",
    "slice",
    "staticmethod",
    "str",
    "str_data",
    "stringio",
    "super",
    "traceback",
    "tuple",
    "type",
    "unknown",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_kind_is_listed() {
        assert!(BUILT_IN.windows(2).all(|w| w[0].0 < w[1].0), "binary search needs the table sorted");
        let mut named: Vec<&str> = BUILT_IN.iter().map(|(_, k)| *k).collect();
        named.extend(["exception", "native_object", "instance", "qstr_pool", "unknown"]);
        named.extend(
            [
                Role::ModuleContext,
                Role::ChildTable,
                Role::Traceback,
                Role::IntDigits,
                Role::QstrTable,
                Role::ArrayItems,
                Role::SetTable,
                Role::ListItems,
                Role::BytesData,
                Role::StrData,
                Role::ReadlineLine,
                Role::Bytecode,
                Role::QstrChunk,
                Role::InstanceTable,
                Role::DictTable,
            ]
            .iter()
            .filter_map(|r| r.kind()),
        );
        named.sort_unstable();
        named.dedup();
        assert_eq!(named, ALL);
    }

    #[test]
    fn type_symbols_are_named_by_their_shape() {
        assert_eq!(of_type_symbol("mp_type_list"), Some("list"));
        assert_eq!(of_type_symbol("mp_type_ValueError"), Some("exception"));
        assert_eq!(of_type_symbol("mp_type_NoneType"), Some("native_object"));
        assert_eq!(of_type_symbol("busio_i2c_type"), Some("native_object"));
        assert_eq!(of_type_symbol("mp_const_none_obj"), None);
        assert_eq!(of_type_symbol("mp_builtin_print_obj"), None);
    }
}
