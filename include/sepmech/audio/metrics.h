#pragma once
// Speech-quality metrics: STOI, ESTOI (pystoi behaviour), SI-SDR and SNR.
//
//   #include <sepmech/audio/metrics.h>
//   double s  = sepmech::audio::stoi(clean, estimate, 16000);   // 1-D, equal length
//   double e  = sepmech::audio::estoi(clean, estimate, 16000);
//   double sd = sepmech::audio::si_sdr(clean, estimate);        // dB, +inf for an exact copy
//   double sn = sepmech::audio::snr(clean, estimate);           // dB
//
// Inputs are 1-D floating tensors (any float dtype, any device; copied to CPU float64) of equal,
// non-zero length with finite values. Everything is computed in double. STOI/ESTOI resample to
// 10 kHz with GNU Octave's Kaiser design, drop frames more than 40 dB below the loudest clean
// frame and return 1e-5 when fewer than 30 STFT frames remain (as pystoi does). ESTOI omits
// pystoi's eps-sized random jitter (it changes results by < 1e-13).
// Bad input: c10::Error "sepmech::<metric>: <argument> must be <expected>, got <actual>".
#include <cstdint>

#include <torch/types.h>

namespace sepmech::audio {

/// Short-time objective intelligibility (Taal et al. 2011), in [-1, 1] (1e-5 if too short).
double stoi(const torch::Tensor& clean, const torch::Tensor& estimate, int64_t sample_rate);
/// Extended STOI (Jensen & Taal 2016), without pystoi's eps jitter.
double estoi(const torch::Tensor& clean, const torch::Tensor& estimate, int64_t sample_rate);
/// Scale-invariant signal-to-distortion ratio in dB (means removed); +inf when estimate == clean.
double si_sdr(const torch::Tensor& clean, const torch::Tensor& estimate);
/// Signal-to-noise ratio 10 log10(|x|^2 / |y - x|^2) in dB; +inf when estimate == clean.
double snr(const torch::Tensor& clean, const torch::Tensor& estimate);

}  // namespace sepmech::audio
