// Runs the real kernels of gather.cu on the CPU, one simulated thread after another, for tests.
//
// The kernels never synchronise threads or share memory, so executing every (block, thread)
// sequentially gives the same result as the GPU.  Each host read is logged as
// (address, block, threadIdx.y, threadIdx.x, i) so the tests can check, on the kernel's own code,
// that every element is copied once and which 128-byte lines each warp reads.
//
// Build: g++ -O1 -shared -fPIC -o libgather_emu.so cpu_emulation.cpp

#include <cstdint>

struct emu_dim3 { unsigned int x, y, z; };
static emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

static long long* g_log = nullptr;
static long long g_log_cap = 0;
static long long g_log_len = 0;

#define __global__
#define __restrict__
#define __align__(n) alignas(n)

static unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
    unsigned long long old = *address;
    if (value < old) *address = value;
    return old;
}

template <typename T>
static inline T emu_load(const T* ptr, long long i) {
    if (g_log != nullptr && g_log_len < g_log_cap) {
        long long* rec = g_log + 5 * g_log_len;
        rec[0] = (long long)(uintptr_t)ptr;
        rec[1] = blockIdx.x;
        rec[2] = threadIdx.y;
        rec[3] = threadIdx.x;
        rec[4] = i;
    }
    ++g_log_len;
    return *ptr;
}

// `i` is the kernel's loop variable at the expansion site: the position in idx being copied.
#define GATHER_LOAD(ptr) emu_load(ptr, i)
#include "gather.cu"

typedef void (*kernel_fn)(const void*, const long long*, const long long*, void*, long long,
                          long long, long long, unsigned long long*);

extern "C" long long emulate_gather(int which, const void* table, const long long* idx,
                                    const long long* out_rows, void* out, long long n_idx,
                                    long long n_rows, long long row_words,
                                    unsigned long long* bad, unsigned int grid,
                                    unsigned int block_x, unsigned int block_y, long long* log,
                                    long long log_cap) {
    static const kernel_fn kernels[6] = {
        (kernel_fn)gather_naive_w2, (kernel_fn)gather_naive_w4, (kernel_fn)gather_naive_w16,
        (kernel_fn)gather_aligned_w2, (kernel_fn)gather_aligned_w4, (kernel_fn)gather_aligned_w16,
    };
    if (which < 0 || which > 5) return -1;
    g_log = log;
    g_log_cap = log_cap;
    g_log_len = 0;
    gridDim = {grid, 1, 1};
    blockDim = {block_x, block_y, 1};
    for (unsigned int b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        for (unsigned int y = 0; y < block_y; ++y) {
            for (unsigned int x = 0; x < block_x; ++x) {
                threadIdx = {x, y, 0};
                kernels[which](table, idx, out_rows, out, n_idx, n_rows, row_words, bad);
            }
        }
    }
    g_log = nullptr;
    return g_log_len;
}
