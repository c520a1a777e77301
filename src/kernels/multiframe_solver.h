#pragma once
// Private interface of src/kernels/multiframe_solver.cpp: batched small complex solves (N <= 8)
// and the fused MfWf / MfMvdr inference kernel, used by src/multiframe.cpp.
#include <cstdint>

#include <torch/types.h>

namespace sepmech::mf::detail {

/// Solves A x = b per batch entry with pivots below `floor` replaced by it (A [.., N, N], b [.., N]).
torch::Tensor small_solve_floor(const torch::Tensor& A, const torch::Tensor& b, bool hermitian,
                                const torch::Tensor& floor);

/// Geometry and switches of one fused MfWf / MfMvdr call.
struct MfFusedArgs {
  int64_t B, C, T, F, Fdf, N, L;  ///< L: effective lookahead
  bool mvdr, cholesky, inverse, enforce;
  double eps, dload;
};

/// spec [B,C,T,F,2], ifc [B,T,Fdf,2N], R [B,T,Fdf,2N^2] (same floating dtype) -> new spec.
torch::Tensor mf_filter_fused(const torch::Tensor& spec, const torch::Tensor& ifc, const torch::Tensor& R,
                              const MfFusedArgs& a);

}  // namespace sepmech::mf::detail
