#pragma once
// Row-major float32 GEMM on the fastest single-precision kernel LibTorch's own dependencies offer.
//
// Why: LibTorch sends matmul to the system BLAS; Debian's OpenBLAS 0.3.21 runs its Haswell (AVX2)
// kernel, while oneDNN -- which LibTorch already loads for its convolutions -- has AVX-512 JIT
// kernels. At 1 thread on the development VM (AMD EPYC, AVX-512) the TAC shapes measured:
//   [26400 x 64] x [64 x 384]   OpenBLAS 97 GFLOP/s   oneDNN 253 GFLOP/s
//   [4400 x 384] x [384 x 384]  OpenBLAS 130           oneDNN 266
//   [26400 x 384] x [384 x 64]  OpenBLAS 93            oneDNN 214
// Both honour LibTorch's intra-op thread count (oneDNN runs on the same OpenMP pool).
#include <torch/types.h>

namespace sepmech::detail {

/// out = a · op(b) (+ bias, broadcast to out's shape). a [M, K]; op(b) = b [K, N], or bᵀ when
/// `b_transposed` (b [N, K], e.g. a Linear weight); out [M, N], written in place. float32 tensors whose
/// rows are unit-stride take oneDNN's sgemm; anything else (float64, odd strides) LibTorch's addmm.
void gemm_into(torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b, bool b_transposed,
               const torch::Tensor& bias = {});

}  // namespace sepmech::detail
