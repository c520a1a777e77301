#pragma once
// Sample-rate conversion on libsamplerate, offline and streaming.
//
//   #include <sepmech/audio/resample.h>
//   using namespace sepmech::audio;
//   torch::Tensor y = resample(x, 48000, 16000, ResampleQuality::best);   // x float32 [C, n]
//   Resampler r(48000, 16000, 2);                                        // streaming
//   ResamplerState st = r.init_state();
//   torch::Tensor a = r.step(chunk1, st), b = r.step(chunk2, st), c = r.flush(st);
//   // cat({a, b, c}, 1) == resample(cat({chunk1, chunk2}, 1), 48000, 16000)
#include <cstdint>
#include <memory>
#include <string>

#include <torch/types.h>

namespace sepmech::audio {

/// libsamplerate converters: band-limited sinc (best, medium, fastest), zero-order hold, linear.
enum class ResampleQuality { best, medium, fastest, zero_order_hold, linear };
std::string to_string(ResampleQuality q);
/// Lower snake_case name; c10::Error listing the choices otherwise.
ResampleQuality resample_quality_from_string(const std::string& s);

/// Whole signal [C, n] float32 from in_rate to out_rate Hz: round(n * out/in) frames.
torch::Tensor resample(const torch::Tensor& x, int in_rate, int out_rate,
                       ResampleQuality quality = ResampleQuality::best);

/// Caller-owned stream state (libsamplerate converter + frames emitted/consumed so far).
struct ResamplerState {
  std::shared_ptr<void> converter;  ///< SRC_STATE*
  int64_t frames_in = 0;
  int64_t frames_out = 0;
};

class Resampler {
 public:
  Resampler(int in_rate, int out_rate, int channels, ResampleQuality quality = ResampleQuality::best);
  ResamplerState init_state() const;
  /// Consumes [C, n] and returns the frames available so far, [C, m].
  torch::Tensor step(const torch::Tensor& x, ResamplerState& state) const;
  /// Ends the stream: the remaining frames, so the total is round(frames_in * out/in).
  torch::Tensor flush(ResamplerState& state) const;

 private:
  torch::Tensor run(const torch::Tensor& x, ResamplerState& state, bool end) const;
  int in_rate_, out_rate_, channels_;
  ResampleQuality quality_;
};

}  // namespace sepmech::audio
