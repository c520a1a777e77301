// STFT (docs/stft.md): windows against their closed forms and the reconstruction conditions, perfect
// reconstruction for every window/hop/framing/norm the options accept, pure tones in their bins with
// the magnitude each norm promises, Parseval, agreement with torch::stft/istft, streaming == offline
// with the causal delay, the streaming state as a value, and bad input.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sepmech/audio/stft.h"

#include "support/allocation_counter.h"  // replaces operator new: one file per executable

namespace {

using sepmech::StftFraming;
using sepmech::StftNorm;
using sepmech::StftOptions;
using sepmech::WindowKind;
using torch::Tensor;

constexpr double kPi = 3.14159265358979323846;
const WindowKind kWindows[] = {WindowKind::hann, WindowKind::sqrt_hann, WindowKind::vorbis};
const StftFraming kFramings[] = {StftFraming::center_reflect, StftFraming::center_zero, StftFraming::causal};
const StftNorm kNorms[] = {StftNorm::none, StftNorm::ortho, StftNorm::libdf};

double max_abs(const Tensor& t) { return t.numel() ? t.abs().max().item<double>() : 0.0; }

bool valid(const StftOptions& o) {
  try {
    o.Validate();
    return true;
  } catch (const c10::Error&) {
    return false;
  }
}

// Runs f, which must throw a c10::Error whose message contains every needle.
template <class Fn>
void expect_error(Fn&& f, std::initializer_list<const char*> needles) {
  try {
    f();
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    for (const char* n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected c10::Error, got std::exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "expected a c10::Error containing '" << *needles.begin() << "', nothing thrown";
}

// The frame count of the header, written out: torch's 1 + (n + 2 floor(N/2) - N) / hop centred,
// ceil((n + N - hop) / hop) causal.
int64_t expected_frames(const StftOptions& o, int64_t n) {
  const int64_t N = o.n_fft(), H = o.hop();
  if (o.framing() == StftFraming::causal) return (n + N - H + H - 1) / H;
  return 1 + (n + 2 * (N / 2) - N) / H;
}

// Signal lengths for a geometry: short, not multiples of the hop, and multiples of it.
std::vector<int64_t> lengths_for(const StftOptions& o) {
  const int64_t N = o.n_fft(), H = o.hop();
  std::vector<int64_t> out;
  for (int64_t n : {int64_t{1}, H - 1, N / 2 + 1, N, N + 1, 3 * H + 1, 5 * H, 4 * N + 7})
    if (n >= 1 && (o.framing() != StftFraming::center_reflect || n > N / 2)) out.push_back(n);
  return out;
}

// E(t) = sum_k w^2[t - s_k] over the frames of stft(x) for x of n samples, in float64, computed from
// the framing table of the header (s_k = k hop - left_pad).
Tensor output_envelope(const StftOptions& o, int64_t n) {
  const Tensor w2 = sepmech::make_window(o.window(), o.n_fft(), torch::kFloat64).pow(2);
  const auto wa = w2.accessor<double, 1>();
  Tensor e = torch::zeros({n}, torch::kFloat64);
  auto ea = e.accessor<double, 1>();
  for (int64_t k = 0; k < o.num_frames(n); ++k)
    for (int64_t i = 0; i < o.n_fft(); ++i) {
      const int64_t t = k * o.hop() - o.left_pad() + i;
      if (t >= 0 && t < n) ea[t] += wa[i];
    }
  return e;
}

// istft(stft(x)) == x for x [2, n] of `dtype`, with the first and last hop checked on their own.
// Sample t may be off by tol + cond * max|x| / sqrt(E(t)): the FFT rounding of a frame (~1e-7 of it
// in float32) is divided by the window where it is tiny. That only matters where E(t) is small:
// at the end of centred framings with hop ~ N/2, where one window tail alone covers the last samples,
// and for Vorbis at hop N. cond = 0 in float64.
void check_round_trip(const StftOptions& o, int64_t n, torch::Dtype dtype, double tol, double cond = 0.0) {
  SCOPED_TRACE(o.ToString() + " n=" + std::to_string(n) + " " + c10::toString(dtype));
  const Tensor x = torch::randn({2, n}, torch::TensorOptions().dtype(dtype));
  const Tensor X = sepmech::stft(x, o);
  ASSERT_EQ(X.sizes(), (std::vector<int64_t>{2, o.n_fft() / 2 + 1, expected_frames(o, n)}));
  ASSERT_EQ(o.num_frames(n), expected_frames(o, n));
  EXPECT_EQ(X.scalar_type(), dtype == torch::kFloat64 ? torch::kComplexDouble : torch::kComplexFloat);
  const Tensor y = sepmech::istft(X, n, o);
  ASSERT_EQ(y.sizes(), x.sizes());
  ASSERT_EQ(y.scalar_type(), dtype);
  const Tensor bound = tol + cond * max_abs(x) / output_envelope(o, n).sqrt();  // [n]
  const Tensor excess = (y - x).abs().to(torch::kFloat64) - bound;                // <= 0 everywhere
  const int64_t edge = std::min(o.hop(), n);
  EXPECT_LE(excess.narrow(1, 0, edge).max().item<double>(), 0.0) << "first hop";
  EXPECT_LE(excess.narrow(1, n - edge, edge).max().item<double>(), 0.0) << "last hop";
  for (int64_t c = 0; c < 2; ++c) {
    EXPECT_NEAR(y[c][0].item<double>(), x[c][0].item<double>(), bound[0].item<double>()) << "first sample";
    EXPECT_NEAR(y[c][n - 1].item<double>(), x[c][n - 1].item<double>(), bound[n - 1].item<double>()) << "last sample";
  }
  EXPECT_LE(excess.max().item<double>(), 0.0) << "max error " << max_abs(y - x);
  // [n] in, [F, T] out, the same numbers.
  const Tensor X1 = sepmech::stft(x[1], o);
  ASSERT_EQ(X1.dim(), 2);
  EXPECT_LE(max_abs(X1 - X[1]), 0.0);
  const Tensor y1 = sepmech::istft(X1, n, o);
  ASSERT_EQ(y1.sizes(), (std::vector<int64_t>{n}));
  EXPECT_LE(max_abs(y1 - y[1]), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Windows
// ---------------------------------------------------------------------------------------------

TEST(StftWindow, HannIsPeriodic) {
  const double r = std::sqrt(2.0) / 2;
  const std::vector<double> hann8 = {0, (1 - r) / 2, 0.5, (1 + r) / 2, 1, (1 + r) / 2, 0.5, (1 - r) / 2};
  const Tensor w = sepmech::make_window(WindowKind::hann, 8, torch::kFloat64);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{8}));
  ASSERT_EQ(w.scalar_type(), torch::kFloat64);
  for (int64_t i = 0; i < 8; ++i) EXPECT_NEAR(w[i].item<double>(), hann8[i], 1e-15) << i;
  for (int64_t N : {510, 1534, 63}) {
    const Tensor h = sepmech::make_window(WindowKind::hann, N, torch::kFloat64);
    const Tensor ref = torch::hann_window(N, /*periodic=*/true, torch::kFloat64);
    EXPECT_LE(max_abs(h - ref), 1e-15) << N;
    for (int64_t i = 0; i < N; ++i)
      ASSERT_NEAR(h[i].item<double>(), 0.5 - 0.5 * std::cos(2 * kPi * i / N), 1e-15) << N << " " << i;
    EXPECT_EQ(h[0].item<double>(), 0.0);               // periodic: zero at 0, not at N - 1
    EXPECT_GT(h[N - 1].item<double>(), 0.0);
    EXPECT_LE(max_abs(h.slice(0, 1) - h.slice(0, 1).flip(0)), 1e-15);  // w[i] == w[N - i]
  }
  // float32 is the float64 window rounded.
  const Tensor w32 = sepmech::make_window(WindowKind::hann, 510);
  EXPECT_EQ(w32.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(w32.equal(sepmech::make_window(WindowKind::hann, 510, torch::kFloat64).to(torch::kFloat32)));
}

TEST(StftWindow, SqrtHannIsSine) {
  // sqrt(0.5 - 0.5 cos(2 pi i / N)) = sin(pi i / N) on 0 <= i < N.
  for (int64_t N : {8, 64, 63, 510}) {
    const Tensor w = sepmech::make_window(WindowKind::sqrt_hann, N, torch::kFloat64);
    for (int64_t i = 0; i < N; ++i) ASSERT_NEAR(w[i].item<double>(), std::sin(kPi * i / N), 1e-14) << N << " " << i;
    EXPECT_LE(max_abs(w * w - sepmech::make_window(WindowKind::hann, N, torch::kFloat64)), 1e-15);
  }
}

TEST(StftWindow, VorbisMatchesLibDf) {
  // N = 4: sin^2(pi/8) = (1 - sqrt2/2)/2 = a, sin^2(3 pi/8) = 1 - a, so w = sin(pi a/2), cos(pi a/2), ...
  const double a = (1 - std::sqrt(2.0) / 2) / 2;
  const std::vector<double> v4 = {std::sin(kPi * a / 2), std::cos(kPi * a / 2), std::cos(kPi * a / 2),
                                  std::sin(kPi * a / 2)};
  const Tensor w4 = sepmech::make_window(WindowKind::vorbis, 4, torch::kFloat64);
  for (int64_t i = 0; i < 4; ++i) EXPECT_NEAR(w4[i].item<double>(), v4[i], 1e-15) << i;
  // deepfilternet3.md 3.1: w[i] = sin(pi/2 sin^2(pi (i + 0.5) / N)), power complementary at H = N/2 to 1e-15.
  const int64_t N = 960, H = 480;
  const Tensor w = sepmech::make_window(WindowKind::vorbis, N, torch::kFloat64);
  for (int64_t i = 0; i < N; ++i) {
    const double s = std::sin(kPi * (i + 0.5) / N);
    ASSERT_NEAR(w[i].item<double>(), std::sin(kPi / 2 * s * s), 1e-15) << i;
  }
  EXPECT_LE(max_abs(w - w.flip(0)), 1e-15);  // symmetric: w[i] == w[N - 1 - i]
  EXPECT_LE(max_abs(w.slice(0, 0, H).pow(2) + w.slice(0, H).pow(2) - 1), 1e-15);
  // Stored as float32 the way the spec says (evaluated in float64, rounded).
  EXPECT_TRUE(sepmech::make_window(WindowKind::vorbis, N).equal(w.to(torch::kFloat32)));
}

// sum_m v[j + m hop], j < hop, in float64.
std::vector<double> envelope(const Tensor& v, int64_t hop) {
  std::vector<double> e(static_cast<size_t>(hop), 0.0);
  for (int64_t i = 0; i < v.size(0); ++i) e[i % hop] += v[i].item<double>();
  return e;
}

TEST(StftWindow, ReconstructionConditions) {
  auto w = [](WindowKind k, int64_t N) { return sepmech::make_window(k, N, torch::kFloat64); };
  // Princen-Bradley: vorbis at N/2 (and N/4) sums w^2 to N / (2 hop), libDF's condition.
  for (int64_t H : {480, 240})
    for (double e : envelope(w(WindowKind::vorbis, 960).pow(2), H)) EXPECT_NEAR(e, 960.0 / (2 * H), 1e-14) << H;
  // sqrt_hann: w^2 = periodic Hann, COLA at every N / k: sum = N / (2 hop).
  for (int64_t N : {64, 63, 960})
    for (int64_t k : {2, 3, 4})
      if (N % k == 0)
        for (double e : envelope(w(WindowKind::sqrt_hann, N).pow(2), N / k)) EXPECT_NEAR(e, k / 2.0, 1e-13) << N << "/" << k;
  // Hann at N/4: the window itself sums to 2 (COLA), its square to 4 * 3/8 = 3/2.
  for (double e : envelope(w(WindowKind::hann, 512), 128)) EXPECT_NEAR(e, 2.0, 1e-13);
  for (double e : envelope(w(WindowKind::hann, 512).pow(2), 128)) EXPECT_NEAR(e, 1.5, 1e-13);
  // SGMSE's 510/128 is not a divisor pair: sum w^2 wobbles around 3 N / (8 hop) but never vanishes
  // (NOLA), which is why none/ortho divide by the envelope.
  for (const StftOptions& o : {StftOptions::sgmse(), StftOptions::sgmse_48k()}) {
    const std::vector<double> e = envelope(w(o.window(), o.n_fft()).pow(2), o.hop());
    const double lo = *std::min_element(e.begin(), e.end()), hi = *std::max_element(e.begin(), e.end());
    EXPECT_GT(lo, 1.49) << o.ToString();
    EXPECT_GT(hi - lo, 1e-4) << o.ToString();
    EXPECT_NEAR((lo + hi) / 2, 3.0 * o.n_fft() / (8.0 * o.hop()), 1e-3) << o.ToString();
  }
}

TEST(StftWindow, ValidateFollowsTheConditions) {
  // libdf needs sum w^2 == N / (2 hop): vorbis at N/2 and N/4, sqrt_hann at N/k; never Hann.
  EXPECT_TRUE(valid(StftOptions::deepfilternet()));
  EXPECT_TRUE(valid(StftOptions().n_fft(960).hop(240).window(WindowKind::vorbis).norm(StftNorm::libdf)));
  EXPECT_TRUE(valid(StftOptions().n_fft(63).hop(21).window(WindowKind::sqrt_hann).norm(StftNorm::libdf)));
  EXPECT_FALSE(valid(StftOptions().n_fft(64).hop(24).window(WindowKind::sqrt_hann).norm(StftNorm::libdf)));
  for (int64_t H : {8, 16, 32}) EXPECT_FALSE(valid(StftOptions().n_fft(64).hop(H).window(WindowKind::hann).norm(StftNorm::libdf)));
  // NOLA: Hann and sqrt_hann vanish at 0, so hop == n_fft leaves sample 0 of every frame uncovered.
  const StftOptions causal = StftOptions().framing(StftFraming::causal);
  EXPECT_FALSE(valid(StftOptions(causal).n_fft(64).hop(64).window(WindowKind::hann)));
  EXPECT_FALSE(valid(StftOptions(causal).n_fft(64).hop(64).window(WindowKind::sqrt_hann).norm(StftNorm::ortho)));
  EXPECT_TRUE(valid(StftOptions(causal).n_fft(64).hop(63).window(WindowKind::hann)));
  EXPECT_TRUE(valid(StftOptions(causal).n_fft(64).hop(64).window(WindowKind::vorbis)));
  // Centred frames reach the last sample of every length only for hop <= n_fft / 2 + 1 (the last
  // sample then sits at window offset n_fft / 2 + (n mod hop) - 1 <= n_fft - 1, even n_fft).
  for (StftFraming f : {StftFraming::center_reflect, StftFraming::center_zero}) {
    EXPECT_TRUE(valid(StftOptions().n_fft(64).hop(33).framing(f)));
    EXPECT_FALSE(valid(StftOptions().n_fft(64).hop(34).framing(f)));
    EXPECT_TRUE(valid(StftOptions().n_fft(63).hop(32).framing(f)));
    EXPECT_FALSE(valid(StftOptions().n_fft(63).hop(33).framing(f)));
  }
  EXPECT_TRUE(valid(StftOptions::sgmse()));
  EXPECT_TRUE(valid(StftOptions::sgmse_48k()));
}

// ---------------------------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------------------------

TEST(StftPresets, MatchTheSpecs) {
  // diffusion.md 4: n_fft 510 (F 256), hop 128, periodic Hann, centred reflect, unnormalised; 48 kHz 1534/384.
  const StftOptions s = StftOptions::sgmse();
  EXPECT_EQ(s.n_fft(), 510);
  EXPECT_EQ(s.hop(), 128);
  EXPECT_EQ(s.freq_bins(), 256);
  EXPECT_EQ(s.window(), WindowKind::hann);
  EXPECT_EQ(s.framing(), StftFraming::center_reflect);
  EXPECT_EQ(s.norm(), StftNorm::none);
  EXPECT_EQ(s.left_pad(), 255);
  const StftOptions s48 = StftOptions::sgmse_48k();
  EXPECT_EQ(s48.n_fft(), 1534);
  EXPECT_EQ(s48.hop(), 384);
  EXPECT_EQ(s48.freq_bins(), 768);
  EXPECT_EQ(s48.window(), WindowKind::hann);
  EXPECT_EQ(s48.framing(), StftFraming::center_reflect);
  EXPECT_EQ(s48.norm(), StftNorm::none);
  // deepfilternet3.md 3.1: N 960, H 480, F 481, Vorbis, frame t over [tH - 480, tH + 480), wnorm 1/960.
  const StftOptions d = StftOptions::deepfilternet();
  EXPECT_EQ(d.n_fft(), 960);
  EXPECT_EQ(d.hop(), 480);
  EXPECT_EQ(d.freq_bins(), 481);
  EXPECT_EQ(d.window(), WindowKind::vorbis);
  EXPECT_EQ(d.framing(), StftFraming::causal);
  EXPECT_EQ(d.norm(), StftNorm::libdf);
  EXPECT_EQ(d.left_pad(), 480);
  EXPECT_EQ(d.ToString(), "StftOptions(n_fft=960, hop=480, window=vorbis, framing=causal, norm=libdf)");
  // SGMSE's frame count is torch's: a 2 s clip at 16 kHz gives 1 + 32000 / 128 = 251 frames.
  EXPECT_EQ(s.num_frames(32000), 251);
  EXPECT_EQ(d.num_frames(48000), 101);  // ceil((48000 + 480) / 480)
}

TEST(StftPresets, SgmseEqualsTorchStft) {
  torch::manual_seed(1);
  for (const StftOptions& o : {StftOptions::sgmse(), StftOptions::sgmse_48k()}) {
    const int64_t n = 5 * o.hop() + 37;
    const Tensor x = torch::randn({2, n});
    const Tensor w = torch::hann_window(o.n_fft(), /*periodic=*/true);
    const Tensor ref = torch::stft(x, o.n_fft(), o.hop(), o.n_fft(), w, /*center=*/true, "reflect",
                                   /*normalized=*/false, /*onesided=*/true, /*return_complex=*/true);
    const Tensor X = sepmech::stft(x, o);
    ASSERT_EQ(X.sizes(), ref.sizes());
    EXPECT_LE(max_abs(X - ref), 1e-5 * max_abs(ref)) << o.ToString();
    const Tensor back = torch::istft(ref, o.n_fft(), o.hop(), o.n_fft(), w, true, false, true, n);
    EXPECT_LE(max_abs(sepmech::istft(ref, n, o) - back), 1e-5) << o.ToString();
  }
}

TEST(StftPresets, DeepFilterNetRoundTripIsDelayFree) {
  // Offline causal framing reconstructs every input sample (the streaming delay is in the streaming
  // pair only); libDF's 2.4e-7 round trip.
  torch::manual_seed(2);
  const StftOptions d = StftOptions::deepfilternet();
  for (int64_t n : {480, 481, 4800, 48000 + 123}) check_round_trip(d, n, torch::kFloat32, 2e-6);
}

// ---------------------------------------------------------------------------------------------
// Reconstruction
// ---------------------------------------------------------------------------------------------

TEST(StftReconstruction, EveryAcceptedCombinationFloat64) {
  // Every hop 1..N of two small FFT sizes (even and odd), every window, framing and norm that
  // Validate accepts.
  torch::manual_seed(3);
  int64_t accepted = 0, rejected = 0;
  for (int64_t N : {16, 15})
    for (int64_t H = 1; H <= N; ++H)
      for (WindowKind w : kWindows)
        for (StftFraming f : kFramings)
          for (StftNorm nm : kNorms) {
            const StftOptions o = StftOptions().n_fft(N).hop(H).window(w).framing(f).norm(nm);
            if (!valid(o)) {
              ++rejected;
              continue;
            }
            ++accepted;
            for (int64_t n : lengths_for(o)) check_round_trip(o, n, torch::kFloat64, 1e-9);
          }
  // The grid is not vacuous: none/ortho pass for every hop causally (Hann/sqrt_hann but at hop N)
  // and for hop <= N/2 + 1 centred (382 pairs), and libdf's vorbis/sqrt_hann pairs at N/k.
  EXPECT_GE(accepted, 382);
  EXPECT_GT(rejected, 0);
  EXPECT_TRUE(valid(StftOptions().n_fft(16).hop(8).window(WindowKind::vorbis).norm(StftNorm::libdf)));
  EXPECT_TRUE(valid(StftOptions().n_fft(15).hop(5).window(WindowKind::sqrt_hann).norm(StftNorm::libdf)));
}

TEST(StftReconstruction, PracticalGeometriesFloat32) {
  torch::manual_seed(4);
  std::vector<StftOptions> opts = {StftOptions::sgmse(), StftOptions::sgmse_48k(), StftOptions::deepfilternet(),
                                   StftOptions::sgmse().window(WindowKind::sqrt_hann)};  // SGMSE's sqrt-Hann variant
  for (int64_t N : {512, 510, 320, 255})
    for (int64_t H : {N / 2, N / 4, 3 * N / 8})
      for (WindowKind w : kWindows)
        for (StftFraming f : kFramings)
          for (StftNorm nm : kNorms) {
            const StftOptions o = StftOptions().n_fft(N).hop(H).window(w).framing(f).norm(nm);
            if (valid(o)) opts.push_back(o);
          }
  ASSERT_GT(opts.size(), 100u);
  for (const StftOptions& base : opts)
    for (StftFraming f : kFramings) {
      const StftOptions o = StftOptions(base).framing(f);
      for (int64_t n : lengths_for(o)) check_round_trip(o, n, torch::kFloat32, 1e-5, 2e-7);
    }
}

TEST(StftReconstruction, IsDifferentiable) {
  // istft(stft(.)) is the identity, so the gradient of its sum is all ones.
  for (const StftOptions& o : {StftOptions::sgmse(), StftOptions::deepfilternet()}) {
    const Tensor x = torch::randn({1, 3 * o.hop() + 5}, torch::kFloat64).requires_grad_();
    sepmech::istft(sepmech::stft(x, o), x.size(1), o).sum().backward();
    EXPECT_LE(max_abs(x.grad() - 1), 1e-9) << o.ToString();
  }
}

TEST(StftReconstruction, WindowArgumentReplacesTheOption) {
  torch::manual_seed(5);
  const StftOptions o = StftOptions::sgmse();
  const Tensor x = torch::randn({1, 2000});
  EXPECT_TRUE(sepmech::stft(x, o, sepmech::make_window(WindowKind::hann, 510)).equal(sepmech::stft(x, o)));
  const StftOptions s = StftOptions(o).window(WindowKind::sqrt_hann);
  const Tensor w = sepmech::make_window(WindowKind::sqrt_hann, 510, torch::kFloat64);  // cast to x's dtype
  EXPECT_LE(max_abs(sepmech::stft(x, o, w) - sepmech::stft(x, s)), 0.0);
  EXPECT_LE(max_abs(sepmech::istft(sepmech::stft(x, o, w), 2000, o, w) - x), 1e-5);
}

// ---------------------------------------------------------------------------------------------
// Framing, bins and norms
// ---------------------------------------------------------------------------------------------

// rfft(w * x[start .. start + N)) * scale with zeros outside x, computed directly.
Tensor direct_frame(const Tensor& x, int64_t start, const Tensor& w, double scale) {
  const int64_t N = w.size(0), n = x.size(0);
  Tensor seg = torch::zeros({N}, x.options());
  for (int64_t i = 0; i < N; ++i)
    if (start + i >= 0 && start + i < n) seg[i] = x[start + i];
  return torch::fft::rfft(seg * w) * scale;
}

TEST(StftFraming, FramesSitWhereTheHeaderSays) {
  // Centred: frame k covers [k hop - N/2, k hop - N/2 + N); causal: [k hop - (N - hop), k hop + hop).
  torch::manual_seed(6);
  const int64_t N = 64, H = 16, n = 150;
  const Tensor x = torch::randn({n}, torch::kFloat64);
  for (StftFraming f : {StftFraming::center_zero, StftFraming::causal}) {
    const StftOptions o = StftOptions().n_fft(N).hop(H).framing(f);
    const Tensor X = sepmech::stft(x, o);
    const Tensor w = sepmech::make_window(WindowKind::hann, N, torch::kFloat64);
    const int64_t left = f == StftFraming::causal ? N - H : N / 2;
    EXPECT_EQ(o.left_pad(), left);
    for (int64_t k = 0; k < X.size(1); ++k)
      EXPECT_LE(max_abs(X.select(1, k) - direct_frame(x, k * H - left, w, 1.0)), 1e-12) << to_string(f) << " " << k;
  }
  // Reflect padding: x[-j] = x[j] and x[n - 1 + j] = x[n - 1 - j].
  const StftOptions o = StftOptions().n_fft(N).hop(H).framing(StftFraming::center_reflect);
  const Tensor X = sepmech::stft(x, o);
  auto reflected = [&](int64_t i) { return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i; };
  const Tensor w = sepmech::make_window(WindowKind::hann, N, torch::kFloat64);
  for (int64_t k : {int64_t{0}, int64_t{1}, X.size(1) - 1}) {
    Tensor seg = torch::empty({N}, torch::kFloat64);
    for (int64_t i = 0; i < N; ++i) seg[i] = x[reflected(k * H - N / 2 + i)];
    EXPECT_LE(max_abs(X.select(1, k) - torch::fft::rfft(seg * w)), 1e-12) << k;
  }
}

TEST(StftNorms, HannToneLandsInItsBin) {
  // x = A cos(2 pi k0 i / N + phi), Hann window, a frame starting at sample s wholly inside x:
  // X[k0] = c A N/4 e^{i theta}, X[k0 +- 1] = -c A N/8 e^{i theta}, theta = 2 pi k0 s / N + phi, every other
  // bin 0; c = 1 (none), 1/sqrt(N) (ortho).
  const int64_t N = 64, H = 16, k0 = 5, n = 640;
  const double A = 0.7, phi = 0.3;
  const Tensor i = torch::arange(n, torch::kFloat64);
  const Tensor x = (A * torch::cos(2 * kPi * k0 * i / N + phi)).to(torch::kFloat32);
  for (StftNorm nm : {StftNorm::none, StftNorm::ortho})
    for (StftFraming f : {StftFraming::center_reflect, StftFraming::causal}) {
      const StftOptions o = StftOptions().n_fft(N).hop(H).framing(f).norm(nm);
      const double c = nm == StftNorm::none ? 1.0 : 1.0 / std::sqrt(double(N));
      const Tensor X = sepmech::stft(x, o).to(torch::kComplexDouble);
      int64_t checked = 0;
      for (int64_t k = 0; k < X.size(1); ++k) {
        const int64_t s = k * H - o.left_pad();
        if (s < 0 || s + N > n) continue;
        ++checked;
        const double theta = 2 * kPi * k0 * s / N + phi;
        const c10::complex<double> e(std::cos(theta), std::sin(theta));
        const Tensor col = X.select(1, k);
        auto near = [&](int64_t bin, c10::complex<double> want) {
          const auto got = col[bin].item<c10::complex<double>>();
          EXPECT_NEAR(got.real(), want.real(), 2e-6 * A * N) << to_string(nm) << " frame " << k << " bin " << bin;
          EXPECT_NEAR(got.imag(), want.imag(), 2e-6 * A * N) << to_string(nm) << " frame " << k << " bin " << bin;
        };
        near(k0, e * (c * A * N / 4));
        near(k0 - 1, e * (-c * A * N / 8));
        near(k0 + 1, e * (-c * A * N / 8));
        Tensor rest = col.clone();
        rest.slice(0, k0 - 1, k0 + 2).zero_();
        EXPECT_LE(max_abs(rest), 2e-6 * A * N) << to_string(nm) << " frame " << k;
      }
      EXPECT_GT(checked, 30);
    }
}

TEST(StftNorms, LibDfScalesByTwoHopOverNSquared) {
  // sqrt_hann (= sin(pi i / N)) on a constant A: X[0] = 2 hop / N^2 * A * sum_i sin(pi i / N)
  // = 2 hop / N^2 * A * cot(pi / (2N)).
  const int64_t N = 64, H = 32, n = 640;
  const double A = 0.4;
  const StftOptions o = StftOptions().n_fft(N).hop(H).window(WindowKind::sqrt_hann).framing(StftFraming::causal).norm(
      StftNorm::libdf);
  const Tensor X = sepmech::stft(torch::full({n}, A, torch::kFloat64), o);
  const double want = 2.0 * H / (N * N) * A / std::tan(kPi / (2 * N));
  for (int64_t k = 1; k < n / H; ++k) {  // frames wholly inside the signal
    EXPECT_NEAR(torch::real(X[0][k]).item<double>(), want, 1e-12) << k;
    EXPECT_NEAR(torch::imag(X[0][k]).item<double>(), 0.0, 1e-12) << k;
  }
  // DeepFilterNet: wnorm = 2 * 480 / 960^2 = 1 / 960 on top of the unnormalised transform.
  torch::manual_seed(7);
  const Tensor x = torch::randn({2, 4000}, torch::kFloat64);
  const StftOptions d = StftOptions::deepfilternet();
  EXPECT_LE(max_abs(sepmech::stft(x, d) * 960.0 - sepmech::stft(x, StftOptions(d).norm(StftNorm::none))), 1e-12);
}

TEST(StftNorms, RatiosBetweenNorms) {
  // For any window: ortho = none / sqrt(N), libdf = none * 2 hop / N^2 (where libdf is allowed).
  torch::manual_seed(8);
  const Tensor x = torch::randn({1, 1000}, torch::kFloat64);
  for (WindowKind w : kWindows)
    for (StftFraming f : kFramings) {
      const StftOptions o = StftOptions().n_fft(64).hop(32).window(w).framing(f);
      const Tensor none = sepmech::stft(x, o);
      EXPECT_LE(max_abs(sepmech::stft(x, StftOptions(o).norm(StftNorm::ortho)) - none / 8.0), 1e-12);
      const StftOptions l = StftOptions(o).norm(StftNorm::libdf);
      if (w == WindowKind::hann) {
        EXPECT_FALSE(valid(l));
      } else {
        EXPECT_LE(max_abs(sepmech::stft(x, l) - none * (64.0 / 4096.0)), 1e-12);
      }
    }
}

// Energy of a one-sided spectrum [.., F, T]: |X_0|^2 + |X_{N/2}|^2 (even N) + 2 * the rest.
double spectral_energy(const Tensor& X, int64_t N) {
  Tensor p = X.abs().pow(2);
  Tensor weight = torch::full({p.size(-2), 1}, 2.0, torch::kFloat64);
  weight[0] = 1.0;
  if (N % 2 == 0) weight[-1] = 1.0;
  return (p * weight).sum().item<double>();
}

TEST(StftNorms, ParsevalForOrtho) {
  torch::manual_seed(9);
  // Per frame, any window and N: sum_k |X_k|^2 (two-sided) == sum_i (w_i x_i)^2.
  for (int64_t N : {64, 63}) {
    const Tensor x = torch::randn({700}, torch::kFloat64);
    const StftOptions o = StftOptions().n_fft(N).hop(N / 3).framing(StftFraming::center_zero).norm(StftNorm::ortho);
    const Tensor X = sepmech::stft(x, o);
    const Tensor w = sepmech::make_window(WindowKind::hann, N, torch::kFloat64);
    for (int64_t k = 0; k < X.size(1); ++k) {
      Tensor frame = torch::zeros({N}, torch::kFloat64);
      for (int64_t i = 0; i < N; ++i) {
        const int64_t t = k * o.hop() - N / 2 + i;
        if (t >= 0 && t < 700) frame[i] = x[t] * w[i];
      }
      EXPECT_NEAR(spectral_energy(X.slice(1, k, k + 1), N), frame.pow(2).sum().item<double>(), 1e-9) << N << " " << k;
    }
  }
  // A tight frame (sum w^2 == 1, every sample under all its frames: causal framing): the STFT energy
  // is the signal energy. Vorbis at N/2 (DeepFilterNet's window) and sqrt_hann at N/2.
  for (WindowKind w : {WindowKind::vorbis, WindowKind::sqrt_hann})
    for (int64_t n : {960, 4321}) {
      const Tensor x = torch::randn({n}, torch::kFloat64);
      const StftOptions o = StftOptions::deepfilternet().window(w).norm(StftNorm::ortho);
      EXPECT_NEAR(spectral_energy(sepmech::stft(x, o), 960), x.pow(2).sum().item<double>(), 1e-9 * n)
          << to_string(w) << " " << n;
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

std::vector<StftOptions> streaming_options() {
  return {StftOptions::deepfilternet(),
          StftOptions::sgmse(),  // centred offline; the streaming pair frames it causally
          StftOptions::sgmse_48k(),
          StftOptions().n_fft(64).hop(16).window(WindowKind::sqrt_hann).norm(StftNorm::ortho),
          StftOptions().n_fft(63).hop(21).window(WindowKind::sqrt_hann).norm(StftNorm::libdf),
          StftOptions().n_fft(64).hop(24).window(WindowKind::vorbis),  // hop does not divide N
          StftOptions().n_fft(48).hop(40).window(WindowKind::hann),    // n_fft - hop < hop
          StftOptions().n_fft(32).hop(32).window(WindowKind::vorbis)};  // no overlap, no memory
}

TEST(StftStreaming, AnalysisEqualsOfflineCausalFrames) {
  torch::manual_seed(10);
  for (const StftOptions& o : streaming_options()) {
    SCOPED_TRACE(o.ToString());
    const int64_t H = o.hop(), N = o.n_fft(), B = 2, K = 7, flush = (N - H + H - 1) / H;
    const Tensor x = torch::randn({B, K * H});
    const StftOptions causal = StftOptions(o).framing(StftFraming::causal);
    const Tensor X = sepmech::stft(x, causal);  // [B, F, K + flush]
    ASSERT_EQ(X.size(2), K + flush);
    sepmech::StreamingStft ana(o);
    EXPECT_EQ(ana->delay(), N - H);
    auto s1 = ana->init_state(B);
    auto s2 = ana->init_state(B);
    Tensor out = torch::empty({B, o.freq_bins()}, torch::kComplexFloat);
    const void* where = out.data_ptr();
    const double tol = 1e-6 * max_abs(X) + 1e-7;
    for (int64_t k = 0; k < K + flush; ++k) {
      const Tensor hop = k < K ? x.slice(1, k * H, (k + 1) * H).contiguous() : torch::zeros({B, H});
      const Tensor y = ana->step(hop, s1);
      ASSERT_EQ(y.sizes(), (std::vector<int64_t>{B, o.freq_bins()}));
      ASSERT_EQ(y.scalar_type(), torch::kComplexFloat);
      EXPECT_LE(max_abs(y - X.select(2, k)), tol) << "step, frame " << k;
      ana->step_into(hop, s2, out);
      EXPECT_EQ(out.data_ptr(), where);
      EXPECT_LE(max_abs(out - X.select(2, k)), tol) << "step_into, frame " << k;
      EXPECT_TRUE(out.equal(y));
    }
    EXPECT_EQ(s1.frames, K + flush);
    EXPECT_EQ(s2.frames, K + flush);
  }
}

TEST(StftStreaming, SynthesisEqualsOfflineDelayed) {
  // Any spectrum (not only one of a signal): step k returns samples [k hop - (N - hop), (k + 1) hop -
  // (N - hop)) of istft(spec, causal framing), so dropping the first N - hop samples of the stream
  // gives the offline output.
  torch::manual_seed(11);
  for (const StftOptions& o : streaming_options()) {
    SCOPED_TRACE(o.ToString());
    const int64_t H = o.hop(), N = o.n_fft(), M = N - H, B = 3, T = 9;
    const Tensor spec = torch::randn({B, o.freq_bins(), T}, torch::kComplexFloat);
    const StftOptions causal = StftOptions(o).framing(StftFraming::causal);
    const Tensor y = sepmech::istft(spec, T * H, causal);
    sepmech::StreamingIstft syn(o);
    EXPECT_EQ(syn->delay(), M);
    auto s1 = syn->init_state(B);
    auto s2 = syn->init_state(B);
    Tensor out = torch::empty({B, H});
    std::vector<Tensor> a, b;
    for (int64_t k = 0; k < T; ++k) {
      const Tensor frame = spec.select(2, k).contiguous();
      a.push_back(syn->step(frame, s1));
      ASSERT_EQ(a.back().sizes(), (std::vector<int64_t>{B, H}));
      syn->step_into(frame, s2, out);
      b.push_back(out.clone());
      EXPECT_TRUE(b.back().equal(a.back())) << k;
    }
    EXPECT_EQ(s1.frames, T);
    const Tensor stream = torch::cat(a, 1);  // samples [-M, T H - M)
    const double tol = 1e-5 * max_abs(y);
    EXPECT_LE(max_abs(stream.slice(1, M) - y.slice(1, 0, T * H - M)), tol);
    // First and last samples on their own.
    EXPECT_LE(max_abs(stream.select(1, M) - y.select(1, 0)), tol);
    EXPECT_LE(max_abs(stream.select(1, T * H - 1) - y.select(1, T * H - M - 1)), tol);
  }
}

TEST(StftStreaming, AnalysisThenSynthesisIsTheInputDelayed) {
  // y = syn(ana(x)): the input delayed by N - hop, the pre-roll zero; flushing with ceil((N - hop) / hop)
  // zero hops brings out the last sample.
  torch::manual_seed(12);
  for (const StftOptions& o : streaming_options()) {
    SCOPED_TRACE(o.ToString());
    const int64_t H = o.hop(), N = o.n_fft(), M = N - H, B = 2, K = 6, flush = (M + H - 1) / H;
    const Tensor x = torch::randn({B, K * H});
    sepmech::StreamingStft ana(o);
    sepmech::StreamingIstft syn(o);
    auto sa = ana->init_state(B);
    auto ss = syn->init_state(B);
    std::vector<Tensor> parts;
    for (int64_t k = 0; k < K + flush; ++k) {
      const Tensor hop = k < K ? x.slice(1, k * H, (k + 1) * H).contiguous() : torch::zeros({B, H});
      parts.push_back(syn->step(ana->step(hop, sa), ss));
    }
    const Tensor y = torch::cat(parts, 1);
    EXPECT_LE(max_abs(y.slice(1, 0, M)), 1e-6) << "pre-roll";
    const Tensor body = y.slice(1, M, M + K * H);
    // 1e-5, plus the float32 rounding divided by the smallest window value (Vorbis at hop N: w[0] = 4e-3).
    const Tensor e = output_envelope(StftOptions(o).framing(StftFraming::causal), K * H);
    const double tol = 1e-5 + 2e-7 * max_abs(x) / std::sqrt(e.min().item<double>());
    EXPECT_LE(max_abs(body - x), tol);
    EXPECT_LE(max_abs(body.select(1, 0) - x.select(1, 0)), tol) << "first sample";
    EXPECT_LE(max_abs(body.select(1, K * H - 1) - x.select(1, K * H - 1)), tol) << "last sample";
  }
}

TEST(StftStreaming, StateCopyIsDeep) {
  torch::manual_seed(13);
  const StftOptions o = StftOptions::deepfilternet();
  const int64_t H = o.hop();
  sepmech::StreamingStft ana(o);
  sepmech::StreamingIstft syn(o);
  auto sa = ana->init_state(2);
  auto ss = syn->init_state(2);
  for (int k = 0; k < 3; ++k) syn->step(ana->step(torch::randn({2, H}), sa), ss);
  // Copy construction and copy assignment both branch the stream.
  sepmech::StreamingStftState ca(sa);
  sepmech::StreamingStftState cb = ana->init_state(2);
  cb = sa;
  sepmech::StreamingIstftState cs(ss);
  EXPECT_NE(ca.memory.data_ptr(), sa.memory.data_ptr());
  EXPECT_NE(cb.memory.data_ptr(), sa.memory.data_ptr());
  EXPECT_NE(cs.overlap.data_ptr(), ss.overlap.data_ptr());
  EXPECT_EQ(ca.frames, 3);
  const Tensor x = torch::randn({2, H});
  const Tensor f1 = ana->step(x, sa);
  const Tensor f2 = ana->step(x, ca);
  const Tensor f3 = ana->step(x, cb);
  EXPECT_TRUE(f1.equal(f2));
  EXPECT_TRUE(f1.equal(f3));
  EXPECT_TRUE(syn->step(f1, ss).equal(syn->step(f1, cs)));
  // Stepping one leaves the other alone.
  const Tensor mem = ca.memory.clone(), ov = cs.overlap.clone();
  ana->step(torch::randn({2, H}), sa);
  syn->step(f1, ss);
  EXPECT_TRUE(ca.memory.equal(mem));
  EXPECT_TRUE(cs.overlap.equal(ov));
  EXPECT_EQ(ca.frames, 4);
  // clone() is the same deep copy.
  auto cl = sa.clone();
  EXPECT_NE(cl.memory.data_ptr(), sa.memory.data_ptr());
  EXPECT_TRUE(cl.memory.equal(sa.memory));
  // Moving is cheap: the buffer moves with it.
  const void* p = cl.memory.data_ptr();
  sepmech::StreamingStftState moved(std::move(cl));
  EXPECT_EQ(moved.memory.data_ptr(), p);
}

TEST(StftStreaming, ResetRestoresTheInitialState) {
  torch::manual_seed(14);
  const StftOptions o = StftOptions::sgmse();
  const int64_t H = o.hop();
  sepmech::StreamingStft ana(o);
  sepmech::StreamingIstft syn(o);
  auto sa = ana->init_state(2);
  auto ss = syn->init_state(2);
  const void* pa = sa.memory.data_ptr();
  const void* ps = ss.overlap.data_ptr();
  for (int k = 0; k < 5; ++k) syn->step(ana->step(torch::randn({2, H}), sa), ss);
  sa.reset();
  ss.reset();
  EXPECT_EQ(sa.frames, 0);
  EXPECT_EQ(ss.frames, 0);
  EXPECT_EQ(sa.memory.data_ptr(), pa);  // buffers kept
  EXPECT_EQ(ss.overlap.data_ptr(), ps);
  EXPECT_TRUE(sa.memory.equal(ana->init_state(2).memory));
  EXPECT_TRUE(ss.overlap.equal(syn->init_state(2).overlap));
  auto fa = ana->init_state(2);
  auto fs = syn->init_state(2);
  const Tensor x = torch::randn({2, H});
  const Tensor X = ana->step(x, sa);
  EXPECT_TRUE(X.equal(ana->step(x, fa)));
  EXPECT_TRUE(syn->step(X, ss).equal(syn->step(X, fs)));
}

TEST(StftStreaming, BatchedStreamsAreIndependent) {
  torch::manual_seed(15);
  for (const StftOptions& o : {StftOptions::deepfilternet(), StftOptions::sgmse()}) {
    const int64_t H = o.hop(), B = 3, K = 5;
    const Tensor x = torch::randn({B, K * H});
    sepmech::StreamingStft ana(o);
    sepmech::StreamingIstft syn(o);
    auto sa = ana->init_state(B);
    auto ss = syn->init_state(B);
    std::vector<sepmech::StreamingStftState> sa1;
    std::vector<sepmech::StreamingIstftState> ss1;
    for (int64_t b = 0; b < B; ++b) {
      sa1.push_back(ana->init_state(1));
      ss1.push_back(syn->init_state(1));
    }
    for (int64_t k = 0; k < K; ++k) {
      const Tensor hop = x.slice(1, k * H, (k + 1) * H).contiguous();
      const Tensor X = ana->step(hop, sa);
      const Tensor y = syn->step(X, ss);
      for (int64_t b = 0; b < B; ++b) {
        const Tensor Xb = ana->step(hop.slice(0, b, b + 1).contiguous(), sa1[b]);
        EXPECT_TRUE(Xb.equal(X.slice(0, b, b + 1))) << b << " " << k;
        EXPECT_TRUE(syn->step(Xb, ss1[b]).equal(y.slice(0, b, b + 1))) << b << " " << k;
      }
    }
  }
}

TEST(StftStreaming, StepIntoAllocatesNothing) {
  torch::manual_seed(16);
  const StftOptions o = StftOptions::deepfilternet();
  sepmech::StreamingStft ana(o);
  sepmech::StreamingIstft syn(o);
  auto sa = ana->init_state(2);
  auto ss = syn->init_state(2);
  const Tensor x = torch::randn({2, o.hop()});
  Tensor spec = torch::empty({2, o.freq_bins()}, torch::kComplexFloat);
  Tensor y = torch::empty({2, o.hop()});
  ana->step_into(x, sa, spec);  // warm up
  syn->step_into(spec, ss, y);
  g_allocs = 0;
  g_count_allocs = true;
  for (int k = 0; k < 4; ++k) {
    ana->step_into(x, sa, spec);
    syn->step_into(spec, ss, y);
  }
  g_count_allocs = false;
  EXPECT_EQ(g_allocs.load(), 0);
  g_count_allocs = true;  // the counter does count
  auto t = torch::empty({1});
  g_count_allocs = false;
  EXPECT_GT(g_allocs.load(), 0);
}

TEST(StftStreaming, ModulesResetCloneAndPrint) {
  torch::manual_seed(17);
  const StftOptions o = StftOptions::deepfilternet();
  sepmech::StreamingStft ana(o);
  sepmech::StreamingIstft syn(o);
  EXPECT_TRUE(ana->window.equal(sepmech::make_window(WindowKind::vorbis, 960)));
  EXPECT_TRUE(syn->window.equal(sepmech::make_window(WindowKind::vorbis, 960)));
  // reset() re-derives the tables from options (e.g. after changing them).
  ana->options.window(WindowKind::sqrt_hann);
  ASSERT_NO_THROW(ana->reset());
  EXPECT_TRUE(ana->window.equal(sepmech::make_window(WindowKind::sqrt_hann, 960)));
  ASSERT_NO_THROW(syn->reset());
  ana->options.window(WindowKind::vorbis);
  ana->reset();
  auto copy = std::dynamic_pointer_cast<sepmech::StreamingStftImpl>(ana->clone());
  ASSERT_TRUE(copy);
  const Tensor x = torch::randn({1, 480});
  auto s1 = ana->init_state(1);
  auto s2 = copy->init_state(1);
  EXPECT_TRUE(ana->step(x, s1).equal(copy->step(x, s2)));
  std::ostringstream text;
  text << *ana;
  EXPECT_NE(text.str().find("delay=480"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("vorbis"), std::string::npos) << text.str();
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

TEST(StftBadInput, Options) {
  expect_error([] { StftOptions().n_fft(0).Validate(); }, {"n_fft must be > 0", "got 0"});
  expect_error([] { StftOptions().n_fft(64).hop(0).Validate(); }, {"hop must be in [1, n_fft = 64]", "got 0"});
  expect_error([] { StftOptions().n_fft(64).hop(65).Validate(); }, {"hop must be", "got 65"});
  expect_error([] { StftOptions().n_fft(64).hop(32).norm(StftNorm::libdf).Validate(); },
               {"norm libdf needs sum_k w^2 == n_fft / (2 hop)", "window=hann"});
  expect_error([] { StftOptions().n_fft(64).hop(64).framing(StftFraming::causal).Validate(); }, {"NOLA"});
  expect_error([] { StftOptions().n_fft(64).hop(40).Validate(); },
               {"hop must be <= n_fft / 2 + 1 = 33 for framing center_reflect", "got 40", "causal"});
  // The streaming pair frames causally whatever the options say, so it accepts that hop.
  EXPECT_NO_THROW(sepmech::StreamingStft(StftOptions().n_fft(64).hop(40)));
  expect_error([] { sepmech::StreamingStft(StftOptions().hop(0)); }, {"hop must be"});
  expect_error([] { sepmech::StreamingIstft(StftOptions().n_fft(-3)); }, {"n_fft must be > 0"});
  expect_error([] { sepmech::stft(torch::zeros({1000}), StftOptions().hop(600)); }, {"hop must be"});
  expect_error([] { sepmech::make_window(WindowKind::hann, 0); }, {"make_window: n must be > 0", "got 0"});
  expect_error([] { sepmech::make_window(WindowKind::hann, 8, torch::kInt32); }, {"dtype must be a floating type"});
}

TEST(StftBadInput, Names) {
  for (WindowKind w : kWindows) EXPECT_EQ(sepmech::window_kind_from_string(to_string(w)), w);
  for (StftFraming f : kFramings) EXPECT_EQ(sepmech::stft_framing_from_string(to_string(f)), f);
  for (StftNorm n : kNorms) EXPECT_EQ(sepmech::stft_norm_from_string(to_string(n)), n);
  expect_error([] { sepmech::window_kind_from_string("hamming"); }, {"hann, sqrt_hann, vorbis", "'hamming'"});
  expect_error([] { sepmech::stft_framing_from_string("centre"); }, {"center_reflect, center_zero, causal", "'centre'"});
  expect_error([] { sepmech::stft_norm_from_string("unit"); }, {"none, ortho, libdf", "'unit'"});
}

TEST(StftBadInput, Offline) {
  const StftOptions o = StftOptions().n_fft(64).hop(16);
  expect_error([&] { sepmech::stft(torch::zeros({1, 2, 100}), o); }, {"stft: x must be [C, n] or [n]", "got [1, 2, 100]"});
  expect_error([&] { sepmech::stft(Tensor(), o); }, {"stft: x must be", "undefined"});
  expect_error([&] { sepmech::stft(torch::zeros({100}, torch::kInt32), o); }, {"x must be float32 or float64", "Int"});
  expect_error([&] { sepmech::stft(torch::zeros({100}, torch::kComplexFloat), o); }, {"x must be float32 or float64"});
  expect_error([&] { sepmech::stft(torch::zeros({2, 0}), StftOptions(o).framing(StftFraming::causal)); },
               {"x must have at least 1 sample", "got 0"});
  expect_error([&] { sepmech::stft(torch::zeros({32}), o); }, {"more than n_fft / 2 = 32", "got 32"});
  expect_error([&] { sepmech::stft(torch::zeros({100}), o, torch::ones({63})); }, {"window must be [n_fft] = [64]", "[63]"});
  expect_error([&] { sepmech::stft(torch::zeros({100}), o, torch::ones({64}, torch::kInt64)); },
               {"window must be a floating tensor", "Long"});
  const Tensor X = sepmech::stft(torch::randn({2, 100}), o);  // [2, 33, 7]
  expect_error([&] { sepmech::istft(X.abs(), 100, o); }, {"istft: spec must be complex", "Float"});
  expect_error([&] { sepmech::istft(X.unsqueeze(0), 100, o); }, {"spec must be [C, F, T] or [F, T]", "[1, 2, 33, 7]"});
  expect_error([&] { sepmech::istft(X.slice(1, 0, 32), 100, o); }, {"spec bins must be n_fft / 2 + 1 = 33", "got 32"});
  expect_error([&] { sepmech::istft(X.slice(2, 0, 0), 0, o); }, {"spec must have at least 1 frame"});
  // 7 frames centred cover (7 - 1) * 16 + 64 - 32 = 128 samples.
  expect_error([&] { sepmech::istft(X, 129, o); }, {"length must be in [0, 128] for 7 frames", "got 129"});
  expect_error([&] { sepmech::istft(X, -1, o); }, {"length must be in", "got -1"});
  expect_error([&] { sepmech::istft(X, 100, o, torch::ones({65})); }, {"istft: window must be [n_fft] = [64]"});
  EXPECT_EQ(sepmech::istft(X, 128, o).size(1), 128);
  EXPECT_EQ(sepmech::istft(X, 0, o).size(1), 0);
}

TEST(StftBadInput, StreamingAnalysis) {
  const StftOptions o = StftOptions().n_fft(64).hop(16);
  sepmech::StreamingStft ana(o);
  auto st = ana->init_state(2);
  ana->step(torch::randn({2, 16}), st);
  const sepmech::StreamingStftState before = st;
  Tensor out = torch::empty({2, 33}, torch::kComplexFloat);
  expect_error([&] { ana->init_state(0); }, {"batch must be > 0", "got 0"});
  expect_error([&] { ana->step(torch::zeros({16}), st); }, {"x must be [B, hop]", "[16]"});
  expect_error([&] { ana->step(torch::zeros({2, 17}), st); }, {"x must be [B, hop = 16]", "[2, 17]"});
  expect_error([&] { ana->step(torch::zeros({2, 16}, torch::kFloat64), st); }, {"x must be float32", "Double"});
  expect_error([&] { ana->step(torch::zeros({3, 16}), st); }, {"state batch must equal x batch = 3", "got 2"});
  expect_error([&] {
    sepmech::StreamingStftState empty;
    ana->step(torch::zeros({2, 16}), empty);
  }, {"state must come from init_state()"});
  expect_error([&] {
    auto other = sepmech::StreamingStft(StftOptions().n_fft(64).hop(32))->init_state(2);
    ana->step(torch::zeros({2, 16}), other);
  }, {"state must come from init_state()", "[B, 48]"});
  expect_error([&] { ana->step_into(torch::zeros({2, 32}).slice(1, 0, 16), st, out); }, {"x must be a contiguous CPU tensor"});
  Tensor bad = torch::empty({2, 32}, torch::kComplexFloat);
  expect_error([&] { ana->step_into(torch::zeros({2, 16}), st, bad); }, {"out must be contiguous complex64 [2, 33]", "[2, 32]"});
  Tensor real = torch::empty({2, 33});
  expect_error([&] { ana->step_into(torch::zeros({2, 16}), st, real); }, {"out must be contiguous complex64", "Float"});
  // A step that throws leaves the state as it was.
  EXPECT_TRUE(st.memory.equal(before.memory));
  EXPECT_EQ(st.frames, before.frames);
}

TEST(StftBadInput, StreamingSynthesis) {
  const StftOptions o = StftOptions().n_fft(64).hop(16);
  sepmech::StreamingIstft syn(o);
  auto st = syn->init_state(2);
  syn->step(torch::randn({2, 33}, torch::kComplexFloat), st);
  const sepmech::StreamingIstftState before = st;
  Tensor out = torch::empty({2, 16});
  expect_error([&] { syn->init_state(-1); }, {"batch must be > 0", "got -1"});
  expect_error([&] { syn->step(torch::zeros({33}, torch::kComplexFloat), st); }, {"frame must be [B, F]", "[33]"});
  expect_error([&] { syn->step(torch::zeros({2, 32}, torch::kComplexFloat), st); },
               {"frame must be [B, F = n_fft / 2 + 1 = 33]", "[2, 32]"});
  expect_error([&] { syn->step(torch::zeros({2, 33}), st); }, {"frame must be complex64", "Float"});
  expect_error([&] { syn->step(torch::zeros({2, 33}, torch::kComplexDouble), st); }, {"frame must be complex64", "ComplexDouble"});
  expect_error([&] { syn->step(torch::zeros({1, 33}, torch::kComplexFloat), st); }, {"state batch must equal frame batch = 1", "got 2"});
  expect_error([&] {
    sepmech::StreamingIstftState empty;
    syn->step(torch::zeros({2, 33}, torch::kComplexFloat), empty);
  }, {"state must come from init_state()"});
  Tensor bad = torch::empty({2, 17});
  expect_error([&] { syn->step_into(torch::zeros({2, 33}, torch::kComplexFloat), st, bad); },
               {"out must be contiguous float32 [2, 16]", "[2, 17]"});
  EXPECT_TRUE(st.overlap.equal(before.overlap));
  EXPECT_EQ(st.frames, before.frames);
}

}  // namespace
