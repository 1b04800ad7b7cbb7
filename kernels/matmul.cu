// int8 matrix products with exact int32 accumulation, and their epilogues.
//   matmul_forward: acc[r][o] = sum_i a[r][i] * w[o][i]        (cpu::matmul)
//   requant_forward: out[r][o] = clamp8(rq(acc[r][o], m[o]))     (q projection)
//   kv_store_forward: ring[slot_r][pos_r % cap][o] = clamp8(rq(acc, m)) (k, v into row r's KV ring;
//                     slot_r, pos_r from the batch's row metadata, see attention.cu)
//   residual_forward: x[r][o] = clamp_res(x + rq(acc, m))       (wo, w2)
//   gelu_forward: h = clamp(rq(acc, m), -256, 255); out = lut[h + 256]  (w1)
// matmul launch: grid (ceil(n_out / 16), ceil(rows / 16)), block (16, 16); tiles of 16 x 64
// bytes in shared memory; __dp4a multiplies four int8 pairs into an int32 sum exactly.
#include "common.cuh"

#define TILE 16
#define KT 64

extern "C" __global__ void matmul_forward(const i8* a, const i8* w, i32* acc, int rows, int n_in, int n_out) {
    __shared__ __align__(16) i8 at[TILE][KT];
    __shared__ __align__(16) i8 ws[TILE][KT];
    int tx = threadIdx.x, ty = threadIdx.y;
    int r = blockIdx.y * TILE + ty;
    int o = blockIdx.x * TILE + tx;
    i32 sum = 0;
    for (int k0 = 0; k0 < n_in; k0 += KT) {
        // each thread loads 4 bytes of each tile
        for (int j = tx * 4; j < KT; j += TILE * 4) {
            for (int b = 0; b < 4; b++) {
                int k = k0 + j + b;
                int ar = blockIdx.y * TILE + ty;
                int wo = blockIdx.x * TILE + ty;
                at[ty][j + b] = (ar < rows && k < n_in) ? a[(i64)ar * n_in + k] : 0;
                ws[ty][j + b] = (wo < n_out && k < n_in) ? w[(i64)wo * n_in + k] : 0;
            }
        }
        __syncthreads();
        const int* ap = (const int*)at[ty];
        const int* wp = (const int*)ws[tx];
        #pragma unroll
        for (int j = 0; j < KT / 4; j++) sum = __dp4a(ap[j], wp[j], sum);
        __syncthreads();
    }
    if (r < rows && o < n_out) acc[(i64)r * n_out + o] = sum;
}

extern "C" __global__ void requant_forward(const i32* acc, const i32* m, i8* out, int rows, int n) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * n) return;
    out[idx] = clamp_i8(rq(acc[idx], m[idx % n]));
}

extern "C" __global__ void kv_store_forward(const i32* acc, const i32* m, i8* ring, const u32* meta, int rows, int n,
                                            int cap) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * n) return;
    int r = idx / n, o = idx % n;
    i64 slot = (i64)meta[rows + r] * cap + meta[2 * rows + r] % (u32)cap;
    ring[slot * n + o] = clamp_i8(rq(acc[idx], m[o]));
}

extern "C" __global__ void residual_forward(i32* x, const i32* acc, const i32* m, int rows, int n) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * n) return;
    x[idx] = clamp_res((i64)x[idx] + rq(acc[idx], m[idx % n]));
}

extern "C" __global__ void gelu_forward(const i32* acc, const i32* m, const i8* lut, i8* out, int rows, int n) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * n) return;
    i64 h = rq(acc[idx], m[idx % n]);
    h = h < -GELU_HALF ? -GELU_HALF : (h > GELU_HALF - 1 ? GELU_HALF - 1 : h);
    out[idx] = lut[h + GELU_HALF];
}
