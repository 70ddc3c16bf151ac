// tierbed built-in chip kernels: the shared body of the elementwise binary kernels.
//
// Written for the runtime's CPU simulation platforms (a2a3sim, a5sim), where an AIV kernel is a
// shared object exporting `kernel_entry(int64_t *args)` and args[i] is the address of the i-th
// tensor's ChipTensor descriptor (upstream docs/user/how-to/write-and-run-a-kernel.md, "Option B").
// Plain scalar C++ on purpose: no PTO-ISA tile headers, so any C++17 host compiler builds it.
#pragma once

#include <stdint.h>

// Host builds (the simulation kernels and the orchestration) have no address-space or AICore
// qualifiers, while the runtime's headers use both names (data_type.h tags device functions with
// __aicore__ when __DAV_VEC__ is defined, as upstream's simulation-kernel flags do).
#ifndef __gm__
#define __gm__
#endif
#ifndef __aicore__
#define __aicore__
#endif

#include "tensor.h"  // NOLINT(build/include_subdir) -- the runtime's ChipTensor / DataType

namespace tierbed {

enum BinaryOp : int32_t { kAdd = 0, kMul = 1 };

// The dtypes the orchestration lets through; the same set the reference kernels accept minus the
// half-precision types (they would need a software float16/bfloat16 rounding here).
__aicore__ inline bool dtype_supported(DataType d) {
    return d == DataType::FLOAT32 || d == DataType::INT32 || d == DataType::INT8;
}

__aicore__ inline uint64_t element_count(__gm__ const ChipTensor *t) {
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->ndims; ++d) n *= t->shapes[d];
    return n;
}

// Element offset (from the buffer start) of the i-th element of a view in row-major order: a
// contiguous view is a plain shift; any other view is walked through its per-dim strides.
__aicore__ inline uint64_t element_offset(__gm__ const ChipTensor *t, uint64_t i) {
    if (t->is_contiguous) return t->start_offset + i;
    uint64_t off = t->start_offset;
    for (int32_t d = static_cast<int32_t>(t->ndims) - 1; d >= 0; --d) {
        off += (i % t->shapes[d]) * t->strides[d];
        i /= t->shapes[d];
    }
    return off;
}

// T is the element type, W the type the arithmetic runs in: unsigned for integers so that an
// overflow wraps around (two's complement) as the hardware's integer vector ops do, instead of
// being undefined behaviour; float32 computes in float32 and rounds once.
template <typename T, typename W>
__aicore__ inline void binary_loop(int32_t op, __gm__ const ChipTensor *a, __gm__ const ChipTensor *b,
                                   __gm__ const ChipTensor *out) {
    __gm__ const T *pa = reinterpret_cast<__gm__ const T *>(a->buffer.addr);
    __gm__ const T *pb = reinterpret_cast<__gm__ const T *>(b->buffer.addr);
    __gm__ T *po = reinterpret_cast<__gm__ T *>(out->buffer.addr);
    const uint64_t n = element_count(out);
    for (uint64_t i = 0; i < n; ++i) {
        const W x = static_cast<W>(pa[element_offset(a, i)]);
        const W y = static_cast<W>(pb[element_offset(b, i)]);
        po[element_offset(out, i)] = static_cast<T>(op == kAdd ? static_cast<W>(x + y) : static_cast<W>(x * y));
    }
}

// args[0], args[1]: the inputs, args[2]: the output (signature IN, IN, OUT). The orchestration has
// already checked that the three share a supported dtype and an element count.
__aicore__ inline void binary_kernel(int32_t op, __gm__ int64_t *args) {
    __gm__ const ChipTensor *a = reinterpret_cast<__gm__ const ChipTensor *>(args[0]);
    __gm__ const ChipTensor *b = reinterpret_cast<__gm__ const ChipTensor *>(args[1]);
    __gm__ const ChipTensor *out = reinterpret_cast<__gm__ const ChipTensor *>(args[2]);
    switch (out->dtype) {
        case DataType::FLOAT32:
            binary_loop<float, float>(op, a, b, out);
            break;
        case DataType::INT32:
            binary_loop<int32_t, uint32_t>(op, a, b, out);
            break;
        case DataType::INT8:
            binary_loop<int8_t, uint32_t>(op, a, b, out);
            break;
        default:
            break;  // unreachable: the orchestration rejects other dtypes before submitting
    }
}

}  // namespace tierbed
