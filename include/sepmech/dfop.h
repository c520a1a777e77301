#pragma once
// DfOp: DeepFilterNet's deep-filtering operator (docs/deepfilter.md, spec ../shared/spec/deepfilter.md §2).
//
// For output frame t and bin f < df_bins the complex spectrum is replaced by
//   Y[t,f] = sum_{n=0}^{N-1} X[t-(N-1-L)+n, f] * H[t,n,f]        (frames outside [0,T) are zero)
// optionally blended with the input, alpha_t*Y + (1-alpha_t)*X[t,f]; bins f >= df_bins are copied.
// Complex tensors are passed as their real view (trailing dimension 2: real, imaginary).
//
// Seven methods compute this. `fused` (the default) makes one pass over (frame, bin, tap) on raw
// memory and has a fused backward; the six others transcribe the reference's methods, which teach
// different ways to build the window and are kept for comparison and parity:
//   real_loop, real_strided, real_unfold, complex_strided   offline, spec [B,1,T,F,2]
//   real_one_step                                          one frame from an N-frame window
//   real_hidden_state_loop                                 stateful, B=1, output delayed by L
#include <cstdint>
#include <iosfwd>
#include <string>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace sepmech {

enum class DfMethod {
  fused,                   ///< one fused pass forward and backward (sepmech's own; the default)
  real_loop,               ///< loop over taps, real arithmetic, float32 accumulator (reference quirk)
  real_strided,            ///< as_strided window, real arithmetic
  real_unfold,             ///< unfold window, real arithmetic (DeepFilterNet 1/2 default)
  complex_strided,         ///< as_strided window, one complex multiply-sum (reference constructor default)
  real_one_step,           ///< stateless step on a caller-supplied N-frame window
  real_hidden_state_loop,  ///< stateful loop over frames with an internal N-frame buffer (B=1)
};

/// The reference's name of a method ("fused" for ours).
std::string to_string(DfMethod method);
/// Parses a method name; throws c10::Error listing the valid names for anything else.
DfMethod df_method_from_string(const std::string& name);

struct DfOpOptions {
  /* implicit */ DfOpOptions(int64_t df_bins) : df_bins_(df_bins) {}
  /// number of low-frequency bins that are filtered (F_df); bins >= df_bins are copied
  TORCH_ARG(int64_t, df_bins);
  /// filter order N: taps over N neighbouring frames
  TORCH_ARG(int64_t, df_order) = 5;
  /// lookahead L: the window of frame t ends at frame t+L
  TORCH_ARG(int64_t, df_lookahead) = 0;
  /// total bins of the hidden-state buffer (only real_hidden_state_loop; must be >= df_bins)
  TORCH_ARG(int64_t, freq_bins) = 0;
  /// how the filter is computed (all methods compute the same function, see the header comment)
  TORCH_ARG(DfMethod, method) = DfMethod::fused;
};

/// The deep filter as a differentiable function on raw memory (the `fused` method).
/// spec [B,1,T,F,2], coefs [B,T,N,df_bins,2], alpha undefined or B*T elements (e.g. [B,T,1]);
/// float32 or float64, CPU. Returns a new [B,1,T,F,2]. Gradients w.r.t. all three inputs come from
/// one fused backward pass; a double backward (create_graph) is routed through differentiable
/// LibTorch operations instead.
torch::Tensor deep_filter(const torch::Tensor& spec, const torch::Tensor& coefs, const torch::Tensor& alpha,
                          int64_t df_order, int64_t df_lookahead);

/// Zero-pads `dim` with (window_size-1-lookahead) frames in front and `lookahead` at the back
/// (a negative front pad crops, as in the reference when lookahead > window_size-1).
torch::Tensor spec_pad(const torch::Tensor& x, int64_t window_size, int64_t lookahead, int64_t dim);

class DfOpImpl : public torch::nn::Cloneable<DfOpImpl> {
 public:
  explicit DfOpImpl(DfOpOptions options);
  DfOpImpl(int64_t df_bins, int64_t df_order = 5, int64_t df_lookahead = 0,
           DfMethod method = DfMethod::fused, int64_t freq_bins = 0)
      : DfOpImpl(DfOpOptions(df_bins).df_order(df_order).df_lookahead(df_lookahead).method(method)
                     .freq_bins(freq_bins)) {}

  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// Dispatches on options.method(). Offline methods and `fused`: spec [B,1,T,F,2],
  /// coefs [B,T,N,df_bins,2], alpha undefined or [B,T,1] -> [B,1,T,F,2].
  /// real_one_step: spec [B,1,N,F,2] window, coefs [B,1,N,df_bins,2], alpha B elements -> [B,1,F,2].
  /// real_hidden_state_loop: spec [1,1,T,freq_bins,2], coefs [1,T,N,df_bins,2], alpha [1,T,1]
  /// (required) -> [1,1,T,freq_bins,2], delayed by L frames (see forward_real_hidden_state_loop).
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& coefs,
                        const torch::Tensor& alpha = torch::Tensor());

  /// Swaps the method (as the reference's set_forward). Switching to real_hidden_state_loop
  /// checks freq_bins and (re)creates a zero hidden state.
  void set_method(DfMethod method);

  /// Zeroes the real_hidden_state_loop buffer.
  void reset_hidden_state();
  /// The real_hidden_state_loop buffer [1,1,N,freq_bins,2] (non-persistent: not in the state_dict,
  /// as in the reference); undefined for other methods.
  const torch::Tensor& hidden_state() const { return spec_buf_; }

  DfOpOptions options;

 private:
  // One per method; forward() dispatches on options.method().
  torch::Tensor forward_fused(const torch::Tensor& spec, const torch::Tensor& coefs, const torch::Tensor& alpha);
  torch::Tensor forward_real_loop(const torch::Tensor& spec, const torch::Tensor& coefs, const torch::Tensor& alpha);
  torch::Tensor forward_real_strided(const torch::Tensor& spec, const torch::Tensor& coefs,
                                     const torch::Tensor& alpha);
  torch::Tensor forward_real_unfold(const torch::Tensor& spec, const torch::Tensor& coefs,
                                    const torch::Tensor& alpha);
  torch::Tensor forward_complex_strided(const torch::Tensor& spec, const torch::Tensor& coefs,
                                        const torch::Tensor& alpha);
  /// One output frame from the window spec_win[:, :, n] = frame t-(N-1-L)+n; the base frame
  /// (blended / copied bins) is window index N-1-L. The reference only works for B=1; any B works here.
  torch::Tensor forward_real_one_step(const torch::Tensor& spec_win, const torch::Tensor& coefs,
                                      const torch::Tensor& alpha);
  /// The reference's stateful loop. For each frame: shift the N-frame buffer, append the input
  /// frame, filter the buffer with the coefficients given for this step and blend with buffer
  /// frame N-1-L. With L>0 the output is therefore the input delayed by L frames and the
  /// coefficients at step t must be those meant for frame t-L; it does NOT equal the offline
  /// methods for the same coefs (kept as the reference behaves; StreamingDeepFilter is the
  /// explicit-state equivalent). The state persists across calls until reset_hidden_state();
  /// gradients do not flow through it across calls. B must be 1.
  torch::Tensor forward_real_hidden_state_loop(const torch::Tensor& spec, const torch::Tensor& coefs,
                                               const torch::Tensor& alpha);
  torch::Tensor spec_buf_;
  void check_offline(const torch::Tensor& spec, const torch::Tensor& coefs, const torch::Tensor& alpha) const;
};
TORCH_MODULE(DfOp);

}  // namespace sepmech

// The frame-by-frame deep filter belongs to the same family (one umbrella include for both).
#include "sepmech/streaming_deep_filter.h"
