// StreamingDeepFilter: ring buffer of max(N, L+1) frames, one output frame per input frame.
#include "sepmech/streaming_deep_filter.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <ostream>

namespace sepmech {

using torch::Tensor;

StreamingDeepFilterImpl::StreamingDeepFilterImpl(StreamingDeepFilterOptions options_) : options(std::move(options_)) {
  reset();
}

void StreamingDeepFilterImpl::reset() {
  const char* who = "sepmech::StreamingDeepFilter";
  TORCH_CHECK(options.freq_bins() >= 1, who, ": freq_bins must be >= 1, got ", options.freq_bins());
  TORCH_CHECK(options.df_bins() >= 1 && options.df_bins() <= options.freq_bins(), who,
              ": df_bins must be in [1, freq_bins = ", options.freq_bins(), "], got ", options.df_bins());
  TORCH_CHECK(options.df_order() >= 1, who, ": df_order must be >= 1, got ", options.df_order());
  TORCH_CHECK(options.df_lookahead() >= 0, who, ": df_lookahead must be >= 0, got ", options.df_lookahead());
}

void StreamingDeepFilterImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::StreamingDeepFilter(freq_bins=" << options.freq_bins() << ", df_bins=" << options.df_bins()
         << ", df_order=" << options.df_order() << ", df_lookahead=" << options.df_lookahead() << ")";
}

int64_t StreamingDeepFilterImpl::ring_frames() const {
  return std::max(options.df_order(), options.df_lookahead() + 1);
}

StreamingDeepFilterState StreamingDeepFilterImpl::init_state(int64_t batch) const {
  TORCH_CHECK(batch >= 1, "sepmech::StreamingDeepFilter::init_state: batch must be >= 1, got ", batch);
  StreamingDeepFilterState s;
  s.frames = torch::zeros({batch, ring_frames(), options.freq_bins(), 2}, torch::kFloat);
  return s;
}

void StreamingDeepFilterImpl::step_raw(const float* spec, const float* coefs, const float* alpha, float* out,
                                       StreamingDeepFilterState& state) const {
  const int64_t B = state.frames.size(0), R = state.frames.size(1), F = options.freq_bins(),
                Fdf = options.df_bins(), N = options.df_order(), L = options.df_lookahead();
  const int64_t row = 2 * F, hrow = 2 * Fdf;
  float* ring = state.frames.data_ptr<float>();
  const int64_t slot = state.next;
  const int64_t base_slot = (slot - L % R + R) % R;
  const int64_t first_slot = (slot - (N - 1) % R + R) % R;  // oldest frame of the window
  for (int64_t b = 0; b < B; ++b) {
    float* rb = ring + b * R * row;
    std::memcpy(rb + slot * row, spec + b * row, sizeof(float) * row);
    const float* base = rb + base_slot * row;
    float* y = out + b * row;
    std::memcpy(y + hrow, base + hrow, sizeof(float) * (row - hrow));
    std::memset(y, 0, sizeof(float) * hrow);
    int64_t s = first_slot;
    for (int64_t n = 0; n < N; ++n) {
      const float* x = rb + s * row;
      const float* h = coefs + (b * N + n) * hrow;
      for (int64_t k = 0; k < hrow; k += 2) {
        const float xr = x[k], xi = x[k + 1], hr = h[k], hi = h[k + 1];
        y[k] += xr * hr - xi * hi;
        y[k + 1] += xr * hi + xi * hr;
      }
      if (++s == R) s = 0;
    }
    if (alpha) {
      const float a = alpha[b], c = 1.f - a;
      for (int64_t k = 0; k < hrow; ++k) y[k] = a * y[k] + c * base[k];
    }
  }
  state.next = slot + 1 == R ? 0 : slot + 1;
  ++state.steps;
}

namespace {

// Checks one step's arguments without allocating (messages are only built on failure).
void check_step(const StreamingDeepFilterOptions& o, const Tensor& spec, const Tensor& coefs, const Tensor& alpha,
                const StreamingDeepFilterState& state) {
  const char* who = "sepmech::StreamingDeepFilter::step";
  TORCH_CHECK(state.frames.defined(), who, ": state is not initialised (call init_state(batch))");
  const int64_t B = state.frames.size(0), F = o.freq_bins(), N = o.df_order(), Fdf = o.df_bins();
  const int64_t R = std::max(N, o.df_lookahead() + 1);
  TORCH_CHECK(state.frames.dim() == 4 && state.frames.size(1) == R && state.frames.size(2) == F &&
                  state.frames.scalar_type() == torch::kFloat && state.frames.is_contiguous(),
              who, ": state.frames must be a contiguous float32 [B,", R, ",", F, ",2] ring (from init_state), got ",
              c10::str(state.frames.sizes()));
  TORCH_CHECK(state.next >= 0 && state.next < R, who, ": state.next must be a ring slot in [0, ", R, "), got ",
              state.next);
  TORCH_CHECK(spec.defined() && (spec.dim() == 3 || (spec.dim() == 4 && spec.size(1) == 1)) &&
                  spec.numel() == B * F * 2 && spec.size(0) == B && spec.size(-1) == 2 && spec.size(-2) == F,
              who, ": frame_spec must be [B,F,2] or [B,1,F,2] with B = ", B, " (state batch), F = ", F, ", got ",
              spec.defined() ? c10::str(spec.sizes()) : std::string("undefined"));
  TORCH_CHECK(coefs.defined() && (coefs.dim() == 4 || (coefs.dim() == 5 && coefs.size(1) == 1)) &&
                  coefs.numel() == B * N * Fdf * 2 && coefs.size(0) == B && coefs.size(-1) == 2 &&
                  coefs.size(-2) == Fdf && coefs.size(-3) == N,
              who, ": frame_coefs must be [B,order,df_bins,2] or [B,1,order,df_bins,2] = [", B, ",", N, ",", Fdf,
              ",2], got ", coefs.defined() ? c10::str(coefs.sizes()) : std::string("undefined"));
  if (alpha.defined())
    TORCH_CHECK(alpha.numel() == B, who, ": alpha must have B = ", B, " elements, got ", c10::str(alpha.sizes()));
}

bool is_raw_float(const Tensor& t) {
  return !t.defined() || (t.scalar_type() == torch::kFloat && t.is_contiguous() && t.device().is_cpu());
}

}  // namespace

void StreamingDeepFilterImpl::step_into(const Tensor& frame_spec, const Tensor& frame_coefs, const Tensor& alpha,
                                        StreamingDeepFilterState& state, Tensor& out) const {
  check_step(options, frame_spec, frame_coefs, alpha, state);
  TORCH_CHECK(out.defined() && out.scalar_type() == torch::kFloat && out.is_contiguous() && out.device().is_cpu() &&
                  out.numel() == frame_spec.numel(),
              "sepmech::StreamingDeepFilter::step_into: out must be a contiguous float32 CPU tensor of ",
              frame_spec.numel(), " elements, got ", out.defined() ? c10::str(out.sizes()) : std::string("undefined"));
  torch::NoGradGuard no_grad;
  // Slow path only for inputs that are not already contiguous float32 (allocates a copy).
  Tensor s = is_raw_float(frame_spec) ? frame_spec : frame_spec.to(torch::kFloat).contiguous();
  Tensor c = is_raw_float(frame_coefs) ? frame_coefs : frame_coefs.to(torch::kFloat).contiguous();
  Tensor a = is_raw_float(alpha) ? alpha : alpha.to(torch::kFloat).contiguous();
  TORCH_CHECK(out.data_ptr() != s.data_ptr() && out.data_ptr() != c.data_ptr(),
              "sepmech::StreamingDeepFilter::step_into: out must not alias frame_spec or frame_coefs");
  step_raw(s.data_ptr<float>(), c.data_ptr<float>(), a.defined() ? a.data_ptr<float>() : nullptr,
           out.data_ptr<float>(), state);
}

Tensor StreamingDeepFilterImpl::step(const Tensor& frame_spec, const Tensor& frame_coefs, const Tensor& alpha,
                                     StreamingDeepFilterState& state) const {
  check_step(options, frame_spec, frame_coefs, alpha, state);
  Tensor out = torch::empty(frame_spec.sizes(), torch::kFloat);
  step_into(frame_spec, frame_coefs, alpha, state, out);
  if (frame_spec.scalar_type() != torch::kFloat) out = out.to(frame_spec.scalar_type());
  return out;
}

}  // namespace sepmech
