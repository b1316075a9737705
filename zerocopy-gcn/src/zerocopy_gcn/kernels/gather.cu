// Row gather kernels of the zero-copy path: out[out_rows[i], :] = table[idx[i], :].
//
// `table` is a device-side alias of pinned (cudaHostRegister'ed) host memory, so every load is
// a PCIe read, served in 128-byte lines.  Kernels copy rows as machine words (WORD = 2, 4 or
// 16 bytes) whatever the element dtype (fp32/fp16/bf16): a gather never needs arithmetic.
//
// Launch layout: blockDim.x = threads per row (a multiple of 32 whose byte span is a multiple
// of 128), blockDim.y = rows per block; the grid is capped by the caller (a thread budget, so
// the gather can run beside training) and loops over rows grid-stride.
//
// naive   : thread t copies columns t, t+T, t+2T, ... A row starting at byte offset s != 0
//           within a 128-byte line makes every warp straddle two lines.
// aligned : thread t copies column t - shift + kT where shift = (row start mod 128) / WORD,
//           skipping columns < 0: the first line is partial, every later warp reads whole
//           aligned lines, and each element is still copied exactly once.  The reference
//           model of this mapping is zerocopy_gcn.fetch.reference (tested on CPU).
//
// Bounds: an id outside [0, n_rows) is never dereferenced; the smallest failing position is
// recorded in *bad (initialised to ULLONG_MAX by the caller) so the host can raise an error.

struct __align__(16) word16 { unsigned int x, y, z, w; };

// Every host read goes through GATHER_LOAD so the CPU emulation (cpu_emulation.cpp, used by the
// tests) can record the address each simulated thread reads; on the GPU it is a plain load.
#ifndef GATHER_LOAD
#define GATHER_LOAD(ptr) (*(ptr))
#endif

#define DEFINE_GATHER(NAME, WORD, ALIGNED)                                                   \
extern "C" __global__ void NAME(const WORD* __restrict__ table,                              \
                                const long long* __restrict__ idx,                           \
                                const long long* __restrict__ out_rows,                      \
                                WORD* __restrict__ out,                                      \
                                long long n_idx, long long n_rows, long long row_words,      \
                                unsigned long long* __restrict__ bad)                        \
{                                                                                            \
    const long long stride = (long long)gridDim.x * blockDim.y;                              \
    for (long long i = (long long)blockIdx.x * blockDim.y + threadIdx.y; i < n_idx;          \
         i += stride) {                                                                      \
        const long long row = idx[i];                                                        \
        if (row < 0 || row >= n_rows) {                                                      \
            if (threadIdx.x == 0) atomicMin(bad, (unsigned long long)i);                     \
            continue;                                                                        \
        }                                                                                    \
        const long long dst_row = out_rows ? out_rows[i] : i;                                \
        const WORD* src = table + row * row_words;                                           \
        WORD* dst = out + dst_row * row_words;                                               \
        long long col = (long long)threadIdx.x;                                              \
        if (ALIGNED) col -= (long long)(((unsigned long long)src & 127ULL) / sizeof(WORD));  \
        for (; col < row_words; col += blockDim.x) {                                         \
            if (col >= 0) dst[col] = GATHER_LOAD(src + col);                                 \
        }                                                                                    \
    }                                                                                        \
}

DEFINE_GATHER(gather_naive_w2, unsigned short, 0)
DEFINE_GATHER(gather_naive_w4, unsigned int, 0)
DEFINE_GATHER(gather_naive_w16, word16, 0)
DEFINE_GATHER(gather_aligned_w2, unsigned short, 1)
DEFINE_GATHER(gather_aligned_w4, unsigned int, 1)
DEFINE_GATHER(gather_aligned_w16, word16, 1)
