#pragma once
// Short-time Fourier transform: offline (stft/istft) and streaming (StreamingStft/StreamingIstft)
// with the presets of SGMSE+ and DeepFilterNet's libDF (docs/stft.md).
//
//   auto opt = sepmech::StftOptions::sgmse();             // 510/128 periodic Hann, centred, reflect
//   torch::Tensor spec = sepmech::stft(wave, opt);          // [C, n] -> complex [C, 256, T]
//   torch::Tensor back = sepmech::istft(spec, n, opt);      // [C, n], equal to wave to rounding
//
//   sepmech::StreamingStft ana(sepmech::StftOptions::deepfilternet());
//   sepmech::StreamingIstft syn(sepmech::StftOptions::deepfilternet());
//   auto sa = ana->init_state(B);  auto ss = syn->init_state(B);
//   for each hop x [B, 480]:  y = syn->step(ana->step(x, sa), ss);   // y [B, 480]
//   // y is the input delayed by n_fft - hop = 480 samples.
//
// Streaming alignment (any options; the streaming pair always uses causal framing):
//   analysis step k takes input samples [k*hop, (k+1)*hop) and returns the frame over samples
//   [k*hop - (n_fft - hop), k*hop + hop) (zeros before the start) == stft(x, framing=causal)[.., k];
//   synthesis step k returns samples [k*hop - (n_fft - hop), (k+1)*hop - (n_fft - hop)) of the
//   offline reconstruction, i.e. the offline istft delayed by n_fft - hop samples. To flush, feed
//   ceil((n_fft - hop) / hop) more hops (zeros) through the analysis, or the matching frames through
//   the synthesis.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace sepmech {

/// Analysis (= synthesis) window.
enum class WindowKind {
  hann,       ///< periodic Hann: 0.5 - 0.5 cos(2 pi i / n) (torch.hann_window(n, periodic=True))
  sqrt_hann,  ///< square root of the periodic Hann window
  vorbis,     ///< libDF's Vorbis window: sin(pi/2 sin^2(pi (i + 0.5) / n))
};
std::string to_string(WindowKind kind);
/// Parses hann / sqrt_hann / vorbis; throws c10::Error listing the valid names otherwise.
WindowKind window_kind_from_string(const std::string& name);

/// The window of length n (> 0), evaluated in float64 and returned as `dtype` (a floating type).
torch::Tensor make_window(WindowKind kind, int64_t n, torch::Dtype dtype = torch::kFloat32);

/// Where frames sit relative to the signal.
enum class StftFraming {
  center_reflect,  ///< torch center=True, pad_mode="reflect": frame k centred on sample k*hop (SGMSE)
  center_zero,     ///< as center_reflect with zero padding (torch pad_mode="constant")
  causal,          ///< libDF: frame k covers [k*hop - (n_fft - hop), k*hop + hop), zeros before the start
};
std::string to_string(StftFraming framing);
/// Parses center_reflect / center_zero / causal.
StftFraming stft_framing_from_string(const std::string& name);

/// Scaling of analysis and synthesis.
enum class StftNorm {
  none,   ///< torch normalized=False: X = rfft(w x); istft divides the overlap-add by sum_k w^2
  ortho,  ///< torch normalized=True: X = rfft(w x) / sqrt(n_fft); istft as none with the inverse scale
  libdf,  ///< libDF: X = rfft(w x) * 2 hop / n_fft^2; synthesis n_fft * irfft(X) * w, plain overlap-add
          ///< (centred offline: divided by (2 hop / n_fft) sum_k w^2 at the ends, where frames are missing)
};
std::string to_string(StftNorm norm);
/// Parses none / ortho / libdf.
StftNorm stft_norm_from_string(const std::string& name);

struct StftOptions {
  /// FFT size = window length (> 0); F = n_fft / 2 + 1 bins
  TORCH_ARG(int64_t, n_fft) = 512;
  /// frame advance in samples (0 < hop <= n_fft)
  TORCH_ARG(int64_t, hop) = 128;
  /// analysis and synthesis window
  TORCH_ARG(WindowKind, window) = WindowKind::hann;
  /// frame placement and padding (the streaming classes always frame causally)
  TORCH_ARG(StftFraming, framing) = StftFraming::center_reflect;
  /// analysis/synthesis scaling
  TORCH_ARG(StftNorm, norm) = StftNorm::none;

 public:

  /// SGMSE+ at 16 kHz: n_fft 510, hop 128, periodic Hann, centred with reflect padding, unnormalised.
  static StftOptions sgmse();
  /// SGMSE+ at 48 kHz: n_fft 1534, hop 384, otherwise as sgmse().
  static StftOptions sgmse_48k();
  /// DeepFilterNet/libDF at 48 kHz: n_fft 960, hop 480, Vorbis, causal framing, libDF normalisation.
  static StftOptions deepfilternet();

  /// Throws c10::Error unless n_fft > 0, 0 < hop <= n_fft, hop <= n_fft / 2 + 1 for the centred
  /// framings (else the last frame can end before the last sample), the window envelope sum_k w^2
  /// never vanishes (NOLA, none/ortho) and, for libdf, sum_k w^2 == n_fft / (2 hop) (perfect
  /// reconstruction without envelope division). The streaming classes check their causal framing.
  void Validate() const;
  std::string ToString() const;

  /// F = n_fft / 2 + 1.
  int64_t freq_bins() const { return n_fft() / 2 + 1; }
  /// Frames stft() makes of n samples: 1 + n / hop centred; ceil((n + n_fft - hop) / hop) causal
  /// (every sample then lies under all its frames, so istft reconstructs all n samples).
  int64_t num_frames(int64_t n) const;
  /// Samples of zero/reflect padding before sample 0: n_fft / 2 centred, n_fft - hop causal.
  int64_t left_pad() const;
};

/// Offline STFT. x [C, n] or [n], float32 or float64 -> complex [C, F, T] or [F, T]
/// (T = options.num_frames(n)). Differentiable. `window`, if given, replaces options.window()
/// (e.g. a cached make_window; must be [n_fft]).
torch::Tensor stft(const torch::Tensor& x, const StftOptions& options, const torch::Tensor& window = {});
/// Offline inverse. spec [C, F, T] or [F, T] complex -> real [C, length] or [length], aligned with
/// the stft() input. Differentiable.
torch::Tensor istft(const torch::Tensor& spec, int64_t length, const StftOptions& options,
                    const torch::Tensor& window = {});

/// Streaming analysis state: the last n_fft - hop input samples of each stream. A value owned by the
/// caller (docs/design.md, streaming contract): copying it copies the memory (a copy branches the
/// stream), moving it is cheap.
struct StreamingStftState {
  torch::Tensor memory;  ///< [B, n_fft - hop] float32, zeros initially
  int64_t frames = 0;    ///< frames emitted since init_state / reset

  StreamingStftState() = default;
  StreamingStftState(torch::Tensor memory_, int64_t frames_) : memory(std::move(memory_)), frames(frames_) {}
  StreamingStftState(const StreamingStftState& other)
      : memory(other.memory.defined() ? other.memory.clone() : other.memory), frames(other.frames) {}
  StreamingStftState& operator=(const StreamingStftState& other) {
    if (this != &other) *this = StreamingStftState(other);
    return *this;
  }
  StreamingStftState(StreamingStftState&&) = default;
  StreamingStftState& operator=(StreamingStftState&&) = default;

  int64_t batch() const { return memory.defined() ? memory.size(0) : 0; }
  /// A deep copy (the same as copying).
  StreamingStftState clone() const { return *this; }
  /// Back to the zero state of a new stream, keeping the buffer.
  void reset() {
    if (memory.defined()) memory.zero_();
    frames = 0;
  }
};

/// Streaming synthesis state: the overlap-add tail not yet emitted. A value like StreamingStftState.
struct StreamingIstftState {
  torch::Tensor overlap;  ///< [B, n_fft - hop] float32, zeros initially
  int64_t frames = 0;     ///< frames consumed since init_state / reset

  StreamingIstftState() = default;
  StreamingIstftState(torch::Tensor overlap_, int64_t frames_) : overlap(std::move(overlap_)), frames(frames_) {}
  StreamingIstftState(const StreamingIstftState& other)
      : overlap(other.overlap.defined() ? other.overlap.clone() : other.overlap), frames(other.frames) {}
  StreamingIstftState& operator=(const StreamingIstftState& other) {
    if (this != &other) *this = StreamingIstftState(other);
    return *this;
  }
  StreamingIstftState(StreamingIstftState&&) = default;
  StreamingIstftState& operator=(StreamingIstftState&&) = default;

  int64_t batch() const { return overlap.defined() ? overlap.size(0) : 0; }
  /// A deep copy (the same as copying).
  StreamingIstftState clone() const { return *this; }
  /// Back to the zero state of a new stream, keeping the buffer.
  void reset() {
    if (overlap.defined()) overlap.zero_();
    frames = 0;
  }
};

/// Streaming analysis: one hop of B streams in, one frame of F bins out. Causal framing whatever
/// options.framing() says; window and norm as in options. float32 only (real time); no autograd.
class StreamingStftImpl : public torch::nn::Cloneable<StreamingStftImpl> {
 public:
  explicit StreamingStftImpl(StftOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// Look-behind of a frame in samples: n_fft - hop (frame k ends with input hop k).
  int64_t delay() const { return options.n_fft() - options.hop(); }
  StreamingStftState init_state(int64_t batch = 1) const;
  /// x [B, hop] float32 -> complex64 [B, F]; advances `state` in place.
  torch::Tensor step(const torch::Tensor& x, StreamingStftState& state) const;
  /// As step into a preallocated contiguous complex64 `out` [B, F]; allocates nothing when x is
  /// contiguous float32 (a direct O(n_fft * F) DFT on precomputed twiddles).
  void step_into(const torch::Tensor& x, StreamingStftState& state, torch::Tensor& out) const;

  StftOptions options;
  torch::Tensor window;  ///< [n_fft] float32 buffer

 private:
  std::vector<double> window_;    // the window in float64
  std::vector<double> cos_, sin_;  // cos/sin(2 pi i / n_fft), i < n_fft
  double scale_ = 1.0;
};
TORCH_MODULE(StreamingStft);

/// Streaming synthesis: one frame of B streams in, one hop out (the offline istft delayed by
/// n_fft - hop samples; the first n_fft - hop samples are pre-roll, zero for spectra of a signal).
class StreamingIstftImpl : public torch::nn::Cloneable<StreamingIstftImpl> {
 public:
  explicit StreamingIstftImpl(StftOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// Output delay relative to the offline reconstruction: n_fft - hop samples.
  int64_t delay() const { return options.n_fft() - options.hop(); }
  StreamingIstftState init_state(int64_t batch = 1) const;
  /// frame complex64 [B, F] -> float32 [B, hop]; advances `state` in place.
  torch::Tensor step(const torch::Tensor& frame, StreamingIstftState& state) const;
  /// As step into a preallocated contiguous float32 `out` [B, hop]; allocates nothing when frame is
  /// contiguous complex64.
  void step_into(const torch::Tensor& frame, StreamingIstftState& state, torch::Tensor& out) const;

  StftOptions options;
  torch::Tensor window;  ///< [n_fft] float32 buffer

 private:
  std::vector<double> window_;
  std::vector<double> cos_, sin_;
  std::vector<double> inv_envelope_;  // [hop]: 1 / sum_m w^2[j + m hop] (none/ortho), 1 (libdf)
  double scale_ = 1.0;
};
TORCH_MODULE(StreamingIstft);

}  // namespace sepmech
