#pragma once
// Fused elementwise kernels of the diffusion hot paths (training perturbation, DSM loss,
// predictor/corrector updates, Gaussian oracle). Complex64 tensors are walked as interleaved
// float arrays; every per-example coefficient is a float [B] array. Each kernel keeps the
// reference's float32 operation order so the results round like the op-by-op transcription,
// and reads/writes each element once (no per-op temporaries).
#include <torch/torch.h>

#include <cmath>
#include <cstdint>

namespace sepmech::diffusion::kernels {

/// Contiguous complex64 view as floats (the tensor must outlive the pointer).
inline float* fptr(const torch::Tensor& t) { return reinterpret_cast<float*>(t.data_ptr()); }
inline const float* cfptr(const torch::Tensor& t) { return reinterpret_cast<const float*>(t.data_ptr()); }

/// xm = x − (a(y − x)·dt − G²·s·k);  xo = xm + G·z    (reverse-diffusion predictor)
/// (xo/z may be null: only xm is produced)
inline void reverse_diffusion(const float* x, const float* y, const float* s, const float* z, float* xm,
                              float* xo, int64_t B, int64_t n, const float* a, float dt, const float* G,
                              float k) {
  for (int64_t b = 0; b < B; ++b) {
    const float ab = a[b], Gb = G[b], G2 = Gb * Gb;
    const int64_t o = b * n;
    if (xo && z) {
      for (int64_t i = 0; i < n; ++i) {
        const float f = ab * (y[o + i] - x[o + i]) * dt;
        const float m = x[o + i] - (f - G2 * s[o + i] * k);
        xm[o + i] = m;
        xo[o + i] = m + Gb * z[o + i];
      }
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const float f = ab * (y[o + i] - x[o + i]) * dt;
        xm[o + i] = x[o + i] - (f - G2 * s[o + i] * k);
      }
    }
  }
}

/// xm = x + (a(y − x) − g²·s)·dt;  xo = xm + (g·√(−dt))·z    (Euler–Maruyama predictor, dt < 0)
inline void euler_maruyama(const float* x, const float* y, const float* s, const float* z, float* xm, float* xo,
                           int64_t B, int64_t n, const float* a, const float* g, float dt, float sqrt_mdt) {
  for (int64_t b = 0; b < B; ++b) {
    const float ab = a[b], mg2 = -(g[b] * g[b]), w = g[b] * sqrt_mdt;
    const int64_t o = b * n;
    for (int64_t i = 0; i < n; ++i) {
      const float d = ab * (y[o + i] - x[o + i]) + mg2 * s[o + i];
      const float m = x[o + i] + d * dt;
      xm[o + i] = m;
      xo[o + i] = m + w * z[o + i];
    }
  }
}

/// xm = x + ε·s;  xo = xm + z·√(2ε)    (Langevin / annealed Langevin corrector)
inline void langevin(const float* x, const float* s, const float* z, float* xm, float* xo, int64_t B, int64_t n,
                     const float* eps, const float* sqrt2eps) {
  for (int64_t b = 0; b < B; ++b) {
    const float e = eps[b], w = sqrt2eps[b];
    const int64_t o = b * n;
    for (int64_t i = 0; i < n; ++i) {
      const float m = x[o + i] + e * s[o + i];
      xm[o + i] = m;
      xo[o + i] = m + z[o + i] * w;
    }
  }
}

/// out[b] = Σ_i v[b·n + i]²  (double accumulation)
inline void sum_squares(const float* v, int64_t B, int64_t n, double* out) {
  for (int64_t b = 0; b < B; ++b) {
    double acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
    const float* p = v + b * n;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      acc0 += double(p[i]) * p[i];
      acc1 += double(p[i + 1]) * p[i + 1];
      acc2 += double(p[i + 2]) * p[i + 2];
      acc3 += double(p[i + 3]) * p[i + 3];
    }
    for (; i < n; ++i) acc0 += double(p[i]) * p[i];
    out[b] = (acc0 + acc1) + (acc2 + acc3);
  }
}

/// mean = wx·x0 + wy·y;  xt = mean + σ·z    (training perturbation; mean may be null)
inline void perturb(const float* x0, const float* y, const float* z, float* mean, float* xt, int64_t B, int64_t n,
                    const float* wx, const float* wy, const float* sigma) {
  for (int64_t b = 0; b < B; ++b) {
    const float a = wx[b], c = wy[b], sg = sigma[b];
    const int64_t o = b * n;
    if (mean) {
      for (int64_t i = 0; i < n; ++i) {
        const float m = a * x0[o + i] + c * y[o + i];
        mean[o + i] = m;
        xt[o + i] = m + sg * z[o + i];
      }
    } else {
      for (int64_t i = 0; i < n; ++i) xt[o + i] = (a * x0[o + i] + c * y[o + i]) + sg * z[o + i];
    }
  }
}

/// Σ_b ½ Σ_i (s·σ_b + z)² / B    (DSM loss, "sigma^2" weighting; double accumulation)
inline double dsm_loss(const float* s, const float* z, int64_t B, int64_t n, const float* sigma) {
  double total = 0;
  for (int64_t b = 0; b < B; ++b) {
    const float sg = sigma[b];
    const int64_t o = b * n;
    double acc0 = 0, acc1 = 0;
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
      const float e0 = s[o + i] * sg + z[o + i], e1 = s[o + i + 1] * sg + z[o + i + 1];
      acc0 += double(e0) * e0;
      acc1 += double(e1) * e1;
    }
    for (; i < n; ++i) {
      const float e = s[o + i] * sg + z[o + i];
      acc0 += double(e) * e;
    }
    total += 0.5 * (acc0 + acc1);
  }
  return total / double(B);
}

/// grad_s = c·σ_b·(s·σ_b + z)   (gradient of the DSM loss, c = upstream gradient / B)
inline void dsm_loss_backward(const float* s, const float* z, float* gs, int64_t B, int64_t n, const float* sigma,
                              float c) {
  for (int64_t b = 0; b < B; ++b) {
    const float sg = sigma[b], w = c * sg;
    const int64_t o = b * n;
    for (int64_t i = 0; i < n; ++i) gs[o + i] = w * (s[o + i] * sg + z[o + i]);
  }
}

/// Gaussian-oracle score: s = −(x − (wx·μ0 + wy·y)) / v   (μ0 complex constant)
inline void oracle_score(const float* x, const float* y, float* s, int64_t B, int64_t n, const float* wx,
                         const float* wy, const float* inv_v, float mu_re, float mu_im) {
  for (int64_t b = 0; b < B; ++b) {
    const float mr = wx[b] * mu_re, mi = wx[b] * mu_im, c = wy[b], iv = inv_v[b];
    const int64_t o = b * n;
    for (int64_t i = 0; i < n; i += 2) {
      s[o + i] = -(x[o + i] - (mr + c * y[o + i])) * iv;
      s[o + i + 1] = -(x[o + i + 1] - (mi + c * y[o + i + 1])) * iv;
    }
  }
}

/// Returns true if every value is finite.
inline bool all_finite(const float* v, int64_t count) {
  // v·0 is 0 for finite v and NaN for NaN/±inf; eight independent sums vectorize.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= count; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += v[i + j] * 0.0f;
  float tail = 0;
  for (; i < count; ++i) tail += v[i] * 0.0f;
  for (float a : acc) tail += a;
  return tail == 0.0f;
}

}  // namespace sepmech::diffusion::kernels
