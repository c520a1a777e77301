// The random source of the diffusion code: xoshiro256++ streams, a 256-layer ziggurat for
// normals (AVX2 and portable paths with identical bits) and the NoiseSource built on them.
#include "diffusion/random.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstring>
#include <mutex>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "diffusion/kernels.h"
#include "kernels/cpu.h"
#include "sepmech/diffusion/sde.h"
#include "kernels/shape.h"

namespace sepmech::diffusion {

using torch::Tensor;

namespace {

using sepmech::kernels::shape_str;

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

void zig_block(Xoshiro4& g, const Ziggurat& z, uint32_t* words, float* out, uint8_t* mask, float scale) {
#if defined(__x86_64__)
  if (sepmech::kernels::use_avx2()) return zig_block_avx2(g, z, words, out, mask, scale);
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
  fill_standard_normal_seeded(out, n, seed, scale);
}

void kernels::fill_standard_normal_seeded(float* out, int64_t n, uint64_t seed, float scale) {
  static const Ziggurat zig;
  Xoshiro4 fast(seed);
  Xoshiro slow(seed ^ 0xd1b54a32d192ed03ULL);
  alignas(64) uint32_t bits[kBlock];
  alignas(64) float vals[kBlock];
  alignas(64) uint8_t mask[kBlock / 8];
  for (int64_t o = 0; o < n; o += kBlock) {
    const int64_t m = std::min<int64_t>(kBlock, n - o);
    float* dst = m == kBlock ? out + o : vals;  // full blocks are written in place
    zig_block(fast, zig, bits, dst, mask, scale);
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

}  // namespace sepmech::diffusion
