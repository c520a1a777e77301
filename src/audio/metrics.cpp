// STOI / ESTOI / SI-SDR / SNR, following ../shared/spec/metrics.md (the pystoi reference).
#include "sepmech/audio/metrics.h"

#include <cmath>
#include <numeric>
#include <vector>

#include <torch/torch.h>
#include "kernels/shape.h"

namespace sepmech::audio {
namespace {

constexpr double kEps = 2.220446049250313e-16;  // numpy float64 eps, where pystoi adds it
constexpr int64_t kFs = 10000;
constexpr int64_t kFrame = 256;
constexpr int64_t kHop = 128;
constexpr int64_t kFft = 512;
constexpr int64_t kBands = 15;
constexpr double kMinFreq = 150.0;
constexpr int64_t kSegment = 30;
constexpr double kDynRange = 40.0;
constexpr double kBeta = -15.0;
constexpr double kTooShort = 1e-5;

using sepmech::kernels::shape_str;

// Validates one signal and returns it as a contiguous CPU float64 vector.
std::vector<double> as_doubles(const char* fn, const char* name, const torch::Tensor& t) {
  TORCH_CHECK(t.defined(), "sepmech::", fn, ": ", name, " must be a defined tensor, got an undefined tensor");
  TORCH_CHECK(t.dim() == 1, "sepmech::", fn, ": ", name, " must be a 1-D tensor, got shape ", shape_str(t));
  TORCH_CHECK(t.is_floating_point(), "sepmech::", fn, ": ", name, " must be a floating-point tensor, got dtype ",
              t.scalar_type());
  TORCH_CHECK(t.numel() > 0, "sepmech::", fn, ": ", name, " must be non-empty, got 0 samples");
  torch::Tensor d = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const double* p = d.data_ptr<double>();
  std::vector<double> v(p, p + d.numel());
  for (size_t i = 0; i < v.size(); ++i)
    TORCH_CHECK(std::isfinite(v[i]), "sepmech::", fn, ": ", name, " must be finite, got ", v[i], " at index ", i);
  return v;
}

std::pair<std::vector<double>, std::vector<double>> checked_pair(const char* fn, const torch::Tensor& clean,
                                                                 const torch::Tensor& estimate) {
  auto x = as_doubles(fn, "clean", clean);
  auto y = as_doubles(fn, "estimate", estimate);
  TORCH_CHECK(x.size() == y.size(), "sepmech::", fn, ": estimate must have the length of clean (", x.size(),
              "), got ", y.size());
  return {std::move(x), std::move(y)};
}

// np.kaiser(M, beta)[n]
double kaiser(int64_t n, int64_t m, double beta) {
  const double r = 2.0 * static_cast<double>(n) / static_cast<double>(m - 1) - 1.0;
  return std::cyl_bessel_i(0.0, beta * std::sqrt(std::max(0.0, 1.0 - r * r))) / std::cyl_bessel_i(0.0, beta);
}

double sinc(double t) {
  if (t == 0.0) return 1.0;
  const double a = M_PI * t;
  return std::sin(a) / a;
}

// resample_oct(x, 10000, fs): Octave's Kaiser low-pass, applied as scipy's resample_poly does
// (filter scaled by up, centred at L, zero padding, ceil(N up / down) outputs). Only the taps
// that land on input samples are summed, so the cost is ~(2L+1)/up per output.
std::vector<double> resample_to_10k(const std::vector<double>& x, int64_t fs) {
  if (fs == kFs) return x;
  const int64_t g = std::gcd(kFs, fs);
  const int64_t up = kFs / g, down = fs / g;
  const double fc = 1.0 / (2.0 * static_cast<double>(std::max(up, down)));
  const double roll_off = fc / 10.0;
  const int64_t L = static_cast<int64_t>(std::ceil((60.0 - 8.0) / (28.714 * roll_off)));
  const double beta = 0.1102 * (60.0 - 8.7);
  const int64_t taps = 2 * L + 1;
  std::vector<double> h(static_cast<size_t>(taps));
  double sum = 0.0;
  for (int64_t n = 0; n < taps; ++n) {
    h[n] = kaiser(n, taps, beta) * 2.0 * static_cast<double>(up) * fc * sinc(2.0 * fc * static_cast<double>(n - L));
    sum += h[n];
  }
  for (auto& v : h) v = v / sum * static_cast<double>(up);

  const int64_t n_in = static_cast<int64_t>(x.size());
  const int64_t n_out = (n_in * up + down - 1) / down;
  std::vector<double> y(static_cast<size_t>(n_out));
  auto floor_div = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  for (int64_t m = 0; m < n_out; ++m) {
    const int64_t c = L + m * down;  // h index for k = 0
    // need 0 <= c - k up <= 2L  =>  (c - 2L)/up <= k <= c/up
    int64_t k_lo = -floor_div(-(c - 2 * L), up);  // ceil
    int64_t k_hi = floor_div(c, up);
    k_lo = std::max<int64_t>(k_lo, 0);
    k_hi = std::min<int64_t>(k_hi, n_in - 1);
    double acc = 0.0;
    for (int64_t k = k_lo; k <= k_hi; ++k) acc += x[k] * h[c - k * up];
    y[m] = acc;
  }
  return y;
}

// MATLAB hanning(256) = np.hanning(258)[1:-1].
const std::vector<double>& stoi_window() {
  static const std::vector<double> w = [] {
    std::vector<double> v(kFrame);
    for (int64_t n = 0; n < kFrame; ++n) v[n] = 0.5 - 0.5 * std::cos(2.0 * M_PI * static_cast<double>(n + 1) / 257.0);
    return v;
  }();
  return w;
}

// Frame starts s = 0, hop, ... with s < len - 256 (pystoi's range(0, len - 256, hop)).
int64_t n_frames(int64_t len) { return len > kFrame ? (len - kFrame + kHop - 1) / kHop : 0; }

// remove_silent_frames: mask from clean only, overlap-add of the kept windowed frames.
void remove_silent_frames(std::vector<double>& x, std::vector<double>& y) {
  const auto& w = stoi_window();
  const int64_t nf = n_frames(static_cast<int64_t>(x.size()));
  std::vector<double> energy(static_cast<size_t>(nf));
  double max_e = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < nf; ++j) {
    double ss = 0.0;
    for (int64_t n = 0; n < kFrame; ++n) {
      const double v = w[n] * x[j * kHop + n];
      ss += v * v;
    }
    energy[j] = 20.0 * std::log10(std::sqrt(ss) + kEps);
    max_e = std::max(max_e, energy[j]);
  }
  std::vector<int64_t> kept;
  for (int64_t j = 0; j < nf; ++j)
    if (energy[j] > max_e - kDynRange) kept.push_back(j);
  const int64_t K = static_cast<int64_t>(kept.size());
  const int64_t len = K > 0 ? (K - 1) * kHop + kFrame : 0;
  std::vector<double> xo(static_cast<size_t>(len), 0.0), yo(static_cast<size_t>(len), 0.0);
  for (int64_t i = 0; i < K; ++i) {
    const int64_t src = kept[i] * kHop, dst = i * kHop;
    for (int64_t n = 0; n < kFrame; ++n) {
      xo[dst + n] += w[n] * x[src + n];
      yo[dst + n] += w[n] * y[src + n];
    }
  }
  x.swap(xo);
  y.swap(yo);
}

// thirdoct(10000, 512, 15, 150): nearest-bin edges, band i = bins [lo_i, hi_i).
std::vector<std::pair<int64_t, int64_t>> third_octave_bins() {
  const int64_t n_bins = kFft / 2 + 1;
  auto nearest = [&](double f) {
    int64_t best = 0;
    double best_d = std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < n_bins; ++k) {
      const double fk = static_cast<double>(k) * static_cast<double>(kFs) / static_cast<double>(kFft);
      const double d = (fk - f) * (fk - f);
      if (d < best_d) {
        best_d = d;
        best = k;
      }
    }
    return best;
  };
  std::vector<std::pair<int64_t, int64_t>> bands;
  for (int64_t i = 0; i < kBands; ++i) {
    const double lo = kMinFreq * std::pow(2.0, (2.0 * i - 1.0) / 6.0);
    const double hi = kMinFreq * std::pow(2.0, (2.0 * i + 1.0) / 6.0);
    bands.emplace_back(nearest(lo), nearest(hi));
  }
  return bands;
}

// Band envelopes [15, T] of the STFT (hop 128, window w, 512-point FFT, s < len - 256).
torch::Tensor band_envelopes(const std::vector<double>& s) {
  const int64_t T = n_frames(static_cast<int64_t>(s.size()));
  const auto& w = stoi_window();
  torch::Tensor frames = torch::zeros({T, kFrame}, torch::kFloat64);
  double* f = frames.data_ptr<double>();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < kFrame; ++n) f[t * kFrame + n] = w[n] * s[t * kHop + n];
  torch::Tensor power = torch::fft::rfft(frames, kFft, -1).abs().square();  // [T, 257]
  static const auto bands = third_octave_bins();
  torch::Tensor out = torch::empty({kBands, T}, torch::kFloat64);
  for (int64_t i = 0; i < kBands; ++i)
    out[i] = power.slice(1, bands[i].first, bands[i].second).sum(1).sqrt();
  return out;
}

double stoi_impl(const char* fn, const torch::Tensor& clean, const torch::Tensor& estimate, int64_t fs,
                 bool extended) {
  TORCH_CHECK(fs > 0, "sepmech::", fn, ": sample_rate must be > 0, got ", fs);
  auto [x, y] = checked_pair(fn, clean, estimate);
  x = resample_to_10k(x, fs);
  y = resample_to_10k(y, fs);
  remove_silent_frames(x, y);
  const int64_t T = n_frames(static_cast<int64_t>(x.size()));
  if (T < kSegment) return kTooShort;  // pystoi warns "Not enough STFT frames" and returns 1e-5

  // Segments [J, 15, 30]: frames m-30 .. m-1 for m = 30 .. T.
  torch::Tensor X = band_envelopes(x).unfold(1, kSegment, 1).permute({1, 0, 2}).contiguous();
  torch::Tensor Y = band_envelopes(y).unfold(1, kSegment, 1).permute({1, 0, 2}).contiguous();
  if (!extended) {
    torch::Tensor alpha = X.norm(2, -1, true) / (Y.norm(2, -1, true) + kEps);
    torch::Tensor yc = torch::minimum(alpha * Y, X * (1.0 + std::pow(10.0, -kBeta / 20.0)));
    torch::Tensor xn = X - X.mean(-1, true);
    torch::Tensor yn = yc - yc.mean(-1, true);
    xn = xn / (xn.norm(2, -1, true) + kEps);
    yn = yn / (yn.norm(2, -1, true) + kEps);
    return (xn * yn).sum(-1).mean().item<double>();
  }
  auto row_col_normalize = [](torch::Tensor s) {
    s = s - s.mean(-1, true);
    s = s / s.norm(2, -1, true);
    s = s - s.mean(-2, true);
    return s / s.norm(2, -2, true);
  };
  torch::Tensor xn = row_col_normalize(X), yn = row_col_normalize(Y);
  return ((xn * yn).sum({1, 2}) / static_cast<double>(kSegment)).mean().item<double>();
}

double ratio_db(double num, double den) {
  if (den == 0.0) return num == 0.0 ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(num / den);
}

}  // namespace

double stoi(const torch::Tensor& clean, const torch::Tensor& estimate, int64_t sample_rate) {
  return stoi_impl("stoi", clean, estimate, sample_rate, false);
}

double estoi(const torch::Tensor& clean, const torch::Tensor& estimate, int64_t sample_rate) {
  return stoi_impl("estoi", clean, estimate, sample_rate, true);
}

double si_sdr(const torch::Tensor& clean, const torch::Tensor& estimate) {
  auto [x, y] = checked_pair("si_sdr", clean, estimate);
  const double n = static_cast<double>(x.size());
  double mx = 0.0, my = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double er = 0.0, rr = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] -= mx;
    y[i] -= my;
    er += y[i] * x[i];
    rr += x[i] * x[i];
  }
  TORCH_CHECK(rr > 0.0, "sepmech::si_sdr: clean must not be constant (zero energy after mean removal), got all samples ",
              mx);
  const double a = er / rr;
  double target = 0.0, resid = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double t = a * x[i];
    const double e = y[i] - t;
    target += t * t;
    resid += e * e;
  }
  return ratio_db(target, resid);
}

double snr(const torch::Tensor& clean, const torch::Tensor& estimate) {
  auto [x, y] = checked_pair("snr", clean, estimate);
  double sig = 0.0, noise = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = y[i] - x[i];
    sig += x[i] * x[i];
    noise += d * d;
  }
  return ratio_db(sig, noise);
}

}  // namespace sepmech::audio
