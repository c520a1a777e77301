// DfOp (all methods, fused forward/backward) and StreamingDeepFilter.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "kernels/cpu.h"
#include "parity/parity.h"
#include "sepmech/dfop.h"
#include "sepmech/streaming_deep_filter.h"

#include "support/allocation_counter.h"  // replaces operator new: one file per executable

namespace {

using sepmech::DfMethod;
using sepmech::DfOp;
using sepmech::DfOpOptions;
using torch::Tensor;

const std::string kGolden = std::string(SEPMECH_TEST_DATA) + "/golden/deepfilter/";

// max |a-b| / (atol + rtol |b|) <= 1
void expect_close(const Tensor& got, const Tensor& want, double atol, double rtol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << ": undefined";
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  auto g = got.detach().to(torch::kDouble), w = want.detach().to(torch::kDouble);
  ASSERT_TRUE(torch::isfinite(g).all().item<bool>()) << what << ": non-finite values";
  double worst = ((g - w).abs() / (atol + rtol * w.abs())).max().item<double>();
  EXPECT_LE(worst, 1.0) << what << ": max |diff| = " << (g - w).abs().max().item<double>();
}

// Offline deep filter written independently of every method (plain loops over accessors).
Tensor naive_deep_filter(const Tensor& spec, const Tensor& coefs, const Tensor& alpha, int64_t N, int64_t L) {
  auto x = spec.to(torch::kDouble), h = coefs.to(torch::kDouble);
  auto y = x.clone();
  const int64_t B = x.size(0), T = x.size(2), Fdf = h.size(3);
  auto xa = x.accessor<double, 5>();
  auto ha = h.accessor<double, 5>();
  auto ya = y.accessor<double, 5>();
  Tensor a = alpha.defined() ? alpha.reshape({B, T}).to(torch::kDouble) : Tensor();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t f = 0; f < Fdf; ++f) {
        double re = 0, im = 0;
        for (int64_t n = 0; n < N; ++n) {
          int64_t s = t - (N - 1 - L) + n;
          if (s < 0 || s >= T) continue;
          double xr = xa[b][0][s][f][0], xi = xa[b][0][s][f][1], hr = ha[b][t][n][f][0], hi = ha[b][t][n][f][1];
          re += xr * hr - xi * hi;
          im += xr * hi + xi * hr;
        }
        double w = a.defined() ? a[b][t].item<double>() : 1.0;
        ya[b][0][t][f][0] = w * re + (1 - w) * xa[b][0][t][f][0];
        ya[b][0][t][f][1] = w * im + (1 - w) * xa[b][0][t][f][1];
      }
  return y;
}

struct Shape {
  int64_t B, T, F, Fdf, N, L;
};

const DfMethod kOffline[] = {DfMethod::real_loop, DfMethod::real_strided, DfMethod::real_unfold,
                             DfMethod::complex_strided, DfMethod::fused};

// ---------------------------------------------------------------------------------------------
// Golden files through the fused method (the parity suite runs each file's own method).
// ---------------------------------------------------------------------------------------------

class FusedGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(FusedGolden, ForwardAndBackwardMatchReference) {
  auto c = sepmech::parity::load_case(kGolden + GetParam() + ".safetensors");
  DfOp op(DfOpOptions(c.config.at("df_bins").get<int64_t>())
              .df_order(c.config.at("df_order").get<int64_t>())
              .df_lookahead(c.config.at("df_lookahead").get<int64_t>()));
  ASSERT_EQ(op->options.method(), DfMethod::fused);
  const bool bw = c.has("in.grad_out.spec");
  auto spec = c.at("in.spec").clone().requires_grad_(bw);
  auto coefs = c.at("in.coefs").clone().requires_grad_(bw);
  Tensor alpha = c.has("in.alpha") ? c.at("in.alpha").clone().requires_grad_(bw) : Tensor();
  auto y = op->forward(spec, coefs, alpha);
  expect_close(y, c.at("out.spec"), c.tol.atol, c.tol.rtol, "out.spec");
  if (!bw) return;
  (y * c.at("in.grad_out.spec")).sum().backward();
  expect_close(spec.grad(), c.at("grad.in.spec"), c.grad_tol.atol, c.grad_tol.rtol, "grad.in.spec");
  expect_close(coefs.grad(), c.at("grad.in.coefs"), c.grad_tol.atol, c.grad_tol.rtol, "grad.in.coefs");
  expect_close(alpha.grad(), c.at("grad.in.alpha"), c.grad_tol.atol, c.grad_tol.rtol, "grad.in.alpha");
}

INSTANTIATE_TEST_SUITE_P(Dfop, FusedGolden,
                         ::testing::Values("dfop_real_unfold_o5_la2_alpha_bw", "dfop_complex_strided_o5_la1_alpha_bw",
                                           "dfop_real_loop_o3_la1_alpha", "dfop_real_strided_o4_la0_noalpha",
                                           "dfop_real_one_step_o5_la2"));

// ---------------------------------------------------------------------------------------------
// Every offline method agrees with an independent loop and with fused, forward and backward.
// ---------------------------------------------------------------------------------------------

class Methods : public ::testing::TestWithParam<std::tuple<Shape, bool>> {};

TEST_P(Methods, AllAgreeWithNaiveLoopAndFused) {
  auto [s, with_alpha] = GetParam();
  torch::manual_seed(s.B * 1000 + s.N * 100 + s.L * 10 + with_alpha);
  auto spec = torch::randn({s.B, 1, s.T, s.F, 2});
  auto coefs = torch::randn({s.B, s.T, s.N, s.Fdf, 2});
  auto alpha = with_alpha ? torch::rand({s.B, s.T, 1}) : Tensor();
  auto gout = torch::randn({s.B, 1, s.T, s.F, 2});
  auto want = naive_deep_filter(spec, coefs, alpha, s.N, s.L);
  auto spec_before = spec.clone();

  std::vector<Tensor> fused_grads;
  for (DfMethod m : {DfMethod::fused, DfMethod::real_loop, DfMethod::real_strided, DfMethod::real_unfold,
                     DfMethod::complex_strided}) {
    SCOPED_TRACE(sepmech::to_string(m));
    DfOp op(DfOpOptions(s.Fdf).df_order(s.N).df_lookahead(s.L).method(m));
    auto x = spec.clone().requires_grad_(true), h = coefs.clone().requires_grad_(true);
    Tensor a = with_alpha ? alpha.clone().requires_grad_(true) : Tensor();
    auto y = op->forward(x, h, a);
    expect_close(y, want, 2e-5, 1e-5, "forward vs naive loop");
    (y * gout).sum().backward();
    std::vector<Tensor> grads = {x.grad(), h.grad()};
    if (with_alpha) grads.push_back(a.grad());
    if (m == DfMethod::fused) {
      fused_grads = grads;
    } else {
      for (size_t i = 0; i < grads.size(); ++i) expect_close(fused_grads[i], grads[i], 2e-5, 1e-5, "grad vs fused");
    }
  }
  EXPECT_TRUE(torch::equal(spec, spec_before)) << "the input spectrum was modified";
}

INSTANTIATE_TEST_SUITE_P(
    Dfop, Methods,
    ::testing::Combine(::testing::Values(Shape{2, 13, 20, 7, 5, 2}, Shape{1, 9, 12, 12, 3, 0}, Shape{3, 8, 10, 4, 1, 0},
                                         Shape{2, 11, 9, 5, 1, 2},  // N=1 with lookahead: a pure shift
                                         Shape{2, 10, 16, 16, 2, 1}, Shape{2, 12, 14, 6, 4, 3},
                                         Shape{2, 7, 10, 5, 3, 4},   // L > N-1: window wholly in the future
                                         Shape{1, 3, 6, 6, 5, 1},    // T < N
                                         Shape{2, 9, 30, 29, 5, 2}), // vector blocks + scalar tail
                       ::testing::Bool()));

TEST(DfOp, AnalyticDeltaCoefficientsShiftTheSpectrum) {
  // A single unit tap at window index n picks input frame t-(N-1-L)+n: with n = N-1-L the
  // output is the input; with n = N-1 it is the input advanced by L frames (zeros past the end).
  const int64_t B = 2, T = 9, F = 8, Fdf = 6, N = 4, L = 2;
  auto spec = torch::randn({B, 1, T, F, 2});
  for (int64_t tap : {N - 1 - L, N - 1}) {
    auto coefs = torch::zeros({B, T, N, Fdf, 2});
    coefs.select(2, tap).select(-1, 0).fill_(1.0);
    DfOp op(DfOpOptions(Fdf).df_order(N).df_lookahead(L));
    auto y = op->forward(spec, coefs);
    const int64_t shift = tap - (N - 1 - L);
    auto want = spec.clone();
    auto low = want.narrow(3, 0, Fdf);
    low.zero_();
    low.narrow(2, 0, T - shift).copy_(spec.narrow(3, 0, Fdf).narrow(2, shift, T - shift));
    EXPECT_TRUE(torch::equal(y, want)) << "tap " << tap;
  }
}

TEST(DfOp, AlphaBlendsAndAlphaOneEqualsNoAlpha) {
  const int64_t B = 2, T = 6, F = 10, Fdf = 4, N = 3, L = 1;
  auto spec = torch::randn({B, 1, T, F, 2}), coefs = torch::randn({B, T, N, Fdf, 2});
  DfOp op(DfOpOptions(Fdf).df_order(N).df_lookahead(L));
  auto y1 = op->forward(spec, coefs, torch::ones({B, T, 1}));
  EXPECT_TRUE(torch::equal(y1, op->forward(spec, coefs)));
  auto y0 = op->forward(spec, coefs, torch::zeros({B, T, 1}));
  EXPECT_TRUE(torch::equal(y0, spec));
  auto yh = op->forward(spec, coefs, torch::full({B, T, 1}, 0.25));
  expect_close(yh, 0.25 * y1 + 0.75 * spec, 1e-6, 1e-6, "alpha 0.25");
}

TEST(DfOp, ConstructionPrintingAndNoState) {
  sepmech::DfOp op(96, 5, 2);  // df_bins, df_order, df_lookahead; method fused
  EXPECT_EQ(op->options.df_bins(), 96);
  EXPECT_EQ(op->options.df_order(), 5);
  EXPECT_EQ(op->options.df_lookahead(), 2);
  EXPECT_EQ(op->options.method(), DfMethod::fused);
  std::ostringstream os;
  os << *op;
  EXPECT_EQ(os.str(), "sepmech::DfOp(df_bins=96, df_order=5, df_lookahead=2, method=fused)");
  EXPECT_TRUE(op->named_parameters().is_empty());
  EXPECT_TRUE(op->named_buffers().is_empty());
  for (DfMethod m : {DfMethod::fused, DfMethod::real_loop, DfMethod::real_strided, DfMethod::real_unfold,
                     DfMethod::complex_strided, DfMethod::real_one_step, DfMethod::real_hidden_state_loop})
    EXPECT_EQ(sepmech::df_method_from_string(sepmech::to_string(m)), m);
  // set_method swaps the computation later, as the reference's set_forward.
  sepmech::DfOp later(DfOpOptions(4).df_order(3).freq_bins(6));
  later->set_method(DfMethod::real_hidden_state_loop);
  ASSERT_TRUE(later->hidden_state().defined());
  EXPECT_EQ(later->hidden_state().sizes(), (std::vector<int64_t>{1, 1, 3, 6, 2}));
  EXPECT_TRUE(later->named_buffers().is_empty());  // non-persistent, as in the reference
}

TEST(DfOp, FusedDoublePrecisionGradientsMatchAutogradOfComplexStrided) {
  torch::manual_seed(7);
  const int64_t B = 2, T = 10, F = 9, Fdf = 7, N = 4, L = 1;
  auto spec = torch::randn({B, 1, T, F, 2}, torch::kDouble), coefs = torch::randn({B, T, N, Fdf, 2}, torch::kDouble);
  auto alpha = torch::rand({B, T, 1}, torch::kDouble), gout = torch::randn({B, 1, T, F, 2}, torch::kDouble);
  std::vector<Tensor> ref;
  for (DfMethod m : {DfMethod::complex_strided, DfMethod::fused}) {
    DfOp op(DfOpOptions(Fdf).df_order(N).df_lookahead(L).method(m));
    auto x = spec.clone().requires_grad_(true), h = coefs.clone().requires_grad_(true),
         a = alpha.clone().requires_grad_(true);
    auto y = op->forward(x, h, a);
    EXPECT_EQ(y.scalar_type(), torch::kDouble);
    (y * gout).sum().backward();
    std::vector<Tensor> g = {y.detach(), x.grad(), h.grad(), a.grad()};
    if (ref.empty()) {
      ref = g;
      continue;
    }
    for (size_t i = 0; i < g.size(); ++i) expect_close(g[i], ref[i], 1e-12, 1e-12, "float64 #" + std::to_string(i));
  }
}

TEST(DfOp, FusedFiniteDifferences) {
  // Central differences in float64 on a few entries of each input.
  torch::manual_seed(11);
  const int64_t B = 1, T = 5, F = 4, Fdf = 3, N = 3, L = 1;
  auto spec = torch::randn({B, 1, T, F, 2}, torch::kDouble), coefs = torch::randn({B, T, N, Fdf, 2}, torch::kDouble);
  auto alpha = torch::rand({B, T, 1}, torch::kDouble), gout = torch::randn({B, 1, T, F, 2}, torch::kDouble);
  auto loss = [&](const Tensor& x, const Tensor& h, const Tensor& a) {
    return (sepmech::deep_filter(x, h, a, N, L) * gout).sum();
  };
  auto x = spec.clone().requires_grad_(true), h = coefs.clone().requires_grad_(true),
       a = alpha.clone().requires_grad_(true);
  loss(x, h, a).backward();
  const double eps = 1e-6;
  std::vector<Tensor*> ins = {&spec, &coefs, &alpha};
  std::vector<Tensor> grads = {x.grad(), h.grad(), a.grad()};
  for (size_t i = 0; i < ins.size(); ++i) {
    auto flat = ins[i]->view(-1);
    for (int64_t j = 0; j < flat.numel(); j += 3) {
      torch::NoGradGuard ng;
      double v = flat[j].item<double>();
      flat[j] = v + eps;
      double lp = loss(spec, coefs, alpha).item<double>();
      flat[j] = v - eps;
      double lm = loss(spec, coefs, alpha).item<double>();
      flat[j] = v;
      EXPECT_NEAR(grads[i].view(-1)[j].item<double>(), (lp - lm) / (2 * eps), 1e-6) << "input " << i << " entry " << j;
    }
  }
}

TEST(DfOp, FusedDoubleBackwardMatchesComposite) {
  torch::manual_seed(3);
  const int64_t B = 1, T = 6, F = 5, Fdf = 4, N = 3, L = 1;
  auto spec = torch::randn({B, 1, T, F, 2}, torch::kDouble), coefs = torch::randn({B, T, N, Fdf, 2}, torch::kDouble);
  auto alpha = torch::rand({B, T, 1}, torch::kDouble), gout = torch::randn({B, 1, T, F, 2}, torch::kDouble);
  std::vector<Tensor> ref;
  for (DfMethod m : {DfMethod::real_unfold, DfMethod::fused}) {
    DfOp op(DfOpOptions(Fdf).df_order(N).df_lookahead(L).method(m));
    auto x = spec.clone().requires_grad_(true), h = coefs.clone().requires_grad_(true),
         a = alpha.clone().requires_grad_(true);
    auto y = op->forward(x, h, a);
    auto gx = torch::autograd::grad({(y * gout).sum()}, {x}, {}, true, true)[0];
    // d/dh and d/da of sum(gx^2): needs the gradient to be differentiable itself.
    auto gg = torch::autograd::grad({gx.pow(2).sum()}, {h, a});
    std::vector<Tensor> g = {gx.detach(), gg[0], gg[1]};
    if (ref.empty()) {
      ref = g;
      continue;
    }
    for (size_t i = 0; i < g.size(); ++i) expect_close(g[i], ref[i], 1e-12, 1e-12, "double backward #" + std::to_string(i));
  }
}

TEST(DfOp, NonContiguousInputs) {
  const int64_t B = 2, T = 7, F = 9, Fdf = 5, N = 3, L = 1;
  auto spec = torch::randn({B, 1, F, T, 2}).transpose(2, 3);          // [B,1,T,F,2], not contiguous
  auto coefs = torch::randn({B, N, T, Fdf, 2}).transpose(1, 2);       // [B,T,N,Fdf,2], not contiguous
  auto alpha = torch::rand({T, B}).t().unsqueeze(-1);                 // [B,T,1], not contiguous
  DfOp op(DfOpOptions(Fdf).df_order(N).df_lookahead(L));
  expect_close(op->forward(spec, coefs, alpha), naive_deep_filter(spec, coefs, alpha, N, L), 2e-5, 1e-5, "strided");
}

TEST(DfOp, RealLoopAccumulatesInDefaultDtype) {
  // Reference quirk kept: real_loop's accumulator is float32 even for float64 input.
  auto spec = torch::randn({1, 1, 5, 4, 2}, torch::kDouble) * 1e3, coefs = torch::randn({1, 5, 3, 4, 2}, torch::kDouble);
  DfOp loop(DfOpOptions(4).df_order(3).method(DfMethod::real_loop));
  DfOp fused(DfOpOptions(4).df_order(3));
  auto yl = loop->forward(spec, coefs), yf = fused->forward(spec, coefs);
  EXPECT_EQ(yl.scalar_type(), torch::kDouble);
  auto expect_f32 = yf.to(torch::kFloat).to(torch::kDouble);
  EXPECT_GT((yl - yf).abs().max().item<double>(), 0.0);
  expect_close(yl, yf, 1e-2, 1e-6, "float32 accuracy");
  (void)expect_f32;
}

// ---------------------------------------------------------------------------------------------
// real_one_step and real_hidden_state_loop
// ---------------------------------------------------------------------------------------------

TEST(DfOp, OneStepLoopEqualsOfflineForAnyBatch) {
  const int64_t B = 3, T = 8, F = 10, Fdf = 6, N = 4, L = 2;
  auto spec = torch::randn({B, 1, T, F, 2}), coefs = torch::randn({B, T, N, Fdf, 2}), alpha = torch::rand({B, T, 1});
  DfOp step(DfOpOptions(Fdf).df_order(N).df_lookahead(L).method(DfMethod::real_one_step));
  DfOp fused(DfOpOptions(Fdf).df_order(N).df_lookahead(L));
  auto padded = sepmech::spec_pad(spec, N, L, 2);
  ASSERT_EQ(padded.size(2), T + N - 1);
  std::vector<Tensor> frames;
  for (int64_t t = 0; t < T; ++t)
    frames.push_back(step->forward(padded.narrow(2, t, N), coefs.narrow(1, t, 1), alpha.narrow(1, t, 1)));
  expect_close(torch::stack(frames, 2), fused->forward(spec, coefs, alpha), 2e-6, 1e-6, "one step");
}

TEST(DfOp, HiddenStateLoopLookaheadZeroEqualsOfflineAndChunks) {
  const int64_t T = 15, F = 12, Fdf = 8, N = 4;
  auto spec = torch::randn({1, 1, T, F, 2}), coefs = torch::randn({1, T, N, Fdf, 2}), alpha = torch::rand({1, T, 1});
  DfOp hidden(DfOpOptions(Fdf).df_order(N).freq_bins(F).method(DfMethod::real_hidden_state_loop));
  DfOp fused(DfOpOptions(Fdf).df_order(N));
  auto want = fused->forward(spec, coefs, alpha);
  auto a = hidden->forward(spec.narrow(2, 0, 6), coefs.narrow(1, 0, 6), alpha.narrow(1, 0, 6));
  auto b = hidden->forward(spec.narrow(2, 6, T - 6), coefs.narrow(1, 6, T - 6), alpha.narrow(1, 6, T - 6));
  expect_close(torch::cat({a, b}, 2), want, 2e-6, 1e-6, "chunked hidden state");
  hidden->reset_hidden_state();
  expect_close(hidden->forward(spec, coefs, alpha), want, 2e-6, 1e-6, "after reset");
}

TEST(DfOp, HiddenStateLoopDelaysByLookahead) {
  // Documented reference behaviour: with L>0, step t filters input frame t-L with the coefs given
  // at step t. Feeding coefs advanced by L reproduces the offline output delayed by L frames.
  const int64_t T = 12, F = 10, Fdf = 6, N = 4, L = 2;
  auto spec = torch::randn({1, 1, T, F, 2}), coefs = torch::randn({1, T, N, Fdf, 2}), alpha = torch::rand({1, T, 1});
  DfOp hidden(DfOpOptions(Fdf).df_order(N).df_lookahead(L).freq_bins(F).method(DfMethod::real_hidden_state_loop));
  DfOp fused(DfOpOptions(Fdf).df_order(N).df_lookahead(L));
  auto offline = fused->forward(spec, coefs, alpha);
  auto coefs_late = torch::cat({torch::zeros({1, L, N, Fdf, 2}), coefs.narrow(1, 0, T - L)}, 1);
  auto alpha_late = torch::cat({torch::zeros({1, L, 1}), alpha.narrow(1, 0, T - L)}, 1);
  auto y = hidden->forward(spec, coefs_late, alpha_late);
  expect_close(y.narrow(2, L, T - L), offline.narrow(2, 0, T - L), 2e-6, 1e-6, "delayed");
  // ... and with the same coefs it is NOT the offline result.
  hidden->reset_hidden_state();
  EXPECT_GT((hidden->forward(spec, coefs, alpha) - offline).abs().max().item<double>(), 1e-3);
}

TEST(DfOp, HiddenStateGoldenFinalBuffer) {
  // The parity suite compares the outputs; here the buffer left after the calls (mid.*) too.
  for (std::string name : {"dfop_hidden_state_loop_o5_la0_chunks", "dfop_hidden_state_loop_o4_la1_delay"}) {
    SCOPED_TRACE(name);
    auto c = sepmech::parity::load_case(kGolden + name + ".safetensors");
    DfOp op(DfOpOptions(c.config.at("df_bins").get<int64_t>())
                .df_order(c.config.at("df_order").get<int64_t>())
                .df_lookahead(c.config.at("df_lookahead").get<int64_t>())
                .freq_bins(c.config.at("freq_bins").get<int64_t>())
                .method(DfMethod::real_hidden_state_loop));
    auto chunks = c.call.at("chunks").get<std::vector<int64_t>>();
    int64_t t0 = 0;
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto y = op->forward(c.at("in.spec").narrow(2, t0, chunks[i]), c.at("in.coefs").narrow(1, t0, chunks[i]),
                           c.at("in.alpha").narrow(1, t0, chunks[i]));
      expect_close(y, c.at("out.spec_chunk" + std::to_string(i)), c.tol.atol, c.tol.rtol, "chunk");
      t0 += chunks[i];
    }
    expect_close(op->hidden_state(), c.at("mid.spec_buf_final"), c.tol.atol, c.tol.rtol, "mid.spec_buf_final");
    // An empty chunk changes nothing; a clone starts from a zero buffer.
    auto before = op->hidden_state().clone();
    auto empty = op->forward(c.at("in.spec").narrow(2, 0, 0), c.at("in.coefs").narrow(1, 0, 0),
                             c.at("in.alpha").narrow(1, 0, 0));
    EXPECT_EQ(empty.size(2), 0);
    EXPECT_TRUE(torch::equal(op->hidden_state(), before));
    auto copy = std::dynamic_pointer_cast<sepmech::DfOpImpl>(op->clone());
    ASSERT_TRUE(copy);
    EXPECT_EQ(copy->hidden_state().abs().sum().item<double>(), 0.0);
    EXPECT_TRUE(torch::equal(op->hidden_state(), before));
  }
}

TEST(DfOp, PortableAndVectorKernelsAgree) {
  const int64_t B = 2, T = 40, F = 50, Fdf = 37, N = 5, L = 2;
  auto spec = torch::randn({B, 1, T, F, 2}), coefs = torch::randn({B, T, N, Fdf, 2}), alpha = torch::rand({B, T, 1});
  auto gout = torch::randn({B, 1, T, F, 2});
  std::vector<std::vector<Tensor>> runs;
  for (bool generic : {false, true}) {
    sepmech::kernels::ForcePortable portable(generic);
    for (bool with_alpha : {true, false}) {
      auto x = spec.clone().requires_grad_(true), h = coefs.clone().requires_grad_(true),
           a = alpha.clone().requires_grad_(true);
      auto y = sepmech::deep_filter(x, h, with_alpha ? a : Tensor(), N, L);
      (y * gout).sum().backward();
      runs.push_back({y.detach(), x.grad(), h.grad()});
      if (with_alpha) runs.back().push_back(a.grad());
    }
  }
  auto want = naive_deep_filter(spec, coefs, alpha, N, L);
  expect_close(runs[0][0], want, 2e-5, 1e-5, "vector kernel");
  expect_close(runs[2][0], want, 2e-5, 1e-5, "portable kernel");
  for (size_t r = 0; r < 2; ++r)
    for (size_t i = 0; i < runs[r].size(); ++i)
      expect_close(runs[r][i], runs[r + 2][i], 2e-5, 1e-5, "vector vs portable #" + std::to_string(i));
}

TEST(DfOp, FusedIsThreadCountInvariant) {
  const int64_t B = 2, T = 300, F = 40, Fdf = 24, N = 5, L = 2;
  auto spec = torch::randn({B, 1, T, F, 2}), coefs = torch::randn({B, T, N, Fdf, 2}), alpha = torch::rand({B, T, 1});
  auto gout = torch::randn({B, 1, T, F, 2});
  const int saved = at::get_num_threads();
  std::vector<std::vector<Tensor>> runs;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    auto x = spec.clone().requires_grad_(true), h = coefs.clone().requires_grad_(true),
         a = alpha.clone().requires_grad_(true);
    auto y = sepmech::deep_filter(x, h, a, N, L);
    (y * gout).sum().backward();
    runs.push_back({y.detach(), x.grad(), h.grad(), a.grad()});
  }
  at::set_num_threads(saved);
  for (size_t i = 0; i < runs[0].size(); ++i) EXPECT_TRUE(torch::equal(runs[0][i], runs[1][i])) << i;
}

// ---------------------------------------------------------------------------------------------
// StreamingDeepFilter
// ---------------------------------------------------------------------------------------------

class Streaming : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, bool>> {};

TEST_P(Streaming, EqualsOfflineDelayedByLookahead) {
  auto [N, L, with_alpha] = GetParam();
  const int64_t B = 3, T = 11, F = 9, Fdf = 5;
  torch::manual_seed(N * 10 + L);
  auto spec = torch::randn({B, 1, T, F, 2}), coefs = torch::randn({B, T, N, Fdf, 2});
  Tensor alpha = with_alpha ? torch::rand({B, T, 1}) : Tensor();
  auto offline = naive_deep_filter(spec, coefs, alpha, N, L);

  sepmech::StreamingDeepFilter sdf(sepmech::StreamingDeepFilterOptions(F, Fdf).df_order(N).df_lookahead(L));
  EXPECT_EQ(sdf->ring_frames(), std::max(N, L + 1));
  auto state = sdf->init_state(B);
  // Step k: input frame k (zeros after the end, to flush) with the coefs/alpha of frame k-L.
  for (int64_t k = 0; k < T + L; ++k) {
    auto frame = k < T ? spec.select(2, k) : torch::zeros({B, 1, F, 2});
    const int64_t t = k - L;
    auto h = t >= 0 ? coefs.select(1, t) : torch::randn({B, N, Fdf, 2});  // unused outputs for t < 0
    Tensor a = with_alpha ? (t >= 0 ? alpha.select(1, t) : torch::rand({B, 1})) : Tensor();
    auto y = sdf->step(frame, h, a, state);
    ASSERT_EQ(y.sizes(), frame.sizes());
    if (t >= 0) expect_close(y, offline.select(2, t), 2e-6, 1e-6, "frame " + std::to_string(t));
  }
  EXPECT_EQ(state.steps, T + L);
}

INSTANTIATE_TEST_SUITE_P(Dfop, Streaming,
                         ::testing::Combine(::testing::Values<int64_t>(1, 2, 3, 5),
                                            ::testing::Values<int64_t>(0, 1, 2, 6), ::testing::Bool()));

TEST(StreamingDeepFilter, ResetStartsANewUtteranceAndStatesAreIndependent) {
  const int64_t F = 7, Fdf = 4, N = 3, L = 1, T = 6;
  sepmech::StreamingDeepFilter sdf(sepmech::StreamingDeepFilterOptions(F, Fdf).df_order(N).df_lookahead(L));
  auto spec = torch::randn({T, 1, F, 2}), coefs = torch::randn({T, 1, N, Fdf, 2});
  auto run = [&](sepmech::StreamingDeepFilterState& st) {
    std::vector<Tensor> ys;
    for (int64_t k = 0; k < T; ++k) ys.push_back(sdf->step(spec[k], coefs[k], Tensor(), st));
    return torch::stack(ys);
  };
  auto s1 = sdf->init_state(1), s2 = sdf->init_state(1);
  auto first = run(s1);
  auto other = run(s2);  // a second stream interleaved with nothing: same result
  EXPECT_TRUE(torch::equal(first, other));
  auto branch = s1;  // a copy branches the stream
  auto continued = run(s1);  // state carried over: differs at the start
  EXPECT_FALSE(torch::equal(first, continued));
  EXPECT_TRUE(torch::equal(continued, run(branch)));  // the clone continued independently
  s1.reset();
  EXPECT_EQ(s1.steps, 0);
  EXPECT_TRUE(torch::equal(first, run(s1)));
}

TEST(StreamingDeepFilter, RawPathAllocatesNothing) {
  const int64_t B = 2, F = 481, Fdf = 96, N = 5, L = 2, T = 20;
  sepmech::StreamingDeepFilter sdf(sepmech::StreamingDeepFilterOptions(F, Fdf).df_order(N).df_lookahead(L));
  auto state = sdf->init_state(B);
  auto spec = torch::randn({T, B, F, 2}), coefs = torch::randn({T, B, N, Fdf, 2}), alpha = torch::rand({T, B});
  auto out = torch::empty({B, F, 2});
  std::vector<Tensor> frames, hs, as;
  for (int64_t k = 0; k < T; ++k) {
    frames.push_back(spec[k]);
    hs.push_back(coefs[k]);
    as.push_back(alpha[k]);
  }
  auto ys = torch::empty({T, B, F, 2});
  float* y0 = ys.data_ptr<float>();
  // Step k carries the coefs and alpha of output frame k-L.
  auto late = [&](int64_t k) { return std::max<int64_t>(k - L, 0); };
  g_allocs = 0;
  g_count_allocs = true;
  for (int64_t k = 0; k < T / 2; ++k) sdf->step_into(frames[k], hs[late(k)], as[late(k)], state, out);
  for (int64_t k = T / 2; k < T; ++k)
    sdf->step_raw(frames[k].data_ptr<float>(), hs[late(k)].data_ptr<float>(), as[late(k)].data_ptr<float>(),
                  y0 + k * B * F * 2, state);
  g_count_allocs = false;
  EXPECT_EQ(g_allocs.load(), 0);
  // The counter does count: creating a tensor allocates.
  g_count_allocs = true;
  auto t = torch::empty({1});
  g_count_allocs = false;
  EXPECT_GT(g_allocs.load(), 0);
  // And the raw path computed the right thing.
  auto offline = naive_deep_filter(spec.permute({1, 0, 2, 3}).unsqueeze(1), coefs.permute({1, 0, 2, 3, 4}),
                                   alpha.t().unsqueeze(-1), N, L);
  for (int64_t k = T / 2 + L; k < T; ++k)
    expect_close(ys[k], offline.select(2, k - L).squeeze(1), 2e-6, 1e-6, "raw frame");
}

// ---------------------------------------------------------------------------------------------
// Bad input gives clear errors
// ---------------------------------------------------------------------------------------------

template <typename Fn>
void expect_error(Fn fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(DfOpErrors, BadShapesAndArguments) {
  const int64_t B = 2, T = 6, F = 10, Fdf = 4, N = 3;
  auto spec = torch::randn({B, 1, T, F, 2}), coefs = torch::randn({B, T, N, Fdf, 2});
  DfOp op(DfOpOptions(Fdf).df_order(N).df_lookahead(1));
  // multi-frame DF layout [B,N,T,F,2] instead of [B,T,N,F,2]
  expect_error([&] { op->forward(spec, coefs.transpose(1, 2)); }, "permute dims 1 and 2");
  expect_error([&] { op->forward(spec, torch::randn({B, T, N, Fdf + 1, 2})); }, "df_bins = 4");
  expect_error([&] { op->forward(torch::randn({B, 2, T, F, 2}), coefs); }, "spec must be the real view [B,1,T,F,2]");
  expect_error([&] { op->forward(torch::randn({B, 1, T, F}), coefs); }, "spec must be");
  expect_error([&] { op->forward(spec, coefs, torch::rand({B, T + 1})); }, "alpha must have B*T");
  DfOp wide(DfOpOptions(F + 1).df_order(N));
  expect_error([&] { wide->forward(spec, torch::randn({B, T, N, F + 1, 2})); }, "df_bins must be <= the number of bins F");
  expect_error([&] { DfOp(DfOpOptions(0)); }, "df_bins must be >= 1");
  expect_error([&] { DfOp(DfOpOptions(4).df_order(0)); }, "df_order must be >= 1");
  expect_error([&] { sepmech::df_method_from_string("real_fancy"); }, "method must be one of");
  expect_error([&] { sepmech::deep_filter(spec, coefs.to(torch::kDouble), Tensor(), N, 1); }, "dtype of spec");
  // Stepping methods need L <= N-1 (they blend with window index N-1-L); offline methods do not.
  expect_error([&] { DfOp(DfOpOptions(Fdf).df_order(N).df_lookahead(N).method(DfMethod::real_one_step)); },
               "df_lookahead must be <= df_order-1");
  expect_error(
      [&] { DfOp(DfOpOptions(Fdf).df_order(N).df_lookahead(N).freq_bins(F).method(DfMethod::real_hidden_state_loop)); },
      "df_lookahead must be <= df_order-1");
  EXPECT_NO_THROW(DfOp(DfOpOptions(Fdf).df_order(N).df_lookahead(N + 2))->forward(spec, coefs));
  expect_error([&] { DfOp(DfOpOptions(Fdf).df_order(N).freq_bins(2).method(DfMethod::real_hidden_state_loop)); },
               "freq_bins must be >= df_bins");
  DfOp hidden(DfOpOptions(Fdf).df_order(N).freq_bins(F).method(DfMethod::real_hidden_state_loop));
  expect_error([&] { hidden->forward(spec, coefs, torch::rand({B, T, 1})); }, "B must be 1");
  expect_error([&] { hidden->forward(spec.narrow(0, 0, 1), coefs.narrow(0, 0, 1)); }, "alpha is required");
}

TEST(StreamingDeepFilterErrors, BadShapesAndArguments) {
  sepmech::StreamingDeepFilter sdf(sepmech::StreamingDeepFilterOptions(10, 4).df_order(3).df_lookahead(1));
  auto st = sdf->init_state(2);
  auto frame = torch::randn({2, 10, 2}), h = torch::randn({2, 3, 4, 2});
  expect_error([&] { sdf->step(torch::randn({3, 10, 2}), h, Tensor(), st); }, "frame_spec must be [B,F,2]");
  expect_error([&] { sdf->step(frame, torch::randn({2, 4, 3, 2}), Tensor(), st); }, "frame_coefs must be");
  // Wrong rank with the right element count: the named message, not a dimension-index error.
  expect_error([&] { sdf->step(torch::randn({40}), h, Tensor(), st); }, "frame_spec must be [B,F,2]");
  expect_error([&] { sdf->step(frame, torch::randn({48}), Tensor(), st); }, "frame_coefs must be");
  expect_error([&] { sdf->step(frame, h, torch::rand({3}), st); }, "alpha must have B = 2");
  sepmech::StreamingDeepFilterState empty;
  expect_error([&] { sdf->step(frame, h, Tensor(), empty); }, "not initialised");
  expect_error([&] { sepmech::StreamingDeepFilter(sepmech::StreamingDeepFilterOptions(10, 11)); }, "df_bins must be in");
  auto out = torch::empty({2, 10, 2}, torch::kDouble);
  expect_error([&] { sdf->step_into(frame, h, Tensor(), st, out); }, "out must be a contiguous float32");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Figures for docs/deepfilter.md. The experiments always run (and check what theory says);
// the SVG files are written only when SEPMECH_FIGURE_DIR is set:
//   SEPMECH_FIGURE_DIR=docs/figures build/tests/sepmech_test_deepfilter --gtest_filter='DfOpFigures*'
// ---------------------------------------------------------------------------------------------

namespace {

std::string figure_dir() {
  const char* d = std::getenv("SEPMECH_FIGURE_DIR");
  return d ? std::string(d) : std::string();
}

void write_file(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

std::string fmt(double v, int prec = 1) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(prec);
  o << v;
  return o.str();
}

// Which input frames does output frame t read? Probed through DfOp itself: an impulse in input
// frame s with all-ones coefficients shows up in every output frame whose window contains s.
Tensor probe_window(int64_t T, int64_t N, int64_t L) {
  auto reads = torch::zeros({T, T}, torch::kInt);
  DfOp op(DfOpOptions(1).df_order(N).df_lookahead(L));
  auto coefs = torch::zeros({1, T, N, 1, 2});
  coefs.select(-1, 0).fill_(1.0);
  for (int64_t s = 0; s < T; ++s) {
    auto spec = torch::zeros({1, 1, T, 1, 2});
    spec[0][0][s][0][0] = 1.0;
    auto y = op->forward(spec, coefs).select(-1, 0).reshape({T});
    reads.select(1, s).copy_(y.ne(0).to(torch::kInt));
  }
  return reads;  // reads[t][s]
}

}  // namespace

TEST(DfOpFigures, WindowPicture) {
  const int64_t T = 10;
  struct Cfg {
    int64_t N, L;
  };
  const Cfg cfgs[] = {{5, 0}, {5, 2}, {3, 4}};
  const int cell = 18, gap = 60, top = 50, left = 40;
  std::ostringstream svg;
  const int width = left + 3 * (T * cell + gap), height = top + T * cell + 70;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << height
      << "' font-family='sans-serif' font-size='11'>\n<rect width='100%' height='100%' fill='white'/>\n";
  for (int i = 0; i < 3; ++i) {
    auto [N, L] = cfgs[i];
    auto reads = probe_window(T, N, L);
    // Output frame t reads exactly frames t-(N-1-L) .. t+L that exist.
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < T; ++s) {
        const bool in_window = s >= t - (N - 1 - L) && s <= t + L;
        EXPECT_EQ(reads[t][s].item<int>(), in_window ? 1 : 0) << "N=" << N << " L=" << L << " t=" << t << " s=" << s;
      }
    const int x0 = left + i * (T * cell + gap);
    svg << "<text x='" << x0 << "' y='" << top - 28 << "' font-size='13'>order N=" << N << ", lookahead L=" << L
        << "</text>\n";
    svg << "<text x='" << x0 << "' y='" << top - 10 << "'>input frame s &#8594;</text>\n";
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < T; ++s) {
        const bool r = reads[t][s].item<int>() != 0;
        const char* fill = !r ? "#f2f2f2" : (s == t ? "#d9534f" : (s > t ? "#f0ad4e" : "#428bca"));
        svg << "<rect x='" << x0 + s * cell << "' y='" << top + t * cell << "' width='" << cell - 2 << "' height='"
            << cell - 2 << "' fill='" << fill << "'/>\n";
      }
    svg << "<text x='" << x0 - 30 << "' y='" << top + T * cell / 2 << "' transform='rotate(-90 " << x0 - 18 << ","
        << top + T * cell / 2 << ")'>output frame t &#8594;</text>\n";
  }
  const int ly = top + T * cell + 25;
  svg << "<rect x='" << left << "' y='" << ly << "' width='12' height='12' fill='#428bca'/><text x='" << left + 16
      << "' y='" << ly + 10 << "'>past frames</text>\n";
  svg << "<rect x='" << left + 110 << "' y='" << ly << "' width='12' height='12' fill='#d9534f'/><text x='"
      << left + 126 << "' y='" << ly + 10 << "'>current frame t (alpha blend, copied bins)</text>\n";
  svg << "<rect x='" << left + 390 << "' y='" << ly << "' width='12' height='12' fill='#f0ad4e'/><text x='"
      << left + 406 << "' y='" << ly + 10 << "'>lookahead frames (delay L)</text>\n";
  svg << "<text x='" << left << "' y='" << ly + 32
      << "'>Probed through sepmech::DfOp: an impulse in input frame s, all-ones coefficients; frames outside [0,T) "
         "are zero.</text>\n</svg>\n";
  if (!figure_dir().empty()) write_file(figure_dir() + "/dfop_window.svg", svg.str());
}

TEST(DfOpFigures, DeepFilterVersusComplexRatioMask) {
  // A voiced-speech-like harmonic signal (F0 = 120 Hz +- 0.5 Hz vibrato) in white noise at 0 dB,
  // STFT with 20 ms windows at 16 kHz (50 Hz bins: two bins per harmonic, as in DeepFilterNet's
  // 960-point FFT at 48 kHz). Per bin, the best time-invariant filter over N frames (least squares
  // against the clean STFT, an oracle) is applied with DfOp. N=1 is the best complex ratio mask.
  torch::manual_seed(2024);
  const int64_t fs = 16000, n = 2 * fs, nfft = 320, hop = 160;
  auto tt = torch::arange(n, torch::kDouble) / fs;
  auto f0 = 120.0 + 0.5 * torch::sin(2 * M_PI * 0.5 * tt);
  auto phase = 2 * M_PI * torch::cumsum(f0, 0) / fs;
  auto clean = torch::zeros({n}, torch::kDouble);
  for (int h = 1; h <= 25; ++h) clean += torch::sin(h * phase + 0.3 * h) / h;
  auto noise = torch::randn({n}, torch::kDouble);
  noise *= clean.norm() / noise.norm();  // 0 dB
  auto noisy = clean + noise;
  auto win = torch::hann_window(nfft, torch::TensorOptions().dtype(torch::kDouble));
  auto stft = [&](const Tensor& x) {
    return torch::stft(x, nfft, hop, nfft, win, true, "reflect", false, true, true);  // [F, T] complex
  };
  auto S = stft(clean).t().contiguous(), X = stft(noisy).t().contiguous();  // [T, F]
  const int64_t T = S.size(0), F = S.size(1);
  auto snr_db = [&](const Tensor& Y) {
    return 10 * std::log10((S.abs().pow(2).sum() / (S - Y).abs().pow(2).sum()).item<double>());
  };
  const double input_snr = snr_db(X);
  const std::vector<int64_t> orders = {1, 2, 3, 4, 5, 6, 8};
  std::map<int64_t, std::vector<double>> curves;  // lookahead -> SNR per order
  for (int64_t L : {0, 2}) {
    for (int64_t N : orders) {
      // Windows [T, F, N] of the noisy STFT; least squares per bin: (W^H W) w = W^H s.
      auto Xp = sepmech::spec_pad(X, N, L, 0);                      // [T+N-1, F]
      auto W = Xp.unfold(0, N, 1);                          // [T, F, N]
      auto Wf = W.permute({1, 0, 2});                       // [F, T, N]
      auto A = torch::matmul(Wf.conj().transpose(1, 2), Wf);  // [F, N, N]
      auto b = torch::matmul(Wf.conj().transpose(1, 2), S.t().unsqueeze(-1));  // [F, N, 1]
      auto eye = torch::eye(N, A.options());
      auto w = torch::linalg_solve(A + 1e-9 * eye, b).squeeze(-1);  // [F, N]
      // Apply through DfOp (fused, float64): coefs [1,T,N,F,2], same filter in every frame.
      auto coefs = torch::view_as_real(w.t().unsqueeze(0).expand({T, N, F}).contiguous()).unsqueeze(0);
      DfOp op(DfOpOptions(F).df_order(N).df_lookahead(L));
      auto Y = torch::view_as_complex(op->forward(torch::view_as_real(X).reshape({1, 1, T, F, 2}), coefs)
                                          .reshape({T, F, 2})
                                          .contiguous());
      curves[L].push_back(snr_db(Y));
    }
    // Nested least-squares problems (the window for N+1 contains the window for N): the oracle
    // SNR cannot decrease with N, and N=1 can always choose w=1 (the noisy input).
    auto& c = curves[L];
    EXPECT_GE(c[0], input_snr - 1e-9);
    for (size_t i = 1; i < c.size(); ++i) EXPECT_GE(c[i], c[i - 1] - 1e-6) << "L=" << L << " N=" << orders[i];
  }
  // Inter-frame correlation of the harmonics: several frames buy clearly more than one.
  EXPECT_GT(curves[0][4] - curves[0][0], 1.5);

  // Line chart.
  const int W = 560, H = 340, x0 = 60, y0 = 290, pw = 460, ph = 240;
  double lo = input_snr - 1, hi = input_snr;
  for (auto& [L, c] : curves)
    for (double v : c) hi = std::max(hi, v);
  hi = std::ceil(hi + 1);
  lo = std::floor(lo);
  auto px = [&](double N) { return x0 + (N - 1) / 7.0 * pw; };
  auto py = [&](double v) { return y0 - (v - lo) / (hi - lo) * ph; };
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
      << "' font-family='sans-serif' font-size='11'>\n<rect width='100%' height='100%' fill='white'/>\n";
  svg << "<text x='" << x0 << "' y='20' font-size='13'>Oracle per-bin filter over N frames, harmonic signal in white "
         "noise</text>\n";
  svg << "<line x1='" << x0 << "' y1='" << y0 << "' x2='" << x0 + pw << "' y2='" << y0 << "' stroke='black'/>\n";
  svg << "<line x1='" << x0 << "' y1='" << y0 << "' x2='" << x0 << "' y2='" << y0 - ph << "' stroke='black'/>\n";
  for (int64_t N : orders)
    svg << "<text x='" << px(N) - 3 << "' y='" << y0 + 15 << "'>" << N << "</text>\n";
  svg << "<text x='" << x0 + pw / 2 - 60 << "' y='" << y0 + 32 << "'>order N (N=1: complex ratio mask)</text>\n";
  for (double v = lo; v <= hi + 1e-9; v += 1.0)
    svg << "<text x='" << x0 - 30 << "' y='" << py(v) + 4 << "'>" << fmt(v, 0) << "</text><line x1='" << x0
        << "' y1='" << py(v) << "' x2='" << x0 + pw << "' y2='" << py(v) << "' stroke='#eee'/>\n";
  svg << "<text x='15' y='" << y0 - ph / 2 << "' transform='rotate(-90 15," << y0 - ph / 2
      << ")'>output SNR (dB)</text>\n";
  svg << "<line x1='" << x0 << "' y1='" << py(input_snr) << "' x2='" << x0 + pw << "' y2='" << py(input_snr)
      << "' stroke='gray' stroke-dasharray='4 3'/><text x='" << x0 + pw - 80 << "' y='" << py(input_snr) - 4
      << "' fill='gray'>noisy input</text>\n";
  const char* colors[] = {"#428bca", "#d9534f"};
  int ci = 0;
  for (auto& [L, c] : curves) {
    std::ostringstream pts;
    for (size_t i = 0; i < c.size(); ++i) pts << px(orders[i]) << "," << py(c[i]) << " ";
    svg << "<polyline fill='none' stroke='" << colors[ci] << "' stroke-width='2' points='" << pts.str() << "'/>\n";
    for (size_t i = 0; i < c.size(); ++i)
      svg << "<circle cx='" << px(orders[i]) << "' cy='" << py(c[i]) << "' r='3' fill='" << colors[ci] << "'/>\n";
    svg << "<text x='" << x0 + 20 << "' y='" << y0 - ph + 15 * ci << "' fill='" << colors[ci]
        << "'>lookahead L=" << L << ": N=1 " << fmt(c[0]) << " dB, N=5 " << fmt(c[4]) << " dB</text>\n";
    ++ci;
  }
  svg << "</svg>\n";
  if (!figure_dir().empty()) write_file(figure_dir() + "/dfop_df_vs_crm.svg", svg.str());
  std::cout << "input SNR " << input_snr << " dB; L=0:";
  for (double v : curves[0]) std::cout << " " << v;
  std::cout << "; L=2:";
  for (double v : curves[2]) std::cout << " " << v;
  std::cout << "\n";
}
