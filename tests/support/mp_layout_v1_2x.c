/* The interpreter structures of a current MicroPython (1.2x: py/mpstate.h, py/qstr.h,
 * py/obj.h at v1.22-v1.24), a plain 32-bit port with finalisers, weakrefs and no
 * split heap, written for heapvis's tests with the real member names: the GC state
 * lives in `mem.area`, and qstr pools keep hashes and lengths in arrays.
 */
#include "mp_objects_v1_2x.h"

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
