#pragma once
// Shared by the audio commands (mix, metrics, spectrogram): loading inputs as mono, output folders,
// warnings, JSON numbers.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "sepmech/audio/audio_file.h"

namespace sepmech::cli {

/// One line on stderr: "sepmech: warning: <what>".
void warn(const std::string& what);

/// A signal as the audio commands use it: mono float32 [n] at `sample_rate`.
struct MonoAudio {
  torch::Tensor wave;  ///< float32 [n]
  int sample_rate = 0;
  int channels = 1;    ///< channels of the file (averaged into `wave` when > 1)
  std::string name;    ///< file path, or a description of the built-in input
};

/// Reads `path` (empty: the built-in speech) and averages its channels into mono (with a warning).
/// Rejects non-finite samples naming the file.
MonoAudio load_mono(const std::string& path);

/// Creates `dir` (and parents) if needed; runtime_error naming it if that fails or it is not a folder.
void ensure_dir(const std::string& dir);
/// dir / name.
std::string join(const std::string& dir, const std::string& name);

/// Writes a mono float32 [n] signal as 16-bit PCM WAV.
void write_wav(const std::string& path, const torch::Tensor& wave, int sample_rate);

/// A finite double as a JSON number; +-inf and NaN as null (JSON has no infinity).
nlohmann::json json_number(double v);
/// "%.2f"-style, with "inf" / "-inf" for infinities.
std::string fixed(double v, int decimals = 2);

}  // namespace sepmech::cli
