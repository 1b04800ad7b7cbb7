// A CPU emulation of the CUDA subset that kernels/*.cu use, for the tests (src/test_support/emu.rs):
// the kernel files compile as C++ after this header, and `emu_launch` runs a launch block by block.
// The threads of a block are fibers (ucontext) run round robin by one OS thread: each runs until
// it reaches __syncthreads() or returns, then the next one runs. So every thread of the block
// reaches a barrier before any passes it, which is what __syncthreads() guarantees; __shared__
// arrays are function statics (one block runs at a time). Only for checking results, not speed.
// Kernels without barriers (as emu.rs finds in their source) run their threads as plain calls in
// turn; a barrier reached there after all stops the process with a message.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <ucontext.h>
#include <utility>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
static dim3 threadIdx, blockIdx, blockDim, gridDim;
static char* emu_dynamic_shared;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(emu_dynamic_shared)

static void emu_syncthreads();
#define __syncthreads() emu_syncthreads()

// the signed form: four int8 products summed into c
static inline int __dp4a(int a, int b, int c) {
    for (int k = 0; k < 4; k++) c += (int)(int8_t)(a >> (8 * k)) * (int)(int8_t)(b >> (8 * k));
    return c;
}

namespace emu {
const size_t STACK = 64 * 1024;

// Fiber switching. On x86-64 a minimal switch (the callee-saved registers and the stack pointer;
// glibc's swapcontext also makes two system calls per switch, which made the tests crawl); on
// other machines ucontext.
#if defined(__x86_64__)
extern "C" void emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");
struct Context {
    void* sp = nullptr;
};
static void fiber_entry();
// a fresh context that starts in fiber_entry on `stack`
static void start_context(Context& c, char* stack, size_t size) {
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    void** sp = (void**)top;
    *--sp = nullptr;                    // fiber_entry's return address: it never returns
    *--sp = (void*)&fiber_entry;        // where the first switch's `ret` goes
    for (int i = 0; i < 6; i++) *--sp = nullptr;  // rbp rbx r12 r13 r14 r15
    c.sp = sp;
}
static void switch_context(Context& from, Context& to) { emu_switch(&from.sp, to.sp); }
#else
struct Context {
    ucontext_t uc;
};
static void fiber_entry();
static void start_context(Context& c, char* stack, size_t size) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, fiber_entry, 0);
}
static void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

static std::vector<Context> fibers;
static std::vector<char> stacks;
static std::vector<unsigned char> done;
static Context scheduler;
static int current, count;
static std::function<void()> body;
// whether the threads run as fibers; kernels without barriers run their threads one after the
// other as plain calls (much faster)
static bool fibered;

static void set_thread(int i) {
    threadIdx.x = i % blockDim.x;
    threadIdx.y = (i / blockDim.x) % blockDim.y;
    threadIdx.z = i / (blockDim.x * blockDim.y);
}

// the next thread after `from` that has not returned, or -1
static int next_alive(int from) {
    for (int k = 1; k <= count; k++) {
        int i = (from + k) % count;
        if (!done[i]) return i;
    }
    return -1;
}

// a thread's whole life: run the kernel, then hand control back to the scheduler for good
static void fiber_entry() {
    body();
    done[current] = 1;
    switch_context(fibers[current], scheduler);
    abort();  // never resumed
}

static void run_block_direct() {
    for (int i = 0; i < count; i++) {
        current = i;
        set_thread(i);
        body();
    }
}

static void run_block() {
    if ((int)fibers.size() < count) {
        fibers.resize(count);
        stacks.resize((size_t)count * STACK);
    }
    done.assign(count, 0);
    for (int i = 0; i < count; i++) start_context(fibers[i], stacks.data() + (size_t)i * STACK, STACK);
    current = 0;
    for (;;) {
        set_thread(current);
        switch_context(scheduler, fibers[current]);
        // a thread returned
        int n = next_alive(current);
        if (n < 0) break;
        current = n;
    }
}
}  // namespace emu

static void emu_syncthreads() {
    if (!emu::fibered) {
        fprintf(stderr, "cuda_emu: __syncthreads() in a kernel registered as barrier-free\n");
        abort();
    }
    int me = emu::current;
    int n = emu::next_alive(me);
    if (n < 0 || n == me) return;
    emu::current = n;
    emu::set_thread(n);
    emu::switch_context(emu::fibers[me], emu::fibers[n]);
    emu::set_thread(me);
}

template <typename... A, size_t... I>
static void emu_call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<A*>(args[I])...);
}

// A kernel as a function of cuLaunchKernel-style arguments: args[i] points at parameter i.
template <typename... A>
static std::function<void(void**)> emu_wrap(void (*f)(A...)) {
    return [f](void** args) { emu_call(f, args, std::index_sequence_for<A...>{}); };
}

struct EmuKernel {
    std::function<void(void**)> run;
    bool barriers;  // whether the kernel (or a helper it calls) uses __syncthreads()
};

// defined after the kernels: name -> kernel
static void emu_register(std::map<std::string, EmuKernel>& table);

extern "C" int emu_launch(const char* name, const unsigned* grid, const unsigned* block, unsigned shared,
                          void** args) {
    static std::map<std::string, EmuKernel> table;
    if (table.empty()) emu_register(table);
    auto it = table.find(name);
    if (it == table.end()) return -1;
    std::vector<char> dynamic(shared + 16);
    emu_dynamic_shared = dynamic.data();
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    emu::count = (int)(block[0] * block[1] * block[2]);
    auto& kernel = it->second;
    emu::body = [&] { kernel.run(args); };
    emu::fibered = kernel.barriers;
    for (unsigned z = 0; z < grid[2]; z++)
        for (unsigned y = 0; y < grid[1]; y++)
            for (unsigned x = 0; x < grid[0]; x++) {
                blockIdx = {x, y, z};
                if (emu::fibered) {
                    emu::run_block();
                } else {
                    emu::run_block_direct();
                }
            }
    return 0;
}
