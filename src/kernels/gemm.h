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

/// out = op(a) · op(b) (+ bias, broadcast to out's shape). op(a) = a [M, K], or aᵀ when
/// `a_transposed` (a [K, M]); op(b) = b [K, N], or bᵀ when `b_transposed` (b [N, K], e.g. a Linear
/// weight); out [M, N], written in place. float32 tensors whose rows are unit-stride take oneDNN's
/// sgemm; anything else (float64, odd strides) LibTorch's addmm. No autograd: see linear().
void gemm_into(torch::Tensor& out, const torch::Tensor& a, bool a_transposed, const torch::Tensor& b,
               bool b_transposed, const torch::Tensor& bias = {});
inline void gemm_into(torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b, bool b_transposed,
                      const torch::Tensor& bias = {}) {
  gemm_into(out, a, false, b, b_transposed, bias);
}

/// input [M, K] · weightᵀ (+ bias) with weight [N, K] (a Linear weight, or a column slice of one),
/// differentiable: forward and both backward GEMMs on gemm_into. Higher-order gradients (backward
/// with create_graph) are computed with LibTorch ops, so they stay correct.
torch::Tensor linear(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias);

}  // namespace sepmech::detail
