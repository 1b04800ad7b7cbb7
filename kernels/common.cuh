// Shared integer helpers for the nnz kernels. Each mirrors a function of src/model/arith.rs
// exactly (docs/MODEL.md): the GPU must produce the CPU's integers bit for bit.
#pragma once

typedef signed char i8;
typedef int i32;
typedef long long i64;
typedef unsigned int u32;
typedef unsigned long long u64;

#define MUL_SHIFT 24
#define RES_MAX ((1LL << 23) - 1)
#define NORM_A 16
#define GELU_HALF 256
#define FREQ_BUDGET (1ULL << 24)

// The block's dynamic shared memory as an array `name` of T (the tests' CPU emulation of the
// kernels defines this macro its own way).
#ifndef DYNAMIC_SHARED
#define DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// rq(acc, m) = (acc * m + 2^23) >> 24, arithmetic shift (floor)
__device__ __forceinline__ i64 rq(i64 acc, i32 m) {
    return (acc * (i64)m + (1LL << (MUL_SHIFT - 1))) >> MUL_SHIFT;
}

// floor(n / d) for d > 0
__device__ __forceinline__ i64 floor_div(i64 n, i64 d) {
    i64 q = n / d;
    if ((n % d != 0) && (n < 0)) q -= 1;
    return q;
}

// round half up of n / d, d > 0
__device__ __forceinline__ i64 round_div(i64 n, i64 d) {
    return floor_div(2 * n + d, 2 * d);
}

__device__ __forceinline__ i8 clamp_i8(i64 v) {
    return (i8)(v < -127 ? -127 : (v > 127 ? 127 : v));
}

__device__ __forceinline__ i32 clamp_res(i64 v) {
    return (i32)(v < -RES_MAX ? -RES_MAX : (v > RES_MAX ? RES_MAX : v));
}

// floor(sqrt(n)), exact: a floating-point guess corrected with integer comparisons
__device__ __forceinline__ u64 isqrt_u64(u64 n) {
    if (n < 2) return n;
    u64 x = (u64)sqrt((double)n);
    while (x > 0 && (x > 0xFFFFFFFFULL || x * x > n)) x -= 1;
    while (x + 1 <= 0xFFFFFFFFULL && (x + 1) * (x + 1) <= n) x += 1;
    return x;
}

// Block-wide reductions of one value per thread. `red` is shared memory of blockDim.x entries;
// blockDim.x must be a power of two. Every thread gets the result, and `red` may be reused at once.
// Integer max and sum do not depend on the order of the tree, so they equal the CPU's loops.
__device__ __forceinline__ i64 block_max_i64(i64* red, i64 v) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k && red[threadIdx.x + k] > red[threadIdx.x]) red[threadIdx.x] = red[threadIdx.x + k];
        __syncthreads();
    }
    i64 r = red[0];
    __syncthreads();
    return r;
}

template <typename T>
__device__ __forceinline__ T block_sum(T* red, T v) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
        __syncthreads();
    }
    T r = red[0];
    __syncthreads();
    return r;
}
