// embed_forward: x[r][i] = clamp_res(rq(tok_emb.w[t_r][i], tok_emb.m[t_r]))
// Mirrors the embedding step of CpuStream::feed (src/backend/cpu.rs).
// Launch: grid (ceil(rows * d / 256)), block 256.
#include "common.cuh"

extern "C" __global__ void embed_forward(const u32* tokens, const i8* w, const i32* m, i32* x, int rows, int d) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * d) return;
    int r = idx / d, i = idx % d;
    u32 t = tokens[r];
    x[idx] = clamp_res(rq((i64)w[(i64)t * d + i], m[t]));
}
