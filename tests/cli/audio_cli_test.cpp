// sepmech mix / metrics / spectrogram as a user runs them: on the built-in speech without
// arguments, on the user's files, and on bad files (one-line error, non-zero exit, never a crash).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "sepmech/audio/audio_file.h"
#include "sepmech/audio/metrics.h"
#include "sepmech/audio/noise.h"
#include "sepmech/audio/resample.h"
#include "sepmech/plot/figure.h"
#include "support/cli_run.h"

namespace {

namespace fs = std::filesystem;
using namespace sepmech;

using CliResult = sepmech_test::CliRun;
using sepmech_test::slurp;

// One thread, and a longer timeout than cli_test's: these commands process real audio.
CliResult cli(const std::string& args) { return sepmech_test::run_cli("--threads 1 " + args, 300); }

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// A failed command: non-zero exit code (not a signal, not a timeout), one line "sepmech: error: ..." with `what`.
#define EXPECT_ONE_LINE_ERROR(args, what)                                                          \
  do {                                                                                             \
    CliResult r_ = cli(args);                                                                            \
    EXPECT_GT(r_.code, 0) << (args) << ": " << r_.err;                                             \
    EXPECT_LT(r_.code, 124) << (args) << ": crashed or timed out: " << r_.err;                     \
    EXPECT_EQ(r_.err.rfind("sepmech: error: ", 0), 0u) << (args) << ": " << r_.err;               \
    EXPECT_EQ(count_lines(r_.err), 1) << (args) << ": " << r_.err;                                 \
    EXPECT_NE(r_.err.find(what), std::string::npos) << (args) << ": '" << (what) << "' not in " << r_.err; \
  } while (0)

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::istringstream is(out);
  std::string line;
  while (std::getline(is, line)) v.push_back(nlohmann::json::parse(line));  // throws on invalid JSON
  return v;
}

struct PngSize {
  uint32_t w = 0, h = 0;
};
PngSize png_size(const fs::path& p) {
  const std::string b = slurp(p);
  if (b.size() < 24 || b.compare(1, 3, "PNG") != 0 || b.compare(12, 4, "IHDR") != 0) return {};
  auto be = [&](int o) {
    return (uint32_t{static_cast<uint8_t>(b[o])} << 24) | (uint32_t{static_cast<uint8_t>(b[o + 1])} << 16) |
           (uint32_t{static_cast<uint8_t>(b[o + 2])} << 8) | static_cast<uint8_t>(b[o + 3]);
  };
  return {be(16), be(20)};
}

bool single_colour(const fs::path& p) {
  plot::Image im = plot::read_png(p.string());
  std::set<uint32_t> s(im.pixels.begin(), im.pixels.end());
  return s.size() <= 1;
}

class AudioCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sepmech_audio_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string p(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

torch::Tensor speech() { return audio::builtin_speech().samples; }

}  // namespace

TEST_F(AudioCli, MixOnBuiltInSpeechHitsTheSnr) {
  CliResult r = cli("mix --snr 5 --json -o " + p("out"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json_lines(r.out).at(0);
  std::printf("mix --snr 5: measured %.6f dB (float %.9f)\n", j["snr_measured"].get<double>(), j["snr_float"].get<double>());
  EXPECT_NEAR(j["snr_measured"].get<double>(), 5.0, 0.01);
  EXPECT_NEAR(j["snr_float"].get<double>(), 5.0, 1e-4);
  EXPECT_EQ(j["sample_rate"], 48000);
  // The written files themselves.
  audio::Audio c = audio::read_audio(p("out/clean.wav")), y = audio::read_audio(p("out/noisy.wav"));
  audio::Audio nz = audio::read_audio(p("out/noise.wav"));
  EXPECT_NEAR(audio::snr(c.samples[0], y.samples[0]), 5.0, 0.01);
  EXPECT_NEAR(10 * std::log10(audio::mean_power(c.samples) / audio::mean_power(nz.samples)), 5.0, 0.01);
  PngSize s = png_size(p("out/mix.png"));
  EXPECT_EQ(s.w, 900u);
  EXPECT_EQ(s.h, 36u + 30u + 3u * (180u + 46u));
  EXPECT_FALSE(single_colour(p("out/mix.png")));
  // The table form.
  CliResult t = cli("mix --snr 5 -o " + p("out2"));
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("measured SNR  5.00"), std::string::npos) << t.out;
}

TEST_F(AudioCli, MixEveryNoiseTypeAndSeeds) {
  for (const char* kind : {"white", "pink", "brown", "babble", "hum"}) {
    CliResult r = cli(std::string("mix --noise ") + kind + " --snr 0 --json -o " + p(kind));
    ASSERT_EQ(r.code, 0) << kind << ": " << r.err;
    EXPECT_NEAR(json_lines(r.out).at(0)["snr_measured"].get<double>(), 0.0, 0.01) << kind;
  }
  ASSERT_EQ(cli("mix --noise pink --seed 7 -o " + p("a")).code, 0);
  ASSERT_EQ(cli("mix --noise pink --seed 7 -o " + p("b")).code, 0);
  ASSERT_EQ(cli("mix --noise pink --seed 8 -o " + p("c")).code, 0);
  EXPECT_EQ(slurp(p("a/noise.wav")), slurp(p("b/noise.wav")));
  EXPECT_NE(slurp(p("a/noise.wav")), slurp(p("c/noise.wav")));
  // A noise file, shorter than the speech: looped (with a warning), at the right SNR.
  audio::write_audio(p("short_noise.wav"), {torch::randn({1, 8000}) * 0.1, 16000});
  CliResult f = cli("mix --noise " + p("short_noise.wav") + " --snr 10 --json -o " + p("file"));
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_NE(f.err.find("looped"), std::string::npos) << f.err;
  EXPECT_NEAR(json_lines(f.out).at(0)["snr_measured"].get<double>(), 10.0, 0.01);
  EXPECT_ONE_LINE_ERROR("mix --noise purple -o " + p("x"), "purple");
  EXPECT_ONE_LINE_ERROR("mix --snr nan -o " + p("x"), "--snr");
  EXPECT_ONE_LINE_ERROR("mix --snr 1000 -o " + p("x"), "--snr");
}

TEST_F(AudioCli, MetricsCleanAgainstItselfAndAgainstNoisy) {
  ASSERT_EQ(cli("mix --noise white --snr 0 -o " + p("m")).code, 0);
  CliResult same = cli("metrics --json " + p("m/clean.wav") + " " + p("m/clean.wav"));
  ASSERT_EQ(same.code, 0) << same.err;
  auto j = json_lines(same.out).at(0);
  EXPECT_TRUE(j["si_sdr"].is_null());  // +inf: identical
  EXPECT_NEAR(j["stoi"].get<double>(), 1.0, 1e-6);
  EXPECT_NEAR(j["estoi"].get<double>(), 1.0, 1e-6);
  CliResult table = cli("metrics " + p("m/clean.wav") + " " + p("m/clean.wav"));
  EXPECT_NE(table.out.find("inf"), std::string::npos) << table.out;

  CliResult noisy = cli("metrics --json " + p("m/clean.wav") + " " + p("m/noisy.wav"));
  ASSERT_EQ(noisy.code, 0) << noisy.err;
  auto k = json_lines(noisy.out).at(0);
  std::printf("metrics(clean, noisy at 0 dB white): SI-SDR %.3f, SNR %.3f, STOI %.3f, ESTOI %.3f\n",
              k["si_sdr"].get<double>(), k["snr"].get<double>(), k["stoi"].get<double>(), k["estoi"].get<double>());
  EXPECT_NEAR(k["si_sdr"].get<double>(), 0.0, 0.5);
  EXPECT_NEAR(k["snr"].get<double>(), 0.0, 0.01);
  EXPECT_LT(k["stoi"].get<double>(), 0.95);
  EXPECT_GT(k["stoi"].get<double>(), 0.3);

  // A slightly degraded copy: high but finite SI-SDR.
  torch::Tensor c = audio::read_audio(p("m/clean.wav")).samples;
  audio::write_audio(p("almost.wav"), {c + 1e-3 * torch::randn_like(c), 48000});
  auto a = json_lines(cli("metrics --json " + p("m/clean.wav") + " " + p("almost.wav")).out).at(0);
  EXPECT_GT(a["si_sdr"].get<double>(), 20.0);
  EXPECT_GT(a["stoi"].get<double>(), 0.99);

  // -o: the clean / estimate / residual figure.
  CliResult fig = cli("metrics " + p("m/clean.wav") + " " + p("m/noisy.wav") + " -o " + p("fig"));
  ASSERT_EQ(fig.code, 0) << fig.err;
  EXPECT_EQ(png_size(p("fig/metrics.png")).w, 900u);
  EXPECT_FALSE(single_colour(p("fig/metrics.png")));
}

TEST_F(AudioCli, MetricsResamplesAndCrops) {
  ASSERT_EQ(cli("mix --noise white --snr 10 -o " + p("m")).code, 0);
  torch::Tensor y = audio::read_audio(p("m/noisy.wav")).samples;
  audio::write_audio(p("noisy16k.wav"), {audio::resample(y, 48000, 16000), 16000});
  CliResult r = cli("metrics --json " + p("m/clean.wav") + " " + p("noisy16k.wav"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resampled"), std::string::npos) << r.err;
  // Resampling to 16 kHz removes the white noise above 8 kHz: SI-SDR rises above 10 dB.
  EXPECT_GT(json_lines(r.out).at(0)["si_sdr"].get<double>(), 10.0);
  audio::write_audio(p("cut.wav"), {y.narrow(1, 0, y.size(1) - 1000), 48000});
  CliResult c = cli("metrics --json " + p("m/clean.wav") + " " + p("cut.wav"));
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.err.find("cropped"), std::string::npos) << c.err;
  EXPECT_NEAR(json_lines(c.out).at(0)["snr"].get<double>(), 10.0, 0.3);
}

TEST_F(AudioCli, MetricsTwoFoldersJsonLinesAndMeans) {
  fs::create_directories(p("clean"));
  fs::create_directories(p("est"));
  torch::Tensor s = speech();
  std::vector<double> want;
  for (double snr : {0.0, 10.0, 20.0}) {
    const std::string name = "utt" + std::to_string(static_cast<int>(snr)) + ".wav";
    audio::Mixture m = audio::mix_at_snr(s[0], audio::make_noise(audio::NoiseKind::white, s.size(1),
                                                                 audio::NoiseOptions().sample_rate(48000).seed(1)), snr);
    audio::write_audio(p("clean/" + name), {m.clean.unsqueeze(0), 48000}, {audio::AudioFormat::wav, audio::SampleFormat::float32});
    audio::write_audio(p("est/" + name), {m.noisy.unsqueeze(0), 48000}, {audio::AudioFormat::wav, audio::SampleFormat::float32});
    want.push_back(snr);
  }
  audio::write_audio(p("clean/only_here.wav"), {s, 48000});
  CliResult r = cli("metrics --json " + p("clean") + " " + p("est"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  double sum_snr = 0, sum_stoi = 0;
  for (int i = 0; i < 3; ++i) {
    for (const char* key : {"file", "si_sdr", "snr", "stoi", "estoi"}) EXPECT_TRUE(lines[i].contains(key)) << key;
    sum_snr += lines[i]["snr"].get<double>();
    sum_stoi += lines[i]["stoi"].get<double>();
  }
  EXPECT_EQ(lines[0]["file"], "utt0.wav");
  EXPECT_NEAR(lines[1]["snr"].get<double>(), 10.0, 1e-3);
  EXPECT_EQ(lines[3]["summary"], "mean");
  EXPECT_EQ(lines[3]["files"], 3);
  EXPECT_NEAR(lines[3]["snr"].get<double>(), sum_snr / 3, 1e-9);
  EXPECT_NEAR(lines[3]["stoi"].get<double>(), sum_stoi / 3, 1e-9);
  EXPECT_NE(r.err.find("only one of the folders"), std::string::npos) << r.err;
  CliResult t = cli("metrics " + p("clean") + " " + p("est"));
  EXPECT_NE(t.out.find("mean (3)"), std::string::npos) << t.out;
  EXPECT_ONE_LINE_ERROR("metrics " + p("clean") + " " + p("clean/utt0.wav"), "two files or two folders");
}

TEST_F(AudioCli, MetricsDemoAndSpectrogramWithoutArguments) {
  fs::path old = fs::current_path();
  fs::current_path(dir_);  // both write into the current folder by default
  CliResult m = cli("metrics");
  CliResult s = cli("spectrogram");
  fs::current_path(old);
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_NE(m.out.find("noisy_white_0dB.wav"), std::string::npos) << m.out;
  EXPECT_EQ(png_size(dir_ / "metrics.png").w, 800u);
  EXPECT_FALSE(single_colour(dir_ / "metrics.png"));
  EXPECT_TRUE(fs::exists(dir_ / "noisy_white_20dB.wav"));
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.out.find("Front_Center.wav"), std::string::npos) << s.out;
  PngSize sz = png_size(dir_ / "spectrogram.png");
  EXPECT_EQ(sz.w, 900u);
  EXPECT_EQ(sz.h, 36u + 180u + 46u);
  EXPECT_FALSE(single_colour(dir_ / "spectrogram.png"));
}

TEST_F(AudioCli, SpectrogramOfSeveralFiles) {
  ASSERT_EQ(cli("mix --snr 0 -o " + p("m")).code, 0);
  CliResult r = cli("spectrogram " + p("m/noisy.wav") + " " + p("m/clean.wav") + " -o " + p("s.png") +
              " --title 'two files' --width 700 --panel-height 120 --colormap viridis --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json_lines(r.out).at(0);
  EXPECT_EQ(j["panels"].size(), 2u);
  PngSize sz = png_size(p("s.png"));
  EXPECT_EQ(sz.w, 700u);
  EXPECT_EQ(sz.h, 36u + 30u + 2u * (120u + 46u));
  EXPECT_FALSE(single_colour(p("s.png")));
  // -o a folder: FOLDER/spectrogram.png.
  ASSERT_EQ(cli("spectrogram " + p("m/noisy.wav") + " -o " + p("m")).code, 0);
  EXPECT_TRUE(fs::exists(p("m/spectrogram.png")));
  EXPECT_ONE_LINE_ERROR("spectrogram " + p("m/noisy.wav") + " -o /nonexistent_sepmech_dir/s.png",
                        "/nonexistent_sepmech_dir/s.png");
  EXPECT_ONE_LINE_ERROR("spectrogram " + p("m/noisy.wav") + " --colormap jet -o " + p("j.png"), "jet");
}

TEST_F(AudioCli, BadAndUnusualInputs) {
  torch::Tensor s = speech();
  // Bad files: one-line errors naming the file.
  std::ofstream(p("empty.wav")).close();
  std::ofstream(p("text.wav")) << "this is not audio\n";
  audio::write_audio(p("good.wav"), {s, 48000});
  const std::string good = slurp(p("good.wav"));
  std::ofstream(p("truncated.wav"), std::ios::binary) << good.substr(0, good.size() / 2);
  std::ofstream(p("header_only.wav"), std::ios::binary) << good.substr(0, 44);
  for (const std::string bad : {"missing.wav", "empty.wav", "text.wav", "truncated.wav", "header_only.wav"}) {
    SCOPED_TRACE(bad);
    EXPECT_ONE_LINE_ERROR("mix " + p(bad) + " -o " + p("o"), p(bad));
    EXPECT_ONE_LINE_ERROR("metrics " + p("good.wav") + " " + p(bad), p(bad));
    EXPECT_ONE_LINE_ERROR("metrics " + p(bad) + " " + p("good.wav"), p(bad));
    EXPECT_ONE_LINE_ERROR("spectrogram " + p(bad) + " -o " + p("o.png"), p(bad));
    EXPECT_ONE_LINE_ERROR("mix --noise " + p(bad) + " -o " + p("o"), p(bad));
  }
  // Silent and one-sample files.
  audio::write_audio(p("silent.wav"), {torch::zeros({1, 4800}), 48000});
  EXPECT_ONE_LINE_ERROR("mix " + p("silent.wav") + " -o " + p("o"), "silent");
  EXPECT_ONE_LINE_ERROR("mix --noise " + p("silent.wav") + " -o " + p("o"), "silent");
  EXPECT_ONE_LINE_ERROR("metrics " + p("silent.wav") + " " + p("silent.wav"), "silent");
  audio::write_audio(p("one.wav"), {torch::full({1, 1}, 0.5f), 48000});
  {
    CliResult r = cli("mix " + p("one.wav") + " --json -o " + p("one"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NEAR(json_lines(r.out).at(0)["snr_measured"].get<double>(), 5.0, 0.01);
  }
  EXPECT_ONE_LINE_ERROR("metrics " + p("one.wav") + " " + p("one.wav"), "one.wav");
  EXPECT_EQ(cli("spectrogram " + p("one.wav") + " -o " + p("one.png")).code, 0);

  // 8 kHz, 192 kHz, stereo: correct results.
  audio::write_audio(p("8k.wav"), {audio::resample(s, 48000, 8000), 8000});
  audio::write_audio(p("192k.wav"), {audio::resample(s, 48000, 192000), 192000});
  audio::write_audio(p("stereo.wav"), {torch::cat({s, 0.5 * s}, 0), 48000});
  for (const std::string f : {"8k.wav", "192k.wav", "stereo.wav"}) {
    SCOPED_TRACE(f);
    CliResult m = cli("mix " + p(f) + " --snr 3 --json -o " + p("mix_" + f));
    ASSERT_EQ(m.code, 0) << m.err;
    EXPECT_NEAR(json_lines(m.out).at(0)["snr_measured"].get<double>(), 3.0, 0.01);
    CliResult same = cli("metrics --json " + p(f) + " " + p(f));
    ASSERT_EQ(same.code, 0) << same.err;
    EXPECT_NEAR(json_lines(same.out).at(0)["stoi"].get<double>(), 1.0, 1e-6);
    CliResult sp = cli("spectrogram " + p(f) + " -o " + p(f + ".png"));
    ASSERT_EQ(sp.code, 0) << sp.err;
    EXPECT_FALSE(single_colour(p(f + ".png")));
  }
  CliResult st = cli("mix " + p("stereo.wav") + " -o " + p("st"));
  EXPECT_NE(st.err.find("2 channels, using their mean"), std::string::npos) << st.err;
  // 8 kHz estimate of a 48 kHz clean: resampled, valid numbers.
  CliResult cross = cli("metrics --json " + p("good.wav") + " " + p("8k.wav"));
  ASSERT_EQ(cross.code, 0) << cross.err;
  EXPECT_GT(json_lines(cross.out).at(0)["stoi"].get<double>(), 0.8);
  // Channel counts must match.
  EXPECT_ONE_LINE_ERROR("metrics " + p("good.wav") + " " + p("stereo.wav"), "channel");
  EXPECT_ONE_LINE_ERROR("metrics " + p("good.wav"), "two");
  EXPECT_ONE_LINE_ERROR("mix -o " + p("good.wav"), "not a folder");
}
