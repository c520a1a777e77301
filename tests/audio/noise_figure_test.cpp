// Generated noise (spectral slopes, reproducibility), mixing at an exact SNR, and the cairo
// figures (size, content, errors).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <torch/torch.h>

#include "sepmech/audio/metrics.h"
#include "sepmech/audio/noise.h"
#include "sepmech/plot/figure.h"

namespace {

using namespace sepmech;
namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("sepmech_fig_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Welch PSD (Hann, 4096-sample segments, 50 % overlap), averaged in octave bands centred on
// 62.5 Hz ... 4 kHz; returns the least-squares slope of band level (dB) against octave number.
double octave_slope_db(const torch::Tensor& x, int fs) {
  const int64_t seg = 4096;
  torch::Tensor frames = x.to(torch::kFloat64).unfold(0, seg, seg / 2);
  torch::Tensor w = torch::hann_window(seg, torch::TensorOptions().dtype(torch::kFloat64));
  torch::Tensor psd = torch::fft::rfft(frames * w, seg, -1).abs().square().mean(0);  // [seg/2+1]
  std::vector<double> oct, level;
  for (int k = 0; k <= 6; ++k) {
    const double fc = 62.5 * std::pow(2.0, k);
    const auto lo = static_cast<int64_t>(std::ceil(fc / std::sqrt(2.0) * seg / fs));
    const auto hi = static_cast<int64_t>(std::floor(fc * std::sqrt(2.0) * seg / fs));
    level.push_back(10.0 * std::log10(psd.slice(0, lo, hi + 1).mean().item<double>()));
    oct.push_back(k);
  }
  double mx = 0, my = 0;
  for (size_t i = 0; i < oct.size(); ++i) mx += oct[i], my += level[i];
  mx /= oct.size();
  my /= oct.size();
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < oct.size(); ++i) sxy += (oct[i] - mx) * (level[i] - my), sxx += (oct[i] - mx) * (oct[i] - mx);
  return sxy / sxx;
}

struct IhdrSize {
  uint32_t width = 0, height = 0;
};

// Width and height from the PNG's IHDR chunk (bytes 16..23, big-endian), after checking the signature.
IhdrSize png_size(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  unsigned char b[24] = {};
  f.read(reinterpret_cast<char*>(b), 24);
  EXPECT_EQ(f.gcount(), 24) << p;
  const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  EXPECT_EQ(std::memcmp(b, sig, 8), 0) << p << " is not a PNG";
  EXPECT_EQ(std::memcmp(b + 12, "IHDR", 4), 0) << p;
  auto be = [&](int o) { return (uint32_t{b[o]} << 24) | (uint32_t{b[o + 1]} << 16) | (uint32_t{b[o + 2]} << 8) | b[o + 3]; };
  return {be(16), be(20)};
}

size_t distinct_colours(const plot::Image& im) {
  std::set<uint32_t> s(im.pixels.begin(), im.pixels.end());
  return s.size();
}

int channel_distance(uint32_t a, uint32_t b) {
  int d = 0;
  for (int sh : {0, 8, 16}) d = std::max(d, std::abs(static_cast<int>((a >> sh) & 255) - static_cast<int>((b >> sh) & 255)));
  return d;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Noise
// ---------------------------------------------------------------------------------------------

TEST(Noise, SpectralSlopesPerOctave) {
  const int fs = 16000;
  const int64_t n = fs * 30;
  const double white = octave_slope_db(audio::make_noise(audio::NoiseKind::white, n, audio::NoiseOptions().sample_rate(fs).seed(1)), fs);
  const double pink = octave_slope_db(audio::make_noise(audio::NoiseKind::pink, n, audio::NoiseOptions().sample_rate(fs).seed(2)), fs);
  const double brown = octave_slope_db(audio::make_noise(audio::NoiseKind::brown, n, audio::NoiseOptions().sample_rate(fs).seed(3)), fs);
  std::printf("slopes dB/octave: white %.3f, pink %.3f, brown %.3f\n", white, pink, brown);
  EXPECT_NEAR(white, 0.0, 1.0);
  EXPECT_NEAR(pink, -10 * std::log10(2.0), 1.0);
  EXPECT_NEAR(brown, -20 * std::log10(2.0), 1.0);
}

TEST(Noise, SeededReproducibleAndRms) {
  for (auto kind : {audio::NoiseKind::white, audio::NoiseKind::pink, audio::NoiseKind::brown, audio::NoiseKind::hum,
                    audio::NoiseKind::babble}) {
    SCOPED_TRACE(audio::to_string(kind));
    auto o = audio::NoiseOptions().sample_rate(16000).seed(42);
    torch::Tensor a = audio::make_noise(kind, 20000, o), b = audio::make_noise(kind, 20000, o);
    torch::Tensor c = audio::make_noise(kind, 20000, audio::NoiseOptions().sample_rate(16000).seed(43));
    ASSERT_EQ(a.sizes(), torch::IntArrayRef({20000}));
    EXPECT_EQ(a.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(a.equal(b));
    EXPECT_FALSE(a.equal(c));
    EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
    EXPECT_NEAR(std::sqrt(audio::mean_power(a)), 0.1, 1e-4);
  }
  // A fixed generator: the first white samples do not depend on the platform's <random>.
  torch::Tensor w = audio::make_noise(audio::NoiseKind::white, 4, audio::NoiseOptions().seed(0));
  torch::Tensor w2 = audio::make_noise(audio::NoiseKind::white, 8, audio::NoiseOptions().seed(0));
  EXPECT_GT(w.abs().sum().item<double>(), 0.0);
  // Same sequence, different RMS normalisation: proportional.
  torch::Tensor r = w2.narrow(0, 0, 4) / w;
  EXPECT_LT((r - r[0]).abs().max().item<double>(), 1e-4);
}

TEST(Noise, HumHasItsHarmonicsOnly) {
  const int fs = 16000;
  torch::Tensor h = audio::make_noise(audio::NoiseKind::hum, fs, audio::NoiseOptions().sample_rate(fs).hum_harmonics(3));
  torch::Tensor mag = torch::fft::rfft(h.to(torch::kFloat64)).abs();  // 1 s: bin k = k Hz
  const double total = mag.square().sum().item<double>();
  const double at = (mag[50].square() + mag[100].square() + mag[150].square()).item<double>();
  EXPECT_GT(at / total, 0.999);
  EXPECT_GT(mag[50].item<double>(), mag[100].item<double>());
}

TEST(Noise, BadOptionsAndKinds) {
  EXPECT_THROW(audio::noise_kind_from_string("purple"), c10::Error);
  EXPECT_THROW(plot::colormap_from_string("jet"), c10::Error);
  EXPECT_FALSE(audio::is_noise_kind("noise.wav"));
  EXPECT_THROW(audio::make_noise(audio::NoiseKind::white, 0), std::invalid_argument);
  EXPECT_THROW(audio::make_noise(audio::NoiseKind::white, 10, audio::NoiseOptions().sample_rate(0)), std::invalid_argument);
  EXPECT_THROW(audio::make_noise(audio::NoiseKind::hum, 10, audio::NoiseOptions().sample_rate(80)), std::invalid_argument);
  try {
    audio::make_noise(audio::NoiseKind::babble, 100, audio::NoiseOptions().speech_dir("/nonexistent_sepmech"));
    FAIL() << "no throw";
  } catch (const audio::AudioError& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install alsa-utils"), std::string::npos) << e.what();
  }
}

TEST(Noise, MixAtSnrIsExactAndLoopsNoise) {
  audio::Audio speech = audio::builtin_speech();
  EXPECT_EQ(speech.sample_rate, 48000);
  torch::Tensor clean = speech.samples[0];
  torch::Tensor shortn = audio::make_noise(audio::NoiseKind::pink, 10000, audio::NoiseOptions().sample_rate(48000));
  for (double snr : {-10.0, 0.0, 5.0, 30.0}) {
    audio::Mixture m = audio::mix_at_snr(clean, shortn, snr);
    ASSERT_EQ(m.noisy.size(0), clean.size(0));
    EXPECT_NEAR(audio::snr(m.clean, m.clean + m.noise), snr, 1e-4) << snr;
    EXPECT_NEAR(audio::snr(m.clean, m.noisy), snr, 1e-3) << snr;
    EXPECT_LE(m.noisy.abs().max().item<double>(), 0.99 + 1e-6);
  }
  torch::Tensor looped = audio::fit_length(torch::arange(3, torch::kFloat32), 7);
  EXPECT_TRUE(looped.equal(torch::tensor({0.f, 1.f, 2.f, 0.f, 1.f, 2.f, 0.f})));
  EXPECT_THROW(audio::mix_at_snr(torch::zeros({100}), shortn, 0.0), std::invalid_argument);
  EXPECT_THROW(audio::mix_at_snr(clean, torch::zeros({100}), 0.0), std::invalid_argument);
  EXPECT_THROW(audio::mix_at_snr(clean, shortn, std::nan("")), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

TEST(Figure, SpectrogramPngSizeAndContent) {
  fs::path d = temp_dir("spec");
  audio::Audio speech = audio::builtin_speech();
  torch::Tensor clean = speech.samples[0];
  audio::Mixture m = audio::mix_at_snr(clean, audio::make_noise(audio::NoiseKind::white, clean.size(0),
                                                                audio::NoiseOptions().sample_rate(48000)), 0.0);
  std::vector<plot::SpectrogramPanel> panels{plot::spectrogram_panel(m.noisy, 48000, "noisy"),
                                             plot::spectrogram_panel(m.clean, 48000, "clean")};
  EXPECT_EQ(panels[0].db.size(0), 1536 / 2 + 1);
  plot::SpectrogramFigureOptions o;
  o.width = 640;
  o.panel_height = 150;
  o.title = "test";
  const fs::path png = d / "s.png";
  plot::write_spectrogram_png(png.string(), panels, o);
  IhdrSize sz = png_size(png);
  EXPECT_EQ(sz.width, 640u);
  EXPECT_EQ(sz.height, 36u + 30u + 2u * (150u + 46u));
  plot::Image im = plot::read_png(png.string());
  EXPECT_EQ(im.width, 640);
  EXPECT_GT(distinct_colours(im), 100u);
  // The colour bar (16 px wide, 16 px right of the image) runs from magma's top to its bottom.
  const int cb_x = 640 - 96 + 16 + 8, cb_top = 6 + 30 + 24, cb_bottom = cb_top + 2 * 150 + 46;
  EXPECT_LE(channel_distance(im.at(cb_x, cb_top + 1), plot::colormap_rgb(plot::Colormap::magma, 1.0)), 8);
  EXPECT_LE(channel_distance(im.at(cb_x, cb_bottom - 2), plot::colormap_rgb(plot::Colormap::magma, 0.0)), 8);
  // Loud speech + white noise fills the noisy image with bright colours, not the floor colour.
  const uint32_t centre = im.at(62 + 200, 6 + 30 + 24 + 75) & 0xffffff;
  EXPECT_GT(channel_distance(centre, plot::colormap_rgb(plot::Colormap::magma, 0.0)), 40);
  fs::remove_all(d);
}

TEST(Figure, ColormapEnds) {
  EXPECT_EQ(plot::colormap_rgb(plot::Colormap::viridis, 0.0), 0x440154u);
  EXPECT_EQ(plot::colormap_rgb(plot::Colormap::viridis, 1.0), 0xfde725u);
  EXPECT_EQ(plot::colormap_rgb(plot::Colormap::magma, 0.0), 0x000004u);
  EXPECT_EQ(plot::colormap_rgb(plot::Colormap::magma, 1.0), 0xfcfdbfu);
  EXPECT_EQ(plot::colormap_rgb(plot::Colormap::magma, std::nan("")), 0x000004u);
}

TEST(Figure, NiceTicks) {
  EXPECT_EQ(plot::nice_ticks(0, 1.43, 6), (std::vector<double>{0, 0.25, 0.5, 0.75, 1.0, 1.25}));
  EXPECT_EQ(plot::nice_ticks(-80, 0, 4), (std::vector<double>{-80, -60, -40, -20, 0}));
  EXPECT_EQ(plot::nice_ticks(0, 24, 5), (std::vector<double>{0, 5, 10, 15, 20}));
  EXPECT_GE(plot::nice_ticks(-90, -10, 3).size(), 2u);  // 50 would leave one tick (-50)
}

TEST(Figure, LinePlotPngLogYAndLegend) {
  fs::path d = temp_dir("line");
  std::vector<double> x, y1, y2;
  for (int i = 0; i <= 50; ++i) {
    x.push_back(i);
    y1.push_back(std::exp(-0.1 * i));
    y2.push_back(0.5 * std::exp(-0.05 * i));
  }
  plot::LinePlotOptions o;
  o.width = 500;
  o.height = 300;
  o.title = "loss";
  o.x_label = "step";
  o.y_label = "value";
  o.log_y = true;
  const fs::path png = d / "l.png";
  plot::write_line_plot_png(png.string(), {{"fast", x, y1}, {"slow", x, y2}}, o);
  IhdrSize sz = png_size(png);
  EXPECT_EQ(sz.width, 500u);
  EXPECT_EQ(sz.height, 300u);
  plot::Image im = plot::read_png(png.string());
  EXPECT_GT(distinct_colours(im), 20u);
  // Both series' colours are drawn (tab10 blue and orange).
  int blue = 0, orange = 0;
  for (uint32_t p : im.pixels) {
    blue += channel_distance(p & 0xffffff, 0x1f77b4) <= 12;
    orange += channel_distance(p & 0xffffff, 0xff7f0e) <= 12;
  }
  EXPECT_GT(blue, 50);
  EXPECT_GT(orange, 50);
  fs::remove_all(d);
}

TEST(Figure, ErrorsNameTheFileOrArgument) {
  plot::SpectrogramPanel p{torch::zeros({10, 10}), 1.0, 8000.0, "p"};
  try {
    plot::write_spectrogram_png("/nonexistent_sepmech_dir/x.png", {p});
    FAIL() << "no throw";
  } catch (const plot::PlotError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent_sepmech_dir/x.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(plot::write_spectrogram_png("/tmp/x.png", {}), std::invalid_argument);
  plot::SpectrogramPanel nan = p;
  nan.db = torch::zeros({10, 10});
  nan.db[3][4] = std::nan("");
  try {
    plot::write_spectrogram_png("/tmp/x.png", {nan});
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("finite"), std::string::npos) << e.what();
  }
  plot::SpectrogramPanel zero_dur = p;
  zero_dur.duration = 0;
  EXPECT_THROW(plot::write_spectrogram_png("/tmp/x.png", {zero_dur}), std::invalid_argument);
  EXPECT_THROW(plot::write_line_plot_png("/tmp/x.png", {}), std::invalid_argument);
  EXPECT_THROW(plot::write_line_plot_png("/tmp/x.png", {{"a", {}, {}}}), std::invalid_argument);
  EXPECT_THROW(plot::write_line_plot_png("/tmp/x.png", {{"a", {1, 2}, {1}}}), std::invalid_argument);
  EXPECT_THROW(plot::write_line_plot_png("/tmp/x.png", {{"a", {1, 2}, {1, std::nan("")}}}), std::invalid_argument);
  plot::LinePlotOptions log;
  log.log_y = true;
  EXPECT_THROW(plot::write_line_plot_png("/tmp/x.png", {{"a", {1, 2}, {1, 0}}}, log), std::invalid_argument);
  plot::SpectrogramFigureOptions tiny;
  tiny.width = 10;
  EXPECT_THROW(tiny.Validate(), std::invalid_argument);
  EXPECT_THROW(plot::spectrogram_panel(torch::tensor({1.0f, std::nanf("")}), 16000, "x"), std::invalid_argument);
  EXPECT_THROW(plot::spectrogram_panel(torch::zeros({0}), 16000, "x"), std::invalid_argument);
  EXPECT_THROW(plot::read_png("/nonexistent_sepmech.png"), plot::PlotError);
  // A one-sample signal still makes a (one-frame) panel.
  EXPECT_EQ(plot::spectrogram_panel(torch::ones({1}), 16000, "x").db.size(1), 1);
}
