/* The interpreter structures of a current MicroPython (1.2x: py/mpstate.h, py/qstr.h,
 * py/obj.h at v1.22-v1.24), a plain 32-bit port with finalisers, weakrefs and no
 * split heap, written for heapvis's tests with the real member names: the GC state
 * lives in `mem.area`, and qstr pools keep hashes and lengths in arrays.
 */
#include <stddef.h>

typedef __SIZE_TYPE__ size_t;
typedef size_t mp_uint_t;
typedef unsigned char byte;
#ifdef NANBOX /* MICROPY_OBJ_REPR_D: 64-bit objects on a 32-bit port */
typedef unsigned long long mp_obj_t;
#else
typedef void *mp_obj_t;
#endif
typedef unsigned short uint16_t;
typedef unsigned char qstr_hash_t;
typedef unsigned char qstr_len_t;
typedef uint16_t qstr_short_t;

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
typedef struct _qstr_pool_t {
    const struct _qstr_pool_t *prev;
    size_t total_prev_len : (8 * sizeof(size_t) - 1);
    size_t is_sorted : 1;
    size_t alloc;
    size_t len;
    qstr_hash_t *hashes;
    qstr_len_t *lengths;
    const char *qstrs[];
} qstr_pool_t;
typedef struct _mp_obj_type_t {
    mp_obj_base_t base;
    uint16_t flags;
    uint16_t name;
    byte slot_index_make_new, slot_index_print, slot_index_call, slot_index_unary_op;
    const void *slots[];
} mp_obj_type_t;
typedef struct _mp_obj_str_t { mp_obj_base_t base; size_t hash; size_t len; const byte *data; } mp_obj_str_t;
typedef struct _mp_obj_instance_t { mp_obj_base_t base; mp_map_t members; mp_obj_t subobj[]; } mp_obj_instance_t;
typedef struct _mp_obj_fun_bc_t {
    mp_obj_base_t base;
    const void *context;
    struct _mp_obj_fun_bc_t *child_table;
    const byte *bytecode;
    mp_obj_t extra_args[];
} mp_obj_fun_bc_t;

typedef struct _mp_module_constants_t {
    qstr_short_t *qstr_table;
    mp_obj_t *obj_table;
} mp_module_constants_t;
typedef struct _mp_obj_module_t { mp_obj_base_t base; mp_obj_dict_t *globals; } mp_obj_module_t;
typedef struct _mp_module_context_t {
    mp_obj_module_t module;
    mp_module_constants_t constants;
} mp_module_context_t;

typedef struct _mp_state_mem_area_t {
    byte *gc_alloc_table_start;
    size_t gc_alloc_table_byte_len;
    byte *gc_finaliser_table_start;
    byte *gc_weakref_table_start;
    byte *gc_pool_start;
    byte *gc_pool_end;
    size_t gc_last_free_atb_index;
    size_t gc_last_used_block;
} mp_state_mem_area_t;

typedef struct _mp_state_mem_t {
    mp_state_mem_area_t area;
    int gc_stack_overflow;
    size_t gc_block_stack[64];
    uint16_t gc_auto_collect_enabled;
    size_t gc_alloc_amount;
    size_t gc_alloc_threshold;
} mp_state_mem_t;

typedef struct _mp_state_vm_t {
    qstr_pool_t *last_pool;
    mp_obj_t mp_emergency_exception_obj[4];
    mp_obj_dict_t mp_loaded_modules_dict;
    volatile mp_obj_t mp_pending_exception;
    mp_obj_dict_t dict_main;
    mp_obj_list_t mp_sys_path_obj;
    mp_obj_list_t mp_sys_argv_obj;
    const char *readline_hist[8];
    byte *qstr_last_chunk;
    size_t qstr_last_alloc;
    size_t qstr_last_used;
} mp_state_vm_t;

typedef struct _mp_state_thread_t {
    char *stack_top;
    size_t stack_limit;
    mp_obj_dict_t *dict_locals;
    mp_obj_dict_t *dict_globals;
    void *nlr_top;
} mp_state_thread_t;

typedef struct _mp_state_ctx_t {
    mp_state_thread_t thread;
    mp_state_vm_t vm;
    mp_state_mem_t mem;
} mp_state_ctx_t;

/* STATE_ONLY / OBJECTS_ONLY split the declarations over two compilation units,
 * as in a real build, where each unit's DWARF has only the types it uses. */
#ifndef OBJECTS_ONLY
mp_state_ctx_t *heapvis_layout_state;
#endif
#ifndef STATE_ONLY
mp_obj_type_t *heapvis_layout_type;
mp_obj_str_t *heapvis_layout_str;
mp_obj_instance_t *heapvis_layout_instance;
mp_obj_fun_bc_t *heapvis_layout_fun;
mp_module_context_t *heapvis_layout_context;
qstr_pool_t *heapvis_layout_pool;
qstr_hash_t heapvis_layout_hash;
qstr_len_t heapvis_layout_len;
#endif

#ifdef PRINT_OFFSETS
#include <stdio.h>
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu\n", offsetof(mp_state_ctx_t, mem.area.gc_alloc_table_start),
           offsetof(mp_state_ctx_t, mem.area.gc_alloc_table_byte_len), offsetof(mp_state_ctx_t, mem.area.gc_finaliser_table_start),
           offsetof(mp_state_ctx_t, mem.area.gc_pool_start), offsetof(mp_state_ctx_t, mem.area.gc_pool_end),
           offsetof(mp_state_ctx_t, vm.last_pool));
    printf("%zu %zu %zu %zu %zu\n", sizeof(void *), offsetof(qstr_pool_t, hashes), offsetof(qstr_pool_t, lengths),
           offsetof(qstr_pool_t, qstrs), offsetof(mp_obj_type_t, name));
    return 0;
}
#endif
