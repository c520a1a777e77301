// libsamplerate wrapper. The offline function is the stream run over one chunk, so the
// chunked output equals it by construction of libsamplerate's state (tested).
#include "sepmech/audio/resample.h"

#include <samplerate.h>

#include <cmath>
#include <stdexcept>

#include <torch/torch.h>

namespace sepmech::audio {

std::string to_string(ResampleQuality q) {
  switch (q) {
    case ResampleQuality::best: return "best";
    case ResampleQuality::medium: return "medium";
    case ResampleQuality::fastest: return "fastest";
    case ResampleQuality::zero_order_hold: return "zero_order_hold";
    case ResampleQuality::linear: return "linear";
  }
  return "?";
}

ResampleQuality resample_quality_from_string(const std::string& s) {
  for (auto q : {ResampleQuality::best, ResampleQuality::medium, ResampleQuality::fastest,
                 ResampleQuality::zero_order_hold, ResampleQuality::linear})
    if (to_string(q) == s) return q;
  TORCH_CHECK(false, "sepmech::ResampleQuality: name must be one of best, medium, fastest, zero_order_hold, linear, got '",
              s, "'");
}

namespace {
int src_type(ResampleQuality q) {
  switch (q) {
    case ResampleQuality::best: return SRC_SINC_BEST_QUALITY;
    case ResampleQuality::medium: return SRC_SINC_MEDIUM_QUALITY;
    case ResampleQuality::fastest: return SRC_SINC_FASTEST;
    case ResampleQuality::zero_order_hold: return SRC_ZERO_ORDER_HOLD;
    case ResampleQuality::linear: return SRC_LINEAR;
  }
  return SRC_SINC_BEST_QUALITY;
}
}  // namespace

Resampler::Resampler(int in_rate, int out_rate, int channels, ResampleQuality quality)
    : in_rate_(in_rate), out_rate_(out_rate), channels_(channels), quality_(quality) {
  TORCH_CHECK(in_rate > 0, "sepmech::Resampler: in_rate must be > 0, got ", in_rate);
  TORCH_CHECK(out_rate > 0, "sepmech::Resampler: out_rate must be > 0, got ", out_rate);
  TORCH_CHECK(channels > 0, "sepmech::Resampler: channels must be > 0, got ", channels);
  const double ratio = static_cast<double>(out_rate) / in_rate;
  TORCH_CHECK(src_is_valid_ratio(ratio), "sepmech::Resampler: out_rate / in_rate must be within [1/256, 256], got ",
              ratio);
}

ResamplerState Resampler::init_state() const {
  int err = 0;
  SRC_STATE* s = src_new(src_type(quality_), channels_, &err);
  TORCH_CHECK(s != nullptr, "sepmech::Resampler: libsamplerate failed: ", src_strerror(err));
  ResamplerState st;
  st.converter = std::shared_ptr<void>(s, [](void* p) { src_delete(static_cast<SRC_STATE*>(p)); });
  return st;
}

torch::Tensor Resampler::run(const torch::Tensor& x, ResamplerState& st, bool end) const {
  TORCH_CHECK(st.converter, "sepmech::Resampler: state must come from init_state(), got an empty state");
  TORCH_CHECK(x.dim() == 2 && x.size(0) == channels_, "sepmech::Resampler: x must be [", channels_,
              ", frames], got shape ", x.sizes());
  torch::Tensor in = x.detach().to(torch::kCPU, torch::kFloat32).t().contiguous();  // interleaved
  TORCH_CHECK(torch::isfinite(in).all().item<bool>(), "sepmech::Resampler: x must be finite, got non-finite values");
  const int64_t n_in = in.size(0);
  st.frames_in += n_in;
  const double ratio = static_cast<double>(out_rate_) / in_rate_;
  const int64_t total = end ? static_cast<int64_t>(std::llround(st.frames_in * ratio))
                            : std::numeric_limits<int64_t>::max();
  std::vector<float> out;
  std::vector<float> buf(static_cast<size_t>((static_cast<int64_t>(n_in * ratio) + 1024) * channels_));
  SRC_DATA d{};
  d.data_in = in.data_ptr<float>();
  d.input_frames = n_in;
  d.src_ratio = ratio;
  d.end_of_input = end ? 1 : 0;
  auto* s = static_cast<SRC_STATE*>(st.converter.get());
  for (;;) {
    d.data_out = buf.data();
    d.output_frames = static_cast<long>(buf.size() / channels_);
    const int err = src_process(s, &d);
    TORCH_CHECK(err == 0, "sepmech::Resampler: libsamplerate failed: ", src_strerror(err));
    int64_t keep = d.output_frames_gen;
    keep = std::min<int64_t>(keep, total - st.frames_out);
    out.insert(out.end(), buf.begin(), buf.begin() + keep * channels_);
    st.frames_out += keep;
    d.data_in += d.input_frames_used * channels_;
    d.input_frames -= d.input_frames_used;
    if (d.input_frames == 0 && d.output_frames_gen == 0) break;
    if (end && st.frames_out >= total) break;
  }
  if (end) {  // pad if the converter delivered fewer than round(n * ratio) frames
    while (st.frames_out < total) {
      out.insert(out.end(), channels_, 0.0f);
      ++st.frames_out;
    }
  }
  const int64_t m = static_cast<int64_t>(out.size()) / channels_;
  // clone(), not contiguous(): for one channel the transpose [1, m] is already "contiguous" and
  // contiguous() would return a view of `out`, freed on return.
  return torch::from_blob(out.data(), {m, channels_}, torch::kFloat32).t().clone(at::MemoryFormat::Contiguous);
}

torch::Tensor Resampler::step(const torch::Tensor& x, ResamplerState& st) const { return run(x, st, false); }

torch::Tensor Resampler::flush(ResamplerState& st) const {
  return run(torch::zeros({channels_, 0}, torch::kFloat32), st, true);
}

torch::Tensor resample(const torch::Tensor& x, int in_rate, int out_rate, ResampleQuality quality) {
  TORCH_CHECK(x.dim() == 2, "sepmech::resample: x must be [channels, frames], got shape ", x.sizes());
  Resampler r(in_rate, out_rate, static_cast<int>(x.size(0)), quality);
  ResamplerState st = r.init_state();
  torch::Tensor a = r.step(x, st);
  return torch::cat({a, r.flush(st)}, 1);
}

}  // namespace sepmech::audio
