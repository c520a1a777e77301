#pragma once
// StreamingDeepFilter: the deep filter one frame at a time with explicit state (docs/deepfilter.md,
// spec ../shared/spec/deepfilter.md §6).
//
// Step k pushes input frame k into a ring buffer of R = max(N, L+1) frames per batch element and
// emits output frame t = k - L, which needs the window of frames t-(N-1-L) .. t+L = k-(N-1) .. k
// (always the N newest frames) and the base frame k-L (blended / copied bins). The coefficients and
// alpha given at step k are therefore those meant for frame k-L — exactly what a network with
// lookahead L produces at step k. The buffer starts at zero (the offline zero padding), so
//   step(X[k], H[k-L], alpha[k-L]) == DfOp(X, H, alpha)[k-L]     for k >= L,
// i.e. the stream equals the offline result delayed by L frames; pushing L more frames (zeros)
// at the end flushes the last L outputs. The offline method sees frames after T as zeros too.
//
// The library's streaming contract (docs/design.md): the caller owns a plain state made by
// init_state(batch); every step takes it as `State&` and visibly advances it. Three entry points
// of increasing thrift:
//   out = step(frame, coefs, alpha, state)       allocates the output frame only
//   step_into(frame, coefs, alpha, state, out)   writes a preallocated output, allocates nothing
//   step_raw(float pointers ..., state)          the same on raw float32 memory
#include <cstdint>
#include <iosfwd>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace sepmech {

struct StreamingDeepFilterOptions {
  StreamingDeepFilterOptions(int64_t freq_bins, int64_t df_bins) : freq_bins_(freq_bins), df_bins_(df_bins) {}
  /// total bins F of a frame
  TORCH_ARG(int64_t, freq_bins);
  /// filtered low-frequency bins (<= freq_bins); the others are copied from the base frame
  TORCH_ARG(int64_t, df_bins);
  /// filter order N
  TORCH_ARG(int64_t, df_order) = 5;
  /// lookahead L (may exceed N-1: the window then lies wholly in the future of the base frame)
  TORCH_ARG(int64_t, df_lookahead) = 0;
};

/// Per-stream state: the last R = max(N, L+1) input frames of every batch element and a cursor.
/// A value: copying it copies the ring buffer (so a copy branches the stream), moving it is cheap.
struct StreamingDeepFilterState {
  torch::Tensor frames;  ///< ring buffer [B, R, F, 2], float32, zero-initialised
  int64_t next = 0;      ///< ring slot the next frame goes to
  int64_t steps = 0;     ///< frames pushed since init_state / reset

  StreamingDeepFilterState() = default;
  StreamingDeepFilterState(const StreamingDeepFilterState& other)
      : frames(other.frames.defined() ? other.frames.clone() : other.frames), next(other.next), steps(other.steps) {}
  StreamingDeepFilterState& operator=(const StreamingDeepFilterState& other) {
    if (this != &other) *this = StreamingDeepFilterState(other);
    return *this;
  }
  StreamingDeepFilterState(StreamingDeepFilterState&&) = default;
  StreamingDeepFilterState& operator=(StreamingDeepFilterState&&) = default;

  int64_t batch() const { return frames.defined() ? frames.size(0) : 0; }
  /// Back to the zero state of a new utterance, keeping the buffer.
  void reset() {
    if (frames.defined()) frames.zero_();
    next = steps = 0;
  }
};

class StreamingDeepFilterImpl : public torch::nn::Cloneable<StreamingDeepFilterImpl> {
 public:
  explicit StreamingDeepFilterImpl(StreamingDeepFilterOptions options);

  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// Ring buffer length R = max(N, L+1).
  int64_t ring_frames() const;
  /// Frames of delay between input and output (= L).
  int64_t delay() const { return options.df_lookahead(); }

  /// A zero state for `batch` streams.
  StreamingDeepFilterState init_state(int64_t batch = 1) const;
  /// One frame. frame_spec [B,F,2] (or [B,1,F,2]); frame_coefs [B,N,df_bins,2] (or [B,1,N,df_bins,2]),
  /// meant for output frame k-L; alpha undefined (= 1) or B elements. Returns the output frame
  /// (shaped like frame_spec) and advances `state`. Autograd does not flow through this path
  /// (real-time inference); use DfOp to train.
  torch::Tensor step(const torch::Tensor& frame_spec, const torch::Tensor& frame_coefs, const torch::Tensor& alpha,
                     StreamingDeepFilterState& state) const;
  /// As step, writing into a preallocated contiguous float32 `out` shaped like frame_spec.
  /// Allocates nothing when the inputs are contiguous float32 CPU tensors.
  void step_into(const torch::Tensor& frame_spec, const torch::Tensor& frame_coefs, const torch::Tensor& alpha,
                 StreamingDeepFilterState& state, torch::Tensor& out) const;
  /// The allocation-free core on raw float32 memory: spec [B][F][2], coefs [B][N][df_bins][2],
  /// alpha [B] or nullptr, out [B][F][2] (may not alias spec or coefs).
  void step_raw(const float* spec, const float* coefs, const float* alpha, float* out,
                StreamingDeepFilterState& state) const;

  StreamingDeepFilterOptions options;
};
TORCH_MODULE(StreamingDeepFilter);

}  // namespace sepmech
