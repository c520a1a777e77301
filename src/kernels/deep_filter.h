#pragma once
// The deep-filter forward and backward kernels on raw memory, shared by DfOp's `fused` method
// (src/dfop.cpp) and the multi-frame DF / MfWfC / MfWf training path (src/multiframe.cpp), so the
// mechanism exists once. Header-only (internal, not installed): each family's translation unit compiles
// its own copy, so neither family needs the other to build.
//
//   Y[r, f] = sum_n X[r, t-(N-1-L)+n, f] * H[r, t, n, f]   (H conjugated if `conj`), f < Fdf
//   then Y = a_r,t * Y + (1 - a_r,t) * X[r, t] when alpha is given;  Y[r, t, f >= Fdf] = X[r, t, f]
//
// X, Y: rows r = 0..R-1 (R = B*C) of T frames of F interleaved complex bins, contiguous.
// H: any layout whose bins are contiguous; tap n of frame t of row r = b*C + c starts at
//   H + b*hs_b + c*hs_c + t*hs_t + n*hs_n (floats), so a coefficient shared by the channels has hs_c = 0.
// A: alpha per (r, t) (R*T values) or nullptr.
//
// Backward (gradients of sum(Y * G) for an upstream gradient G shaped like Y):
//   gX[r, s, f] = G[r, s, f] for f >= Fdf; for f < Fdf (1 - a_r,s) G[r, s, f] (0 without alpha) plus
//                 sum_n a_r,t G[r, t, f] conj(Heff[r, t, n, f]) over the frames t = s + (N-1-L) - n
//   gHeff[r, t, n, f] = a_r,t G[r, t, f] conj(X[r, t-(N-1-L)+n, f]);  gH = conj(gHeff) if `conj`
//   gA[r, t] = <Yfiltered[r, t] - X[r, t], G[r, t]> over the filtered bins
// gH has H's layout; when the channels share a coefficient (hs_c == 0, C > 1) it is their sum.
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sepmech::detail {

struct DfKernelGeom {
  int64_t B, C, T, F, Fdf, N, L;   // rows R = B*C; L may exceed N-1 (window wholly in the future)
  int64_t hs_b, hs_c, hs_t, hs_n;  // coefficient strides in floats (bins contiguous)
  bool conj;                       // multiply by conj(H)
};

namespace dfk {

/// Tap 0 of frame t of row r (tap n is n*hs_n further); one division per row, none for C = 1.
template <typename S>
inline __attribute__((always_inline)) const S* taps_of(const S* H, const DfKernelGeom& g, int64_t r, int64_t t) {
  const int64_t off = g.C == 1 ? r * g.hs_b : (r / g.C) * g.hs_b + (r % g.C) * g.hs_c;
  return H + off + t * g.hs_t;
}

template <typename S>
inline void forward_rows(const S* X, const S* H, const S* A, S* Y, const DfKernelGeom& g, int64_t begin,
                         int64_t end) {
  const int64_t front = g.N - 1 - g.L, row = 2 * g.F, hrow = 2 * g.Fdf;
  const S cs = g.conj ? S(-1) : S(1);
  for (int64_t rt = begin; rt < end; ++rt) {
    const int64_t r = rt / g.T, t = rt % g.T;
    const S* x_t = X + rt * row;
    S* y = Y + rt * row;
    std::memcpy(y + hrow, x_t + hrow, sizeof(S) * (row - hrow));
    std::memset(y, 0, sizeof(S) * hrow);
    const S* h0 = taps_of(H, g, r, t);
    for (int64_t n = 0; n < g.N; ++n) {
      const int64_t s = t - front + n;
      if (s < 0 || s >= g.T) continue;
      const S* xs = X + (r * g.T + s) * row;
      const S* h = h0 + n * g.hs_n;
      for (int64_t k = 0; k < hrow; k += 2) {
        const S xr = xs[k], xi = xs[k + 1], hr = h[k], hi = cs * h[k + 1];
        y[k] += xr * hr - xi * hi;
        y[k + 1] += xr * hi + xi * hr;
      }
    }
    if (A) {
      const S a = A[rt], c = S(1) - a;
      for (int64_t k = 0; k < hrow; ++k) y[k] = a * y[k] + c * x_t[k];
    }
  }
}

#if defined(__x86_64__)
#define SEPMECH_DF_KERNEL_AVX2 1
// Per block of 8 complex bins the taps accumulate in registers (x*re(h) and swap(x)*im(h) in two
// accumulators, combined with one addsub; for conj(h) the second one is negated first), then the
// alpha blend and a single store: the output row is written once.
template <bool kConj>
__attribute__((target("avx2,fma"))) void forward_rows_avx2(const float* X, const float* H, const float* A, float* Y,
                                                           const DfKernelGeom& geom, int64_t begin, int64_t end) {
  const DfKernelGeom g = geom;  // a local copy: the memcpy below cannot alias it, so it stays in registers
  const int64_t front = g.N - 1 - g.L, row = 2 * g.F, hrow = 2 * g.Fdf;
  constexpr int kMaxTaps = 64;
  const float* xs[kMaxTaps];
  const float* hs[kMaxTaps];
  const float cs = kConj ? -1.f : 1.f;
  for (int64_t rt = begin; rt < end; ++rt) {
    const int64_t r = rt / g.T, t = rt % g.T;
    const float* x_t = X + rt * row;
    float* y = Y + rt * row;
    const float* h0 = taps_of(H, g, r, t);
    // Prefetch, kAhead frames on, the spectrogram row that frame will take as its newest tap (the
    // same row holds the bins it copies later) and its coefficients -- every cache line: a row is
    // about one 4 KiB page, where the hardware prefetcher stops, so with inputs in DRAM it never
    // got going (dfop cold: 0.49 -> 0.30 ms; every 2nd or 4th line only: no gain). With inputs
    // already in L3 the extra instructions cost ~10 % (0.115 -> 0.127 ms).
    constexpr int64_t kAhead = 3;
    if (t + kAhead < g.T) {
      const int64_t s_new = t + kAhead + g.L;
      if (s_new < g.T) {
        const float* xp = X + (r * g.T + s_new) * row;
        for (int64_t k = 0; k < row; k += 16) _mm_prefetch(reinterpret_cast<const char*>(xp + k), _MM_HINT_T0);
      }
      const float* hp = taps_of(H, g, r, t + kAhead);
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t k = 0; k < hrow; k += 16)
          _mm_prefetch(reinterpret_cast<const char*>(hp + n * g.hs_n + k), _MM_HINT_T0);
    }
    int m = 0;
    for (int64_t n = 0; n < g.N; ++n) {
      const int64_t s = t - front + n;
      if (s < 0 || s >= g.T) continue;
      xs[m] = X + (r * g.T + s) * row;
      hs[m] = h0 + n * g.hs_n;
      ++m;
    }
    std::memcpy(y + hrow, x_t + hrow, sizeof(float) * (row - hrow));
    const float a = A ? A[rt] : 1.f, c = 1.f - a;
    const __m256 va = _mm256_set1_ps(a), vc = _mm256_set1_ps(c);
    int64_t k = 0;
    for (; k + 16 <= hrow; k += 16) {
      __m256 p0 = _mm256_setzero_ps(), q0 = p0, p1 = p0, q1 = p0;
      for (int j = 0; j < m; ++j) {
        const __m256 x0 = _mm256_loadu_ps(xs[j] + k), h0 = _mm256_loadu_ps(hs[j] + k);
        const __m256 x1 = _mm256_loadu_ps(xs[j] + k + 8), h1 = _mm256_loadu_ps(hs[j] + k + 8);
        p0 = _mm256_fmadd_ps(x0, _mm256_moveldup_ps(h0), p0);
        q0 = _mm256_fmadd_ps(_mm256_permute_ps(x0, 0xB1), _mm256_movehdup_ps(h0), q0);
        p1 = _mm256_fmadd_ps(x1, _mm256_moveldup_ps(h1), p1);
        q1 = _mm256_fmadd_ps(_mm256_permute_ps(x1, 0xB1), _mm256_movehdup_ps(h1), q1);
      }
      if constexpr (kConj) {
        const __m256 sign = _mm256_set1_ps(-0.f);
        q0 = _mm256_xor_ps(q0, sign);
        q1 = _mm256_xor_ps(q1, sign);
      }
      __m256 y0 = _mm256_addsub_ps(p0, q0), y1 = _mm256_addsub_ps(p1, q1);
      if (A) {
        y0 = _mm256_fmadd_ps(va, y0, _mm256_mul_ps(vc, _mm256_loadu_ps(x_t + k)));
        y1 = _mm256_fmadd_ps(va, y1, _mm256_mul_ps(vc, _mm256_loadu_ps(x_t + k + 8)));
      }
      _mm256_storeu_ps(y + k, y0);
      _mm256_storeu_ps(y + k + 8, y1);
    }
    for (; k < hrow; k += 2) {
      float re = 0, im = 0;
      for (int j = 0; j < m; ++j) {
        const float xr = xs[j][k], xi = xs[j][k + 1], hr = hs[j][k], hi = cs * hs[j][k + 1];
        re += xr * hr - xi * hi;
        im += xr * hi + xi * hr;
      }
      y[k] = A ? a * re + c * x_t[k] : re;
      y[k + 1] = A ? a * im + c * x_t[k + 1] : im;
    }
  }
}
#endif

}  // namespace dfk

namespace dfk {

/// Backward of the kernel above for the frames (b, t) in [begin, end): every channel row of them.
/// gX, gH, gA may each be nullptr (not needed).
template <typename S>
inline __attribute__((always_inline)) void backward_frames(const S* X, const S* H, const S* A, const S* G, S* gX,
                                                           S* gH, S* gA, const DfKernelGeom& g, int64_t begin,
                                                           int64_t end) {
  const int64_t front = g.N - 1 - g.L, row = 2 * g.F, hrow = 2 * g.Fdf;
  const S cs = g.conj ? S(-1) : S(1);
  const bool shared = g.hs_c == 0 && g.C > 1;  // one coefficient block for all channels: gH sums them
  for (int64_t bt = begin; bt < end; ++bt) {
    const int64_t b = bt / g.T, t = bt % g.T;
    for (int64_t c = 0; c < g.C; ++c) {
      const int64_t r = b * g.C + c, rt = r * g.T + t;
      const S* g_t = G + rt * row;
      const S a_t = A ? A[rt] : S(1);
      if (gX) {
        // Frame s = t is read by output frame t' = t + front - n through tap n.
        S* gx = gX + rt * row;
        std::memcpy(gx + hrow, g_t + hrow, sizeof(S) * (row - hrow));
        const S keep = A ? S(1) - a_t : S(0);
        for (int64_t k = 0; k < hrow; ++k) gx[k] = keep * g_t[k];
        for (int64_t n = 0; n < g.N; ++n) {
          const int64_t tp = t + front - n;
          if (tp < 0 || tp >= g.T) continue;
          const S a = A ? A[r * g.T + tp] : S(1);
          const S* gp = G + (r * g.T + tp) * row;
          const S* h = taps_of(H, g, r, tp) + n * g.hs_n;
          for (int64_t k = 0; k < hrow; k += 2) {
            const S gr = a * gp[k], gi = a * gp[k + 1], hr = h[k], hi = cs * h[k + 1];
            gx[k] += gr * hr + gi * hi;
            gx[k + 1] += gi * hr - gr * hi;
          }
        }
      }
      if (gH || gA) {
        S dot = 0;  // <Yfiltered_t - X_t, G_t> over the filtered bins
        const S* h0 = taps_of(H, g, r, t);
        S* gh0 = gH ? gH + (taps_of(H, g, r, t) - H) : nullptr;
        const bool first = !shared || c == 0;  // the first writer of a gH block sets it, the others add
        for (int64_t n = 0; n < g.N; ++n) {
          const int64_t s = t - front + n;
          S* gh = gh0 ? gh0 + n * g.hs_n : nullptr;
          if (s < 0 || s >= g.T) {
            if (gh && first) std::memset(gh, 0, sizeof(S) * hrow);
            continue;
          }
          const S* xs = X + (r * g.T + s) * row;
          if (gh) {
            for (int64_t k = 0; k < hrow; k += 2) {
              const S gr = a_t * g_t[k], gi = a_t * g_t[k + 1], xr = xs[k], xi = xs[k + 1];
              const S re = gr * xr + gi * xi, im = cs * (gi * xr - gr * xi);
              gh[k] = first ? re : gh[k] + re;
              gh[k + 1] = first ? im : gh[k + 1] + im;
            }
          }
          if (gA) {
            const S* h = h0 + n * g.hs_n;
            for (int64_t k = 0; k < hrow; k += 2) {
              const S xr = xs[k], xi = xs[k + 1], hr = h[k], hi = cs * h[k + 1];
              dot += (xr * hr - xi * hi) * g_t[k] + (xr * hi + xi * hr) * g_t[k + 1];
            }
          }
        }
        if (gA) {
          const S* x_t = X + rt * row;
          for (int64_t k = 0; k < hrow; ++k) dot -= x_t[k] * g_t[k];
          gA[rt] = dot;
        }
      }
    }
  }
}

#ifdef SEPMECH_DF_KERNEL_AVX2
__attribute__((target("avx2,fma"))) inline void backward_frames_avx2(const float* X, const float* H, const float* A,
                                                                     const float* G, float* gX, float* gH, float* gA,
                                                                     const DfKernelGeom& g, int64_t begin,
                                                                     int64_t end) {
  backward_frames<float>(X, H, A, G, gX, gH, gA, g, begin, end);
}
#endif

}  // namespace dfk

/// Runs the backward over all B*T frames (each task owns a frame's channels, so tasks never write
/// the same gH element). `avx2`: as for the forward kernel.
template <typename S>
void deep_filter_backward_kernel(const S* X, const S* H, const S* A, const S* G, S* gX, S* gH, S* gA,
                                 const DfKernelGeom& g, bool avx2) {
  at::parallel_for(0, g.B * g.T, 16, [&](int64_t begin, int64_t end) {
#ifdef SEPMECH_DF_KERNEL_AVX2
    if constexpr (std::is_same_v<S, float>)
      if (avx2) return dfk::backward_frames_avx2(X, H, A, G, gX, gH, gA, g, begin, end);
#endif
    (void)avx2;
    dfk::backward_frames<S>(X, H, A, G, gX, gH, gA, g, begin, end);
  });
}

/// Runs the kernel over all B*C*T output frames (LibTorch's intra-op threads). `avx2`: the caller
/// has checked that the CPU has AVX2+FMA (and did not ask for the portable path).
template <typename S>
void deep_filter_forward_kernel(const S* X, const S* H, const S* A, S* Y, const DfKernelGeom& g, bool avx2) {
  at::parallel_for(0, g.B * g.C * g.T, 16, [&](int64_t begin, int64_t end) {
#ifdef SEPMECH_DF_KERNEL_AVX2
    if constexpr (std::is_same_v<S, float>)
      if (avx2 && g.N <= 64)
        return g.conj ? dfk::forward_rows_avx2<true>(X, H, A, Y, g, begin, end)
                      : dfk::forward_rows_avx2<false>(X, H, A, Y, g, begin, end);
#endif
    (void)avx2;
    dfk::forward_rows<S>(X, H, A, Y, g, begin, end);
  });
}

}  // namespace sepmech::detail
