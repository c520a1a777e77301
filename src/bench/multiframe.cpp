// Bench workloads of the multi-frame family (../shared/bench/WORKLOADS.md): mf_DF,
// mf_MfWf_solve, mf_MfMvdr_solve, mf_MfMvdr_inverse. Baseline: the reference transcription with
// generic LibTorch ops (unfold + complex multiply-sum, matmul, torch::linalg_solve).
#include "bench/bench.h"
#include "sepmech/multiframe.h"

namespace sepmech::bench {
namespace {

constexpr int64_t kF = 481, kFdf = 96, kN = 5, kL = 2;

RegisterWorkload mf_df({"mf_DF", "multi-frame DF, B=1 C=1 T=1000 F=481 num_freqs=96 order 5 lookahead 2, eval", [] {
                          struct State {
                            torch::Tensor spec, coefs;
                            DF ref{nullptr}, fused{nullptr};
                          };
                          auto s = std::make_shared<State>();
                          torch::manual_seed(0);
                          const int64_t T = 1000;
                          s->spec = torch::randn({1, 1, T, kF, 2});
                          s->coefs = torch::randn({1, kN, T, kFdf, 2}) * 0.3;
                          auto o = DFOptions(kFdf, kN).lookahead(kL);
                          s->ref = DF(DFOptions(o).impl(MfImpl::kReference));
                          s->fused = DF(o);
                          s->ref->eval();
                          s->fused->eval();
                          // bytes: spectrogram in, coefficients in, new spectrogram out
                          const double bytes = 4.0 * (2 * T * kF * 2 + T * kN * kFdf * 2);
                          return std::vector<Impl>{
                              {"reference_unfold",
                               [s] {
                                 torch::NoGradGuard ng;
                                 s->ref->forward(s->spec, s->coefs);
                               },
                               true, bytes},
                              {"sepmech_fused",
                               [s] {
                                 torch::NoGradGuard ng;
                                 s->fused->forward(s->spec, s->coefs);
                               },
                               false, bytes},
                          };
                        }});

/// Seeded inputs of the MfWf/MfMvdr workloads: a Hermitian positive definite R per bin with junk
/// above the diagonal (as a network's output would be before enforce_constraints).
struct MfInputs {
  torch::Tensor spec, ifc, R;
};
MfInputs make_mf_inputs() {
  torch::manual_seed(0);
  const int64_t T = 500;
  MfInputs in;
  in.spec = torch::randn({1, 1, T, kF, 2});
  in.ifc = torch::randn({1, T, kFdf, 2 * kN});
  auto a = torch::randn({1, T, kFdf, kN, kN}, torch::kComplexFloat);
  auto r = torch::matmul(a, a.mH()) / kN + 0.1 * torch::eye(kN, torch::kComplexFloat);
  r = r + torch::triu(torch::randn({1, T, kFdf, kN, kN}, torch::kComplexFloat), 1);
  in.R = torch::view_as_real(r).reshape({1, T, kFdf, 2 * kN * kN}).contiguous();
  return in;
}

template <typename M>
std::vector<Impl> mf_impls(MfFilterOptions o) {
  struct State {
    MfInputs in;
    M ref{nullptr}, fused{nullptr};
  };
  auto s = std::make_shared<State>();
  s->in = make_mf_inputs();
  s->ref = M(MfFilterOptions(o).impl(MfImpl::kReference));
  s->fused = M(o);
  const double bytes = 4.0 * (s->in.spec.numel() * 2 + s->in.ifc.numel() + s->in.R.numel());
  return {
      {"reference_linalg",
       [s] {
         torch::NoGradGuard ng;
         s->ref->forward(s->in.spec, s->in.ifc, s->in.R);
       },
       true, bytes},
      {"sepmech_fused",
       [s] {
         torch::NoGradGuard ng;
         s->fused->forward(s->in.spec, s->in.ifc, s->in.R);
       },
       false, bytes},
  };
}

MfFilterOptions mf_opts(bool inverse) {
  return MfFilterOptions(kFdf, kN).lookahead(kL).inverse(inverse).cholesky_decomp(false).enforce_constraints(true);
}

RegisterWorkload mf_wf_solve({"mf_MfWf_solve", "MfWf, B=1 T=500 F=481 num_freqs=96 order 5 lookahead 2, solve",
                              [] { return mf_impls<MfWf>(mf_opts(false)); }});
RegisterWorkload mf_mvdr_solve({"mf_MfMvdr_solve",
                                "MfMvdr, B=1 T=500 F=481 num_freqs=96 order 5 lookahead 2, solve",
                                [] { return mf_impls<MfMvdr>(mf_opts(false)); }});
RegisterWorkload mf_mvdr_inverse({"mf_MfMvdr_inverse",
                                  "MfMvdr, B=1 T=500 F=481 num_freqs=96 order 5 lookahead 2, inverse",
                                  [] { return mf_impls<MfMvdr>(mf_opts(true)); }});

}  // namespace
}  // namespace sepmech::bench
