// norm_forward: integer RMS norm of each residual row into int8 (arith::norm_row).
//   ss = sum x^2 (exact, int64), r = max(1, isqrt(ss / d)), a = clamp8(round_div(16 x, r))
// Launch: grid (rows), block 256. Integer sums are order-independent, so the tree reduction
// gives the CPU's value exactly.
#include "common.cuh"

extern "C" __global__ void norm_forward(const i32* x, i8* a, int d) {
    __shared__ u64 part[256];
    const i32* xr = x + (i64)blockIdx.x * d;
    u64 s = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        i64 v = xr[i];
        s += (u64)(v * v);
    }
    u64 r = isqrt_u64(block_sum(part, s) / (u64)d);
    if (r < 1) r = 1;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        a[(i64)blockIdx.x * d + i] = clamp_i8(round_div((i64)xr[i] * NORM_A, (i64)r));
    }
}
