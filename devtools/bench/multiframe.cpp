// Bench workloads of the multi-frame family (../shared/bench/WORKLOADS.md): mf_DF,
// mf_MfWf_solve, mf_MfMvdr_solve, mf_MfMvdr_inverse. Three implementations each:
//   reference_einsum  the baseline: MfImpl::reference, the reference's own ops (unfold, einsum,
//                     torch::linalg_solve) -- what the Python reference runs, minus the interpreter;
//   generic_mul_sum   the fastest generic-LibTorch formulation we found (einsum replaced by
//                     broadcast multiply + sum, matmul), reported so the fused kernels are also
//                     compared with a tuned generic path, not only with the reference's;
//   sepmech_fused     the hand-written kernels.
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
                          s->ref = DF(DFOptions(o).impl(MfImpl::reference));
                          s->fused = DF(o);
                          s->ref->eval();
                          s->fused->eval();
                          // bytes: spectrogram in, coefficients in, new spectrogram out
                          const double bytes = 4.0 * (2 * T * kF * 2 + T * kN * kFdf * 2);
                          return std::vector<Impl>{
                              {"reference_einsum",
                               [s] {
                                 torch::NoGradGuard ng;
                                 s->ref->forward(s->spec, s->coefs);
                               },
                               true, bytes},
                              {"generic_mul_sum",
                               [s] {
                                 torch::NoGradGuard ng;
                                 auto u = mf::spec_unfold(torch::view_as_complex(s->spec), kN, kL).narrow(-2, 0, kFdf);
                                 auto h = torch::view_as_complex(s->coefs).view({1, 1, kN, T, kFdf});
                                 auto y = (u * h.movedim(-3, -1)).sum(-1);  // [B,C,T,Fdf]
                                 torch::cat({torch::view_as_real(y), s->spec.narrow(3, kFdf, kF - kFdf)}, 3);
                               },
                               false, bytes},
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

/// MfWf / MfMvdr with generic ops and no einsum (same steps as MfImpl::reference, spec §3.5).
void generic_mul_sum(const MfInputs& in, const MfFilterOptions& o, bool mvdr) {
  torch::NoGradGuard ng;
  const int64_t T = in.spec.size(2);
  auto A = torch::view_as_complex(in.R.view({1, T, kFdf, kN, kN, 2}));
  auto g = torch::view_as_complex(in.ifc.view({1, T, kFdf, kN, 2}));
  torch::Tensor v;
  if (o.inverse()) {
    v = torch::matmul(A, g.unsqueeze(-1)).squeeze(-1);
  } else {  // enforce_constraints: Hermitian from the lower triangle, then Tikhonov + solve
    auto lower = torch::tril(A, -1);
    auto d = torch::real(torch::diagonal(A, 0, -2, -1));
    A = lower + lower.mH() + torch::diag_embed(torch::complex(d, torch::zeros_like(d)));
    auto delta = d.sum(-1) * o.dload() + o.eps();
    A = A + delta.unsqueeze(-1).unsqueeze(-1) * torch::eye(kN, A.options());
    v = torch::linalg_solve(A, g.unsqueeze(-1)).squeeze(-1);
  }
  if (mvdr) {
    auto den = torch::real((g.conj() * v).sum(-1)) + o.eps();
    v = v * (g.select(-1, kN - 1).conj() / den).unsqueeze(-1);
  }
  auto u = mf::spec_unfold(torch::view_as_complex(in.spec), kN, kL).narrow(-2, 0, kFdf);  // [B,C,T,Fdf,N]
  auto y = (u * v.unsqueeze(1)).sum(-1);
  torch::cat({torch::view_as_real(y), in.spec.narrow(3, kFdf, kF - kFdf)}, 3);
}

template <typename M>
std::vector<Impl> mf_impls(MfFilterOptions o) {
  struct State {
    MfInputs in;
    M ref{nullptr}, fused{nullptr};
  };
  auto s = std::make_shared<State>();
  s->in = make_mf_inputs();
  s->ref = M(MfFilterOptions(o).impl(MfImpl::reference));
  s->fused = M(o);
  const double bytes = 4.0 * (s->in.spec.numel() * 2 + s->in.ifc.numel() + s->in.R.numel());
  return {
      {"reference_einsum",
       [s] {
         torch::NoGradGuard ng;
         s->ref->forward(s->in.spec, s->in.ifc, s->in.R);
       },
       true, bytes},
      {"generic_mul_sum", [s, o] { generic_mul_sum(s->in, o, std::is_same_v<M, MfMvdr>); }, false, bytes},
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
