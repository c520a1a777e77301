// Resampling accuracy (a 1 kHz tone through 48k -> 16k -> 48k) and stream == offline.
#include <gtest/gtest.h>

#include <cmath>

#include "sepmech/audio/resample.h"

namespace {

using namespace sepmech::audio;

torch::Tensor tone(double f, int rate, int64_t n, double amp = 0.5) {
  auto t = torch::arange(n, torch::kFloat64) / rate;
  return (amp * torch::sin(2 * M_PI * f * t)).to(torch::kFloat32).unsqueeze(0);
}

// Amplitude and phase of frequency f in x (least squares on sin/cos), centre part only.
std::pair<double, double> fit(const torch::Tensor& x, double f, int rate) {
  const int64_t n = x.size(-1), a = n / 4, b = 3 * n / 4;
  auto t = torch::arange(a, b, torch::kFloat64) / rate;
  auto s = torch::sin(2 * M_PI * f * t), c = torch::cos(2 * M_PI * f * t);
  auto y = x.reshape({-1}).slice(0, a, b).to(torch::kFloat64);
  const double ps = 2 * (y * s).mean().item<double>(), pc = 2 * (y * c).mean().item<double>();
  const double resid = (y - ps * s - pc * c).pow(2).mean().sqrt().item<double>();
  return {std::hypot(ps, pc), resid};
}

TEST(Resample, ToneKeepsFrequencyAndLevel) {
  auto x = tone(1000.0, 48000, 48000);
  auto y = resample(x, 48000, 16000);
  ASSERT_EQ(y.sizes(), (torch::IntArrayRef{1, 16000}));
  auto [amp16, res16] = fit(y, 1000.0, 16000);
  EXPECT_NEAR(amp16, 0.5, 1e-3);
  EXPECT_LT(res16, 1e-3);  // nothing but a 1 kHz tone, time aligned
  auto z = resample(y, 16000, 48000);
  ASSERT_EQ(z.sizes(), x.sizes());
  auto [amp48, res48] = fit(z, 1000.0, 48000);
  EXPECT_NEAR(amp48, 0.5, 1e-3);
  EXPECT_LT(res48, 1e-3);
  EXPECT_LT((z - x).slice(1, 4800, 43200).abs().max().item<double>(), 5e-3);
}

TEST(Resample, ChunkedEqualsWhole) {
  torch::manual_seed(0);
  auto x = torch::randn({2, 12345}) * 0.1;
  for (auto q : {ResampleQuality::best, ResampleQuality::fastest, ResampleQuality::linear}) {
    auto whole = resample(x, 44100, 16000, q);
    Resampler r(44100, 16000, 2, q);
    ResamplerState st = r.init_state();
    std::vector<torch::Tensor> parts;
    for (int64_t s = 0; s < x.size(1); s += 1000) parts.push_back(r.step(x.slice(1, s, std::min<int64_t>(s + 1000, x.size(1))), st));
    parts.push_back(r.flush(st));
    auto streamed = torch::cat(parts, 1);
    ASSERT_EQ(streamed.sizes(), whole.sizes()) << to_string(q);
    EXPECT_TRUE(torch::allclose(streamed, whole, 0, 1e-6)) << to_string(q);
  }
}

TEST(Resample, QualityNamesAndBadInput) {
  for (auto q : {ResampleQuality::best, ResampleQuality::medium, ResampleQuality::fastest,
                 ResampleQuality::zero_order_hold, ResampleQuality::linear})
    EXPECT_EQ(resample_quality_from_string(to_string(q)), q);
  EXPECT_THROW(resample_quality_from_string("great"), c10::Error);
  EXPECT_THROW(resample(torch::zeros({10}), 8000, 16000), c10::Error);
  EXPECT_THROW(resample(torch::zeros({1, 10}), 0, 16000), c10::Error);
}

// One channel: the result must own its memory (it once was a view of a freed buffer, so a later
// call overwrote an earlier result and two equal calls could differ).
TEST(Resample, MonoResultOwnsItsMemory) {
  torch::manual_seed(3);
  auto a = torch::randn({1, 30000}) * 0.1, b = torch::randn({1, 30000}) * 0.1;
  auto ra = resample(a, 16000, 48000);
  auto rb = resample(b, 16000, 48000);
  auto both = resample(torch::cat({a, b}, 0), 16000, 48000);  // two channels: the copying path
  ASSERT_EQ(ra.sizes(), torch::IntArrayRef({1, 90000}));
  EXPECT_TRUE(torch::allclose(ra[0], both[0], 0, 1e-6));
  EXPECT_TRUE(torch::allclose(rb[0], both[1], 0, 1e-6));
  Resampler r(16000, 48000, 1);
  ResamplerState st = r.init_state();
  auto part = r.step(a, st);
  auto tail = r.flush(st);
  auto again = resample(b, 16000, 48000);  // allocates and frees buffers of the same size
  EXPECT_TRUE(torch::allclose(torch::cat({part, tail}, 1), ra, 0, 1e-6));
  EXPECT_TRUE(again.equal(rb));
}

}  // namespace
