#include "sepmech/audio/stft.h"

#include <cmath>
#include <complex>
#include <cstring>
#include <ostream>
#include <sstream>

#include <torch/torch.h>
#include "kernels/shape.h"

namespace sepmech {

using torch::Tensor;
namespace F = torch::nn::functional;

namespace {

constexpr double kPi = 3.14159265358979323846;

std::vector<double> window_f64(WindowKind kind, int64_t n) {
  std::vector<double> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double hann = 0.5 - 0.5 * std::cos(2.0 * kPi * static_cast<double>(i) / static_cast<double>(n));
    switch (kind) {
      case WindowKind::hann: w[i] = hann; break;
      case WindowKind::sqrt_hann: w[i] = std::sqrt(hann); break;
      case WindowKind::vorbis: {
        const double s = std::sin(kPi * (static_cast<double>(i) + 0.5) / static_cast<double>(n));
        w[i] = std::sin(0.5 * kPi * s * s);
        break;
      }
    }
  }
  return w;
}

// sum_m w^2[j + m hop] for j < hop: the overlap-add envelope of analysis * synthesis windows
// away from the signal ends.
std::vector<double> steady_envelope(const std::vector<double>& w, int64_t hop) {
  std::vector<double> env(static_cast<size_t>(hop), 0.0);
  for (size_t i = 0; i < w.size(); ++i) env[i % hop] += w[i] * w[i];
  return env;
}

double analysis_scale(const StftOptions& o) {
  const double n = static_cast<double>(o.n_fft());
  switch (o.norm()) {
    case StftNorm::none: return 1.0;
    case StftNorm::ortho: return 1.0 / std::sqrt(n);
    case StftNorm::libdf: return 2.0 * static_cast<double>(o.hop()) / (n * n);
  }
  return 1.0;
}

// Factor on the unnormalised inverse DFT (sum_k X_k e^{+2 pi i k n / N}, no 1/N).
double synthesis_scale(const StftOptions& o) {
  const double n = static_cast<double>(o.n_fft());
  switch (o.norm()) {
    case StftNorm::none: return 1.0 / n;
    case StftNorm::ortho: return 1.0 / std::sqrt(n);
    case StftNorm::libdf: return 1.0;
  }
  return 1.0;
}

bool divides_envelope(const StftOptions& o) { return o.norm() != StftNorm::libdf; }

std::string dtype_name(const Tensor& t) { return std::string(c10::toString(t.scalar_type())); }

// "[2, 480]" or "undefined", for messages (the library's one shape helper).
std::string describe(const Tensor& t) { return kernels::shape_str(t); }

bool centred(const StftOptions& o) { return o.framing() != StftFraming::causal; }

Tensor checked_window(const Tensor& window, const StftOptions& o, torch::Dtype dtype, const char* who) {
  if (!window.defined()) return make_window(o.window(), o.n_fft(), dtype);
  TORCH_CHECK(window.dim() == 1 && window.size(0) == o.n_fft(), "sepmech::", who,
              ": window must be [n_fft] = [", o.n_fft(), "], got ", window.sizes());
  TORCH_CHECK(window.is_floating_point(), "sepmech::", who, ": window must be a floating tensor, got ",
              dtype_name(window));
  return window.to(dtype);
}

}  // namespace

std::string to_string(WindowKind kind) {
  switch (kind) {
    case WindowKind::hann: return "hann";
    case WindowKind::sqrt_hann: return "sqrt_hann";
    case WindowKind::vorbis: return "vorbis";
  }
  return "unknown";
}

WindowKind window_kind_from_string(const std::string& name) {
  for (WindowKind k : {WindowKind::hann, WindowKind::sqrt_hann, WindowKind::vorbis})
    if (to_string(k) == name) return k;
  TORCH_CHECK(false, "sepmech::WindowKind: name must be one of hann, sqrt_hann, vorbis, got '", name, "'");
}

std::string to_string(StftFraming framing) {
  switch (framing) {
    case StftFraming::center_reflect: return "center_reflect";
    case StftFraming::center_zero: return "center_zero";
    case StftFraming::causal: return "causal";
  }
  return "unknown";
}

StftFraming stft_framing_from_string(const std::string& name) {
  for (StftFraming f : {StftFraming::center_reflect, StftFraming::center_zero, StftFraming::causal})
    if (to_string(f) == name) return f;
  TORCH_CHECK(false, "sepmech::StftFraming: name must be one of center_reflect, center_zero, causal, got '", name,
              "'");
}

std::string to_string(StftNorm norm) {
  switch (norm) {
    case StftNorm::none: return "none";
    case StftNorm::ortho: return "ortho";
    case StftNorm::libdf: return "libdf";
  }
  return "unknown";
}

StftNorm stft_norm_from_string(const std::string& name) {
  for (StftNorm n : {StftNorm::none, StftNorm::ortho, StftNorm::libdf})
    if (to_string(n) == name) return n;
  TORCH_CHECK(false, "sepmech::StftNorm: name must be one of none, ortho, libdf, got '", name, "'");
}

Tensor make_window(WindowKind kind, int64_t n, torch::Dtype dtype) {
  TORCH_CHECK(n > 0, "sepmech::make_window: n must be > 0, got ", n);
  TORCH_CHECK(c10::isFloatingType(dtype), "sepmech::make_window: dtype must be a floating type, got ",
              c10::toString(dtype));
  std::vector<double> w = window_f64(kind, n);
  // copy=true: for dtype float64 a plain .to() would return the blob itself, dangling once w dies.
  return torch::from_blob(w.data(), {n}, torch::kFloat64).to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

StftOptions StftOptions::sgmse() {
  return StftOptions().n_fft(510).hop(128).window(WindowKind::hann).framing(StftFraming::center_reflect).norm(
      StftNorm::none);
}

StftOptions StftOptions::sgmse_48k() { return sgmse().n_fft(1534).hop(384); }

StftOptions StftOptions::deepfilternet() {
  return StftOptions().n_fft(960).hop(480).window(WindowKind::vorbis).framing(StftFraming::causal).norm(
      StftNorm::libdf);
}

void StftOptions::Validate() const {
  TORCH_CHECK(n_fft() > 0, "sepmech::StftOptions: n_fft must be > 0, got ", n_fft());
  TORCH_CHECK(hop() > 0 && hop() <= n_fft(), "sepmech::StftOptions: hop must be in [1, n_fft = ", n_fft(), "], got ",
              hop());
  // Centred, the last of T = num_frames(n) frames ends at sample (T - 1) hop + n_fft - 1 - n_fft / 2;
  // that reaches sample n - 1 for every n only if hop <= n_fft / 2 + 1.
  TORCH_CHECK(!centred(*this) || hop() <= n_fft() / 2 + 1, "sepmech::StftOptions: hop must be <= n_fft / 2 + 1 = ",
              n_fft() / 2 + 1, " for framing ", to_string(framing()),
              " (later frames would miss the last samples), got ", hop(), "; use framing causal");
  const std::vector<double> env = steady_envelope(window_f64(window(), n_fft()), hop());
  if (divides_envelope(*this)) {
    double lo = env[0];
    for (double e : env) lo = std::min(lo, e);
    TORCH_CHECK(lo > 1e-11, "sepmech::StftOptions: the window envelope sum_k w^2 must be nonzero everywhere (NOLA) for ",
                ToString(), ", got minimum ", lo);
  } else {
    const double target = static_cast<double>(n_fft()) / (2.0 * static_cast<double>(hop()));
    double worst = 0.0;
    for (double e : env) worst = std::max(worst, std::abs(e - target));
    TORCH_CHECK(worst <= 1e-6 * target,
                "sepmech::StftOptions: norm libdf needs sum_k w^2 == n_fft / (2 hop) = ", target,
                " (perfect reconstruction without envelope division, e.g. vorbis or sqrt_hann at hop n_fft/2) for ",
                ToString(), ", got a deviation of ", worst);
  }
}

std::string StftOptions::ToString() const {
  std::ostringstream s;
  s << "StftOptions(n_fft=" << n_fft() << ", hop=" << hop() << ", window=" << to_string(window())
    << ", framing=" << to_string(framing()) << ", norm=" << to_string(norm()) << ")";
  return s.str();
}

int64_t StftOptions::num_frames(int64_t n) const {
  if (framing() == StftFraming::causal) return (n + n_fft() - hop() + hop() - 1) / hop();
  return 1 + (n + 2 * (n_fft() / 2) - n_fft()) / hop();
}

int64_t StftOptions::left_pad() const {
  return framing() == StftFraming::causal ? n_fft() - hop() : n_fft() / 2;
}

// ---------------------------------------------------------------------------------------------
// Offline
// ---------------------------------------------------------------------------------------------

Tensor stft(const Tensor& x, const StftOptions& options, const Tensor& window) {
  options.Validate();
  TORCH_CHECK(x.defined() && (x.dim() == 1 || x.dim() == 2), "sepmech::stft: x must be [C, n] or [n], got ",
              describe(x));
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64,
              "sepmech::stft: x must be float32 or float64, got ", dtype_name(x));
  const int64_t n = x.size(-1);
  const int64_t N = options.n_fft(), H = options.hop();
  TORCH_CHECK(n > 0, "sepmech::stft: x must have at least 1 sample, got ", n);
  const Tensor w = checked_window(window, options, x.scalar_type(), "stft");
  const Tensor xc = x.dim() == 1 ? x.unsqueeze(0) : x;  // [C, n]

  Tensor padded;
  const int64_t left = options.left_pad();
  switch (options.framing()) {
    case StftFraming::center_reflect:
      TORCH_CHECK(n > left, "sepmech::stft: x must have more than n_fft / 2 = ", left,
                  " samples for reflect padding, got ", n);
      padded = F::pad(xc.unsqueeze(0), F::PadFuncOptions({left, left}).mode(torch::kReflect)).squeeze(0);
      break;
    case StftFraming::center_zero:
      padded = F::pad(xc, F::PadFuncOptions({left, left}));
      break;
    case StftFraming::causal: {
      const int64_t frames = options.num_frames(n);
      padded = F::pad(xc, F::PadFuncOptions({left, (frames - 1) * H + N - left - n}));
      break;
    }
  }
  const Tensor frames = padded.unfold(-1, N, H) * w;  // [C, T, N]
  Tensor spec = torch::fft::rfft(frames, N, -1).transpose(-1, -2);  // [C, F, T]
  const double a = analysis_scale(options);
  if (a != 1.0) spec = spec * a;
  return x.dim() == 1 ? spec.squeeze(0) : spec;
}

Tensor istft(const Tensor& spec, int64_t length, const StftOptions& options, const Tensor& window) {
  options.Validate();
  TORCH_CHECK(spec.defined() && (spec.dim() == 2 || spec.dim() == 3),
              "sepmech::istft: spec must be [C, F, T] or [F, T], got ", describe(spec));
  TORCH_CHECK(spec.is_complex(), "sepmech::istft: spec must be complex64 or complex128, got ", dtype_name(spec));
  const int64_t N = options.n_fft(), H = options.hop();
  TORCH_CHECK(spec.size(-2) == options.freq_bins(), "sepmech::istft: spec bins must be n_fft / 2 + 1 = ",
              options.freq_bins(), ", got ", spec.size(-2));
  const int64_t T = spec.size(-1);
  TORCH_CHECK(T > 0, "sepmech::istft: spec must have at least 1 frame, got ", T);
  const int64_t padded_len = (T - 1) * H + N;
  const int64_t left = options.left_pad();
  TORCH_CHECK(length >= 0 && left + length <= padded_len, "sepmech::istft: length must be in [0, ",
              padded_len - left, "] for ", T, " frames, got ", length);
  const auto real_dtype = spec.scalar_type() == torch::kComplexDouble ? torch::kFloat64 : torch::kFloat32;
  const Tensor w = checked_window(window, options, real_dtype, "istft");
  const Tensor sc = spec.dim() == 2 ? spec.unsqueeze(0) : spec;  // [C, F, T]

  // irfft carries 1/N; the synthesis scale is defined on the unnormalised inverse.
  const double s = synthesis_scale(options) * static_cast<double>(N);
  Tensor y = torch::fft::irfft(sc.transpose(-1, -2), N, -1) * (w * s);  // [C, T, N]
  const auto fold = F::FoldFuncOptions({1, padded_len}, {1, N}).stride({1, H});
  Tensor out = F::fold(y.transpose(-1, -2), fold).reshape({sc.size(0), padded_len});
  out = out.narrow(-1, left, length);
  // none/ortho divide by the envelope sum_k w^2. libdf's envelope is n_fft / (2 hop) wherever all
  // frames are present, which causal framing guarantees on the output; centred, the first and last
  // samples lie under fewer frames, so there it divides by (2 hop / n_fft) sum_k w^2 (1 elsewhere).
  if (divides_envelope(options) || centred(options)) {
    Tensor env = F::fold((w * w).reshape({1, N, 1}).expand({1, N, T}), fold).reshape({padded_len});
    env = env.narrow(0, left, length);
    if (!divides_envelope(options)) env = env * (2.0 * static_cast<double>(H) / static_cast<double>(N));
    if (length > 0) {
      const double lo = env.min().item<double>();
      TORCH_CHECK(lo > 1e-11, "sepmech::istft: the window envelope must be nonzero on the output (NOLA), got ",
                  lo, " (too few frames for the length?)");
    }
    out = out / env;
  }
  return spec.dim() == 2 ? out.squeeze(0) : out;
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

namespace {

void fill_twiddles(int64_t n, std::vector<double>& c, std::vector<double>& s) {
  c.resize(static_cast<size_t>(n));
  s.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double phi = 2.0 * kPi * static_cast<double>(i) / static_cast<double>(n);
    c[i] = std::cos(phi);
    s[i] = std::sin(phi);
  }
}

Tensor window_buffer(const std::vector<double>& w) {
  return torch::from_blob(const_cast<double*>(w.data()), {static_cast<int64_t>(w.size())}, torch::kFloat64)
      .to(torch::kFloat32);
}

// What both streaming halves derive from their options in reset(): validation of the causal framing
// they use, the float64 window, the twiddles, and the float32 `window` buffer. The buffer is
// registered once and updated in place by later resets (Cloneable::clone clears the buffers of the
// copy before calling reset, so a clone registers its own).
void prepare_streaming(torch::nn::Module& module, const StftOptions& o, std::vector<double>& window,
                       std::vector<double>& cos_table, std::vector<double>& sin_table, Tensor& buffer) {
  StftOptions(o).framing(StftFraming::causal).Validate();
  window = window_f64(o.window(), o.n_fft());
  fill_twiddles(o.n_fft(), cos_table, sin_table);
  Tensor w = window_buffer(window);
  if (module.named_buffers(/*recurse=*/false).contains("window"))
    buffer.set_(w);
  else
    buffer = module.register_buffer("window", std::move(w));
}

// The zero memory [batch, n_fft - hop] of either streaming state.
Tensor zero_memory(const char* who, const StftOptions& o, int64_t batch) {
  TORCH_CHECK(batch > 0, "sepmech::", who, ": batch must be > 0, got ", batch);
  return torch::zeros({batch, o.n_fft() - o.hop()}, torch::kFloat32);
}

}  // namespace

StreamingStftImpl::StreamingStftImpl(StftOptions options_) : options(std::move(options_)) { reset(); }

void StreamingStftImpl::reset() {
  prepare_streaming(*this, options, window_, cos_, sin_, window);
  scale_ = analysis_scale(options);
}

void StreamingStftImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::StreamingStft(" << options.ToString() << ", delay=" << delay() << ")";
}

StreamingStftState StreamingStftImpl::init_state(int64_t batch) const {
  return {zero_memory("StreamingStft", options, batch), 0};
}

Tensor StreamingStftImpl::step(const Tensor& x, StreamingStftState& state) const {
  TORCH_CHECK(x.defined() && x.dim() == 2, "sepmech::StreamingStft: x must be [B, hop], got ", describe(x));
  Tensor out = torch::empty({x.size(0), options.freq_bins()}, torch::kComplexFloat);
  step_into(x.contiguous(), state, out);
  return out;
}

void StreamingStftImpl::step_into(const Tensor& x, StreamingStftState& state, Tensor& out) const {
  const int64_t N = options.n_fft(), H = options.hop(), M = N - H, Fb = options.freq_bins();
  TORCH_CHECK(x.defined() && x.dim() == 2 && x.size(1) == H, "sepmech::StreamingStft: x must be [B, hop = ", H,
              "], got ", describe(x));
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, "sepmech::StreamingStft: x must be float32, got ", dtype_name(x));
  TORCH_CHECK(x.is_contiguous() && x.device().is_cpu(), "sepmech::StreamingStft: x must be a contiguous CPU tensor");
  const int64_t B = x.size(0);
  TORCH_CHECK(state.memory.defined() && state.memory.dim() == 2 && state.memory.size(1) == M &&
                  state.memory.scalar_type() == torch::kFloat32 && state.memory.is_contiguous(),
              "sepmech::StreamingStft: state must come from init_state() of this module (memory [B, ", M,
              "] float32)");
  TORCH_CHECK(state.batch() == B, "sepmech::StreamingStft: state batch must equal x batch = ", B, ", got ",
              state.batch());
  TORCH_CHECK(out.defined() && out.dim() == 2 && out.size(0) == B && out.size(1) == Fb &&
                  out.scalar_type() == torch::kComplexFloat && out.is_contiguous(),
              "sepmech::StreamingStft: out must be contiguous complex64 [", B, ", ", Fb, "], got ",
              out.defined() ? c10::str(out.sizes(), " ", dtype_name(out)) : std::string("an undefined tensor"));

  const float* xp = x.data_ptr<float>();
  float* mp = state.memory.data_ptr<float>();
  auto* op = reinterpret_cast<std::complex<float>*>(out.data_ptr<c10::complex<float>>());
  const double* w = window_.data();
  for (int64_t b = 0; b < B; ++b) {
    const float* xb = xp + b * H;
    float* mb = mp + b * M;
    std::complex<float>* ob = op + b * Fb;
    // Frame sample i is memory[i] for i < M, x[i - M] after; X_k = sum_i w_i s_i e^{-2 pi i k i / N}.
    for (int64_t k = 0; k < Fb; ++k) {
      double re = 0.0, im = 0.0;
      int64_t idx = 0;  // (k * i) mod N
      for (int64_t i = 0; i < N; ++i) {
        const double v = w[i] * static_cast<double>(i < M ? mb[i] : xb[i - M]);
        re += v * cos_[idx];
        im -= v * sin_[idx];
        idx += k;
        if (idx >= N) idx -= N;
      }
      ob[k] = std::complex<float>(static_cast<float>(re * scale_), static_cast<float>(im * scale_));
    }
    // New memory = the last M samples of [memory, x].
    if (M > H) {
      std::memmove(mb, mb + H, static_cast<size_t>(M - H) * sizeof(float));
      std::memcpy(mb + (M - H), xb, static_cast<size_t>(H) * sizeof(float));
    } else if (M > 0) {
      std::memcpy(mb, xb + (H - M), static_cast<size_t>(M) * sizeof(float));
    }
  }
  ++state.frames;
}

StreamingIstftImpl::StreamingIstftImpl(StftOptions options_) : options(std::move(options_)) { reset(); }

void StreamingIstftImpl::reset() {
  prepare_streaming(*this, options, window_, cos_, sin_, window);
  scale_ = synthesis_scale(options);
  inv_envelope_ = steady_envelope(window_, options.hop());
  for (double& e : inv_envelope_) e = divides_envelope(options) ? 1.0 / e : 1.0;
}

void StreamingIstftImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::StreamingIstft(" << options.ToString() << ", delay=" << delay() << ")";
}

StreamingIstftState StreamingIstftImpl::init_state(int64_t batch) const {
  return {zero_memory("StreamingIstft", options, batch), 0};
}

Tensor StreamingIstftImpl::step(const Tensor& frame, StreamingIstftState& state) const {
  TORCH_CHECK(frame.defined() && frame.dim() == 2, "sepmech::StreamingIstft: frame must be [B, F], got ",
              describe(frame));
  Tensor out = torch::empty({frame.size(0), options.hop()}, torch::kFloat32);
  step_into(frame.contiguous(), state, out);
  return out;
}

void StreamingIstftImpl::step_into(const Tensor& frame, StreamingIstftState& state, Tensor& out) const {
  const int64_t N = options.n_fft(), H = options.hop(), M = N - H, Fb = options.freq_bins();
  TORCH_CHECK(frame.defined() && frame.dim() == 2 && frame.size(1) == Fb,
              "sepmech::StreamingIstft: frame must be [B, F = n_fft / 2 + 1 = ", Fb, "], got ", describe(frame));
  TORCH_CHECK(frame.scalar_type() == torch::kComplexFloat, "sepmech::StreamingIstft: frame must be complex64, got ",
              dtype_name(frame));
  TORCH_CHECK(frame.is_contiguous() && frame.device().is_cpu(),
              "sepmech::StreamingIstft: frame must be a contiguous CPU tensor");
  const int64_t B = frame.size(0);
  TORCH_CHECK(state.overlap.defined() && state.overlap.dim() == 2 && state.overlap.size(1) == M &&
                  state.overlap.scalar_type() == torch::kFloat32 && state.overlap.is_contiguous(),
              "sepmech::StreamingIstft: state must come from init_state() of this module (overlap [B, ", M,
              "] float32)");
  TORCH_CHECK(state.batch() == B, "sepmech::StreamingIstft: state batch must equal frame batch = ", B, ", got ",
              state.batch());
  TORCH_CHECK(out.defined() && out.dim() == 2 && out.size(0) == B && out.size(1) == H &&
                  out.scalar_type() == torch::kFloat32 && out.is_contiguous(),
              "sepmech::StreamingIstft: out must be contiguous float32 [", B, ", ", H, "], got ",
              out.defined() ? c10::str(out.sizes(), " ", dtype_name(out)) : std::string("an undefined tensor"));

  const auto* fp = reinterpret_cast<const std::complex<float>*>(frame.data_ptr<c10::complex<float>>());
  float* ovp = state.overlap.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const bool even = N % 2 == 0;
  // The bins counted twice (all but DC and, for even N, Nyquist); DC/Nyquist imaginary parts are ignored
  // like every real inverse FFT does.
  const int64_t last_pair = even ? Fb - 2 : Fb - 1;
  for (int64_t b = 0; b < B; ++b) {
    const std::complex<float>* X = fp + b * Fb;
    float* ov = ovp + b * M;
    float* ob = op + b * H;
    // y_i = scale * w_i * (Re X_0 + 2 sum_k (Re X_k cos - Im X_k sin)(2 pi k i / N) + Re X_{N/2} (-1)^i)
    auto sample = [&](int64_t i) {
      double acc = static_cast<double>(X[0].real());
      int64_t idx = i;  // (k * i) mod N for k = 1
      for (int64_t k = 1; k <= last_pair; ++k) {
        acc += 2.0 * (static_cast<double>(X[k].real()) * cos_[idx] - static_cast<double>(X[k].imag()) * sin_[idx]);
        idx += i;
        if (idx >= N) idx -= N;
      }
      if (even) acc += static_cast<double>(X[Fb - 1].real()) * ((i & 1) ? -1.0 : 1.0);
      return acc * scale_ * window_[i];
    };
    for (int64_t j = 0; j < H; ++j) {
      const double pending = j < M ? static_cast<double>(ov[j]) : 0.0;
      ob[j] = static_cast<float>((pending + sample(j)) * inv_envelope_[j]);
    }
    // Ascending i reads ov[i + H] before it is overwritten.
    for (int64_t i = 0; i < M; ++i) {
      const double pending = i + H < M ? static_cast<double>(ov[i + H]) : 0.0;
      ov[i] = static_cast<float>(pending + sample(i + H));
    }
  }
  ++state.frames;
}

}  // namespace sepmech
