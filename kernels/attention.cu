// attention_forward: one query row and head per block, over the sliding window of the row's KV ring
// (cpu::attend). A batch holds rows of many chunks; `meta` describes row r of `rows`:
//   meta[r] = input token, meta[rows + r] = slot (whose KV ring), meta[2 rows + r] = position t.
// The ring of slot s holds positions j at s * cap + j % cap. For row r and head h (group g = h / (H / G)):
//   z_j = rq(q . k_j, qk_m[h]) + bias[h][t - j],  e_j = exp_attn[min(zmax - z_j, NA - 1)]
//   out[e] = round_div(sum_j e_j v_j[e], sum_j e_j)
// Launch: grid (rows, H), block 128, dynamic shared memory W * 8 bytes (z, then e).
#include "common.cuh"

extern "C" __global__ void attention_forward(const i8* q, const i8* kring, const i8* vring, const i32* qk_m,
                                             const i32* bias, const i32* exp_attn, int n_exp, i8* out,
                                             const u32* meta, int rows, int cap, int W, int H, int G, int E) {
    DYNAMIC_SHARED(i64, z);
    __shared__ i64 red[128];
    int r = blockIdx.x, h = blockIdx.y;
    int g = h / (H / G);
    long long t = meta[2 * rows + r];
    int kvd = G * E;
    const i8* kr = kring + (i64)meta[rows + r] * cap * kvd;
    const i8* vr = vring + (i64)meta[rows + r] * cap * kvd;
    long long lo = t + 1 - W;
    if (lo < 0) lo = 0;
    int n = (int)(t - lo + 1);
    const i8* qh = q + ((i64)r * H + h) * E;
    i64 zmax = -(1LL << 62);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        long long j = lo + i;
        const i8* kj = kr + (j % cap) * kvd + g * E;
        i32 s = 0;
        for (int e = 0; e < E; e++) s += (i32)qh[e] * (i32)kj[e];
        i64 zz = rq(s, qk_m[h]) + bias[h * W + (int)(t - j)];
        z[i] = zz;
        if (zz > zmax) zmax = zz;
    }
    zmax = block_max_i64(red, zmax);
    i64 s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        i64 d = zmax - z[i];
        if (d > n_exp - 1) d = n_exp - 1;
        z[i] = exp_attn[d];
        s += z[i];
    }
    i64 S = block_sum(red, s);
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        i64 acc = 0;
        for (int i = 0; i < n; i++) {
            long long j = lo + i;
            acc += z[i] * (i64)vr[(j % cap) * kvd + g * E + e];
        }
        out[((i64)r * H + h) * E + e] = (i8)round_div(acc, S);
    }
}
