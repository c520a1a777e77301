// Tests of the multi-frame family beyond the golden files: every implementation agrees with the
// others (forward and gradients), analytic properties, robustness, bad input.
#include <gtest/gtest.h>

#include "kernels/cpu.h"
#include "sepmech/multiframe.h"

namespace {

using namespace sepmech;
using torch::Tensor;

double max_abs(const Tensor& a, const Tensor& b) {
  auto x = a.is_complex() ? torch::view_as_real(a.resolve_conj()) : a;
  auto y = b.is_complex() ? torch::view_as_real(b.resolve_conj()) : b;
  return (x.to(torch::kDouble) - y.to(torch::kDouble)).abs().max().item<double>();
}

#define EXPECT_CLOSE(a, b, atol, rtol)                                                                     \
  do {                                                                                                     \
    auto _a = (a), _b = (b);                                                                               \
    ASSERT_EQ(_a.sizes(), _b.sizes());                                                                     \
    EXPECT_TRUE(torch::allclose(_a.is_complex() ? torch::view_as_real(_a.resolve_conj()) : _a,             \
                                _b.is_complex() ? torch::view_as_real(_b.resolve_conj()) : _b, rtol, atol)) \
        << "max |diff| = " << max_abs(_a, _b);                                                             \
  } while (0)

/// Expects `fn` to throw a c10::Error whose message contains `needle`.
template <typename Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

/// Random Hermitian positive definite R (real view [B,T,F,2N^2]) with junk above the diagonal
/// and on the imaginary diagonal, like a network output before enforce_constraints.
Tensor make_R(int64_t B, int64_t T, int64_t F, int64_t N, bool junk, torch::Dtype dt = torch::kFloat) {
  auto cdt = dt == torch::kFloat ? torch::kComplexFloat : torch::kComplexDouble;
  auto a = torch::randn({B, T, F, N, N}, cdt);
  auto r = torch::matmul(a, a.mH()) / N + 0.2 * torch::eye(N, cdt);
  if (junk) r = r + torch::triu(torch::randn({B, T, F, N, N}, cdt), 1) + torch::diag_embed(torch::complex(
                        torch::zeros({B, T, F, N}, dt), torch::randn({B, T, F, N}, dt)));
  return torch::view_as_real(r).reshape({B, T, F, 2 * N * N}).contiguous();
}

/// A random lower-triangular factor with a well-conditioned product (plus junk above).
Tensor make_chol(int64_t B, int64_t T, int64_t F, int64_t N, bool junk = true) {
  auto l = torch::tril(torch::randn({B, T, F, N, N}, torch::kComplexFloat) * 0.3, -1) +
           torch::diag_embed(torch::complex(1.0 + torch::rand({B, T, F, N}), torch::zeros({B, T, F, N})));
  if (junk) l = l + torch::triu(torch::randn({B, T, F, N, N}, torch::kComplexFloat), 1);
  return torch::view_as_real(l).reshape({B, T, F, 2 * N * N}).contiguous();
}

// ---------------------------------------------------------------------------------------------
// DF / DFreal / CRM
// ---------------------------------------------------------------------------------------------
struct Geo {
  int64_t N, L;
};
const std::vector<Geo> kGeos = {{1, 0}, {1, 2}, {2, 0}, {2, 1}, {3, 1}, {3, 4}, {5, 2}, {5, 0}, {5, 4}, {8, 3}};

TEST(MultiFrameDF, FusedReferenceAndRealArithmeticAgree) {
  torch::manual_seed(1);
  const int64_t B = 2, C = 2, T = 13, F = 20, Fdf = 12;
  for (auto g : kGeos) {
    for (bool conj : {false, true}) {
      auto spec = torch::randn({B, C, T, F, 2});
      auto coefs = torch::randn({B, C * g.N, T, Fdf, 2});
      auto o = DFOptions(Fdf, g.N).lookahead(g.L).conj(conj);
      DF fused(o), ref(DFOptions(o).impl(MfImpl::reference));
      auto yf = fused->forward(spec, coefs), yr = ref->forward(spec, coefs);
      SCOPED_TRACE("N=" + std::to_string(g.N) + " L=" + std::to_string(g.L) + " conj=" + std::to_string(conj));
      EXPECT_CLOSE(yf, yr, 2e-5, 1e-5);
      if (!conj) {
        DFreal real(o);
        EXPECT_CLOSE(real->forward(spec, coefs), yr, 2e-5, 1e-5);
      }
    }
  }
}

TEST(MultiFrameDF, GradientsOfFusedBackwardMatchAutograd) {
  torch::manual_seed(2);
  const int64_t B = 2, C = 2, T = 11, F = 14, Fdf = 9;
  for (auto g : kGeos) {
    for (bool conj : {false, true}) {
      auto spec = torch::randn({B, C, T, F, 2}, torch::kDouble);
      auto coefs = torch::randn({B, C * g.N, T, Fdf, 2}, torch::kDouble);
      auto gout = torch::randn({B, C, T, F, 2}, torch::kDouble);
      auto o = DFOptions(Fdf, g.N).lookahead(g.L).conj(conj);
      std::vector<Tensor> grads[2];
      int i = 0;
      for (auto impl : {MfImpl::fused, MfImpl::reference}) {
        auto s = spec.clone().requires_grad_(true), c = coefs.clone().requires_grad_(true);
        DF m(DFOptions(o).impl(impl));
        (m->forward(s, c) * gout).sum().backward();
        grads[i++] = {s.grad(), c.grad()};
      }
      SCOPED_TRACE("N=" + std::to_string(g.N) + " L=" + std::to_string(g.L) + " conj=" + std::to_string(conj));
      EXPECT_CLOSE(grads[0][0], grads[1][0], 1e-12, 1e-10);
      EXPECT_CLOSE(grads[0][1], grads[1][1], 1e-12, 1e-10);
    }
  }
}

// The shared deep-filter kernels (forward + backward), AVX2 and portable paths, both coefficient
// layouts (bin_tap shares one filter across the channels, so its gradient sums them), float32,
// against autograd through a plain complex transcription in float64.
TEST(MultiFrameDF, BothKernelPathsAndLayoutsMatchAFloat64Transcription) {
  torch::manual_seed(3);
  const int64_t B = 2, C = 2, T = 11, F = 30, Fdf = 21, N = 5, L = 2, front = N - 1 - L;
  for (auto layout : {mf::CoefLayout::channel_time, mf::CoefLayout::bin_tap}) {
    for (bool conj : {false, true}) {
      auto spec = torch::randn({B, C, T, F, 2});
      auto coefs = layout == mf::CoefLayout::channel_time ? torch::randn({B, C * N, T, Fdf, 2})
                                                          : torch::randn({B, T, Fdf, N, 2});
      auto gout = torch::randn({B, C, T, F, 2});
      // float64 transcription: Y[t,f] = sum_n X[t-front+n, f] * Heff[t,n,f] for f < Fdf.
      auto xd = spec.to(torch::kDouble).requires_grad_(true), hd = coefs.to(torch::kDouble).requires_grad_(true);
      auto X = torch::view_as_complex(xd);
      auto H = torch::view_as_complex(hd);
      H = layout == mf::CoefLayout::channel_time ? H.view({B, C, N, T, Fdf}) : H.permute({0, 3, 1, 2}).unsqueeze(1);
      if (conj) H = H.conj();
      auto Xp = torch::constant_pad_nd(X.narrow(3, 0, Fdf), {0, 0, front, L});
      auto Yf = torch::zeros({B, C, T, Fdf}, X.options());
      for (int64_t n = 0; n < N; ++n) Yf = Yf + Xp.narrow(2, n, T) * H.select(2, n);
      auto Y = torch::cat({Yf, X.narrow(3, Fdf, F - Fdf)}, 3);
      (torch::view_as_real(Y) * gout.to(torch::kDouble)).sum().backward();
      for (bool portable : {false, true}) {
        kernels::ForcePortable force(portable);
        auto xs = spec.clone().requires_grad_(true), hs = coefs.clone().requires_grad_(true);
        auto y = mf::deep_filter(xs, hs, layout, Fdf, N, L, conj);
        (y * gout).sum().backward();
        SCOPED_TRACE("layout=" + std::to_string(static_cast<int>(layout)) + " conj=" + std::to_string(conj) +
                     " portable=" + std::to_string(portable));
        EXPECT_CLOSE(y.to(torch::kDouble), torch::view_as_real(Y).detach(), 1e-5, 1e-5);
        EXPECT_CLOSE(xs.grad().to(torch::kDouble), xd.grad(), 1e-5, 1e-5);
        EXPECT_CLOSE(hs.grad().to(torch::kDouble), hd.grad(), 1e-5, 1e-5);
      }
    }
  }
}

TEST(MultiFrameDF, UnitFiltersReproduceAndShiftTheInput) {
  torch::manual_seed(3);
  const int64_t B = 1, C = 1, T = 9, F = 10, Fdf = 10, N = 4, L = 1;
  auto spec = torch::randn({B, C, T, F, 2});
  for (int64_t n = 0; n < N; ++n) {
    auto coefs = torch::zeros({B, N, T, Fdf, 2});
    coefs.select(1, n).select(-1, 0).fill_(1.0);
    auto y = DF(DFOptions(Fdf, N).lookahead(L))->forward(spec, coefs);
    // Window index n holds frame t - (N-1-L) + n.
    const int64_t shift = n - (N - 1 - L);
    auto want = torch::zeros_like(spec);
    for (int64_t t = 0; t < T; ++t)
      if (t + shift >= 0 && t + shift < T) want.select(2, t).copy_(spec.select(2, t + shift));
    EXPECT_TRUE(torch::equal(y, want)) << "n=" << n;
  }
}

TEST(MultiFrameDF, ArgumentsAreNotModifiedAndBinsAboveNumFreqsAreCopied) {
  torch::manual_seed(4);
  auto spec = torch::randn({2, 1, 8, 12, 2}), coefs = torch::randn({2, 3, 8, 5, 2});
  auto s0 = spec.clone(), c0 = coefs.clone();
  DF m(DFOptions(5, 3).lookahead(1));
  m->eval();  // the reference writes into spec in eval mode; we must not
  Tensor y = m->forward(spec, coefs);
  EXPECT_TRUE(torch::equal(spec, s0));
  EXPECT_TRUE(torch::equal(coefs, c0));
  EXPECT_TRUE(torch::equal(y.narrow(3, 5, 7), spec.narrow(3, 5, 7)));
  EXPECT_FALSE(torch::equal(y.narrow(3, 0, 5), spec.narrow(3, 0, 5)));
}

TEST(MultiFrameDF, OrderOneIgnoresLookaheadLikeTheReference) {
  torch::manual_seed(5);
  auto spec = torch::randn({1, 1, 6, 8, 2}), coefs = torch::randn({1, 1, 6, 8, 2});
  auto y0 = DF(DFOptions(8, 1))->forward(spec, coefs);
  auto y2 = DF(DFOptions(8, 1).lookahead(2))->forward(spec, coefs);
  EXPECT_TRUE(torch::equal(y0, y2));
  // ... and equals the complex ratio mask.
  EXPECT_CLOSE(CRM(8)->forward(spec, coefs), y0, 1e-6, 1e-6);
}

TEST(MultiFrameCRM, MaskIsElementwiseComplexProduct) {
  torch::manual_seed(6);
  auto spec = torch::randn({2, 1, 5, 7, 2}), m = torch::randn({2, 1, 5, 4, 2});
  auto y = CRM(4)->forward(spec, m);
  auto x = torch::view_as_complex(spec), mc = torch::view_as_complex(m);
  // (a+ib)(c+id) = (ac-bd) + i(ad+bc), checked on one element by hand.
  const auto a = spec[1][0][3][2][0].item<float>(), b = spec[1][0][3][2][1].item<float>();
  const auto c = m[1][0][3][2][0].item<float>(), d = m[1][0][3][2][1].item<float>();
  EXPECT_NEAR(y[1][0][3][2][0].item<float>(), a * c - b * d, 1e-5);
  EXPECT_NEAR(y[1][0][3][2][1].item<float>(), a * d + b * c, 1e-5);
  EXPECT_TRUE(torch::equal(y.narrow(3, 4, 3), spec.narrow(3, 4, 3)));
  auto fi = CRM(4)->forward_impl(x.narrow(3, 0, 4).unsqueeze(-1), mc);
  EXPECT_CLOSE(fi, torch::view_as_complex(y.narrow(3, 0, 4).contiguous()), 1e-6, 1e-6);
}

TEST(MultiFrameDF, BadShapesAndArgumentsGiveClearErrors) {
  auto spec = torch::randn({2, 1, 8, 12, 2});
  DF m(DFOptions(5, 3));
  // DfOp's layout [B,T,N,F,2] is not DF's [B,C*N,T,F,2].
  expect_error([&] { m->forward(spec, torch::randn({2, 8, 3, 5, 2})); }, "coefs must be [B, C*frame_size");
  expect_error([&] { DF(DFOptions(20, 3))->forward(spec, torch::randn({2, 3, 8, 20, 2})); }, "num_freqs (20)");
  expect_error([&] { m->forward(spec.select(-1, 0), torch::randn({2, 3, 8, 5, 2})); }, "spec must be a real view");
  expect_error([&] { m->forward(spec, torch::randn({2, 3, 8, 5, 2}, torch::kDouble)); }, "dtype");
  expect_error([&] { DF(DFOptions(5, 0)); }, "frame_size must be >= 1");
  expect_error([&] { CRM(CRMOptions(4).frame_size(2)); }, "frame_size must be 1");
  expect_error([&] { CRM(CRMOptions(4).lookahead(1)); }, "lookahead must be 0");
  expect_error([&] { mf::deep_filter(spec, torch::randn({2, 8, 5, 3, 2}), mf::CoefLayout::channel_time, 5, 3, 3, false); },
               "coefs must be");
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------
TEST(MultiFrameHelpers, PsdIsTheTransposedOuterProductOverTheCausalWindow) {
  torch::manual_seed(7);
  auto x = torch::randn({1, 1, 6, 3}, torch::kComplexDouble);
  auto R = mf::psd(x, 3);
  ASSERT_EQ(R.sizes(), torch::IntArrayRef({1, 1, 6, 3, 3, 3}));
  // t = 4, f = 1: window frames 2, 3, 4; R[m][k] = x_k conj(x_m).
  for (int m = 0; m < 3; ++m)
    for (int k = 0; k < 3; ++k) {
      auto want = x[0][0][2 + k][1] * x[0][0][2 + m][1].conj();
      EXPECT_LT((R[0][0][4][1][m][k] - want).abs().item<double>(), 1e-12);
    }
  // t = 0: only the newest entry is non-zero (zero padding in front).
  EXPECT_EQ(R[0][0][0][2].abs().gt(0).sum().item<int64_t>(), 1);
}

TEST(MultiFrameHelpers, TikRegLoadsTheRealDiagonal) {
  auto m = torch::tensor({1.0, 0.0, 2.0, 1.0, 2.0, -1.0, 3.0, 0.5}, torch::kDouble).view({2, 2, 2});
  auto mc = torch::view_as_complex(m);  // [[1, 2+i], [2-i, 3+0.5i]], Re tr = 4
  auto r = mf::tik_reg(mc, 0.1, 0.01);  // delta = 0.41
  EXPECT_NEAR(torch::real(r[0][0]).item<double>(), 1.41, 1e-12);
  EXPECT_NEAR(torch::real(r[1][1]).item<double>(), 3.41, 1e-12);
  EXPECT_NEAR(torch::imag(r[1][1]).item<double>(), 0.5, 1e-12);
  EXPECT_TRUE(torch::equal(r[0][1], mc[0][1]));
}

TEST(MultiFrameHelpers, SmallSolveMatchesLinalgForwardAndBackward) {
  torch::manual_seed(8);
  for (auto dt : {torch::kComplexFloat, torch::kComplexDouble}) {
    for (int64_t n = 1; n <= 9; ++n) {
      for (bool herm : {true, false}) {
        auto a = torch::randn({3, 7, n, n}, dt);
        auto A = herm ? torch::matmul(a, a.mH()) / n + 0.5 * torch::eye(n, dt) : 0.3 * a + 2.0 * torch::eye(n, dt);
        auto b = torch::randn({3, 7, n}, dt);
        auto gx = torch::randn({3, 7, n}, dt);
        auto A1 = A.clone().requires_grad_(true), b1 = b.clone().requires_grad_(true);
        auto A2 = A.clone().requires_grad_(true), b2 = b.clone().requires_grad_(true);
        auto x1 = mf::small_solve(A1, b1, herm);
        auto x2 = torch::linalg_solve(A2, b2.unsqueeze(-1)).squeeze(-1);
        torch::real((x1 * gx.conj()).sum()).backward();
        torch::real((x2 * gx.conj()).sum()).backward();
        const double tol = dt == torch::kComplexFloat ? 2e-4 : 1e-10;
        SCOPED_TRACE("n=" + std::to_string(n) + " hermitian=" + std::to_string(herm));
        EXPECT_CLOSE(x1, x2, tol, tol);
        EXPECT_CLOSE(b1.grad(), b2.grad(), tol, tol);
        EXPECT_CLOSE(A1.grad(), A2.grad(), tol, tol);
        // Residual check independent of linalg.
        EXPECT_LT(max_abs(torch::matmul(A, x1.detach().unsqueeze(-1)).squeeze(-1), b), 10 * tol);
      }
    }
  }
}

TEST(MultiFrameHelpers, SmallSolvePivotsWhereEliminationWithoutPivotingFails) {
  // A zero leading entry: LU without pivoting would divide by zero.
  auto A = torch::view_as_complex(
      torch::tensor({0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0}, torch::kDouble).view({1, 2, 2, 2}));
  auto b = torch::view_as_complex(torch::tensor({1.0, 0.0, 2.0, 0.0}, torch::kDouble).view({1, 2, 2}));
  auto x = mf::small_solve(A, b, false);
  // [[0,1],[1,1+i]] x = [1,2] -> x1 = 1, x0 = 2 - (1+i) = 1 - i.
  EXPECT_NEAR(torch::real(x[0][0]).item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(torch::imag(x[0][0]).item<double>(), -1.0, 1e-12);
  EXPECT_NEAR(torch::real(x[0][1]).item<double>(), 1.0, 1e-12);
}

// ---------------------------------------------------------------------------------------------
// MfWf / MfMvdr
// ---------------------------------------------------------------------------------------------
struct MfCase {
  bool chol, inverse, enforce;
};
const std::vector<MfCase> kMfCases = {{false, false, true}, {false, false, false}, {false, true, true},
                                      {false, true, false}, {true, false, true},  {true, true, true},
                                      {true, false, false}, {true, true, false}};

Tensor make_matrix_input(const MfCase& mc, int64_t B, int64_t T, int64_t F, int64_t N) {
  // Without enforcement the reference uses the factor as given, so give it a triangular one.
  if (mc.chol) return make_chol(B, T, F, N, /*junk=*/mc.enforce);
  // Without enforcement the reference uses R as given, so give it a Hermitian one.
  return make_R(B, T, F, N, /*junk=*/mc.enforce && !mc.inverse);
}

template <typename M>
void check_three_paths_agree(bool mvdr) {
  torch::manual_seed(mvdr ? 10 : 9);
  const int64_t B = 2, C = 2, T = 7, F = 21, Fdf = 19;  // 19 bins: two full lane blocks + a tail
  for (auto mc : kMfCases) {
    // Every N the fused kernel is instantiated for (its AVX2 tiles need rows of >= 8 floats, so
    // small N take the portable gathers).
    for (auto g : std::vector<Geo>{{1, 0}, {2, 1}, {4, 1}, {5, 2}, {3, 0}, {6, 3}, {7, 0}, {8, 5}}) {
      auto spec = torch::randn({B, C, T, F, 2});
      auto ifc = torch::randn({B, T, Fdf, 2 * g.N});
      auto R = make_matrix_input(mc, B, T, Fdf, g.N);
      auto o = MfFilterOptions(Fdf, g.N).lookahead(g.L).cholesky_decomp(mc.chol).inverse(mc.inverse).enforce_constraints(
          mc.enforce);
      M fused(o), ref(MfFilterOptions(o).impl(MfImpl::reference));
      auto s0 = spec.clone(), g0 = ifc.clone(), r0 = R.clone();
      Tensor y_fused = fused->forward(spec, ifc, R);  // raw kernel (no grad)
      Tensor y_ref = ref->forward(spec, ifc, R);
      auto sg = spec.clone().requires_grad_(true);
      Tensor y_train = fused->forward(sg, ifc, R);  // small_solve + deep_filter autograd path
      SCOPED_TRACE(std::string(mvdr ? "MfMvdr" : "MfWf") + " chol=" + std::to_string(mc.chol) +
                   " inverse=" + std::to_string(mc.inverse) + " enforce=" + std::to_string(mc.enforce) +
                   " N=" + std::to_string(g.N) + " L=" + std::to_string(g.L));
      const double scale = y_ref.abs().max().item<double>();
      EXPECT_CLOSE(y_fused, y_ref, 1e-5 * scale + 1e-5, 1e-4);
      EXPECT_CLOSE(y_train.detach(), y_ref, 1e-5 * scale + 1e-5, 1e-4);
      EXPECT_TRUE(torch::equal(spec, s0));
      EXPECT_TRUE(torch::equal(ifc, g0));
      EXPECT_TRUE(torch::equal(R, r0));  // the reference writes into R; we must not
    }
  }
}

TEST(MultiFrameMfWf, FusedKernelTrainingPathAndLinalgReferenceAgree) { check_three_paths_agree<MfWf>(false); }
TEST(MultiFrameMfMvdr, FusedKernelTrainingPathAndLinalgReferenceAgree) { check_three_paths_agree<MfMvdr>(true); }

template <typename M>
void check_gradients(bool mvdr) {
  torch::manual_seed(mvdr ? 12 : 11);
  const int64_t B = 2, C = 1, T = 6, F = 10, Fdf = 8;
  for (auto mc : kMfCases) {
    for (auto g : std::vector<Geo>{{2, 1}, {4, 1}, {5, 2}}) {
      auto spec = torch::randn({B, C, T, F, 2}, torch::kDouble);
      auto ifc = torch::randn({B, T, Fdf, 2 * g.N}, torch::kDouble);
      auto R = make_matrix_input(mc, B, T, Fdf, g.N).to(torch::kDouble);
      auto gout = torch::randn({B, C, T, F, 2}, torch::kDouble);
      auto o = MfFilterOptions(Fdf, g.N).lookahead(g.L).cholesky_decomp(mc.chol).inverse(mc.inverse).enforce_constraints(
          mc.enforce);
      std::vector<Tensor> grads[2];
      int i = 0;
      for (auto impl : {MfImpl::fused, MfImpl::reference}) {
        auto s = spec.clone().requires_grad_(true), f = ifc.clone().requires_grad_(true),
             r = R.clone().requires_grad_(true);
        M m(MfFilterOptions(o).impl(impl));
        (m->forward(s, f, r) * gout).sum().backward();
        grads[i++] = {s.grad(), f.grad(), r.grad()};
      }
      SCOPED_TRACE(std::string(mvdr ? "MfMvdr" : "MfWf") + " chol=" + std::to_string(mc.chol) +
                   " inverse=" + std::to_string(mc.inverse) + " enforce=" + std::to_string(mc.enforce) +
                   " N=" + std::to_string(g.N));
      for (int k = 0; k < 3; ++k) EXPECT_CLOSE(grads[0][k], grads[1][k], 1e-9, 1e-8);
      // Entries that enforce_constraints overwrites get no gradient.
      if (mc.enforce && (mc.chol || !mc.inverse)) {
        auto gR = torch::view_as_complex(grads[0][2].view({B, T, Fdf, g.N, g.N, 2}));
        EXPECT_EQ(torch::triu(gR, 1).abs().max().item<double>(), 0.0);
        if (!mc.chol) EXPECT_EQ(torch::imag(torch::diagonal(gR, 0, -2, -1)).abs().max().item<double>(), 0.0);
      }
    }
  }
}

TEST(MultiFrameMfWf, HandWrittenBackwardMatchesLinalgAutograd) { check_gradients<MfWf>(false); }
TEST(MultiFrameMfMvdr, HandWrittenBackwardMatchesLinalgAutograd) { check_gradients<MfMvdr>(true); }

TEST(MultiFrameMfWf, IdentityCorrelationGivesScaledIfc) {
  // R = I (solve form): w = gamma / (1 + dload*N + eps).
  const int64_t N = 3, Fdf = 4, T = 2;
  auto eye = torch::view_as_real(torch::eye(N, torch::kComplexDouble)).reshape({1, 1, 1, 2 * N * N});
  auto R = eye.expand({1, T, Fdf, 2 * N * N}).contiguous();
  auto ifc = torch::randn({1, T, Fdf, 2 * N}, torch::kDouble);
  MfWf m(MfWfOptions(Fdf, N).inverse(false).dload(0.1).eps(0.05));
  auto w = m->weights(ifc, R);
  auto want = torch::view_as_complex(ifc.view({1, T, Fdf, N, 2})) / (1 + 0.1 * N + 0.05);
  EXPECT_CLOSE(w, want, 1e-12, 1e-12);
}

TEST(MultiFrameMfMvdr, FilterIsDistortionlessTowardsTheNormalisedIfc) {
  // d = gamma / gamma[N-1]; MVDR satisfies d^H w = gamma^H R^-1 gamma / (gamma^H R^-1 gamma + eps) ~ 1.
  torch::manual_seed(13);
  const int64_t N = 5, Fdf = 6, T = 3;
  auto R = make_R(1, T, Fdf, N, true, torch::kDouble);
  auto ifc = torch::randn({1, T, Fdf, 2 * N}, torch::kDouble);
  for (bool inverse : {false, true}) {
    MfMvdr m(MfMvdrOptions(Fdf, N).inverse(inverse).enforce_constraints(true));
    auto Rin = inverse ? torch::view_as_real(torch::linalg_inv(torch::view_as_complex(R.view({1, T, Fdf, N, N, 2}))))
                             .reshape({1, T, Fdf, 2 * N * N}).contiguous()
                       : R;
    if (inverse) {
      // With the inverse form the Hermitian enforcement does not apply: pass a Hermitian inverse.
      auto rc = torch::view_as_complex(R.view({1, T, Fdf, N, N, 2}));
      auto lower = torch::tril(rc, -1);
      auto herm = lower + lower.mH() + torch::diag_embed(torch::real(torch::diagonal(rc, 0, -2, -1)).to(rc.scalar_type()));
      Rin = torch::view_as_real(torch::linalg_inv(herm)).reshape({1, T, Fdf, 2 * N * N}).contiguous();
    }
    auto w = m->weights(ifc, Rin);
    auto gamma = torch::view_as_complex(ifc.view({1, T, Fdf, N, 2}));
    auto d = gamma / gamma.select(-1, N - 1).unsqueeze(-1);
    auto resp = (d.conj() * w).sum(-1);
    EXPECT_LT((resp - 1.0).abs().max().item<double>(), 1e-6) << "inverse=" << inverse;
  }
}

TEST(MultiFrameMfWf, CholeskyInverseAndPlainFormsAgree) {
  // The same filter from Rxx, Rxx^-1 and Cholesky factors of each (spec §3.5 equivalences).
  torch::manual_seed(14);
  const int64_t N = 4, Fdf = 5, T = 4, F = 6;
  auto spec = torch::randn({1, 1, T, F, 2}, torch::kDouble);
  auto ifc = torch::randn({1, T, Fdf, 2 * N}, torch::kDouble);
  auto Rc = torch::view_as_complex(make_R(1, T, Fdf, N, false, torch::kDouble).view({1, T, Fdf, N, N, 2}));
  auto real_view = [&](const Tensor& c) { return torch::view_as_real(c).reshape({1, T, Fdf, 2 * N * N}).contiguous(); };
  auto Rinv = torch::linalg_inv(Rc);
  const auto o = MfWfOptions(Fdf, N).dload(0).eps(0);
  auto y = MfWf(MfWfOptions(o).inverse(false))->forward(spec, ifc, real_view(Rc));
  EXPECT_CLOSE(MfWf(MfWfOptions(o).inverse(true))->forward(spec, ifc, real_view(Rinv)), y, 1e-9, 1e-9);
  EXPECT_CLOSE(MfWf(MfWfOptions(o).inverse(false).cholesky_decomp(true))
                   ->forward(spec, ifc, real_view(torch::linalg_cholesky(Rc))),
               y, 1e-9, 1e-9);
  EXPECT_CLOSE(MfWf(MfWfOptions(o).inverse(true).cholesky_decomp(true))
                   ->forward(spec, ifc, real_view(torch::linalg_cholesky(Rinv))),
               y, 1e-9, 1e-9);
}

template <typename M>
void check_robustness() {
  torch::manual_seed(15);
  const int64_t B = 1, C = 1, T = 5, F = 12, Fdf = 10, N = 5;
  auto spec = torch::randn({B, C, T, F, 2});
  auto ifc = torch::randn({B, T, Fdf, 2 * N});
  // Rank-one (singular before loading), all-zero, huge dynamic range, and NaN/Inf bins.
  auto x = torch::randn({B, T, Fdf, N}, torch::kComplexFloat);
  auto Rc = x.unsqueeze(-1) * x.conj().unsqueeze(-2);
  Rc.select(2, 1).zero_();
  Rc.select(2, 2).mul_(1e6);
  auto R = torch::view_as_real(Rc).reshape({B, T, Fdf, 2 * N * N}).contiguous();
  R[0][1][3][0] = std::numeric_limits<float>::quiet_NaN();
  R[0][2][4][31] = std::numeric_limits<float>::infinity();  // entry (3, 0): lower triangle
  auto ifc_bad = ifc.clone();
  ifc_bad[0][3][5][1] = std::numeric_limits<float>::quiet_NaN();
  for (auto mc : kMfCases) {
    SCOPED_TRACE("chol=" + std::to_string(mc.chol) + " inverse=" + std::to_string(mc.inverse) +
                 " enforce=" + std::to_string(mc.enforce));
    M m(MfFilterOptions(Fdf, N).lookahead(2).cholesky_decomp(mc.chol).inverse(mc.inverse).enforce_constraints(
        mc.enforce));
    Tensor y = m->forward(spec, ifc_bad, R);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
    // Non-finite bins pass the input through.
    EXPECT_TRUE(torch::equal(y[0][0][1][3], spec[0][0][1][3]));
    EXPECT_TRUE(torch::equal(y[0][0][2][4], spec[0][0][2][4]));
    EXPECT_TRUE(torch::equal(y[0][0][3][5], spec[0][0][3][5]));
    // The training path gives the same output and finite gradients.
    auto s = spec.clone().requires_grad_(true), f = ifc_bad.clone().requires_grad_(true),
         r = R.clone().requires_grad_(true);
    Tensor yt = m->forward(s, f, r);
    EXPECT_TRUE(torch::isfinite(yt).all().item<bool>());
    // (The two paths round differently on these cond ~1e7 systems, so only the guarded bins
    // are compared exactly.)
    EXPECT_TRUE(torch::equal(yt[0][0][1][3], spec[0][0][1][3]));
    EXPECT_TRUE(torch::equal(yt[0][0][2][4], spec[0][0][2][4]));
    EXPECT_TRUE(torch::equal(yt[0][0][3][5], spec[0][0][3][5]));
    yt.sum().backward();
    // NaN in an entry that enforce_constraints overwrites (upper triangle) is ignored, as in the
    // reference; elsewhere it makes the bin pass through.
    auto r_junk = R.clone(), r_zero = R.clone();
    r_junk[0][4][6][2] = std::numeric_limits<float>::quiet_NaN();
    r_zero[0][4][6][2] = 0.0f;
    Tensor yj = m->forward(spec, ifc, r_junk);
    EXPECT_TRUE(torch::isfinite(yj).all().item<bool>());
    if (mc.enforce && (mc.chol || !mc.inverse))
      EXPECT_TRUE(torch::equal(yj, m->forward(spec, ifc, r_zero)));
    else
      EXPECT_TRUE(torch::equal(yj[0][0][4][6], spec[0][0][4][6]));
    Tensor yjt = m->forward(spec, ifc, r_junk.clone().requires_grad_(true));
    EXPECT_TRUE(torch::isfinite(yjt).all().item<bool>());
    if (!(mc.enforce && (mc.chol || !mc.inverse))) EXPECT_TRUE(torch::equal(yjt[0][0][4][6], spec[0][0][4][6]));
    for (const Tensor& gr : std::vector<Tensor>{s.grad(), f.grad(), r.grad()}) EXPECT_TRUE(torch::isfinite(gr).all().item().toBool());
  }
}

TEST(MultiFrameMfWf, IllConditionedAndNonFiniteInputGiveFiniteOutput) { check_robustness<MfWf>(); }
TEST(MultiFrameMfMvdr, IllConditionedAndNonFiniteInputGiveFiniteOutput) { check_robustness<MfMvdr>(); }

TEST(MultiFrameMfWf, DoubleInputAndCloneWork) {
  torch::manual_seed(16);
  const int64_t N = 3, Fdf = 9, T = 4, F = 11;
  auto spec = torch::randn({2, 1, T, F, 2}, torch::kDouble);
  auto ifc = torch::randn({2, T, Fdf, 2 * N}, torch::kDouble);
  auto R = make_R(2, T, Fdf, N, true, torch::kDouble);
  MfWf m(MfWfOptions(Fdf, N).lookahead(1).inverse(false));
  Tensor y = m->forward(spec, ifc, R);
  auto y32 = m->forward(spec.to(torch::kFloat), ifc.to(torch::kFloat), R.to(torch::kFloat));
  EXPECT_EQ(y.scalar_type(), torch::kDouble);
  EXPECT_CLOSE(y32.to(torch::kDouble), y, 1e-4, 1e-4);
  auto copy = std::dynamic_pointer_cast<MfWfImpl>(m->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(torch::equal(copy->forward(spec, ifc, R), y));
  EXPECT_TRUE(m->parameters().empty());
  EXPECT_TRUE(m->buffers().empty());
}

TEST(MultiFrameMfWf, RFactorConstants) {
  EXPECT_EQ(MfWf(MfWfOptions(4, 3).inverse(true).cholesky_decomp(true))->get_r_factor(), 2e3);
  EXPECT_EQ(MfWf(MfWfOptions(4, 3).inverse(false).cholesky_decomp(false))->get_r_factor(), 5e-6);
  EXPECT_EQ(MfMvdr(MfMvdrOptions(4, 3).inverse(true).cholesky_decomp(false))->get_r_factor(), 3e8);
  EXPECT_EQ(MfMvdr(MfMvdrOptions(4, 3).inverse(false).cholesky_decomp(true))->get_r_factor(), 5e-5);
}

TEST(MultiFrameMfWf, BadShapesGiveClearErrors) {
  auto spec = torch::randn({1, 1, 4, 8, 2});
  MfWf m(MfWfOptions(6, 3));
  auto ifc = torch::randn({1, 4, 6, 6}), R = torch::randn({1, 4, 6, 18});
  expect_error([&] { m->forward(spec, ifc, torch::randn({1, 4, 6, 9})); }, "R must be [B, T, num_freqs, 2*frame_size^2]");
  expect_error([&] { m->forward(spec, torch::randn({1, 4, 6, 3}), R); }, "ifc must be [B, T, num_freqs, 2*frame_size]");
  expect_error([&] { m->forward(spec, ifc, R.to(torch::kDouble)); }, "dtype");
  expect_error([&] { MfWf(MfWfOptions(9, 3))->forward(spec, ifc, R); }, "num_freqs (9)");
}

// ---------------------------------------------------------------------------------------------
// 2022 variants
// ---------------------------------------------------------------------------------------------
TEST(MultiFrameOld, MfWfCIsACausalDeepFilter) {
  torch::manual_seed(17);
  auto spec = torch::randn({2, 1, 7, 9, 2}), coefs = torch::randn({2, 4, 7, 6, 2});
  auto y = MfWfC(MfWfOldOptions(6, 4).lookahead(2))->forward(spec, coefs);  // lookahead ignored
  EXPECT_CLOSE(y, DF(DFOptions(6, 4))->forward(spec, coefs), 1e-6, 1e-6);
}

TEST(MultiFrameOld, MfWfPsdWorksPerBatchElement) {
  // The reference only broadcasts correctly for B = 1; ours must equal B separate B=1 calls.
  torch::manual_seed(18);
  const int64_t N = 3, Fdf = 5, T = 6;
  auto spec = torch::randn({3, 1, T, 8, 2}, torch::kDouble), coefs = torch::randn({3, N * N + N, T, Fdf, 2}, torch::kDouble);
  MfWfPsd m(MfWfOldOptions(Fdf, N));
  Tensor y = m->forward(spec, coefs);
  for (int64_t b = 0; b < 3; ++b)
    EXPECT_CLOSE(y.narrow(0, b, 1), m->forward(spec.narrow(0, b, 1), coefs.narrow(0, b, 1)), 1e-10, 1e-10);
  // Against an explicit inverse (the reference's formula).
  auto h = torch::view_as_complex(coefs).permute({0, 2, 3, 1});
  auto Rxx = h.narrow(-1, 0, N * N).reshape({3, T, Fdf, N, N});
  auto rss = h.narrow(-1, N * N, N);
  auto w = torch::matmul(torch::linalg_inv(mf::tik_reg(Rxx, 1e-8, 1e-7)), rss.unsqueeze(-1)).squeeze(-1);
  auto xu = mf::spec_unfold(torch::view_as_complex(spec.narrow(3, 0, Fdf).contiguous()), N, 0);
  auto want = (xu * w.unsqueeze(1)).sum(-1);
  EXPECT_CLOSE(torch::view_as_complex(y.narrow(3, 0, Fdf).contiguous()), want, 1e-8, 1e-8);
}

TEST(MultiFrameOld, MfWfPsdSharesTheFilterAcrossChannels) {
  // The reference broadcasts w [B,T,F,N] over the channels of spec (B = 1): channel c of a C = 2
  // call equals a C = 1 call on that channel with the same coefficients.
  torch::manual_seed(21);
  const int64_t N = 2, Fdf = 5, T = 6;
  auto spec = torch::randn({1, 2, T, 8, 2}, torch::kDouble), coefs = torch::randn({1, N * N + N, T, Fdf, 2}, torch::kDouble);
  MfWfPsd m(MfWfOldOptions(Fdf, N));
  Tensor y = m->forward(spec, coefs);
  ASSERT_EQ(y.sizes(), spec.sizes());
  for (int64_t c = 0; c < 2; ++c)
    EXPECT_CLOSE(y.narrow(1, c, 1), m->forward(spec.narrow(1, c, 1), coefs), 1e-12, 1e-12);
  EXPECT_GT(max_abs(y.narrow(1, 0, 1), y.narrow(1, 1, 1)), 1e-3);  // the channels really differ
}

TEST(MultiFrameOld, MfWfDfSplitsTheChannelsInSpeechAndNoisyHalves) {
  // coefs [B, 2*C*N, T, F]: the reference chunks dim 1 in two halves (speech coefs of every
  // channel, then noisy coefs), each unflattened to [C, N]. Channel c of a C = 2 call therefore
  // equals a C = 1 call with coefs channels {c*N..c*N+N-1} and {C*N+c*N..C*N+c*N+N-1}.
  torch::manual_seed(22);
  const int64_t N = 2, Fdf = 5, T = 6, C = 2;
  auto spec = torch::randn({2, C, T, 8, 2}, torch::kDouble), coefs = torch::randn({2, 2 * C * N, T, Fdf, 2}, torch::kDouble);
  MfWfDf m(MfWfOldOptions(Fdf, N).eps_diag(1e-2).eps(1e-1));
  Tensor y = m->forward(spec, coefs);
  ASSERT_EQ(y.sizes(), spec.sizes());
  for (int64_t c = 0; c < C; ++c) {
    auto k = torch::cat({coefs.narrow(1, c * N, N), coefs.narrow(1, C * N + c * N, N)}, 1);
    EXPECT_CLOSE(y.narrow(1, c, 1), m->forward(spec.narrow(1, c, 1), k), 1e-10, 1e-10);
  }
  expect_error([&] { m->forward(spec, coefs.narrow(1, 0, 2 * N)); }, "coefs must be [B, 2*C*frame_size, T, num_freqs, 2]");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Figure for docs/multiframe.md. The experiment always runs and checks what theory says; the SVG
// is written only when SEPMECH_FIGURE_DIR is set:
//   SEPMECH_FIGURE_DIR=docs/figures build-multiframe/tests/sepmech_test_multiframe --gtest_filter='MultiFrameFigures*'
// ---------------------------------------------------------------------------------------------
#include <cstdlib>
#include <fstream>

namespace {

TEST(MultiFrameFigures, Float32SolveErrorVersusConditionNumber) {
  // MfWf solve form with the default loading (dload 1e-7, eps 1e-8): relative error of the
  // float32 filter against float64 on the same float32 input, for Hermitian positive definite
  // R = Q diag(lambda) Q^H with eigenvalues log-spaced in [1/kappa, 1].
  torch::manual_seed(20);
  const int64_t N = 5, S = 2000;
  const double eps32 = std::numeric_limits<float>::epsilon();
  std::vector<double> kappas, err_ours, err_linalg, bound;
  for (int e = 0; e <= 10; ++e) {
    const double kappa = std::pow(10.0, e);
    auto q = std::get<0>(torch::linalg_qr(torch::randn({S, N, N}, torch::kComplexDouble)));
    auto lam = torch::pow(10.0, -torch::linspace(0, e, N, torch::kDouble)).expand({S, N});
    auto Rc = torch::matmul(q * lam.unsqueeze(-2).to(torch::kComplexDouble), q.mH());
    auto R32 = torch::view_as_real(Rc).reshape({1, 1, S, 2 * N * N}).to(torch::kFloat).contiguous();
    auto ifc32 = torch::randn({1, 1, S, 2 * N});
    auto o = MfWfOptions(S, N).inverse(false).enforce_constraints(true);
    auto w64 = MfWf(o)->weights(ifc32.to(torch::kDouble), R32.to(torch::kDouble));
    auto ours = MfWf(o)->weights(ifc32, R32).to(torch::kComplexDouble);
    auto lin = MfWf(MfWfOptions(o).impl(MfImpl::reference))->weights(ifc32, R32).to(torch::kComplexDouble);
    auto rel = [&](const Tensor& w) {
      return torch::median(torch::linalg_vector_norm(w - w64, 2, {-1}) / torch::linalg_vector_norm(w64, 2, {-1}))
          .item<double>();
    };
    ASSERT_TRUE(torch::isfinite(torch::view_as_real(ours)).all().item<bool>()) << "kappa=" << kappa;
    // The loading the solver adds, dload * Re tr R + eps, with this R's exact trace (the sum of
    // its eigenvalues: N at kappa = 1, about 1 once kappa >= 1e4).
    const double delta = 1e-7 * lam[0].sum().item<double>() + 1e-8;
    const double kappa_eff = (1.0 + delta) / (1.0 / kappa + delta);
    kappas.push_back(kappa);
    err_ours.push_back(rel(ours));
    err_linalg.push_back(rel(lin));
    bound.push_back(kappa_eff * eps32);
    // Backward-stable solvers: error ~ kappa_eff * eps, with a small constant.
    EXPECT_LT(err_ours.back(), 10 * N * bound.back()) << "kappa=" << kappa;
    EXPECT_LT(err_ours.back(), 10 * err_linalg.back() + 1e-6) << "kappa=" << kappa;
  }
  EXPECT_LT(err_ours[2], 1e-4);  // kappa = 100

  const char* dir = std::getenv("SEPMECH_FIGURE_DIR");
  if (!dir || !*dir) return;
  const double W = 620, H = 400, x0 = 70, y0 = 40, pw = 500, ph = 300;
  auto X = [&](double k) { return x0 + pw * std::log10(k) / 10.0; };
  auto Y = [&](double e) { return y0 + ph * (0.0 - std::log10(std::max(e, 1e-9))) / 9.0; };  // 1 .. 1e-9
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  svg << "<text x='" << x0 << "' y='22' font-size='13'>MfWf solve form, N=5, default loading: float32 filter error "
         "vs float64</text>\n";
  svg << "<rect x='" << x0 << "' y='" << y0 << "' width='" << pw << "' height='" << ph
      << "' fill='none' stroke='black'/>\n";
  for (int e = 0; e <= 10; e += 2)
    svg << "<text x='" << X(std::pow(10.0, e)) - 10 << "' y='" << y0 + ph + 16 << "'>1e" << e << "</text>\n";
  for (int e = 0; e <= 9; e += 3)
    svg << "<text x='" << x0 - 40 << "' y='" << Y(std::pow(10.0, -e)) + 4 << "'>1e-" << e << "</text>\n";
  svg << "<text x='" << x0 + pw / 2 - 80 << "' y='" << y0 + ph + 34 << "'>condition number of R</text>\n";
  svg << "<text x='16' y='" << y0 + ph / 2 + 60 << "' transform='rotate(-90 16," << y0 + ph / 2 + 60
      << ")'>median relative error of w</text>\n";
  auto line = [&](const std::vector<double>& e, const char* color, const char* dash) {
    svg << "<polyline fill='none' stroke='" << color << "' stroke-width='2' stroke-dasharray='" << dash << "' points='";
    for (size_t i = 0; i < e.size(); ++i) svg << X(kappas[i]) << "," << Y(e[i]) << " ";
    svg << "'/>\n";
    for (size_t i = 0; i < e.size(); ++i)
      svg << "<circle cx='" << X(kappas[i]) << "' cy='" << Y(e[i]) << "' r='3' fill='" << color << "'/>\n";
  };
  line(bound, "#999999", "4,3");
  line(err_linalg, "#f0ad4e", "");
  line(err_ours, "#428bca", "");
  const double lx = x0 + 250, ly = y0 + ph - 52;  // lower right is empty
  svg << "<rect x='" << lx << "' y='" << ly - 5 << "' width='12' height='3' fill='#428bca'/><text x='" << lx + 18
      << "' y='" << ly << "'>sepmech LDL^H (float32)</text>\n";
  svg << "<rect x='" << lx << "' y='" << ly + 13 << "' width='12' height='3' fill='#f0ad4e'/><text x='" << lx + 18
      << "' y='" << ly + 18 << "'>torch::linalg_solve (float32)</text>\n";
  svg << "<rect x='" << lx << "' y='" << ly + 31 << "' width='12' height='3' fill='#999999'/><text x='" << lx + 18
      << "' y='" << ly + 36 << "'>eps32 x effective condition number</text>\n";
  svg << "</svg>\n";
  std::ofstream(std::string(dir) + "/multiframe_conditioning.svg") << svg.str();
  for (size_t i = 0; i < kappas.size(); ++i)
    std::printf("kappa %.0e  sepmech %.3e  linalg %.3e  bound %.3e\n", kappas[i], err_ours[i], err_linalg[i], bound[i]);
}

}  // namespace
