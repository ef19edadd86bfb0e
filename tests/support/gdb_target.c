/* A host program shaped like a MicroPython build, for the gdb capture script's
 * test (tests/all/capture.rs): its functions have the firmware's names and
 * signatures, and its "RAM" is an array between the symbols _sdata and
 * _estack. Each call records itself in RAM, so each snapshot shows what had
 * happened when it was taken:
 *   word 0: allocations made, word 1: collections started,
 *   word 2: collections ended, word 3: MemoryErrors raised,
 *   word 4: the size of the last allocation made. */
#include <stddef.h>
#include <stdint.h>

#define RAM_BYTES 4096
uint32_t ram[RAM_BYTES / 4] __attribute__((aligned(16)));
__asm__(".globl _sdata\n.set _sdata, ram\n.globl _estack\n.set _estack, ram + 4096\n"
        ".globl _ebss\n.set _ebss, ram + 2048\n");

__attribute__((noinline)) void *gc_alloc(size_t n_bytes, unsigned int alloc_flags) {
    ram[0] += 1;
    ram[4] = (uint32_t)n_bytes;
    ram[8 + (ram[0] % 64)] = (uint32_t)n_bytes ^ alloc_flags;
    return &ram[16];
}

__attribute__((noinline)) void gc_collect_start(void) { ram[1] += 1; }

__attribute__((noinline)) void gc_collect_root(void **ptrs, size_t len) { ram[5] = (uint32_t)len; (void)ptrs; }

__attribute__((noinline)) void gc_collect_end(void) { ram[2] += 1; }

__attribute__((noinline)) void m_malloc_fail(size_t num_bytes) { ram[3] += 1; ram[6] = (uint32_t)num_bytes; }

__attribute__((noinline)) void run_program(void) {
    void *locals[4];
    for (unsigned i = 1; i <= 30; i++) {
        gc_alloc(16 * i, 0);
        if (i % 10 == 0) {
            gc_collect_start();
            gc_collect_root(locals, 4);
            gc_collect_end();
        }
        if (i == 25) {
            m_malloc_fail(4000);
        }
    }
}

int main(void) {
    run_program();
    return 0;
}
