// DFN3 front end (spec §3): ERB band layout, filter banks, the two feature normalisations and
// libDF's whole-signal analysis / synthesis.
#include <cmath>
#include <numeric>

#include "sepmech/audio/stft.h"
#include "sepmech/dfn3.h"
#include "kernels/shape.h"

namespace sepmech::dfn3 {

using torch::Tensor;

namespace {

float freq2erb(float f) { return 9.265f * std::log1p(f / (24.7f * 9.265f)); }
float erb2freq(float e) { return 24.7f * 9.265f * (std::exp(e / 9.265f) - 1.0f); }

// Shapes in messages: the library's one helper ("[2, 3]", "undefined").
std::string shape(const Tensor& t) { return kernels::shape_str(t); }

}  // namespace

std::vector<int64_t> erb_widths(int64_t sr, int64_t fft_size, int64_t nb_bands, int64_t min_nb_freqs) {
  TORCH_CHECK(sr > 0 && fft_size > 0 && nb_bands > 0 && min_nb_freqs > 0,
              "sepmech::dfn3::erb_widths: sr, fft_size, nb_bands and min_nb_freqs must be positive, got ", sr, ", ",
              fft_size, ", ", nb_bands, ", ", min_nb_freqs);
  const int64_t F = fft_size / 2 + 1;
  TORCH_CHECK(nb_bands * min_nb_freqs <= F, "sepmech::dfn3::erb_widths: nb_bands * min_nb_freqs must be <= ", F,
              ", got ", nb_bands * min_nb_freqs);
  // libDF's erb_fb, in float32 like the reference.
  const float nyq = static_cast<float>(sr) / 2.0f;
  const float freq_width = static_cast<float>(sr) / static_cast<float>(fft_size);
  const float erb_low = freq2erb(0.0f);
  const float erb_high = freq2erb(nyq);
  const float step = (erb_high - erb_low) / static_cast<float>(nb_bands);
  std::vector<int64_t> widths;
  int64_t prev = 0, over = 0;
  for (int64_t i = 1; i <= nb_bands; ++i) {
    const float f = erb2freq(erb_low + static_cast<float>(i) * step);
    const int64_t fb = static_cast<int64_t>(std::round(f / freq_width));  // half away from zero
    int64_t nb = fb - prev - over;
    if (nb < min_nb_freqs) {
      over = min_nb_freqs - nb;
      nb = min_nb_freqs;
    } else {
      over = 0;
    }
    widths.push_back(nb);
    prev = fb;
  }
  widths.back() += 1;  // the Nyquist bin
  const int64_t total = std::accumulate(widths.begin(), widths.end(), int64_t{0});
  if (total > F) widths.back() -= total - F;
  TORCH_CHECK(widths.back() > 0 && std::accumulate(widths.begin(), widths.end(), int64_t{0}) == F,
              "sepmech::dfn3::erb_widths: the bands do not cover the ", F, " bins (sr ", sr, ", fft_size ", fft_size,
              ", ", nb_bands, " bands)");
  return widths;
}

std::vector<int64_t> erb_widths(const DfNetOptions& o) {
  return erb_widths(o.sr(), o.fft_size(), o.nb_erb(), o.min_nb_erb_freqs());
}

Tensor erb_filter_bank(const std::vector<int64_t>& widths) {
  const int64_t F = std::accumulate(widths.begin(), widths.end(), int64_t{0});
  Tensor fb = torch::zeros({F, static_cast<int64_t>(widths.size())});
  int64_t k = 0;
  for (size_t b = 0; b < widths.size(); ++b) {
    fb.narrow(0, k, widths[b]).select(1, static_cast<int64_t>(b)).fill_(1.0 / static_cast<double>(widths[b]));
    k += widths[b];
  }
  return fb;
}

Tensor erb_inverse_filter_bank(const std::vector<int64_t>& widths) {
  const int64_t F = std::accumulate(widths.begin(), widths.end(), int64_t{0});
  Tensor fb = torch::zeros({static_cast<int64_t>(widths.size()), F});
  int64_t k = 0;
  for (size_t b = 0; b < widths.size(); ++b) {
    fb.select(0, static_cast<int64_t>(b)).narrow(0, k, widths[b]).fill_(1.0);
    k += widths[b];
  }
  return fb;
}

Tensor erb_norm_init(int64_t bands) { return torch::linspace(-60.0, -90.0, bands, torch::kFloat32); }
Tensor unit_norm_init(int64_t bins) { return torch::linspace(0.001, 0.0001, bins, torch::kFloat32); }

Tensor erb_db(const Tensor& spec, const Tensor& fb) {
  TORCH_CHECK(spec.defined() && spec.is_complex() && spec.dim() >= 1,
              "sepmech::dfn3::erb_db: spec must be a complex tensor [..., F], got ", shape(spec));
  TORCH_CHECK(fb.defined() && fb.dim() == 2 && fb.size(0) == spec.size(-1),
              "sepmech::dfn3::erb_db: fb must be [F, bands] with F = ", spec.size(-1), ", got ", shape(fb));
  const Tensor re = torch::view_as_real(spec);
  const Tensor power = re.select(-1, 0).square() + re.select(-1, 1).square();
  return torch::log10(torch::matmul(power, fb.to(power.scalar_type())) + 1e-10) * 10.0;
}

Tensor erb_norm(const Tensor& db, Tensor& state, double alpha) {
  TORCH_CHECK(db.defined() && db.dim() == 3 && !db.is_complex(),
              "sepmech::dfn3::erb_norm: db must be real [B, T, bands], got ", shape(db));
  TORCH_CHECK(state.defined() && state.dim() == 2 && state.size(0) == db.size(0) && state.size(1) == db.size(2),
              "sepmech::dfn3::erb_norm: state must be [B, bands] = [", db.size(0), ", ", db.size(2), "], got ",
              shape(state));
  TORCH_CHECK(alpha > 0 && alpha < 1, "sepmech::dfn3::erb_norm: alpha must be in (0, 1), got ", alpha);
  std::vector<Tensor> out;
  out.reserve(static_cast<size_t>(db.size(1)));
  Tensor s = state;
  for (int64_t t = 0; t < db.size(1); ++t) {
    const Tensor e = db.select(1, t);
    s = e * (1.0 - alpha) + s * alpha;
    out.push_back((e - s) / 40.0);
  }
  state = s;
  return torch::stack(out, 1);
}

Tensor unit_norm(const Tensor& spec, Tensor& state, double alpha) {
  TORCH_CHECK(spec.defined() && spec.dim() == 3 && spec.is_complex(),
              "sepmech::dfn3::unit_norm: spec must be complex [B, T, bins], got ", shape(spec));
  TORCH_CHECK(state.defined() && state.dim() == 2 && state.size(0) == spec.size(0) && state.size(1) == spec.size(2),
              "sepmech::dfn3::unit_norm: state must be [B, bins] = [", spec.size(0), ", ", spec.size(2), "], got ",
              shape(state));
  TORCH_CHECK(alpha > 0 && alpha < 1, "sepmech::dfn3::unit_norm: alpha must be in (0, 1), got ", alpha);
  std::vector<Tensor> out;
  out.reserve(static_cast<size_t>(spec.size(1)));
  Tensor u = state;
  for (int64_t t = 0; t < spec.size(1); ++t) {
    const Tensor x = spec.select(1, t);
    u = x.abs() * (1.0 - alpha) + u * alpha;
    out.push_back(x / u.sqrt());
  }
  state = u;
  return torch::stack(out, 1);
}

Tensor analysis(const Tensor& audio, const DfNetOptions& options) {
  TORCH_CHECK(audio.defined() && audio.dim() == 2 && audio.scalar_type() == torch::kFloat32,
              "sepmech::dfn3::analysis: audio must be float32 [C, n], got ", shape(audio),
              audio.defined() ? std::string(" ") + c10::toString(audio.scalar_type()) : std::string());
  const int64_t H = options.hop_size();
  const int64_t T = audio.size(1) / H;
  TORCH_CHECK(T >= 1, "sepmech::dfn3::analysis: audio must hold at least one hop (", H, " samples), got ",
              audio.size(1));
  // libDF's transform is the STFT's DeepFilterNet preset, at the model's frame sizes.
  const StftOptions so = StftOptions::deepfilternet().n_fft(options.fft_size()).hop(H);
  // Causal framing: frame t covers [tH - (N - H), tH + H); pyDF keeps the complete hops only.
  return stft(audio, so).narrow(-1, 0, T).transpose(1, 2);
}

Tensor synthesis(const Tensor& spec, const DfNetOptions& options) {
  TORCH_CHECK(spec.defined() && spec.dim() == 3 && spec.is_complex() && spec.size(2) == options.freq_bins(),
              "sepmech::dfn3::synthesis: spec must be complex [C, T, ", options.freq_bins(), "], got ", shape(spec));
  const int64_t N = options.fft_size(), H = options.hop_size();
  TORCH_CHECK(N == 2 * H, "sepmech::dfn3::synthesis: fft_size must be 2 hop_size");
  const Tensor w = make_window(WindowKind::vorbis, N, torch::kFloat32);
  // libDF: y = unnormalised irfft (no 1/N) times the window; hop t = y_t[:H] + y_{t-1}[H:].
  const Tensor y = torch::fft::irfft(spec, N, -1) * (w * static_cast<double>(N));  // [C, T, N]
  const Tensor tail = torch::constant_pad_nd(y.narrow(2, H, H), {0, 0, 1, -1});
  return (y.narrow(2, 0, H) + tail).reshape({spec.size(0), spec.size(1) * H});
}

Features features(const Tensor& audio_in, const DfNetOptions& options) {
  TORCH_CHECK(audio_in.defined() && (audio_in.dim() == 1 || audio_in.dim() == 2),
              "sepmech::dfn3::features: audio must be [C, n] or [n], got ", shape(audio_in));
  const Tensor audio = audio_in.dim() == 1 ? audio_in.unsqueeze(0) : audio_in;
  const int64_t C = audio.size(0);
  const double alpha = options.alpha();
  Features f;
  const Tensor X = analysis(audio, options);  // [C, T, F]
  const Tensor fb = erb_filter_bank(erb_widths(options));
  f.erb_db = erb_db(X, fb);
  Tensor s = erb_norm_init(options.nb_erb()).unsqueeze(0).repeat({C, 1});
  f.feat_erb = erb_norm(f.erb_db, s, alpha).unsqueeze(1);
  Tensor u = unit_norm_init(options.nb_df()).unsqueeze(0).repeat({C, 1});
  f.feat_spec = torch::view_as_real(unit_norm(X.narrow(2, 0, options.nb_df()), u, alpha)).unsqueeze(1);
  f.spec = torch::view_as_real(X).unsqueeze(1);
  return f;
}

}  // namespace sepmech::dfn3
