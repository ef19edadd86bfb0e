/* The interpreter structures of a current CircuitPython (9.x/10.x: py/mpstate.h,
 * py/gc.c, py/qstr.h, py/obj.h on main), a 32-bit port, written for heapvis's
 * tests with the real member names: a split heap (`mem.area.next`, areas added at
 * run time), finalisers and the selective-collect table
 * (`gc_collect_table_start`), no weakref table, qstr pools with hashes and
 * lengths in arrays. Object representation C, which debug info does not show.
 */
#include "mp_objects_v1_2x.h"

typedef struct _mp_state_mem_area_t {
    struct _mp_state_mem_area_t *next;
    byte *gc_alloc_table_start;
    size_t gc_alloc_table_byte_len;
    byte *gc_finaliser_table_start;
    byte *gc_collect_table_start;
    byte *gc_pool_start;
    byte *gc_pool_end;
    size_t gc_last_free_atb_index;
    size_t gc_last_used_block;
} mp_state_mem_area_t;

typedef struct _mp_state_mem_t {
    mp_state_mem_area_t area;
    byte *area_pool_min;
    byte *area_pool_max;
    int gc_stack_overflow;
    size_t gc_block_stack[64];
    mp_state_mem_area_t *gc_area_stack[64];
    uint16_t gc_auto_collect_enabled;
    size_t gc_alloc_amount;
    size_t gc_alloc_threshold;
    mp_state_mem_area_t *gc_last_free_area;
} mp_state_mem_t;

typedef struct _mp_state_vm_t {
    qstr_pool_t *last_pool;
    mp_obj_t mp_emergency_exception_obj[4];
    mp_obj_t mp_reload_exception[4];
    mp_obj_dict_t mp_loaded_modules_dict;
    mp_obj_dict_t dict_main;
    mp_obj_list_t mp_sys_path_obj;
    mp_obj_list_t mp_sys_argv_obj;
    const char *readline_hist[8];
    char *qstr_last_chunk;
    size_t qstr_last_alloc;
    size_t qstr_last_used;
} mp_state_vm_t;

typedef struct _mp_state_thread_t {
    char *stack_top;
    size_t stack_limit;
    mp_obj_dict_t *dict_locals;
    mp_obj_dict_t *dict_globals;
    void *nlr_top;
    uint16_t gc_lock_depth;
} mp_state_thread_t;

typedef struct _mp_state_ctx_t {
    mp_state_thread_t thread;
    mp_state_vm_t vm;
    mp_state_mem_t mem;
} mp_state_ctx_t;

mp_state_ctx_t *heapvis_layout_state;
mp_obj_type_t *heapvis_layout_type;
mp_obj_str_t *heapvis_layout_str;
mp_obj_instance_t *heapvis_layout_instance;
mp_obj_fun_bc_t *heapvis_layout_fun;
mp_module_context_t *heapvis_layout_context;
qstr_pool_t *heapvis_layout_pool;
qstr_hash_t heapvis_layout_hash;
qstr_len_t heapvis_layout_len;

#ifdef PRINT_OFFSETS
#include <stdio.h>
#define O(m) (offsetof(mp_state_ctx_t, m))
int main(void) {
    /* The GC area: next, tables, pool; the area's size; vm members. */
    printf("%zu %zu %zu %zu %zu %zu %zu\n", O(mem.area.next), O(mem.area.gc_alloc_table_start),
           O(mem.area.gc_alloc_table_byte_len), O(mem.area.gc_finaliser_table_start), O(mem.area.gc_collect_table_start),
           O(mem.area.gc_pool_start), O(mem.area.gc_pool_end));
    printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n", sizeof(mp_state_mem_area_t), O(vm.last_pool),
           O(vm.mp_loaded_modules_dict), O(vm.dict_main), O(vm.mp_sys_path_obj), O(vm.mp_sys_argv_obj), O(vm.readline_hist),
           O(vm.qstr_last_chunk), sizeof(mp_state_ctx_t), offsetof(mp_module_context_t, constants.qstr_table));
    return 0;
}
#endif
