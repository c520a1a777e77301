#pragma once
// SGMSE's complex-spectrogram representation (spec §4): STFT settings, the forward/backward
// amplitude transforms ("exponent" with factor, "log", "none") and `pad_spec`.
#include <string>

#include <torch/torch.h>

namespace sepmech::diffusion {

/// The STFT analysis/synthesis window.
enum class SpecWindow {
  hann,       ///< the periodic Hann window ("hann")
  sqrt_hann,  ///< √ of the periodic Hann window (the reference's "sqrthann")
};
/// The reference's name: "hann" or "sqrthann".
std::string to_string(SpecWindow window);
/// Parses hann / sqrthann; throws c10::Error listing the valid names otherwise.
SpecWindow spec_window_from_string(const std::string& name);

/// The amplitude transform of spec_fwd / spec_back.
enum class SpecTransform {
  exponent,  ///< β|c|^α e^{i∠c}
  log,       ///< β ln(1 + |c|) e^{i∠c}
  none,      ///< identity
};
/// "exponent", "log" or "none".
std::string to_string(SpecTransform transform);
/// Parses exponent / log / none; throws c10::Error listing the valid names otherwise.
SpecTransform spec_transform_from_string(const std::string& name);

/// How `pad_spec` fills the frames it appends.
enum class PadMode {
  zero_pad,     ///< zeros
  reflection,   ///< mirror image without repeating the last frame (needs pad < frames)
  replication,  ///< copies of the last frame
};
/// "zero_pad", "reflection" or "replication".
std::string to_string(PadMode mode);
/// Parses zero_pad / reflection / replication; throws c10::Error listing the valid names
/// otherwise.
PadMode pad_mode_from_string(const std::string& name);

struct SpecOptions {
  /// FFT size (510 → F = 256 bins at 16 kHz; 1534 at 48 kHz)
  TORCH_ARG(int64_t, n_fft) = 510;
  /// hop between frames (128; 384 at 48 kHz)
  TORCH_ARG(int64_t, hop_length) = 128;
  /// periodic Hann or its square root
  TORCH_ARG(SpecWindow, window) = SpecWindow::hann;
  /// β of the amplitude transform (0.15; 0.065 at 48 kHz; 0.333 in the Interspeech 2022 paper)
  TORCH_ARG(double, spec_factor) = 0.15;
  /// α of the exponent transform (0.5; 0.667 at 48 kHz)
  TORCH_ARG(double, spec_abs_exponent) = 0.5;
  /// the amplitude transform
  TORCH_ARG(SpecTransform, transform_type) = SpecTransform::exponent;
 public:
  /// The 48 kHz preset (n_fft 1534, hop 384, β 0.065, α 0.667).
  static SpecOptions preset_48k() {
    return SpecOptions().n_fft(1534).hop_length(384).spec_factor(0.065).spec_abs_exponent(0.667);
  }
  void Validate() const;
  std::string ToString() const;
};

/// The analysis window [n_fft] (float32).
torch::Tensor spec_window(const SpecOptions& o);
/// STFT of wav [..., L] (float32): center=True with reflect padding, one-sided, unnormalised,
/// complex64 [..., n_fft/2 + 1, frames].
torch::Tensor stft(const torch::Tensor& wav, const SpecOptions& o);
/// Inverse STFT of spec [..., F, frames] to `length` samples.
torch::Tensor istft(const torch::Tensor& spec, const SpecOptions& o, int64_t length);
/// Forward amplitude transform: exponent β|c|^α e^{i∠c} (power skipped if α = 1), log
/// β ln(1 + |c|) e^{i∠c}, none identity.
torch::Tensor spec_fwd(const torch::Tensor& spec, const SpecOptions& o);
/// Inverse of spec_fwd.
torch::Tensor spec_back(const torch::Tensor& spec, const SpecOptions& o);
/// Pads the time (last) axis on the right to a multiple of 64 frames. PadMode::reflection needs
/// pad < frames and throws otherwise.
torch::Tensor pad_spec(const torch::Tensor& Y, PadMode mode = PadMode::zero_pad);

}  // namespace sepmech::diffusion
