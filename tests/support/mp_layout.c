/* The interpreter structures of CircuitPython 3.0 (commit 619b0ec164, atmel-samd
 * configuration: MICROPY_STACK_CHECK, MICROPY_KBD_EXCEPTION, no emergency
 * exception buffer, MICROPY_CAN_OVERRIDE_BUILTINS, readline history as a port root
 * pointer), written for heapvis's tests with the member names of py/mpstate.h,
 * py/obj.h, py/objstr.h, py/objlist.h, py/objtype.h, py/objfun.h and py/qstr.h.
 * Compiled with -g, its DWARF is what `heapvis profile` derives a layout from.
 * Built for the host with -m32 (the board's 32-bit layout) or without (64-bit).
 */
#include <stddef.h>

typedef __SIZE_TYPE__ size_t;
typedef size_t mp_uint_t;
typedef unsigned char byte;
typedef void *mp_obj_t;
typedef size_t qstr;
typedef unsigned short uint16_t;

struct _mp_obj_type_t;
typedef struct _mp_obj_base_t { const struct _mp_obj_type_t *type; } mp_obj_base_t;
typedef struct _mp_map_elem_t { mp_obj_t key; mp_obj_t value; } mp_map_elem_t;
typedef struct _mp_map_t {
    size_t all_keys_are_qstrs : 1;
    size_t is_fixed : 1;
    size_t is_ordered : 1;
    size_t used : (8 * sizeof(size_t) - 3);
    size_t alloc;
    mp_map_elem_t *table;
} mp_map_t;
typedef struct _mp_obj_dict_t { mp_obj_base_t base; mp_map_t map; } mp_obj_dict_t;
typedef struct _mp_obj_list_t { mp_obj_base_t base; size_t alloc; size_t len; mp_obj_t *items; } mp_obj_list_t;
typedef struct _mp_obj_tuple_t { mp_obj_base_t base; size_t len; mp_obj_t items[]; } mp_obj_tuple_t;
typedef struct _mp_obj_exception_t {
    mp_obj_base_t base;
    size_t traceback_alloc : (8 * sizeof(size_t) / 2);
    size_t traceback_len : (8 * sizeof(size_t) / 2);
    size_t *traceback_data;
    mp_obj_tuple_t *args;
} mp_obj_exception_t;
typedef struct _qstr_pool_t {
    struct _qstr_pool_t *prev;
    size_t total_prev_len;
    size_t alloc;
    size_t len;
    const byte *qstrs[];
} qstr_pool_t;

typedef struct _mp_obj_type_t {
    mp_obj_base_t base;
    qstr name;
    void *print, *make_new, *call, *unary_op, *binary_op, *attr, *subscr, *getiter, *iternext;
    void *buffer_p;
    const void *protocol;
    const void *parent;
    mp_obj_dict_t *locals_dict;
} mp_obj_type_t;
typedef struct _mp_obj_str_t { mp_obj_base_t base; mp_uint_t hash; size_t len; const byte *data; } mp_obj_str_t;
typedef struct _mp_obj_instance_t { mp_obj_base_t base; mp_map_t members; mp_obj_t subobj[]; } mp_obj_instance_t;
typedef struct _mp_obj_fun_bc_t {
    mp_obj_base_t base;
    mp_obj_dict_t *globals;
    const byte *bytecode;
    const mp_uint_t *const_table;
    mp_obj_t extra_args[];
} mp_obj_fun_bc_t;

typedef struct _mp_state_mem_t {
    byte *gc_alloc_table_start;
    size_t gc_alloc_table_byte_len;
    byte *gc_finaliser_table_start;
    byte *gc_pool_start;
    byte *gc_pool_end;
    void *gc_lowest_long_lived_ptr;
    int gc_stack_overflow;
    size_t gc_stack[64];
    size_t *gc_sp;
    uint16_t gc_lock_depth;
    _Bool gc_auto_collect_enabled;
    size_t gc_first_free_atb_index;
    size_t gc_last_free_atb_index;
} mp_state_mem_t;

typedef struct _mp_state_vm_t {
    qstr_pool_t *last_pool;
    mp_obj_exception_t mp_emergency_exception_obj;
    mp_obj_exception_t mp_kbd_exception;
    mp_obj_dict_t mp_loaded_modules_dict;
    volatile mp_obj_t mp_pending_exception;
    mp_obj_dict_t dict_main;
    mp_obj_list_t mp_sys_path_obj;
    mp_obj_list_t mp_sys_argv_obj;
    mp_obj_dict_t *mp_module_builtins_override_dict;
    const char *readline_hist[8];
    byte *qstr_last_chunk;
    size_t qstr_last_alloc;
    size_t qstr_last_used;
    mp_uint_t mp_optimise_value;
} mp_state_vm_t;

typedef struct _mp_state_thread_t {
    mp_obj_dict_t *dict_locals;
    mp_obj_dict_t *dict_globals;
    void *nlr_top;
    char *stack_top;
    size_t stack_limit;
} mp_state_thread_t;

typedef struct _mp_state_ctx_t {
    mp_state_thread_t thread;
    mp_state_vm_t vm;
    mp_state_mem_t mem;
} mp_state_ctx_t;

/* Pointers of each type keep the types in the debug info without defining the
 * firmware's own symbols. */
mp_state_ctx_t *heapvis_layout_state;
mp_obj_type_t *heapvis_layout_type;
mp_obj_str_t *heapvis_layout_str;
mp_obj_instance_t *heapvis_layout_instance;
mp_obj_fun_bc_t *heapvis_layout_fun;
qstr_pool_t *heapvis_layout_pool;

/* CircuitPython 3 imports .mpy files (MICROPY_PERSISTENT_CODE_LOAD), so its bytecode
 * stores qstrs in two bytes; the loader is in the symbol table. (Here only its name
 * matters: a zero-filled object keeps the linked test ELF's flash image as it is.) */
#ifndef NO_PERSISTENT_CODE
char mp_raw_code_load[4];
#endif

/* CircuitPython 3 predates MicroPython 1.13's immediate objects: `None` is an object
 * in flash, `mp_const_none_obj` (py/objnone.c), and qstrs are `(q << 3) | 6` in repr C.
 * (Here only its name matters: left in .bss, it adds no section with contents.) */
struct { const void *type; } mp_const_none_obj;

#ifdef PRINT_OFFSETS
#include <stdio.h>
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu\n", sizeof(void *), offsetof(mp_state_ctx_t, vm.last_pool),
           offsetof(mp_state_ctx_t, vm.dict_main.map.table), offsetof(mp_state_ctx_t, vm.mp_loaded_modules_dict.map.table),
           offsetof(mp_state_ctx_t, vm.mp_sys_path_obj.items), offsetof(mp_state_ctx_t, vm.readline_hist));
    printf("%zu %zu %zu %zu %zu %zu\n", offsetof(mp_obj_type_t, name), offsetof(mp_obj_str_t, len), offsetof(mp_obj_str_t, data),
           offsetof(mp_obj_instance_t, members.table), offsetof(mp_obj_fun_bc_t, bytecode), offsetof(qstr_pool_t, qstrs));
    return 0;
}
#endif
