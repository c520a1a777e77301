// Audio file round trips (WAV/FLAC/OGG, int and float encodings), chunked reading, errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sepmech/audio/audio_file.h"

namespace {

namespace fs = std::filesystem;
using namespace sepmech::audio;

class AudioFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sepmech_audio_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

torch::Tensor test_signal(int64_t channels, int64_t frames, int rate) {
  auto t = torch::arange(frames, torch::kFloat64) / rate;
  std::vector<torch::Tensor> ch;
  for (int64_t c = 0; c < channels; ++c) ch.push_back(0.5 * torch::sin(2 * M_PI * (220.0 * (c + 1)) * t) + 0.1 * c);
  return torch::stack(ch).to(torch::kFloat32);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const AudioError& e) {
    return e.what();
  }
  return "";
}

TEST_F(AudioFileTest, RoundTripsWithinQuantisation) {
  struct C {
    AudioFormat f;
    SampleFormat s;
    double tol;
    const char* ext;
  };
  const C cases[] = {{AudioFormat::wav, SampleFormat::pcm_16, 1.0 / 32768, "wav"},
                     {AudioFormat::wav, SampleFormat::pcm_24, 1.0 / 8388608 * 1.01, "wav"},
                     {AudioFormat::wav, SampleFormat::pcm_32, 1e-7, "wav"},
                     {AudioFormat::wav, SampleFormat::float32, 0.0, "wav"},
                     {AudioFormat::flac, SampleFormat::pcm_16, 1.0 / 32768, "flac"},
                     {AudioFormat::flac, SampleFormat::pcm_24, 1.0 / 8388608 * 1.01, "flac"}};
  for (const auto& c : cases) {
    for (int64_t channels : {1, 3}) {
      Audio a{test_signal(channels, 4801, 24000), 24000};
      const auto p = path("rt_" + to_string(c.s) + "_" + std::to_string(channels) + "." + c.ext);
      write_audio(p, a, {c.f, c.s});
      Audio b = read_audio(p);
      ASSERT_EQ(b.sample_rate, 24000);
      ASSERT_EQ(b.samples.sizes(), a.samples.sizes()) << p;
      EXPECT_EQ(b.samples.scalar_type(), torch::kFloat32);
      const double err = (b.samples - a.samples).abs().max().item<double>();
      EXPECT_LE(err, c.tol) << p;
      if (c.s == SampleFormat::pcm_16) EXPECT_GT(err, 0.0) << "16-bit must actually quantise: " << p;
    }
  }
}

TEST_F(AudioFileTest, OggVorbisIsCloseInLevel) {
  Audio a{test_signal(2, 44100, 44100), 44100};
  write_audio(path("x.ogg"), a, {AudioFormat::ogg, SampleFormat::pcm_16});
  Audio b = read_audio(path("x.ogg"));
  ASSERT_EQ(b.samples.size(0), 2);
  ASSERT_EQ(b.sample_rate, 44100);
  ASSERT_EQ(b.samples.size(1), 44100);
  auto mid = [](const torch::Tensor& t) { return t.slice(1, 4000, 40000); };
  const double err = (mid(b.samples) - mid(a.samples)).pow(2).mean().sqrt().item<double>();
  EXPECT_LT(err, 0.02);  // lossy, but a pure tone survives
}

TEST_F(AudioFileTest, ChunkedReaderEqualsWholeRead) {
  Audio a{test_signal(2, 10007, 16000), 16000};
  write_audio(path("c.wav"), a, {AudioFormat::wav, SampleFormat::float32});
  AudioReader r(path("c.wav"));
  EXPECT_EQ(r.info().frames, 10007);
  EXPECT_EQ(r.info().channels, 2);
  EXPECT_EQ(r.info().sample_rate, 16000);
  std::vector<torch::Tensor> chunks;
  while (!r.eof()) {
    auto c = r.read(1000);
    ASSERT_LE(c.size(1), 1000);
    chunks.push_back(c);
  }
  EXPECT_EQ(chunks.size(), 11u);
  EXPECT_EQ(r.read(10).size(1), 0);
  EXPECT_TRUE(torch::equal(torch::cat(chunks, 1), read_audio(path("c.wav")).samples));

  AudioWriter w(path("w.flac"), 16000, 2, {AudioFormat::flac, SampleFormat::pcm_24});
  for (const auto& c : chunks) w.write(c);
  w.close();
  EXPECT_LE((read_audio(path("w.flac")).samples - a.samples).abs().max().item<double>(), 1.01 / 8388608);
}

TEST_F(AudioFileTest, ErrorsNameTheFileAndTheReason) {
  const auto missing = path("missing.wav");
  auto e = error_of([&] { read_audio(missing); });
  EXPECT_NE(e.find(missing), std::string::npos) << e;
  EXPECT_NE(e.find("no such file"), std::string::npos) << e;

  const auto empty = path("empty.wav");
  std::ofstream(empty).close();
  e = error_of([&] { read_audio(empty); });
  EXPECT_NE(e.find(empty), std::string::npos) << e;
  EXPECT_NE(e.find("empty"), std::string::npos) << e;

  const auto zero = path("zero_frames.wav");
  write_audio(zero, {torch::zeros({1, 0}), 8000});
  e = error_of([&] { read_audio(zero); });
  EXPECT_NE(e.find(zero), std::string::npos) << e;
  EXPECT_NE(e.find("no audio frames"), std::string::npos) << e;

  const auto text = path("notes.wav");
  std::ofstream(text) << "this is not audio, just some text that is long enough to look like a header\n";
  e = error_of([&] { read_audio(text); });
  EXPECT_NE(e.find(text), std::string::npos) << e;
  EXPECT_NE(e.find("not a readable audio file"), std::string::npos) << e;

  // Cut a valid WAV in its header and in its data.
  const auto good = path("good.wav");
  write_audio(good, {test_signal(1, 8000, 8000), 8000});
  const auto size = fs::file_size(good);
  for (auto keep : {std::uintmax_t{20}, size / 2}) {
    const auto cut = path("cut_" + std::to_string(keep) + ".wav");
    fs::copy_file(good, cut);
    fs::resize_file(cut, keep);
    e = error_of([&] { read_audio(cut); });
    EXPECT_NE(e.find(cut), std::string::npos) << "keep " << keep << ": " << e;
  }
}

TEST_F(AudioFileTest, FormatNamesRoundTrip) {
  for (auto f : {AudioFormat::wav, AudioFormat::flac, AudioFormat::ogg})
    EXPECT_EQ(audio_format_from_string(to_string(f)), f);
  for (auto s : {SampleFormat::pcm_16, SampleFormat::pcm_24, SampleFormat::pcm_32, SampleFormat::float32})
    EXPECT_EQ(sample_format_from_string(to_string(s)), s);
  EXPECT_THROW(audio_format_from_string("mp3"), c10::Error);
  EXPECT_THROW(sample_format_from_string("pcm_8"), c10::Error);
  auto e = error_of([&] { write_audio(path("x.flac"), {torch::zeros({1, 10}), 8000}, {AudioFormat::flac, SampleFormat::float32}); });
  EXPECT_NE(e.find("FLAC supports"), std::string::npos) << e;
}

}  // namespace
