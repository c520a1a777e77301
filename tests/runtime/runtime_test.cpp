// Process-wide runtime facts: the BLAS LibTorch runs on and the intra-op thread count.
#include <gtest/gtest.h>

#include "sepmech/runtime.h"

#include <array>

#include "kernels/gemm.h"  // internal

TEST(Runtime, BlasIsNotTheReferenceOne) {
  // scripts/setup.sh installs libopenblas0-pthread, so LibTorch's sgemm_ must come from an
  // optimised BLAS here; on the reference (netlib) BLAS matrix work is ~40x slower.
  sepmech::BlasInfo b = sepmech::blas_info();
  EXPECT_FALSE(b.library.empty()) << "sgemm_ should be resolvable in a process linked to LibTorch";
  EXPECT_NE(b.vendor, "unknown") << b.library;
  EXPECT_FALSE(b.is_reference()) << "LibTorch runs on the reference BLAS " << b.library
                                 << ": apt-get install libopenblas0-pthread";
  EXPECT_EQ(b.vendor, "openblas") << b.library << " (setup.sh installs OpenBLAS)";
  EXPECT_EQ(sepmech::blas_warning(), "");
}

TEST(Runtime, SetNumThreads) {
  // OpenBLAS (what setup installs) has its own pool; it must follow, or "1 thread" benchmarks
  // of matrix work silently run on every core.
  ASSERT_EQ(sepmech::blas_info().vendor, "openblas");
  sepmech::set_num_threads(1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  EXPECT_EQ(sepmech::blas_num_threads(), 1);
  sepmech::set_num_threads(0);
  EXPECT_EQ(torch::get_num_threads(), sepmech::hardware_threads());
  EXPECT_EQ(sepmech::blas_num_threads(), sepmech::hardware_threads());
  EXPECT_THROW(sepmech::set_num_threads(-1), c10::Error);
  sepmech::set_num_threads(1);
}

TEST(Runtime, ReferenceBlasIsRecognisedAndWarnedAbout) {
  // Debian's alternatives for libblas.so.3, as realpath() resolves them.
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0"), "reference");
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/aarch64-linux-gnu/blas/libblas.so.3"), "reference");
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"), "openblas");
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3"), "blis");
  EXPECT_EQ(sepmech::blas_vendor_of("/opt/intel/mkl/lib/libmkl_rt.so"), "mkl");
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/libsomething.so"), "unknown");
  sepmech::BlasInfo ref{"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", "reference"};
  std::string w = sepmech::blas_warning(ref);
  EXPECT_NE(w.find("reference BLAS"), std::string::npos) << w;
  EXPECT_NE(w.find(ref.library), std::string::npos) << w;
  EXPECT_NE(w.find("apt-get install -y libopenblas0-pthread"), std::string::npos) << w;
  EXPECT_EQ(sepmech::blas_warning(sepmech::BlasInfo{"/x/openblas-pthread/libblas.so.3", "openblas"}), "");
}

// detail::gemm_into (src/kernels/gemm.h): the oneDNN path (float32, unit-stride rows) and the LibTorch
// fallback must both equal a float64 matmul, with and without a transposed right-hand side, a
// right-hand side with padded rows (a narrowed weight), row and column bias, and odd sizes.
TEST(Runtime, GemmIntoMatchesFloat64Matmul) {
  torch::manual_seed(3);
  for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {37, 19, 23}, {300, 64, 384}, {5, 0, 7}}) {
    for (bool bt : {false, true}) {
      for (int bias_kind : {0, 1, 2}) {  // none, per column [N], per row [M, 1]
        for (auto dtype : {torch::kFloat, torch::kDouble}) {
          auto a = torch::randn({M, K}, dtype);
          // b with rows longer than needed (stride > width), as a narrowed Linear weight has.
          auto b_full = bt ? torch::randn({N, K + 5}, dtype) : torch::randn({K, N + 5}, dtype);
          auto b = bt ? b_full.narrow(1, 0, K) : b_full.narrow(1, 0, N);
          torch::Tensor bias = bias_kind == 1 ? torch::randn({N}, dtype) : bias_kind == 2 ? torch::randn({M, 1}, dtype) : torch::Tensor();
          auto out = torch::full({M, N}, 7.0, dtype);  // stale values must not leak in
          sepmech::detail::gemm_into(out, a, b, bt, bias);
          auto want = torch::matmul(a.to(torch::kDouble), (bt ? b.t() : b).to(torch::kDouble));
          if (bias.defined()) want = want + bias.to(torch::kDouble);
          const double tol = (dtype == torch::kFloat ? 1e-5 : 1e-12) * (1 + K);
          EXPECT_LE((out.to(torch::kDouble) - want).abs().max().item<double>(), tol)
              << "M=" << M << " K=" << K << " N=" << N << " bt=" << bt << " bias=" << bias_kind << " " << dtype;
        }
      }
    }
  }
  auto out = torch::empty({2, 3});
  EXPECT_THROW(sepmech::detail::gemm_into(out, torch::randn({2, 4}), torch::randn({5, 3}), false), c10::Error);
}

// detail::linear: the differentiable oneDNN linear (float32 path) against LibTorch's addmm in
// float64 -- output, the three gradients, a weight that is a column slice of a wider matrix (as
// TAC's split concat weight), no bias, and second-order gradients through create_graph.
TEST(Runtime, OneDnnLinearMatchesAddmmIncludingSecondOrder) {
  torch::manual_seed(4);
  for (bool with_bias : {true, false}) {
    auto x64 = torch::randn({53, 24}, torch::kDouble);
    auto wide64 = torch::randn({17, 40}, torch::kDouble);
    auto b64 = torch::randn({17}, torch::kDouble);
    auto run = [&](torch::ScalarType dt, bool ours) {
      auto x = x64.to(dt).requires_grad_(true);
      auto wide = wide64.to(dt).requires_grad_(true);
      auto b = b64.to(dt).requires_grad_(true);
      auto w = wide.narrow(1, 8, 24);  // row stride 40, unit column stride
      torch::Tensor bias = with_bias ? b : torch::Tensor();
      auto y = ours ? sepmech::detail::linear(x, w, bias) : (with_bias ? torch::addmm(b, x, w.t()) : torch::mm(x, w.t()));
      // first order with create_graph, then a second-order quantity: d/dwide of |dy/dx|^2
      auto gx = torch::autograd::grad({(y * y).sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
      auto g2 = torch::autograd::grad({(gx * gx).sum()}, {wide}, {}, /*retain_graph=*/true)[0];
      auto grads = torch::autograd::grad({y.sum() * 0.5 + (y * y).sum() * 0.1}, {x, wide, b}, {}, true, false, /*allow_unused=*/true);
      std::vector<torch::Tensor> out{y, gx, g2, grads[0], grads[1]};
      if (with_bias) out.push_back(grads[2]);
      for (auto& t : out) t = t.detach().to(torch::kDouble);
      return out;
    };
    const auto want = run(torch::kDouble, false);
    const auto got = run(torch::kFloat, true);
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const double scale = want[i].abs().max().item<double>();
      EXPECT_LE((got[i] - want[i]).abs().max().item<double>(), 2e-5 * (1 + scale)) << "output " << i << " bias " << with_bias;
    }
  }
}
