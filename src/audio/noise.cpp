// Built-in speech, generated noise and mixing at an SNR (include/sepmech/audio/noise.h).
#include "sepmech/audio/noise.h"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include <torch/torch.h>

#include "sepmech/audio/resample.h"

namespace sepmech::audio {
namespace {

namespace fs = std::filesystem;

constexpr double kRms = 0.1;
const char* const kInstallHint = "the built-in speech comes with alsa-utils: apt-get install alsa-utils";

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

// SplitMix64 (seeding) and xoshiro256** (Blackman & Vigna): fixed, portable sequences.
uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& w : s_) w = splitmix64(seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in (0, 1).
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  /// Standard normal pairs by Box-Muller.
  void normal_pair(double& a, double& b) {
    const double r = std::sqrt(-2.0 * std::log(uniform())), th = 2.0 * M_PI * uniform();
    a = r * std::cos(th);
    b = r * std::sin(th);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

torch::Tensor gaussian(int64_t n, uint64_t seed) {
  torch::Tensor t = torch::empty({n}, torch::kFloat64);
  double* p = t.data_ptr<double>();
  Rng rng(seed);
  for (int64_t i = 0; i < n; i += 2) {
    double a, b;
    rng.normal_pair(a, b);
    p[i] = a;
    if (i + 1 < n) p[i + 1] = b;
  }
  return t;
}

torch::Tensor to_rms(torch::Tensor x, double rms) {
  const double r = std::sqrt(x.square().mean().item<double>());
  if (r > 0.0) x = x * (rms / r);
  return x.to(torch::kFloat32);
}

// Gaussian noise with power spectral density ~ f^-exponent (exponent 0 white, 1 pink, 2 brown):
// the spectrum of white noise multiplied by f^(-exponent/2) (DC removed) over the whole length.
torch::Tensor coloured(int64_t n, uint64_t seed, double exponent) {
  torch::Tensor w = gaussian(n, seed);
  if (exponent == 0.0 || n < 4) return to_rms(w, kRms);
  torch::Tensor X = torch::fft::rfft(w);
  const int64_t bins = X.size(0);
  torch::Tensor k = torch::arange(bins, torch::kFloat64);
  torch::Tensor gain = torch::pow(k.clamp_min(1.0), -exponent / 2.0);
  gain[0] = 0.0;
  return to_rms(torch::fft::irfft(X * gain, n), kRms);
}

torch::Tensor hum(int64_t n, const NoiseOptions& o) {
  torch::Tensor t = torch::arange(n, torch::kFloat64) / static_cast<double>(o.sample_rate());
  torch::Tensor y = torch::zeros({n}, torch::kFloat64);
  Rng rng(o.seed());
  int used = 0;
  for (int k = 1; k <= o.hum_harmonics(); ++k) {
    const double f = k * o.hum_frequency();
    const double phase = 2.0 * M_PI * rng.uniform();
    if (f >= o.sample_rate() / 2.0) break;
    y += torch::sin(t * (2.0 * M_PI * f) + phase) / static_cast<double>(k);
    ++used;
  }
  if (used == 0)
    bad("hum: the fundamental " + std::to_string(o.hum_frequency()) + " Hz must be below Nyquist (" +
        std::to_string(o.sample_rate() / 2) + " Hz)");
  return to_rms(y, kRms);
}

// Mono float64 [n] of a file at `rate`.
torch::Tensor mono_at(const Audio& a, int rate) {
  torch::Tensor x = a.samples.to(torch::kFloat32).mean(0, true);
  if (a.sample_rate != rate) x = resample(x, a.sample_rate, rate);
  return x[0].to(torch::kFloat64);
}

torch::Tensor babble(int64_t n, const NoiseOptions& o) {
  const auto files = babble_sources(o.speech_dir());
  std::vector<torch::Tensor> talkers;
  for (const auto& f : files) talkers.push_back(mono_at(read_audio(f), o.sample_rate()));
  Rng rng(o.seed());
  torch::Tensor y = torch::zeros({n}, torch::kFloat64);
  for (int k = 0; k < o.babble_talkers(); ++k) {
    torch::Tensor s = talkers[static_cast<size_t>(k) % talkers.size()];
    const double r = std::sqrt(s.square().mean().item<double>());
    if (r > 0.0) s = s / r;  // equal loudness
    torch::Tensor looped = fit_length(s, n + s.size(0));
    const int64_t shift = static_cast<int64_t>(rng.uniform() * static_cast<double>(s.size(0)));
    y += looped.narrow(0, shift, n);
  }
  return to_rms(y, kRms);
}

}  // namespace

std::string to_string(NoiseKind k) {
  switch (k) {
    case NoiseKind::white: return "white";
    case NoiseKind::pink: return "pink";
    case NoiseKind::brown: return "brown";
    case NoiseKind::babble: return "babble";
    case NoiseKind::hum: return "hum";
  }
  return "?";
}

bool is_noise_kind(const std::string& s) {
  for (NoiseKind k : {NoiseKind::white, NoiseKind::pink, NoiseKind::brown, NoiseKind::babble, NoiseKind::hum})
    if (to_string(k) == s) return true;
  return false;
}

NoiseKind noise_kind_from_string(const std::string& s) {
  for (NoiseKind k : {NoiseKind::white, NoiseKind::pink, NoiseKind::brown, NoiseKind::babble, NoiseKind::hum})
    if (to_string(k) == s) return k;
  TORCH_CHECK(false, "sepmech::NoiseKind: name must be one of white, pink, brown, babble, hum, got '", s, "'");
}

void NoiseOptions::Validate() const {
  if (sample_rate() <= 0) bad("NoiseOptions: sample_rate must be > 0, got " + std::to_string(sample_rate()));
  if (!(hum_frequency() > 0.0) || !std::isfinite(hum_frequency()))
    bad("NoiseOptions: hum_frequency must be > 0, got " + std::to_string(hum_frequency()));
  if (hum_harmonics() < 1) bad("NoiseOptions: hum_harmonics must be >= 1, got " + std::to_string(hum_harmonics()));
  if (babble_talkers() < 1 || babble_talkers() > 256)
    bad("NoiseOptions: babble_talkers must be in [1, 256], got " + std::to_string(babble_talkers()));
}

torch::Tensor make_noise(NoiseKind kind, int64_t frames, const NoiseOptions& options) {
  options.Validate();
  if (frames < 1) bad("make_noise: frames must be >= 1, got " + std::to_string(frames));
  switch (kind) {
    case NoiseKind::white: return coloured(frames, options.seed(), 0.0);
    case NoiseKind::pink: return coloured(frames, options.seed(), 1.0);
    case NoiseKind::brown: return coloured(frames, options.seed(), 2.0);
    case NoiseKind::babble: return babble(frames, options);
    case NoiseKind::hum: return hum(frames, options);
  }
  bad("make_noise: unknown kind");
}

std::string builtin_speech_path() { return "/usr/share/sounds/alsa/Front_Center.wav"; }

Audio builtin_speech() {
  const std::string p = builtin_speech_path();
  if (!fs::exists(p)) throw AudioError(p, std::string("no such file; ") + kInstallHint);
  return read_audio(p);
}

std::vector<std::string> babble_sources(const std::string& speech_dir) {
  static const char* const kNames[] = {"Front_Left", "Front_Right", "Rear_Center", "Rear_Left",
                                       "Rear_Right", "Side_Left",   "Side_Right"};
  std::vector<std::string> out;
  for (const char* n : kNames) {
    fs::path p = fs::path(speech_dir) / (std::string(n) + ".wav");
    if (fs::exists(p)) out.push_back(p.string());
  }
  if (out.empty())
    throw AudioError(speech_dir, std::string("no voice prompts (Front_Left.wav ...) for babble noise; ") + kInstallHint);
  return out;
}

torch::Tensor fit_length(const torch::Tensor& noise, int64_t frames) {
  if (!noise.defined() || noise.dim() != 1 || noise.numel() == 0)
    bad("fit_length: noise must be a non-empty 1-D tensor, got " +
        (noise.defined() ? c10::str(noise.sizes()) : std::string("an undefined tensor")));
  if (frames < 1) bad("fit_length: frames must be >= 1, got " + std::to_string(frames));
  const int64_t n = noise.size(0);
  if (n >= frames) return noise.narrow(0, 0, frames);
  const int64_t reps = (frames + n - 1) / n;
  return noise.repeat({reps}).narrow(0, 0, frames);
}

double mean_power(const torch::Tensor& x) {
  if (!x.defined() || x.numel() == 0) bad("mean_power: the signal must be non-empty");
  return x.detach().to(torch::kCPU, torch::kFloat64).square().mean().item<double>();
}

Mixture mix_at_snr(const torch::Tensor& clean, const torch::Tensor& noise, double snr_db, double peak) {
  if (!std::isfinite(snr_db)) bad("mix_at_snr: snr must be a finite number of dB, got " + std::to_string(snr_db));
  if (!(peak > 0.0 && peak <= 1.0)) bad("mix_at_snr: peak must be in (0, 1], got " + std::to_string(peak));
  if (!clean.defined() || clean.dim() != 1 || clean.numel() == 0)
    bad("mix_at_snr: clean must be a non-empty 1-D tensor, got " +
        (clean.defined() ? c10::str(clean.sizes()) : std::string("an undefined tensor")));
  torch::Tensor c = clean.detach().to(torch::kCPU, torch::kFloat64);
  torch::Tensor nz = fit_length(noise.detach().to(torch::kCPU, torch::kFloat64), c.size(0));
  if (!torch::isfinite(c).all().item<bool>()) bad("mix_at_snr: clean must be finite (it holds NaN or inf)");
  if (!torch::isfinite(nz).all().item<bool>()) bad("mix_at_snr: noise must be finite (it holds NaN or inf)");
  const double ps = c.square().mean().item<double>(), pn = nz.square().mean().item<double>();
  if (!(ps > 0.0)) bad("mix_at_snr: clean is silent (all samples 0): no SNR can be set");
  if (!(pn > 0.0)) bad("mix_at_snr: noise is silent (all samples 0): no SNR can be set");
  Mixture m;
  m.noise_gain = std::sqrt(ps / (pn * std::pow(10.0, snr_db / 10.0)));
  torch::Tensor scaled = nz * m.noise_gain;
  torch::Tensor noisy = c + scaled;
  const double top = noisy.abs().max().item<double>();
  if (top > peak) m.headroom = peak / top;
  m.clean = (c * m.headroom).to(torch::kFloat32);
  m.noise = (scaled * m.headroom).to(torch::kFloat32);
  m.noisy = (noisy * m.headroom).to(torch::kFloat32);
  return m;
}

}  // namespace sepmech::audio
