// STOI / ESTOI / SI-SDR / SNR: closed forms and bad input. Agreement with pystoi is the parity
// suite's job (tests/data/golden/metrics).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "sepmech/audio/metrics.h"

namespace {

using namespace sepmech::audio;

// Speech-like: a few amplitude-modulated harmonics with pauses, 2 s.
torch::Tensor speech_like(int64_t fs, int64_t seconds = 2) {
  const int64_t n = fs * seconds;
  auto t = torch::arange(n, torch::kFloat64) / static_cast<double>(fs);
  auto env = (torch::sin(2 * M_PI * 3.0 * t).clamp_min(0.0)).pow(2);
  auto s = torch::zeros_like(t);
  for (int h = 1; h <= 8; ++h) s = s + torch::sin(2 * M_PI * 140.0 * h * t + 0.3 * h) / h;
  return (env * s).to(torch::kFloat32);
}

TEST(Metrics, SiSdrMatchesClosedFormForOrthogonalNoise) {
  torch::manual_seed(1);
  auto x = torch::randn({4000}, torch::kFloat64);
  x = x - x.mean();
  auto n = torch::randn({4000}, torch::kFloat64);
  n = n - n.mean();
  n = n - (n * x).sum() / (x * x).sum() * x;  // orthogonal to x, zero mean
  const double g = 0.7, c = 0.25;
  auto y = g * x + c * n;
  const double want = 10 * std::log10((g * g * (x * x).sum().item<double>()) / (c * c * (n * n).sum().item<double>()));
  EXPECT_NEAR(si_sdr(x, y), want, 1e-9);
  // Scale invariance and DC removal.
  EXPECT_NEAR(si_sdr(x, 3.5 * y + 0.2), want, 1e-9);
  EXPECT_NEAR(si_sdr(x + 1.0, y), want, 1e-9);
}

TEST(Metrics, SnrMatchesClosedFormAndIsNotScaleInvariant) {
  torch::manual_seed(2);
  auto x = torch::randn({1000}, torch::kFloat64);
  auto d = 0.1 * torch::randn({1000}, torch::kFloat64);
  const double want = 10 * std::log10((x * x).sum().item<double>() / (d * d).sum().item<double>());
  EXPECT_NEAR(snr(x, x + d), want, 1e-9);
  // y = 0.5 x: noise = 0.5 x -> 10 log10(4) dB.
  EXPECT_NEAR(snr(x, 0.5 * x), 10 * std::log10(4.0), 1e-12);
}

TEST(Metrics, ExactCopyIsPlusInfinity) {
  auto x = speech_like(8000);
  EXPECT_EQ(si_sdr(x, x.clone()), std::numeric_limits<double>::infinity());
  EXPECT_EQ(snr(x, x.clone()), std::numeric_limits<double>::infinity());
}

TEST(Metrics, StoiOfIdenticalSignalsIsOne) {
  for (int64_t fs : {8000, 10000, 16000}) {
    auto x = speech_like(fs);
    EXPECT_NEAR(stoi(x, x, fs), 1.0, 1e-9) << fs;
    EXPECT_NEAR(estoi(x, x, fs), 1.0, 1e-9) << fs;
  }
}

TEST(Metrics, StoiDropsWithNoise) {
  torch::manual_seed(3);
  auto x = speech_like(16000);
  auto y = x + 0.5 * torch::randn_like(x) * x.std();
  const double s = stoi(x, y, 16000), e = estoi(x, y, 16000);
  EXPECT_LT(s, 0.99);
  EXPECT_GT(s, 0.0);
  EXPECT_LT(e, 0.99);
}

TEST(Metrics, TooShortReturnsFallback) {
  // 4096 samples at 10 kHz: 30 frames, all kept, 29 STFT frames < 30.
  torch::manual_seed(4);
  auto x = torch::randn({4096});
  EXPECT_EQ(stoi(x, x, 10000), 1e-5);
  EXPECT_EQ(estoi(x, x, 10000), 1e-5);
  // 4224 samples: 31 kept frames -> 30 STFT frames -> one segment.
  auto x2 = torch::randn({4224});
  EXPECT_NEAR(stoi(x2, x2, 10000), 1.0, 1e-9);
}

void expect_message(const std::function<void()>& f, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "no error; expected: " << text;
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(Metrics, BadInputMessages) {
  auto x = torch::randn({5000});
  expect_message([&] { stoi(x, torch::randn({4999}), 16000); },
                 "sepmech::stoi: estimate must have the length of clean (5000), got 4999");
  expect_message([&] { stoi(torch::zeros({0}), torch::zeros({0}), 16000); },
                 "sepmech::stoi: clean must be non-empty, got 0 samples");
  expect_message([&] { stoi(x.view({50, 100}), x.view({50, 100}), 16000); },
                 "sepmech::stoi: clean must be a 1-D tensor, got shape [50, 100]");
  expect_message([&] { stoi(x, x, 0); }, "sepmech::stoi: sample_rate must be > 0, got 0");
  auto bad = x.clone();
  bad[7] = std::numeric_limits<float>::quiet_NaN();
  expect_message([&] { estoi(x, bad, 16000); }, "sepmech::estoi: estimate must be finite, got nan at index 7");
  expect_message([&] { si_sdr(torch::arange(10), torch::arange(10)); },
                 "sepmech::si_sdr: clean must be a floating-point tensor");
  expect_message([&] { snr(x, torch::randn({3})); }, "sepmech::snr: estimate must have the length of clean");
}

TEST(Metrics, AnyFloatDtype) {
  auto x = speech_like(16000);
  auto y = x + 0.01 * torch::randn_like(x);
  EXPECT_NEAR(stoi(x.to(torch::kFloat64), y.to(torch::kFloat64), 16000), stoi(x, y, 16000), 1e-12);
  EXPECT_NEAR(si_sdr(x.to(torch::kFloat16), y.to(torch::kFloat16)), si_sdr(x, y), 1.0);
}

}  // namespace
