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

// pick_forward: what the host needs of a row's table (freq_forward's output) when it does not need
// the whole table. With mode = meta[3 rows + r] and arg = meta[4 rows + r] (see attention.cu):
//   mode 1 (encoding): the interval of symbol arg: out[r] = (arg, sum_{v < arg} f_v, f_arg)
//   mode 2 (decoding): the symbol s whose interval holds the target arg, cum_s <= arg < cum_s + f_s:
//                      out[r] = (s, cum_s, f_s), or (V, 0, 0) if arg >= sum_v f_v
//   mode 0: nothing (the host copies the whole table back)
// Sums of a table fit u32 (they are at most 2^24) and are exact in any order.
// Launch: grid (rows), block 256.
extern "C" __global__ void pick_forward(const u32* tables, const u32* meta, int rows, int V, u32* out) {
    __shared__ u32 seg[256];
    __shared__ u32 total;
    int r = blockIdx.x;
    u32 mode = meta[3 * rows + r], arg = meta[4 * rows + r];
    if (mode == 0) return;
    const u32* t = tables + (i64)r * V;
    // thread k sums entries [lo, hi); then seg[k] = the sum of the entries before lo
    int per = (V + blockDim.x - 1) / blockDim.x;
    int lo = threadIdx.x * per;
    int hi = lo + per < V ? lo + per : V;
    u32 s = 0;
    for (int v = lo; v < hi; v++) s += t[v];
    seg[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        u32 acc = 0;
        for (int k = 0; k < (int)blockDim.x; k++) {
            u32 x = seg[k];
            seg[k] = acc;
            acc += x;
        }
        total = acc;
    }
    __syncthreads();
    u32 base = seg[threadIdx.x];
    u32* o = out + 3 * (i64)r;
    if (mode == 1) {
        if ((int)arg >= lo && (int)arg < hi) {
            u32 c = base;
            for (int v = lo; v < (int)arg; v++) c += t[v];
            o[0] = arg;
            o[1] = c;
            o[2] = t[arg];
        }
    } else if (arg >= total) {
        if (threadIdx.x == 0) {
            o[0] = (u32)V;
            o[1] = 0;
            o[2] = 0;
        }
    } else if (s > 0 && arg >= base && arg - base < s) {
        u32 c = base;
        for (int v = lo; v < hi; v++) {
            if (arg - c < t[v]) {
                o[0] = (u32)v;
                o[1] = c;
                o[2] = t[v];
                break;
            }
            c += t[v];
        }
    }
}
