// freq_forward: the head's logits to a frequency table per row (arith::freq_table).
//   l_v = rq(acc[r][v], head_m[v]), e_v = exp_out[min(lmax - l_v, NO - 1)], S = sum e_v,
//   f_v = 1 + floor(e_v * (2^24 - V) / S)
// Launch: grid (rows), block 256.
#include "common.cuh"

extern "C" __global__ void freq_forward(const i32* acc, const i32* head_m, const i32* exp_out, int n_exp,
                                        u32* tables, int V) {
    __shared__ i64 red[256];
    __shared__ u64 ured[256];
    const i32* ar = acc + (i64)blockIdx.x * V;
    u32* tr = tables + (i64)blockIdx.x * V;
    i64 lmax = -(1LL << 62);
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        i64 l = rq(ar[v], head_m[v]);
        if (l > lmax) lmax = l;
    }
    lmax = block_max_i64(red, lmax);
    u64 s = 0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        i64 d = lmax - rq(ar[v], head_m[v]);
        if (d > n_exp - 1) d = n_exp - 1;
        u32 e = (u32)exp_out[d];
        tr[v] = e;
        s += e;
    }
    u64 S = block_sum(ured, s);
    u64 K = FREQ_BUDGET - (u64)V;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        tr[v] = 1 + (u32)(((u64)tr[v] * K) / S);
    }
}
