// Forward SDEs (spec §2), the noise source, and the Gaussian oracle (spec §6).
#include "sepmech/diffusion/sde.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstring>
#include <mutex>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <set>
#include <sstream>

#include "diffusion/kernels.h"
#include "sepmech/diffusion/analytic.h"

namespace sepmech::diffusion {

namespace {

std::string shape_str(const Tensor& t) { return c10::str(t.sizes()); }

// A float32 0-dim tensor; double scalars meet float32 tensors rounded to float32, like the reference.
Tensor scalar_f32(double v) { return torch::tensor(static_cast<float>(v), torch::kFloat32); }

// [B] → [B, 1, 1, 1] (or to x.dim() dims).
Tensor bcast(const Tensor& v, int64_t dim) {
  std::vector<int64_t> shape(dim, 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}

// xoshiro256++ (Blackman & Vigna), seeded through splitmix64.
struct Xoshiro {
  uint64_t s[4];
  explicit Xoshiro(uint64_t seed) {
    for (auto& v : s) {
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      v = z ^ (z >> 31);
    }
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    const uint64_t result = rotl(s[0] + s[3], 23) + s[0];
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
  // Uniform in (0, 1): 53 random bits, never 0 (log() below needs that).
  double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
};

// Marsaglia & Tsang's ziggurat for the standard normal, 256 layers (~1.5% of the candidates
// take the slow path, against ~2.8% with 128). Each candidate is one 32-bit word w: the layer
// is w & 255 and the signed abscissa is w with those bits cleared (24 significant bits, the
// float mantissa), so index and abscissa come from disjoint bits.
struct Ziggurat {
  static constexpr int kLayers = 256;
  static constexpr double kR = 3.6541528853610088;  // start of the tail
  int32_t kn[kLayers];  // acceptance thresholds on |hz|
  float wn[kLayers];    // abscissa scale per layer (fast path, float)
  float fnf[kLayers];  // f(x_i) = exp(−x_i²/2) per layer edge
  double wnd[kLayers], fn[kLayers];
  Ziggurat() {
    const double m1 = 2147483648.0, vn = 4.92867323399e-3;  // area of each layer
    double dn = kR, tn = dn;
    const double q = vn / std::exp(-0.5 * dn * dn);
    kn[0] = static_cast<int32_t>((dn / q) * m1);
    kn[1] = 0;
    wnd[0] = q / m1;
    wnd[kLayers - 1] = dn / m1;
    fn[0] = 1.0;
    fn[kLayers - 1] = std::exp(-0.5 * dn * dn);
    for (int i = kLayers - 2; i >= 1; --i) {
      dn = std::sqrt(-2.0 * std::log(vn / dn + std::exp(-0.5 * dn * dn)));
      kn[i + 1] = static_cast<int32_t>((dn / tn) * m1);
      tn = dn;
      fn[i] = std::exp(-0.5 * dn * dn);
      wnd[i] = dn / m1;
    }
    for (int i = 0; i < kLayers; ++i) {
      wn[i] = static_cast<float>(wnd[i]);
      fnf[i] = static_cast<float>(fn[i]);
    }
  }
  // |hz| folded into [0, 2^31): hz ^ (hz >> 31) (one unit short for negatives, a 2^-31 effect).
  static int32_t fold(int32_t hz) { return hz ^ (hz >> 31); }
  // The slow path for a candidate the fast path rejected: wedge test or tail, retrying with
  // fresh candidates from `rng` (Marsaglia & Tsang's nfix).
  static int32_t abscissa(uint32_t w) { return static_cast<int32_t>(w & ~255u); }
  float slow(uint32_t w, Xoshiro& rng) const {
    for (;;) {
      const int iz = static_cast<int>(w & 255);
      const int32_t hz = abscissa(w);
      if (fold(hz) < kn[iz]) return static_cast<float>(hz) * wn[iz];
      if (iz == 0) {
        double xt, yt;
        do {
          xt = -std::log(rng.uniform()) / kR;
          yt = -std::log(rng.uniform());
        } while (yt + yt < xt * xt);
        return static_cast<float>(hz > 0 ? kR + xt : -kR - xt);
      }
      const float x = static_cast<float>(hz) * wn[iz];
      const float u = static_cast<float>(rng.uniform());
      if (fnf[iz] + u * (fnf[iz - 1] - fnf[iz]) < std::exp(-0.5f * x * x)) return x;
      w = static_cast<uint32_t>(rng.next() >> 32);
    }
  }
};

constexpr int kBlock = 256;

// 4 interleaved xoshiro256++ streams (one per AVX2 lane).
struct Xoshiro4 {
  alignas(32) uint64_t s0[4], s1[4], s2[4], s3[4];
  explicit Xoshiro4(uint64_t seed) {
    for (int l = 0; l < 4; ++l) {
      Xoshiro x(seed + 0x632be59bd9b4e019ULL * uint64_t(l + 1));
      s0[l] = x.s[0];
      s1[l] = x.s[1];
      s2[l] = x.s[2];
      s3[l] = x.s[3];
    }
  }
};

// One block of kBlock candidates: raw words, fast-path values and a reject bit per value
// (mask byte per 8 values). The AVX2 and the portable version perform the same integer and
// float operations (int32 → float conversion, one float multiply; no FMA), so the output is
// bit-identical whichever runs.
void zig_block_portable(Xoshiro4& g, const Ziggurat& z, uint32_t* words, float* out, uint8_t* mask, float scale) {
  uint64_t bits[kBlock / 2];
  uint64_t s0[4], s1[4], s2[4], s3[4];
  std::memcpy(s0, g.s0, sizeof s0);
  std::memcpy(s1, g.s1, sizeof s1);
  std::memcpy(s2, g.s2, sizeof s2);
  std::memcpy(s3, g.s3, sizeof s3);
  for (int i = 0; i < kBlock / 2; i += 4) {
    for (int l = 0; l < 4; ++l) {
      const uint64_t a = s0[l] + s3[l];
      bits[i + l] = ((a << 23) | (a >> 41)) + s0[l];
      const uint64_t t = s1[l] << 17;
      s2[l] ^= s0[l];
      s3[l] ^= s1[l];
      s1[l] ^= s2[l];
      s0[l] ^= s3[l];
      s2[l] ^= t;
      s3[l] = (s3[l] << 45) | (s3[l] >> 19);
    }
  }
  std::memcpy(g.s0, s0, sizeof s0);
  std::memcpy(g.s1, s1, sizeof s1);
  std::memcpy(g.s2, s2, sizeof s2);
  std::memcpy(g.s3, s3, sizeof s3);
  std::memcpy(words, bits, sizeof bits);  // little-endian word order, as the AVX2 path stores it
  for (int i = 0; i < kBlock; i += 8) {
    uint8_t m = 0;
    for (int j = 0; j < 8; ++j) {
      const int32_t iz = static_cast<int32_t>(words[i + j] & 255);
      const int32_t hz = Ziggurat::abscissa(words[i + j]);
      out[i + j] = (static_cast<float>(hz) * z.wn[iz]) * scale;
      m |= static_cast<uint8_t>(!(z.kn[iz] > Ziggurat::fold(hz)) << j);
    }
    mask[i / 8] = m;
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) void zig_block_avx2(Xoshiro4& g, const Ziggurat& z, uint32_t* words, float* out,
                                                    uint8_t* mask, float scale) {
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256i s0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g.s0));
  __m256i s1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g.s1));
  __m256i s2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g.s2));
  __m256i s3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g.s3));
  for (int i = 0; i < kBlock; i += 8) {
    const __m256i a = _mm256_add_epi64(s0, s3);
    const __m256i r = _mm256_add_epi64(_mm256_or_si256(_mm256_slli_epi64(a, 23), _mm256_srli_epi64(a, 41)), s0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(words + i), r);
    const __m256i t = _mm256_slli_epi64(s1, 17);
    s2 = _mm256_xor_si256(s2, s0);
    s3 = _mm256_xor_si256(s3, s1);
    s1 = _mm256_xor_si256(s1, s2);
    s0 = _mm256_xor_si256(s0, s3);
    s2 = _mm256_xor_si256(s2, t);
    s3 = _mm256_or_si256(_mm256_slli_epi64(s3, 45), _mm256_srli_epi64(s3, 19));
  }
  _mm256_store_si256(reinterpret_cast<__m256i*>(g.s0), s0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(g.s1), s1);
  _mm256_store_si256(reinterpret_cast<__m256i*>(g.s2), s2);
  _mm256_store_si256(reinterpret_cast<__m256i*>(g.s3), s3);
  const __m256i m255 = _mm256_set1_epi32(255);
  for (int i = 0; i < kBlock; i += 8) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + i));
    const __m256i iz = _mm256_and_si256(w, m255);
    const __m256i hz = _mm256_andnot_si256(m255, w);
    const __m256 wn = _mm256_i32gather_ps(z.wn, iz, 4);
    const __m256i k = _mm256_i32gather_epi32(z.kn, iz, 4);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(hz), wn), vscale));
    const __m256i fold = _mm256_xor_si256(hz, _mm256_srai_epi32(hz, 31));
    const __m256i accept = _mm256_cmpgt_epi32(k, fold);
    mask[i / 8] = static_cast<uint8_t>(~_mm256_movemask_ps(_mm256_castsi256_ps(accept)) & 0xff);
  }
}
#endif

void zig_block(Xoshiro4& g, const Ziggurat& z, uint32_t* words, float* out, uint8_t* mask, float scale,
               bool allow_simd) {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2 && allow_simd) return zig_block_avx2(g, z, words, out, mask, scale);
#endif
  zig_block_portable(g, z, words, out, mask, scale);
}

}  // namespace

void kernels::fill_standard_normal(float* out, int64_t n, torch::Generator& gen, float scale) {
  uint64_t seed;
  {
    auto* impl = gen.get<at::CPUGeneratorImpl>();
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = impl->random64();
  }
  fill_standard_normal_seeded(out, n, seed, scale, /*allow_simd=*/true);
}

void kernels::fill_standard_normal_seeded(float* out, int64_t n, uint64_t seed, float scale, bool allow_simd) {
  static const Ziggurat zig;
  Xoshiro4 fast(seed);
  Xoshiro slow(seed ^ 0xd1b54a32d192ed03ULL);
  alignas(64) uint32_t bits[kBlock];
  alignas(64) float vals[kBlock];
  alignas(64) uint8_t mask[kBlock / 8];
  for (int64_t o = 0; o < n; o += kBlock) {
    const int64_t m = std::min<int64_t>(kBlock, n - o);
    float* dst = m == kBlock ? out + o : vals;  // full blocks are written in place
    zig_block(fast, zig, bits, dst, mask, scale, allow_simd);
    for (int64_t b = 0; b < kBlock / 8; ++b) {
      if (!mask[b]) continue;  // ~1.5% of the candidates take the slow path
      for (int j = 0; j < 8; ++j)
        if ((mask[b] >> j) & 1) dst[b * 8 + j] = zig.slow(bits[b * 8 + j], slow) * scale;
    }
    if (m < kBlock) std::memcpy(out + o, vals, m * sizeof(float));
  }
}

// ---------------------------------------------------------------------------------------------
// NoiseSource
// ---------------------------------------------------------------------------------------------
NoiseSource::NoiseSource(torch::Generator gen) : gen_(std::move(gen)) {
  TORCH_CHECK(gen_->defined(), "sepmech::diffusion::NoiseSource: generator must be defined");
}

NoiseSource NoiseSource::replay(Tensor normal_draws, Tensor uniform_draws) {
  NoiseSource n;
  n.replay_normal_ = std::move(normal_draws);
  n.replay_uniform_ = std::move(uniform_draws);
  return n;
}

Tensor NoiseSource::randn_like(const Tensor& like) {
  TORCH_CHECK(like.scalar_type() == torch::kComplexFloat,
              "sepmech::diffusion::NoiseSource::randn_like: tensor must be complex64, got ", like.scalar_type());
  if (gen_) {
    std::vector<int64_t> shape(like.sizes().begin(), like.sizes().end());
    shape.push_back(2);
    Tensor r = torch::empty(shape, torch::kFloat32);
    kernels::fill_standard_normal(kernels::fptr(r), r.numel(), *gen_, static_cast<float>(std::sqrt(0.5)));
    ++n_normal_;
    return torch::view_as_complex(r);
  }
  TORCH_CHECK(replay_normal_.defined() && n_normal_ < replay_normal_.size(0),
              "sepmech::diffusion::NoiseSource: normal draw #", n_normal_, " requested but only ",
              replay_normal_.defined() ? replay_normal_.size(0) : 0, " were recorded");
  Tensor z = replay_normal_[n_normal_];
  TORCH_CHECK(z.sizes() == like.sizes(), "sepmech::diffusion::NoiseSource: recorded draw #", n_normal_,
              " has shape ", shape_str(z), ", expected ", shape_str(like));
  ++n_normal_;
  return z.to(torch::kComplexFloat).contiguous();
}

Tensor NoiseSource::rand(int64_t n) {
  if (gen_) {
    ++n_uniform_;
    return torch::rand({n}, *gen_, torch::kFloat32);
  }
  TORCH_CHECK(replay_uniform_.defined() && n_uniform_ < replay_uniform_.size(0),
              "sepmech::diffusion::NoiseSource: uniform draw #", n_uniform_, " requested but only ",
              replay_uniform_.defined() ? replay_uniform_.size(0) : 0, " were recorded");
  Tensor u = replay_uniform_[n_uniform_];
  TORCH_CHECK(u.dim() == 1 && u.size(0) == n, "sepmech::diffusion::NoiseSource: recorded uniform draw #",
              n_uniform_, " has shape ", shape_str(u), ", expected [", n, "]");
  ++n_uniform_;
  return u.to(torch::kFloat32);
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------
void OUVESDEOptions::Validate() const {
  TORCH_CHECK(std::isfinite(theta()) && theta() >= 0, "sepmech::diffusion::OUVESDE: theta must be >= 0, got ",
              theta());
  TORCH_CHECK(std::isfinite(sigma_min()) && sigma_min() > 0,
              "sepmech::diffusion::OUVESDE: sigma_min must be > 0, got ", sigma_min());
  TORCH_CHECK(std::isfinite(sigma_max()) && sigma_max() > sigma_min(),
              "sepmech::diffusion::OUVESDE: sigma_max must be > sigma_min (", sigma_min(), "), got ", sigma_max());
  TORCH_CHECK(N() >= 1, "sepmech::diffusion::OUVESDE: N must be >= 1, got ", N());
}
std::string OUVESDEOptions::ToString() const {
  std::ostringstream os;
  os << "OUVESDE(theta=" << theta() << ", sigma_min=" << sigma_min() << ", sigma_max=" << sigma_max()
     << ", N=" << N() << ")";
  return os.str();
}

void OUVPSDEOptions::Validate() const {
  TORCH_CHECK(std::isfinite(beta_min()) && beta_min() >= 0,
              "sepmech::diffusion::OUVPSDE: beta_min must be given and >= 0, got ", beta_min());
  TORCH_CHECK(std::isfinite(beta_max()) && beta_max() > 0 && beta_max() >= beta_min(),
              "sepmech::diffusion::OUVPSDE: beta_max must be given, > 0 and >= beta_min (", beta_min(), "), got ",
              beta_max());
  TORCH_CHECK(std::isfinite(stiffness()) && stiffness() > 0,
              "sepmech::diffusion::OUVPSDE: stiffness must be > 0, got ", stiffness());
  TORCH_CHECK(N() >= 1, "sepmech::diffusion::OUVPSDE: N must be >= 1, got ", N());
}
std::string OUVPSDEOptions::ToString() const {
  std::ostringstream os;
  os << "OUVPSDE(beta_min=" << beta_min() << ", beta_max=" << beta_max() << ", stiffness=" << stiffness()
     << ", N=" << N() << ")";
  return os.str();
}

void SBVESDEOptions::Validate() const {
  TORCH_CHECK(std::isfinite(k()) && k() > 1, "sepmech::diffusion::SBVESDE: k must be > 1, got ", k());
  TORCH_CHECK(std::isfinite(c()) && c() > 0, "sepmech::diffusion::SBVESDE: c must be > 0, got ", c());
  TORCH_CHECK(N() >= 1, "sepmech::diffusion::SBVESDE: N must be >= 1, got ", N());
  TORCH_CHECK(std::isfinite(eps()) && eps() >= 0, "sepmech::diffusion::SBVESDE: eps must be >= 0, got ", eps());
}
std::string SBVESDEOptions::ToString() const {
  std::ostringstream os;
  os << "SBVESDE(k=" << k() << ", c=" << c() << ", N=" << N() << ", eps=" << eps() << ")";
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// SDE base
// ---------------------------------------------------------------------------------------------
void SDE::check_time(const Tensor& t, const char* what, bool allow_zero) const {
  TORCH_CHECK(t.defined() && t.dim() == 1, "sepmech::diffusion::", name(), ": ", what,
              " must be a vector [B], got ", t.defined() ? shape_str(t) : std::string("undefined"));
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, "sepmech::diffusion::", name(), ": ", what,
              " must be float32, got ", t.scalar_type());
  if (t.numel() == 0) return;
  const double lo = t.min().item<double>(), hi = t.max().item<double>();
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi) && (allow_zero ? lo >= 0 : lo > 0) && hi <= T(),
              "sepmech::diffusion::", name(), ": ", what, " must lie in ", allow_zero ? "[" : "(", "0, ", T(),
              "], got values in [", lo, ", ", hi, "]");
}

std::pair<Tensor, Tensor> SDE::sde(const Tensor& x, const Tensor& y, const Tensor& t) const {
  // f = a(t)·(y − x); for OUVE a = θ is a plain scalar in the reference.
  Tensor drift = bcast(drift_rate(t), x.dim()) * (y - x);
  return {drift, diffusion(t)};
}

std::pair<Tensor, Tensor> SDE::marginal_prob(const Tensor& x0, const Tensor& y, const Tensor& t) const {
  return {marginal_mean(x0, y, t), std(t)};
}

std::pair<Tensor, Tensor> SDE::discretize(const Tensor& x, const Tensor& y, const Tensor& t,
                                          const Tensor& stepsize) const {
  Tensor dt = stepsize.defined() && !fixed_stepsize() ? stepsize.to(torch::kFloat32) : scalar_f32(1.0 / double(N()));
  auto [drift, g] = sde(x, y, t);
  Tensor f = drift * dt;
  Tensor G = g * torch::sqrt(dt);
  return {f, G};
}

ReverseSDE SDE::reverse(ScoreFn score, bool probability_flow) const {
  return ReverseSDE(*this, std::move(score), probability_flow);
}

std::pair<Tensor, Tensor> ReverseSDE::sde(const Tensor& x, const Tensor& y, const Tensor& t) const {
  auto [drift, g] = sde_->sde(x, y, t);
  Tensor score = score_(x, y, t);
  Tensor score_drift = -bcast(g, x.dim()).pow(2) * score * (pf_ ? 0.5 : 1.0);
  Tensor diffusion = pf_ ? torch::zeros_like(g) : g;
  return {drift + score_drift, diffusion};
}

std::pair<Tensor, Tensor> ReverseSDE::discretize(const Tensor& x, const Tensor& y, const Tensor& t,
                                                 const Tensor& stepsize) const {
  auto [f, G] = sde_->discretize(x, y, t, stepsize);
  Tensor rev_f = f - bcast(G, x.dim()).pow(2) * score_(x, y, t) * (pf_ ? 0.5 : 1.0);
  Tensor rev_G = pf_ ? torch::zeros_like(G) : G;
  return {rev_f, rev_G};
}

// ---------------------------------------------------------------------------------------------
// OUVE
// ---------------------------------------------------------------------------------------------
OUVESDE::OUVESDE(OUVESDEOptions o) : options(o) {
  options.Validate();
  logsig = std::log(options.sigma_max() / options.sigma_min());
}

Tensor OUVESDE::drift_rate(const Tensor& t) const { return torch::full_like(t, options.theta()); }

Tensor OUVESDE::diffusion(const Tensor& t) const {
  Tensor sigma = options.sigma_min() * torch::pow(options.sigma_max() / options.sigma_min(), t);
  return sigma * std::sqrt(2 * logsig);
}

Tensor OUVESDE::marginal_mean(const Tensor& x0, const Tensor& y, const Tensor& t) const {
  Tensor e = bcast(torch::exp(-options.theta() * t), x0.dim());
  return e * x0 + (1 - e) * y;
}

Tensor OUVESDE::std(const Tensor& t) const {
  // Literal formula (exp(.) − 1, not expm1): the goldens contain its float32 cancellation near 0.
  const double smin = options.sigma_min(), theta = options.theta();
  return torch::sqrt((smin * smin * torch::exp(-2 * theta * t) * (torch::exp(2 * (theta + logsig) * t) - 1) * logsig) /
                     (theta + logsig));
}

std::pair<Tensor, Tensor> OUVESDE::mean_weights(const Tensor& t) const {
  Tensor e = torch::exp(-options.theta() * t);
  return {e, 1 - e};
}

Tensor OUVESDE::alpha(const Tensor& t) const { return torch::exp(-options.theta() * t); }

Tensor OUVESDE::prior_sampling(const Tensor& y, NoiseSource& noise) const {
  Tensor s = std(torch::ones({y.size(0)}, torch::kFloat32));
  return y + noise.randn_like(y) * bcast(s, y.dim());
}

// ---------------------------------------------------------------------------------------------
// OUVP (storm; argument order there is (x, t, y))
// ---------------------------------------------------------------------------------------------
OUVPSDE::OUVPSDE(OUVPSDEOptions o) : options(o) { options.Validate(); }

Tensor OUVPSDE::beta(const Tensor& t) const {
  return options.beta_min() + t * (options.beta_max() - options.beta_min());
}
Tensor OUVPSDE::drift_rate(const Tensor& t) const { return 0.5 * options.stiffness() * beta(t); }
Tensor OUVPSDE::diffusion(const Tensor& t) const { return torch::sqrt(beta(t)); }

std::pair<Tensor, Tensor> OUVPSDE::sde(const Tensor& x, const Tensor& y, const Tensor& t) const {
  Tensor drift = 0.5 * options.stiffness() * bcast(beta(t), x.dim()) * (y - x);
  return {drift, diffusion(t)};
}

Tensor OUVPSDE::alpha(const Tensor& t) const {
  const double b0 = options.beta_min(), b1 = options.beta_max(), s = options.stiffness();
  return torch::exp(-0.25 * s * t * (t * (b1 - b0) + 2 * b0));
}

Tensor OUVPSDE::marginal_mean(const Tensor& x0, const Tensor& y, const Tensor& t) const {
  Tensor e = bcast(alpha(t), x0.dim());
  return y + e * (x0 - y);
}

Tensor OUVPSDE::std(const Tensor& t) const {
  const double b0 = options.beta_min(), b1 = options.beta_max(), s = options.stiffness();
  return (1 - torch::exp(-0.5 * s * t * (t * (b1 - b0) + 2 * b0))) / s;
}

std::pair<Tensor, Tensor> OUVPSDE::mean_weights(const Tensor& t) const {
  Tensor e = alpha(t);
  return {e, 1 - e};
}

Tensor OUVPSDE::prior_sampling(const Tensor& y, NoiseSource& noise) const {
  Tensor s = std(torch::ones({y.size(0)}, torch::kFloat32));
  return y + noise.randn_like(y) * bcast(s, y.dim());
}

// ---------------------------------------------------------------------------------------------
// SB-VE
// ---------------------------------------------------------------------------------------------
SBVESDE::SBVESDE(SBVESDEOptions o) : options(o) { options.Validate(); }

Tensor SBVESDE::drift_rate(const Tensor& t) const { return torch::zeros_like(t); }

Tensor SBVESDE::diffusion(const Tensor& t) const { return std::sqrt(options.c()) * torch::pow(options.k(), t); }

std::pair<Tensor, Tensor> SBVESDE::sde(const Tensor& x, const Tensor& y, const Tensor& t) const {
  // The reference's drift is the Python float 0.0.
  return {torch::zeros({}, torch::kFloat32), diffusion(t)};
}

SBSchedule SBVESDE::sigmas_alphas(const Tensor& t) const {
  const double k = options.k(), c = options.c(), eps = options.eps();
  SBSchedule s;
  s.alpha_t = torch::ones_like(t);
  s.alpha_T = torch::ones_like(t);
  s.alpha_bart = s.alpha_t / (s.alpha_T + eps);
  s.sigma_T = scalar_f32(std::sqrt(c * (std::pow(k, 2 * T()) - 1) / (2 * std::log(k))));
  s.sigma_t = torch::sqrt(c * (torch::pow(k, 2 * t) - 1) / (2 * std::log(k)));
  // σ_t(T) is σ_T by definition; float32 pow may round the two differently by one ulp, which
  // would turn σ̄_T = √ε = 1e-4 into ~5e-4 and derail the SB samplers' first step.
  s.sigma_t = torch::where(t == T(), s.sigma_T, s.sigma_t);
  s.sigma_bart = torch::sqrt(s.sigma_T.pow(2) - s.sigma_t.pow(2) + eps);
  return s;
}

std::pair<Tensor, Tensor> SBVESDE::mean_weights(const Tensor& t) const {
  SBSchedule s = sigmas_alphas(t);
  const double eps = options.eps();
  Tensor wx = s.alpha_t * s.sigma_bart.pow(2) / (s.sigma_T.pow(2) + eps);
  Tensor wy = s.alpha_bart * s.sigma_t.pow(2) / (s.sigma_T.pow(2) + eps);
  return {wx, wy};
}

Tensor SBVESDE::marginal_mean(const Tensor& x0, const Tensor& y, const Tensor& t) const {
  auto [wx, wy] = mean_weights(t);
  return bcast(wx, x0.dim()) * x0 + bcast(wy, x0.dim()) * y;
}

Tensor SBVESDE::std(const Tensor& t) const {
  SBSchedule s = sigmas_alphas(t);
  return s.alpha_t * s.sigma_bart * s.sigma_t / (s.sigma_T + options.eps());
}

Tensor SBVESDE::alpha(const Tensor& t) const { return torch::ones_like(t); }

Tensor SBVESDE::prior_sampling(const Tensor& y, NoiseSource&) const { return y.clone(); }

// ---------------------------------------------------------------------------------------------
std::shared_ptr<SDE> make_sde(const std::string& name, const std::map<std::string, double>& kw) {
  auto get = [&](const char* key, double fallback) {
    auto it = kw.find(key);
    return it == kw.end() ? fallback : it->second;
  };
  for (const auto& [key, v] : kw) {
    static const std::set<std::string> known = {"theta", "sigma_min", "sigma_max", "N", "beta_min", "beta_max",
                                                "stiffness", "k", "c", "eps"};
    TORCH_CHECK(known.count(key), "sepmech::diffusion::make_sde: unknown keyword '", key, "'");
  }
  if (name == "ouve" || name == "ouvesde") {
    OUVESDEOptions o;
    return std::make_shared<OUVESDE>(o.theta(get("theta", o.theta()))
                                          .sigma_min(get("sigma_min", o.sigma_min()))
                                          .sigma_max(get("sigma_max", o.sigma_max()))
                                          .N(static_cast<int64_t>(get("N", double(o.N())))));
  }
  if (name == "ouvp" || name == "ouvpsde") {
    OUVPSDEOptions o;
    return std::make_shared<OUVPSDE>(o.beta_min(get("beta_min", o.beta_min()))
                                         .beta_max(get("beta_max", o.beta_max()))
                                         .stiffness(get("stiffness", o.stiffness()))
                                         .N(static_cast<int64_t>(get("N", double(o.N())))));
  }
  if (name == "sbve" || name == "sbvesde") {
    SBVESDEOptions o;
    return std::make_shared<SBVESDE>(o.k(get("k", o.k()))
                                         .c(get("c", o.c()))
                                         .eps(get("eps", o.eps()))
                                         .N(static_cast<int64_t>(get("N", double(o.N())))));
  }
  TORCH_CHECK(false, "sepmech::diffusion::make_sde: sde must be one of ouve, ouvp, sbve, got '", name, "'");
}

}  // namespace sepmech::diffusion

// ---------------------------------------------------------------------------------------------
// Gaussian oracle and closed forms (spec §6)
// ---------------------------------------------------------------------------------------------
namespace sepmech::diffusion {

Tensor GaussianOracle::marginal_variance(const SDE& sde, const Tensor& t) const {
  Tensor a = sde.alpha(t);
  Tensor s = sde.std(t);
  Tensor p = sde.kind() == SdeKind::kOUVP ? s : s.pow(2);
  return a.pow(2) * s0sq + p;
}

Tensor GaussianOracle::score_unfused(const SDE& sde, const Tensor& x, const Tensor& y, const Tensor& t) const {
  Tensor a = sde.alpha(t).reshape({-1, 1, 1, 1});
  Tensor mu = torch::full({}, c10::complex<float>(mu0), torch::kComplexFloat);
  Tensor m = a * mu + (1 - a) * y;
  Tensor v = marginal_variance(sde, t).reshape({-1, 1, 1, 1});
  return -(x - m) / v;
}

Tensor GaussianOracle::score(const SDE& sde, const Tensor& x0, const Tensor& y0, const Tensor& t) const {
  TORCH_CHECK(sde.kind() != SdeKind::kSBVE,
              "sepmech::diffusion::GaussianOracle::score: the SB-VE oracle is a data prediction, use data_prediction");
  TORCH_CHECK(x0.sizes() == y0.sizes() && x0.scalar_type() == torch::kComplexFloat &&
                  y0.scalar_type() == torch::kComplexFloat,
              "sepmech::diffusion::GaussianOracle::score: x and y must be complex64 of one shape, got ",
              x0.sizes(), " ", x0.scalar_type(), " and ", y0.sizes(), " ", y0.scalar_type());
  Tensor x = x0.contiguous(), y = y0.contiguous();
  const int64_t B = x.size(0), n = 2 * (x.numel() / std::max<int64_t>(B, 1));
  TORCH_CHECK(t.dim() == 1 && t.size(0) == B, "sepmech::diffusion::GaussianOracle::score: t must be [B = ", B,
              "], got ", t.sizes());
  // The per-example scalars go through the same float32 tensor formulas as the reference's
  // oracle: its float32 rounding steers RK45's step control (a double-precision oracle changes
  // the ODE sampler's evaluation count from the reference's 38 to 32).
  Tensor a = sde.alpha(t).contiguous();
  Tensor wy = (1 - a).contiguous();
  Tensor inv_v = marginal_variance(sde, t).reciprocal().contiguous();
  Tensor s = torch::empty_like(x);
  kernels::oracle_score(kernels::cfptr(x), kernels::cfptr(y), kernels::fptr(s), B, n, a.data_ptr<float>(),
                        wy.data_ptr<float>(), inv_v.data_ptr<float>(), static_cast<float>(mu0.real()),
                        static_cast<float>(mu0.imag()));
  return s;
}

Tensor GaussianOracle::data_prediction(const SBVESDE& sde, const Tensor& x, const Tensor& y, const Tensor& t) const {
  auto [wx, wy] = sde.mean_weights(t);
  Tensor sx = sde.std(t);
  Tensor mu = torch::full({}, c10::complex<float>(mu0), torch::kComplexFloat);
  Tensor gain = (wx * s0sq / (wx.pow(2) * s0sq + sx.pow(2))).reshape({-1, 1, 1, 1});
  return mu + gain * (x - wx.reshape({-1, 1, 1, 1}) * mu - wy.reshape({-1, 1, 1, 1}) * y);
}

ScoreFn GaussianOracle::score_fn(const SDE& sde) const {
  GaussianOracle self = *this;
  const SDE* s = &sde;
  return [self, s](const Tensor& x, const Tensor& y, const Tensor& t) { return self.score(*s, x, y, t); };
}

ScoreFn GaussianOracle::score_fn_reference(const SDE& sde) const {
  GaussianOracle self = *this;
  const SDE* s = &sde;
  return [self, s](const Tensor& x, const Tensor& y, const Tensor& t) { return self.score_unfused(*s, x, y, t); };
}

namespace {
struct OuveScalars {
  double theta, smin, smax, lam;
  double alpha(double t) const { return std::exp(-theta * t); }
  double var(double t) const {
    return smin * smin * lam * (std::exp(2 * (theta + lam) * t) - 1) * std::exp(-2 * theta * t) / (theta + lam);
  }
  double g2(double t) const {
    const double g = smin * std::pow(smax / smin, t) * std::sqrt(2 * lam);
    return g * g;
  }
};
OuveScalars ouve_scalars(const OUVESDEOptions& o) {
  o.Validate();
  return {o.theta(), o.sigma_min(), o.sigma_max(), std::log(o.sigma_max() / o.sigma_min())};
}
}  // namespace

AffineLaw pc_affine_law(const OUVESDEOptions& o, int64_t N, const std::string& corrector, int64_t corrector_steps,
                        double snr, double eps, double s0sq, bool legacy_step) {
  const OuveScalars S = ouve_scalars(o);
  TORCH_CHECK(N >= 1, "sepmech::diffusion::pc_affine_law: N must be >= 1, got ", N);
  TORCH_CHECK(corrector == "ald" || corrector == "none",
              "sepmech::diffusion::pc_affine_law: corrector must be ald or none, got '", corrector, "'");
  AffineLaw L;
  L.A = 0;
  L.B = 1;
  L.V = S.var(1.0);
  for (int64_t i = 0; i < N; ++i) {
    const double t = N == 1 ? 1.0 : 1.0 + (eps - 1.0) * double(i) / double(N - 1);
    const double tn = N == 1 ? 0.0 : 1.0 + (eps - 1.0) * double(i + 1) / double(N - 1);
    const double dt = legacy_step ? 1.0 / double(N) : (i + 1 < N ? t - tn : eps);
    const double a = S.alpha(t), sig2 = S.var(t), v = a * a * s0sq + sig2;
    if (corrector == "ald") {
      for (int64_t k = 0; k < corrector_steps; ++k) {
        const double e = 2 * snr * snr * sig2, q = 1 - e / v;
        L.A = q * L.A + e * a / v;
        L.B = q * L.B + e * (1 - a) / v;
        L.V = q * q * L.V + 2 * e;
      }
    }
    const double G2 = S.g2(t) * dt, q = 1 + S.theta * dt - G2 / v;
    L.A = q * L.A + G2 * a / v;
    L.B = q * L.B - S.theta * dt + G2 * (1 - a) / v;
    L.V_mean = q * q * L.V;
    L.V = L.V_mean + G2;
  }
  return L;
}

Tensor pflow_ode_closed_form(const OUVESDE& sde, const GaussianOracle& oracle, const Tensor& x_T, const Tensor& y,
                             double eps) {
  const OuveScalars S = ouve_scalars(sde.options);
  auto m_at = [&](double t) {
    const double a = S.alpha(t);
    return y.to(torch::kComplexDouble) * (1 - a) + c10::complex<double>(oracle.mu0) * a;
  };
  auto v_at = [&](double t) { return S.alpha(t) * S.alpha(t) * oracle.s0sq + S.var(t); };
  Tensor out = m_at(eps) + std::sqrt(v_at(eps) / v_at(1.0)) * (x_T.to(torch::kComplexDouble) - m_at(1.0));
  return out;
}

double dsm_loss_minimum(const OUVESDEOptions& o, double t, double s0sq) {
  const OuveScalars S = ouve_scalars(o);
  const double a2 = S.alpha(t) * S.alpha(t);
  return 0.5 * a2 * s0sq / (a2 * s0sq + S.var(t));
}

}  // namespace sepmech::diffusion
