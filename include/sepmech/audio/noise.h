#pragma once
// Test signals: the built-in recorded speech (alsa-utils' voice prompts), generated noise and
// mixing at an exact SNR.
//
//   #include <sepmech/audio/noise.h>
//   using namespace sepmech::audio;
//   Audio speech = builtin_speech();                                  // 48 kHz mono "Front, center"
//   torch::Tensor n = make_noise(NoiseKind::pink, speech.samples.size(1),
//                                NoiseOptions().sample_rate(speech.sample_rate).seed(7));
//   Mixture m = mix_at_snr(speech.samples[0], n, 5.0);                // 10 log10(Ps / Pn) == 5 dB
//
// Generated noise is float32 [n] with RMS 0.1 (-20 dBFS) and is the same for the same options
// (seed included) on every machine: the random numbers come from xoshiro256** seeded through
// SplitMix64, Gaussian by Box-Muller, coloured in the frequency domain.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include "sepmech/audio/audio_file.h"

namespace sepmech::audio {

/// Generated noise types.
enum class NoiseKind {
  white,   ///< flat power spectrum (0 dB/octave)
  pink,    ///< power ~ 1/f (-3 dB/octave)
  brown,   ///< power ~ 1/f^2 (-6 dB/octave), Brownian / red noise
  babble,  ///< several other speakers: the other alsa-utils voice prompts, time-shifted and summed
  hum,     ///< mains hum: a fundamental (50 Hz) and its harmonics, amplitude 1/k
};
std::string to_string(NoiseKind k);
/// white / pink / brown / babble / hum; c10::Error listing the choices otherwise.
NoiseKind noise_kind_from_string(const std::string& s);
/// True when `s` names a generated noise type (and not, say, a file).
bool is_noise_kind(const std::string& s);

struct NoiseOptions {
  /// sample rate of the generated noise in Hz (> 0)
  TORCH_ARG(int, sample_rate) = 16000;
  /// random seed: the same seed gives the same noise
  TORCH_ARG(uint64_t, seed) = 0;
  /// hum: fundamental frequency in Hz (> 0; 50 in Europe, 60 in North America)
  TORCH_ARG(double, hum_frequency) = 50.0;
  /// hum: number of harmonics including the fundamental (>= 1; those above Nyquist are dropped)
  TORCH_ARG(int, hum_harmonics) = 8;
  /// babble: number of talkers (>= 1); the prompts are reused, each at its own shift, if fewer
  TORCH_ARG(int, babble_talkers) = 6;
  /// babble: folder of the voice prompts
  TORCH_ARG(std::string, speech_dir) = "/usr/share/sounds/alsa";

 public:
  /// std::invalid_argument naming the first bad field.
  void Validate() const;
};

/// `frames` (>= 1) samples of noise, float32 [frames], RMS 0.1. babble reads the prompts in
/// options.speech_dir (AudioError telling to install alsa-utils if they are missing).
torch::Tensor make_noise(NoiseKind kind, int64_t frames, const NoiseOptions& options = {});

/// The folder and file of the built-in speech.
std::string builtin_speech_path();
/// "Front, center" spoken by a woman, 48 kHz mono, 1.4 s (alsa-utils). AudioError whose message
/// says `apt-get install alsa-utils` when the file is missing.
Audio builtin_speech();
/// The voice prompts babble is made of (every alsa-utils prompt but Front_Center and Noise).
std::vector<std::string> babble_sources(const std::string& speech_dir = "/usr/share/sounds/alsa");

/// `noise` [n] looped (whole repetitions, then a part) or cropped to `frames` samples.
torch::Tensor fit_length(const torch::Tensor& noise, int64_t frames);

/// Result of mix_at_snr.
struct Mixture {
  torch::Tensor clean;  ///< [frames] float32 (scaled by `headroom`)
  torch::Tensor noise;  ///< [frames] float32, scaled so that 10 log10(|clean|^2 / |noise|^2) == snr_db
  torch::Tensor noisy;  ///< clean + noise
  double noise_gain = 1.0;  ///< factor applied to the (fitted) input noise before `headroom`
  double headroom = 1.0;    ///< factor applied to all three so that |noisy| <= peak (1 = none needed)
};

/// Mixes 1-D `clean` with `noise` (fitted to its length by fit_length) at `snr_db` (finite) dB,
/// then scales all three by the same factor if needed so the peak of noisy is <= `peak` (in (0, 1]).
/// std::invalid_argument for silent clean or noise, or a non-finite value.
Mixture mix_at_snr(const torch::Tensor& clean, const torch::Tensor& noise, double snr_db, double peak = 0.99);

/// Mean power (mean square) of a signal, in double.
double mean_power(const torch::Tensor& x);

}  // namespace sepmech::audio
