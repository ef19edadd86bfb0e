/* The object structs of current MicroPython (1.2x: py/obj.h, py/qstr.h, py/objfun.h,
 * py/bc.h) and CircuitPython 9/10, which share them: heapvis's DWARF tests include
 * this from mp_layout_v1_2x.c and cp_layout_v10.c. Real member names; NANBOX makes
 * mp_obj_t the 64-bit integer of representation D.
 */
#ifndef HEAPVIS_MP_OBJECTS_V1_2X_H
#define HEAPVIS_MP_OBJECTS_V1_2X_H
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

#endif
