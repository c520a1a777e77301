#include "audio_common.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <system_error>

#include <torch/torch.h>

#include "sepmech/audio/noise.h"

namespace sepmech::cli {

namespace fs = std::filesystem;

void warn(const std::string& what) { std::cerr << "sepmech: warning: " << what << "\n"; }

MonoAudio load_mono(const std::string& path) {
  audio::Audio a = path.empty() ? audio::builtin_speech() : audio::read_audio(path);
  const std::string file = path.empty() ? audio::builtin_speech_path() : path;
  MonoAudio m;
  m.name = file;
  m.sample_rate = a.sample_rate;
  m.channels = static_cast<int>(a.samples.size(0));
  torch::Tensor x = a.samples.to(torch::kFloat32);
  if (!torch::isfinite(x).all().item<bool>())
    throw audio::AudioError(file, "holds NaN or infinite samples");
  if (m.channels > 1) {
    warn(file + ": " + std::to_string(m.channels) + " channels, using their mean (mono)");
    x = x.mean(0);
  } else {
    x = x[0];
  }
  m.wave = x.contiguous();
  return m;
}

void ensure_dir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": not a folder (-o must name a folder)");
    return;
  }
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir + ": cannot create the output folder: " + ec.message());
}

std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

void write_wav(const std::string& path, const torch::Tensor& wave, int sample_rate) {
  audio::write_audio(path, audio::Audio{wave.reshape({1, -1}), sample_rate},
                     {audio::AudioFormat::wav, audio::SampleFormat::pcm_16});
}

nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string fixed(double v, int decimals) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace sepmech::cli
