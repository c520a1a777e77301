// Batched small complex linear systems (N <= 8) on raw memory, and the fused inference kernel of
// MfWf / MfMvdr built on them.
//
// Why hand-written: a multi-frame filter solves one N x N system per time-frequency bin
// (48,000 systems of size 5 for 500 frames x 96 bins). Generic batched linalg pays a large
// per-matrix overhead (LAPACK call, pivot arrays, info checks) for matrices of 25 entries.
// Here W systems at a time are transposed into "structure of arrays" blocks (entry-major,
// lane-minor), so every arithmetic statement is a loop over W independent lanes that the
// compiler turns into SIMD instructions, with N a compile-time constant so all index loops unroll.
#include <limits>
#include <type_traits>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "sepmech/multiframe.h"
#include "kernels/cpu.h"
#include "kernels/multiframe_solver.h"
#include "kernels/simd_transpose.h"

namespace sepmech::mf {
namespace {

constexpr int kLanes = 8;

// The per-bin code is force-inlined into two copies of the row loop: the baseline x86-64 one and
// one compiled for AVX2+FMA (chosen at run time), so 8-lane statements become one instruction.
#if defined(__GNUC__) && defined(__x86_64__)
#define SEPMECH_INLINE inline __attribute__((always_inline))
#define SEPMECH_HAVE_AVX2_CLONE 1
#else
#define SEPMECH_INLINE inline
#define SEPMECH_HAVE_AVX2_CLONE 0
#endif

template <typename T, int N>
struct Block {
  T ar[N][N][kLanes], ai[N][N][kLanes];  // matrix (overwritten by its factors)
  T br[N][kLanes], bi[N][kLanes];        // right-hand side, then the solution
  T floor[kLanes];                       // pivots with magnitude below this are replaced by it
};

// LDL^H of a Hermitian matrix (only the lower triangle and the real part of the diagonal are
// read), then forward / diagonal / backward substitution. No pivoting: the matrices here are
// (regularised) correlation matrices, for which LDL^H is stable. Every statement is a loop over
// the lanes (innermost) so it vectorises.
template <typename T, int N>
SEPMECH_INLINE void ldlh_solve(Block<T, N>& s) {
  T d[N][kLanes], dinv[N][kLanes];
  for (int j = 0; j < N; ++j) {
    T dj[kLanes];
    for (int l = 0; l < kLanes; ++l) dj[l] = s.ar[j][j][l];
    for (int k = 0; k < j; ++k)
      for (int l = 0; l < kLanes; ++l)
        dj[l] -= d[k][l] * (s.ar[j][k][l] * s.ar[j][k][l] + s.ai[j][k][l] * s.ai[j][k][l]);
    for (int l = 0; l < kLanes; ++l) {
      const T fl = s.floor[l];
      const T v = (std::abs(dj[l]) >= fl) ? dj[l] : fl;  // also replaces NaN
      d[j][l] = v;
      dinv[j][l] = T(1) / v;
    }
    // Column j of L: L_ij = (A_ij - sum_{k<j} L_ik d_k conj(L_jk)) / d_j.
    for (int i = j + 1; i < N; ++i) {
      T re[kLanes], im[kLanes];
      for (int l = 0; l < kLanes; ++l) {
        re[l] = s.ar[i][j][l];
        im[l] = s.ai[i][j][l];
      }
      for (int k = 0; k < j; ++k)
        for (int l = 0; l < kLanes; ++l) {
          const T pr = s.ar[i][k][l] * d[k][l], pi = s.ai[i][k][l] * d[k][l];
          const T qr = s.ar[j][k][l], qi = s.ai[j][k][l];
          re[l] -= pr * qr + pi * qi;
          im[l] -= pi * qr - pr * qi;
        }
      for (int l = 0; l < kLanes; ++l) {
        s.ar[i][j][l] = re[l] * dinv[j][l];
        s.ai[i][j][l] = im[l] * dinv[j][l];
      }
    }
  }
  // L y = b
  for (int i = 0; i < N; ++i)
    for (int k = 0; k < i; ++k)
      for (int l = 0; l < kLanes; ++l) {
        const T lr = s.ar[i][k][l], li = s.ai[i][k][l];
        const T yr = s.br[k][l], yi = s.bi[k][l];
        s.br[i][l] -= lr * yr - li * yi;
        s.bi[i][l] -= lr * yi + li * yr;
      }
  // D z = y
  for (int i = 0; i < N; ++i)
    for (int l = 0; l < kLanes; ++l) {
      s.br[i][l] *= dinv[i][l];
      s.bi[i][l] *= dinv[i][l];
    }
  // L^H x = z
  for (int i = N - 1; i >= 0; --i)
    for (int k = i + 1; k < N; ++k)
      for (int l = 0; l < kLanes; ++l) {
        const T lr = s.ar[k][i][l], li = s.ai[k][i][l];  // conj(L_ki) x_k
        const T xr = s.br[k][l], xi = s.bi[k][l];
        s.br[i][l] -= lr * xr + li * xi;
        s.bi[i][l] -= lr * xi - li * xr;
      }
}

// Gaussian elimination with partial pivoting on [A | b] (general complex A). The row swap is
// done per lane with selects so the lanes stay in lock-step.
template <typename T, int N>
SEPMECH_INLINE void lu_solve(Block<T, N>& s) {
  for (int k = 0; k < N; ++k) {
    int piv[kLanes];
    T best[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      piv[l] = k;
      best[l] = s.ar[k][k][l] * s.ar[k][k][l] + s.ai[k][k][l] * s.ai[k][k][l];
    }
    for (int i = k + 1; i < N; ++i)
      for (int l = 0; l < kLanes; ++l) {
        const T m = s.ar[i][k][l] * s.ar[i][k][l] + s.ai[i][k][l] * s.ai[i][k][l];
        const bool better = m > best[l];
        best[l] = better ? m : best[l];
        piv[l] = better ? i : piv[l];
      }
    for (int i = k + 1; i < N; ++i) {
      for (int j = k; j < N; ++j)
        for (int l = 0; l < kLanes; ++l) {
          const bool sw = piv[l] == i;
          const T kr = s.ar[k][j][l], ki = s.ai[k][j][l], ir = s.ar[i][j][l], ii = s.ai[i][j][l];
          s.ar[k][j][l] = sw ? ir : kr;
          s.ai[k][j][l] = sw ? ii : ki;
          s.ar[i][j][l] = sw ? kr : ir;
          s.ai[i][j][l] = sw ? ki : ii;
        }
      for (int l = 0; l < kLanes; ++l) {
        const bool sw = piv[l] == i;
        const T kr = s.br[k][l], ki = s.bi[k][l], ir = s.br[i][l], ii = s.bi[i][l];
        s.br[k][l] = sw ? ir : kr;
        s.bi[k][l] = sw ? ii : ki;
        s.br[i][l] = sw ? kr : ir;
        s.bi[i][l] = sw ? ki : ii;
      }
    }
    T invr[kLanes], invi[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      T pr = s.ar[k][k][l], pi = s.ai[k][k][l];
      const T m2 = pr * pr + pi * pi;
      const T fl = s.floor[l];
      const bool small = !(m2 >= fl * fl);
      pr = small ? fl : pr;
      pi = small ? T(0) : pi;
      s.ar[k][k][l] = pr;
      s.ai[k][k][l] = pi;
      const T inv = T(1) / (pr * pr + pi * pi);
      invr[l] = pr * inv;
      invi[l] = -pi * inv;
    }
    for (int i = k + 1; i < N; ++i) {
      T fr[kLanes], fi[kLanes];
      for (int l = 0; l < kLanes; ++l) {
        const T ar = s.ar[i][k][l], ai = s.ai[i][k][l];
        fr[l] = ar * invr[l] - ai * invi[l];
        fi[l] = ar * invi[l] + ai * invr[l];
      }
      for (int j = k + 1; j < N; ++j)
        for (int l = 0; l < kLanes; ++l) {
          const T ur = s.ar[k][j][l], ui = s.ai[k][j][l];
          s.ar[i][j][l] -= fr[l] * ur - fi[l] * ui;
          s.ai[i][j][l] -= fr[l] * ui + fi[l] * ur;
        }
      for (int l = 0; l < kLanes; ++l) {
        const T ur = s.br[k][l], ui = s.bi[k][l];
        s.br[i][l] -= fr[l] * ur - fi[l] * ui;
        s.bi[i][l] -= fr[l] * ui + fi[l] * ur;
      }
    }
  }
  for (int i = N - 1; i >= 0; --i) {
    T re[kLanes], im[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      re[l] = s.br[i][l];
      im[l] = s.bi[i][l];
    }
    for (int j = i + 1; j < N; ++j)
      for (int l = 0; l < kLanes; ++l) {
        const T ur = s.ar[i][j][l], ui = s.ai[i][j][l], xr = s.br[j][l], xi = s.bi[j][l];
        re[l] -= ur * xr - ui * xi;
        im[l] -= ur * xi + ui * xr;
      }
    for (int l = 0; l < kLanes; ++l) {
      const T pr = s.ar[i][i][l], pi = s.ai[i][i][l];
      const T inv = T(1) / (pr * pr + pi * pi);
      s.br[i][l] = (re[l] * pr + im[l] * pi) * inv;
      s.bi[i][l] = (im[l] * pr - re[l] * pi) * inv;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// small_solve
// ---------------------------------------------------------------------------------------------
template <typename T, int N>
void small_solve_kernel(const T* A, const T* b, const T* floor, T* x, int64_t count, bool hermitian) {
  const T tiny = std::numeric_limits<T>::min();
  at::parallel_for(0, (count + kLanes - 1) / kLanes, 1, [&](int64_t blk0, int64_t blk1) {
    Block<T, N> s;
    for (int64_t blk = blk0; blk < blk1; ++blk) {
      const int64_t first = blk * kLanes;
      const int lanes = static_cast<int>(std::min<int64_t>(kLanes, count - first));
      for (int l = 0; l < kLanes; ++l) {
        const bool live = l < lanes;
        const T* a = A + (first + l) * 2 * N * N;
        const T* v = b + (first + l) * 2 * N;
        for (int m = 0; m < N; ++m) {
          for (int k = 0; k < N; ++k) {
            s.ar[m][k][l] = live ? a[2 * (m * N + k)] : T(m == k);
            s.ai[m][k][l] = live ? a[2 * (m * N + k) + 1] : T(0);
          }
          s.br[m][l] = live ? v[2 * m] : T(0);
          s.bi[m][l] = live ? v[2 * m + 1] : T(0);
        }
        s.floor[l] = std::max(live && floor ? floor[first + l] : T(0), tiny);
      }
      if (hermitian)
        ldlh_solve<T, N>(s);
      else
        lu_solve<T, N>(s);
      for (int l = 0; l < lanes; ++l) {
        T* o = x + (first + l) * 2 * N;
        for (int m = 0; m < N; ++m) {
          o[2 * m] = s.br[m][l];
          o[2 * m + 1] = s.bi[m][l];
        }
      }
    }
  });
}

template <typename T>
void small_solve_dispatch(int64_t n, const T* A, const T* b, const T* floor, T* x, int64_t count,
                          bool hermitian) {
  switch (n) {
#define SEPMECH_CASE(K) \
  case K:               \
    return small_solve_kernel<T, K>(A, b, floor, x, count, hermitian);
    SEPMECH_CASE(1) SEPMECH_CASE(2) SEPMECH_CASE(3) SEPMECH_CASE(4)
    SEPMECH_CASE(5) SEPMECH_CASE(6) SEPMECH_CASE(7) SEPMECH_CASE(8)
#undef SEPMECH_CASE
    default:
      TORCH_CHECK(false, "sepmech::mf::small_solve: N must be in [1, 8], got ", n);
  }
}

/// x = A^-1 b for contiguous A [M,N,N], b [M,N] complex, floor [M] real or undefined.
torch::Tensor solve_raw(const torch::Tensor& A, const torch::Tensor& b, const torch::Tensor& floor,
                        bool hermitian) {
  const int64_t n = A.size(-1);
  auto Ac = A.resolve_conj().contiguous();
  auto bc = b.resolve_conj().contiguous();
  auto x = torch::empty_like(bc);
  const int64_t count = n == 0 ? 0 : bc.numel() / n;
  if (count == 0) return x;
  if (A.scalar_type() == torch::kComplexFloat) {
    auto fl = floor.defined() ? floor.to(torch::kFloat).contiguous() : torch::Tensor();
    small_solve_dispatch<float>(n, reinterpret_cast<const float*>(Ac.data_ptr()),
                                reinterpret_cast<const float*>(bc.data_ptr()),
                                fl.defined() ? fl.data_ptr<float>() : nullptr,
                                reinterpret_cast<float*>(x.data_ptr()), count, hermitian);
  } else {
    auto fl = floor.defined() ? floor.to(torch::kDouble).contiguous() : torch::Tensor();
    small_solve_dispatch<double>(n, reinterpret_cast<const double*>(Ac.data_ptr()),
                                 reinterpret_cast<const double*>(bc.data_ptr()),
                                 fl.defined() ? fl.data_ptr<double>() : nullptr,
                                 reinterpret_cast<double*>(x.data_ptr()), count, hermitian);
  }
  return x;
}

struct SmallSolveFn : public torch::autograd::Function<SmallSolveFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& A,
                               const torch::Tensor& b, const torch::Tensor& floor, bool hermitian) {
    auto x = solve_raw(A, b, floor, hermitian);
    ctx->save_for_backward({A, x, floor});
    ctx->saved_data["hermitian"] = hermitian;
    return x;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& A = saved[0];
    const auto& x = saved[1];
    const auto& floor = saved[2];
    const bool hermitian = ctx->saved_data["hermitian"].toBool();
    // grad_b = A^-H grad_x (A^H = A for the Hermitian solver), grad_A = -grad_b x^H.
    auto gb = solve_raw(hermitian ? A : A.mH().resolve_conj().contiguous(), grads[0], floor, hermitian);
    auto gA = -gb.unsqueeze(-1) * x.conj().unsqueeze(-2);
    return {gA, gb, torch::Tensor(), torch::Tensor()};
  }
};

void check_small_solve_args(const torch::Tensor& A, const torch::Tensor& b) {
  TORCH_CHECK(A.is_complex() && b.is_complex(), "sepmech::mf::small_solve: A and b must be complex, got ",
              A.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(A.scalar_type() == b.scalar_type(), "sepmech::mf::small_solve: A and b must have the same dtype, got ",
              A.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(A.dim() >= 2 && A.size(-1) == A.size(-2), "sepmech::mf::small_solve: A must be [...,N,N], got ",
              A.sizes());
  TORCH_CHECK(b.dim() == A.dim() - 1 && b.size(-1) == A.size(-1),
              "sepmech::mf::small_solve: b must be [...,N] with N = ", A.size(-1), ", got ", b.sizes());
}

}  // namespace

namespace detail {
/// small_solve with a per-system pivot floor (real tensor broadcastable to A's batch shape).
torch::Tensor small_solve_floor(const torch::Tensor& A, const torch::Tensor& b, bool hermitian,
                                const torch::Tensor& floor) {
  check_small_solve_args(A, b);
  const int64_t n = A.size(-1);
  auto batch = at::infer_size(A.sizes().slice(0, A.dim() - 2), b.sizes().slice(0, b.dim() - 1));
  std::vector<int64_t> a_shape(batch.begin(), batch.end()), b_shape(batch.begin(), batch.end());
  a_shape.push_back(n);
  a_shape.push_back(n);
  b_shape.push_back(n);
  auto Ae = A.expand(a_shape);
  auto be = b.expand(b_shape);
  if (n > 8) return torch::linalg_solve(Ae, be.unsqueeze(-1)).squeeze(-1);
  // Always a defined tensor: autograd::Function::apply cannot take undefined tensors.
  auto fl = (floor.defined() ? floor.detach() : torch::zeros({}, torch::kDouble)).expand(batch).reshape({-1});
  auto A2 = Ae.reshape({-1, n, n});
  auto b2 = be.reshape({-1, n});
  auto x = SmallSolveFn::apply(A2, b2, fl, hermitian);
  return x.reshape(b_shape);
}
}  // namespace detail

torch::Tensor small_solve(const torch::Tensor& A, const torch::Tensor& b, bool hermitian, double pivot_floor) {
  TORCH_CHECK(pivot_floor >= 0, "sepmech::mf::small_solve: pivot_floor must be >= 0, got ", pivot_floor);
  torch::Tensor fl;
  if (pivot_floor > 0) fl = torch::full({}, pivot_floor, torch::TensorOptions().dtype(torch::kDouble));
  return detail::small_solve_floor(A, b, hermitian, fl);
}

// ---------------------------------------------------------------------------------------------
// Fused MfWf / MfMvdr inference: reads R, the IFC and the spectrogram once, writes the output
// once; the per-bin filter never touches memory.
// ---------------------------------------------------------------------------------------------
namespace detail {



// Transposes `count` bins of `width` interleaved floats each (bin l at src + l*width) into
// dst[e][l] (entry-major, lane-minor), kLanes bins. 4x4 register transposes keep every store a
// full vector store, so the lane loops that follow never hit a store-forwarding stall.
template <typename T, int W>
SEPMECH_INLINE void gather_lanes(const T* src, T (*dst)[kLanes]) {
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float> && W >= 4) {
    for (int g = 0; g < kLanes; g += 4) {
      const float* p = src + g * W;
      for (int e0 = 0; e0 < W; e0 += 4) {
        const int e = e0 + 4 <= W ? e0 : W - 4;  // last chunk overlaps instead of running past
        __m128 r0 = _mm_loadu_ps(p + e), r1 = _mm_loadu_ps(p + W + e), r2 = _mm_loadu_ps(p + 2 * W + e),
               r3 = _mm_loadu_ps(p + 3 * W + e);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(&dst[e][g], r0);
        _mm_storeu_ps(&dst[e + 1][g], r1);
        _mm_storeu_ps(&dst[e + 2][g], r2);
        _mm_storeu_ps(&dst[e + 3][g], r3);
      }
    }
    return;
  }
#endif
  for (int l = 0; l < kLanes; ++l)
    for (int e = 0; e < W; ++e) dst[e][l] = src[l * W + e];
}

/// Loads kLanes consecutive complex values (interleaved) into re[], im[].
template <typename T>
SEPMECH_INLINE void load_complex_lanes(const T* x, T* re, T* im) {
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) {
    for (int g = 0; g < kLanes; g += 4) {
      const __m128 a = _mm_loadu_ps(x + 2 * g), b = _mm_loadu_ps(x + 2 * g + 4);
      _mm_storeu_ps(re + g, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
      _mm_storeu_ps(im + g, _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
    }
    return;
  }
#endif
  for (int l = 0; l < kLanes; ++l) {
    re[l] = x[2 * l];
    im[l] = x[2 * l + 1];
  }
}

/// Stores re[], im[] as kLanes interleaved complex values.
template <typename T>
SEPMECH_INLINE void store_complex_lanes(T* o, const T* re, const T* im) {
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) {
    for (int g = 0; g < kLanes; g += 4) {
      const __m128 r = _mm_loadu_ps(re + g), i = _mm_loadu_ps(im + g);
      _mm_storeu_ps(o + 2 * g, _mm_unpacklo_ps(r, i));
      _mm_storeu_ps(o + 2 * g + 4, _mm_unpackhi_ps(r, i));
    }
    return;
  }
#endif
  for (int l = 0; l < kLanes; ++l) {
    o[2 * l] = re[l];
    o[2 * l + 1] = im[l];
  }
}

#if SEPMECH_HAVE_AVX2_CLONE
// 256-bit versions of the three data movers above, for the AVX2 copy of the row loop. They keep
// every store the width of the loads that read it back (two 128-bit stores read by one 256-bit
// load cannot be store-forwarded and stall), and hand the de-interleaved spectrum to the filter
// in registers instead of through the stack. Not always_inline: GCC refuses to force AVX2 code
// into the target-neutral mf_rows template; `flatten` on mf_rows_avx2 inlines them there.
#define SEPMECH_AVX2_INLINE inline __attribute__((target("avx2,fma")))

/// gather_lanes for float, W >= 8: 8x8 tiles; the last tile overlaps instead of running past.
template <int W>
SEPMECH_AVX2_INLINE void gather_lanes_avx2(const float* src, float (*dst)[kLanes]) {
  static_assert(W >= 8 && kLanes == 8, "8x8 tiles need rows of at least 8 floats and 8 lanes");
  for (int e0 = 0; e0 < W; e0 += 8) {
    const int e = e0 + 8 <= W ? e0 : W - 8;
    sepmech::detail::transpose8x8_avx2(src + e, W, dst[e], kLanes);
  }
}

/// 8 interleaved complex values -> real parts, imaginary parts (lane order kept).
SEPMECH_AVX2_INLINE void load_complex8(const float* x, __m256& re, __m256& im) {
  const __m256 a = _mm256_loadu_ps(x), b = _mm256_loadu_ps(x + 8);
  // Within 128-bit halves: [r0 r1 r4 r5 | r2 r3 r6 r7]; then the 64-bit pairs are put in order.
  const __m256 r = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 i = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  re = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(r), _MM_SHUFFLE(3, 1, 2, 0)));
  im = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(i), _MM_SHUFFLE(3, 1, 2, 0)));
}

/// Inverse of load_complex8.
SEPMECH_AVX2_INLINE void store_complex8(float* o, __m256 re, __m256 im) {
  const __m256 lo = _mm256_unpacklo_ps(re, im), hi = _mm256_unpackhi_ps(re, im);
  _mm256_storeu_ps(o, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}

/// Y = sum_n X_n w_n for 8 bins, X interleaved complex rows (nullptr = frame outside [0, T)).
template <int N>
SEPMECH_AVX2_INLINE void filter8(const float* const* x, const float (*vr)[kLanes], const float (*vi)[kLanes],
                                 float* o) {
  __m256 yr = _mm256_setzero_ps(), yi = _mm256_setzero_ps();
  for (int n = 0; n < N; ++n) {
    if (!x[n]) continue;
    __m256 xr, xi;
    load_complex8(x[n], xr, xi);
    const __m256 wr = _mm256_loadu_ps(vr[n]), wi = _mm256_loadu_ps(vi[n]);
    yr = _mm256_fmadd_ps(xr, wr, yr);
    yr = _mm256_fnmadd_ps(xi, wi, yr);
    yi = _mm256_fmadd_ps(xr, wi, yi);
    yi = _mm256_fmadd_ps(xi, wr, yi);
  }
  store_complex8(o, yr, yi);
}

SEPMECH_AVX2_INLINE bool any_nonzero8(const float* v) {
  // NaN compares unequal (unordered), so a NaN lane counts as non-zero.
  return _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v), _mm256_setzero_ps(), _CMP_NEQ_UQ)) != 0;
}
#endif

template <typename T, int W, bool Avx2>
SEPMECH_INLINE void gather_lanes_for(const T* src, T (*dst)[kLanes]) {
#if SEPMECH_HAVE_AVX2_CLONE
  if constexpr (Avx2 && W >= 8) return gather_lanes_avx2<W>(src, dst);
#endif
  gather_lanes<T, W>(src, dst);
}

/// v = M gamma for kLanes systems at once. mr(i, k) / mi(i, k) give the lane arrays of the real /
/// imaginary part of M[i][k], so the gathered block and the solver's block share one loop.
template <typename T, int N, typename Re, typename Im>
SEPMECH_INLINE void complex_matvec(Re mr, Im mi, const T (&g)[N][2][kLanes], T (&vr)[N][kLanes], T (&vi)[N][kLanes]) {
  for (int i = 0; i < N; ++i) {
    T re[kLanes] = {}, im[kLanes] = {};
    for (int k = 0; k < N; ++k) {
      const T* ar = mr(i, k);
      const T* ai = mi(i, k);
      for (int l = 0; l < kLanes; ++l) {
        const T gr = g[k][0][l], gi = g[k][1][l];
        re[l] += ar[l] * gr - ai[l] * gi;
        im[l] += ar[l] * gi + ai[l] * gr;
      }
    }
    for (int l = 0; l < kLanes; ++l) {
      vr[i][l] = re[l];
      vi[i][l] = im[l];
    }
  }
}

template <typename T, int N, bool Avx2>
SEPMECH_INLINE void mf_rows(const T* spec, const T* ifc, const T* R, T* out, const MfFusedArgs& a, int64_t r0,
                            int64_t r1) {
  const int64_t C = a.C, Tn = a.T, F = a.F, Fdf = a.Fdf, L = a.L;
  const int64_t cur = N - 1 - L;  // window index of the current frame (may be outside [0,N))
  const bool hermitian = a.cholesky || a.enforce;
  constexpr int kR = 2 * N * N, kG = 2 * N;
  Block<T, N> s;
  // R and the IFC of kLanes bins, entry-major: A[m][k][re/im][lane], g[n][re/im][lane] (this is
  // exactly the transposed memory layout, so the gather writes them directly).
  T A[N][N][2][kLanes], g[N][2][kLanes];
  T vr[N][kLanes], vi[N][kLanes];
  T bad[kLanes];
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t bb = row / Tn, t = row % Tn;
    // Bins >= Fdf are copied.
    for (int64_t c = 0; c < C; ++c) {
      const int64_t off = (((bb * C + c) * Tn + t) * F + Fdf) * 2;
      std::memcpy(out + off, spec + off, sizeof(T) * 2 * (F - Fdf));
    }
    for (int64_t f0 = 0; f0 < Fdf; f0 += kLanes) {
      const int lanes = static_cast<int>(std::min<int64_t>(kLanes, Fdf - f0));
      const T* Rp = R + (row * Fdf + f0) * kR;
      const T* gp = ifc + (row * Fdf + f0) * kG;
      if (lanes == kLanes) {
        gather_lanes_for<T, kR, Avx2>(Rp, reinterpret_cast<T(*)[kLanes]>(&A[0][0][0][0]));
        gather_lanes_for<T, kG, Avx2>(gp, reinterpret_cast<T(*)[kLanes]>(&g[0][0][0]));
      } else {  // tail: dead lanes get an identity system
        for (int l = 0; l < kLanes; ++l) {
          const bool live = l < lanes;
          for (int m = 0; m < N; ++m)
            for (int k = 0; k < N; ++k) {
              A[m][k][0][l] = live ? Rp[l * kR + 2 * (m * N + k)] : T(m == k);
              A[m][k][1][l] = live ? Rp[l * kR + 2 * (m * N + k) + 1] : T(0);
            }
          for (int n = 0; n < N; ++n) {
            g[n][0][l] = live ? gp[l * kG + 2 * n] : T(0);
            g[n][1][l] = live ? gp[l * kG + 2 * n + 1] : T(0);
          }
        }
      }
      for (int l = 0; l < kLanes; ++l) bad[l] = T(0);
      // A non-finite input reaches v through every product below (x * 0 and inf - inf are NaN),
      // except where the solver clamps a NaN pivot; the solve branch checks its matrix.
      if (a.inverse && !a.cholesky) {
        // v = R gamma (no constraint, no regularisation).
        complex_matvec<T, N>([&](int i, int k) { return A[i][k][0]; }, [&](int i, int k) { return A[i][k][1]; }, g,
                             vr, vi);
      } else {
        // Steps 1/2: the matrix the filter uses, into s.
        if (a.cholesky) {
          if (a.enforce)
            for (int m = 0; m < N; ++m)
              for (int k = m + 1; k < N; ++k)
                for (int l = 0; l < kLanes; ++l) A[m][k][0][l] = A[m][k][1][l] = T(0);
          // (L L^H)_ij = sum_k L_ik conj(L_jk) for i >= j, then mirrored.
          for (int i = 0; i < N; ++i)
            for (int j = 0; j <= i; ++j) {
              T re[kLanes] = {}, im[kLanes] = {};
              for (int k = 0; k < N; ++k)
                for (int l = 0; l < kLanes; ++l) {
                  const T xr = A[i][k][0][l], xi = A[i][k][1][l], yr = A[j][k][0][l], yi = A[j][k][1][l];
                  re[l] += xr * yr + xi * yi;
                  im[l] += xi * yr - xr * yi;
                }
              for (int l = 0; l < kLanes; ++l) {
                s.ar[i][j][l] = re[l];
                s.ai[i][j][l] = i == j ? T(0) : im[l];
              }
            }
          for (int i = 0; i < N; ++i)
            for (int j = i + 1; j < N; ++j)
              for (int l = 0; l < kLanes; ++l) {
                s.ar[i][j][l] = s.ar[j][i][l];
                s.ai[i][j][l] = -s.ai[j][i][l];
              }
        } else {
          // enforce: lower triangle kept, diagonal made real (the LDL^H solver reads nothing else);
          // otherwise the full matrix for LU.
          for (int i = 0; i < N; ++i)
            for (int j = 0; j < N; ++j)
              for (int l = 0; l < kLanes; ++l) {
                s.ar[i][j][l] = A[i][j][0][l];
                s.ai[i][j][l] = (a.enforce && i == j) ? T(0) : A[i][j][1][l];
              }
        }
        if (a.inverse) {  // Cholesky factor of the inverse: v = (L L^H) gamma
          complex_matvec<T, N>([&](int i, int k) { return s.ar[i][k]; }, [&](int i, int k) { return s.ai[i][k]; }, g,
                               vr, vi);
        } else {
          // Entries the solver reads must be finite (it would clamp a NaN pivot into garbage).
          for (int i = 0; i < N; ++i)
            for (int j = 0; j <= (hermitian ? i : N - 1); ++j)
              for (int l = 0; l < kLanes; ++l) bad[l] += s.ar[i][j][l] * T(0) + s.ai[i][j][l] * T(0);
          bool any_bad = false;
          for (int l = 0; l < kLanes; ++l) any_bad |= !(bad[l] == T(0));
          if (any_bad)
            for (int l = 0; l < kLanes; ++l) {
              if (bad[l] == T(0)) continue;
              for (int i = 0; i < N; ++i)
                for (int j = 0; j < N; ++j) {
                  s.ar[i][j][l] = T(i == j);
                  s.ai[i][j][l] = T(0);
                }
            }
          // Step 3: v = (A + delta I)^-1 gamma, delta = dload Re tr A + eps.
          const T dload = static_cast<T>(a.dload), eps = static_cast<T>(a.eps);
          T delta[kLanes];
          for (int l = 0; l < kLanes; ++l) delta[l] = T(0);
          for (int i = 0; i < N; ++i)
            for (int l = 0; l < kLanes; ++l) delta[l] += s.ar[i][i][l];
          for (int l = 0; l < kLanes; ++l) {
            delta[l] = dload * delta[l] + eps;
            s.floor[l] = std::max(T(0.5) * std::abs(delta[l]), std::numeric_limits<T>::min());
          }
          for (int i = 0; i < N; ++i)
            for (int l = 0; l < kLanes; ++l) s.ar[i][i][l] += delta[l];
          for (int n = 0; n < N; ++n)
            for (int l = 0; l < kLanes; ++l) {
              s.br[n][l] = g[n][0][l];
              s.bi[n][l] = g[n][1][l];
            }
          if (hermitian)
            ldlh_solve<T, N>(s);
          else
            lu_solve<T, N>(s);
          std::memcpy(vr, s.br, sizeof(vr));
          std::memcpy(vi, s.bi, sizeof(vi));
        }
      }
      // Step 4: MVDR normalisation w = v conj(gamma[N-1]) / (Re(gamma^H v) + eps).
      if (a.mvdr) {
        T den[kLanes];
        for (int l = 0; l < kLanes; ++l) den[l] = static_cast<T>(a.eps);
        for (int n = 0; n < N; ++n)
          for (int l = 0; l < kLanes; ++l) den[l] += g[n][0][l] * vr[n][l] + g[n][1][l] * vi[n][l];
        T sr[kLanes], si[kLanes];
        for (int l = 0; l < kLanes; ++l) {
          sr[l] = g[N - 1][0][l] / den[l];
          si[l] = -g[N - 1][1][l] / den[l];
        }
        for (int n = 0; n < N; ++n)
          for (int l = 0; l < kLanes; ++l) {
            const T xr = vr[n][l], xi = vi[n][l];
            vr[n][l] = xr * sr[l] - xi * si[l];
            vi[n][l] = xr * si[l] + xi * sr[l];
          }
      }
      // Guard: non-finite matrix or result -> identity filter (pass the current frame through).
      for (int n = 0; n < N; ++n)
        for (int l = 0; l < kLanes; ++l) bad[l] += vr[n][l] * T(0) + vi[n][l] * T(0);
      bool some_bad = true;  // the scalar lane loop below decides; AVX2 asks all 8 lanes at once
#if SEPMECH_HAVE_AVX2_CLONE
      if constexpr (Avx2) some_bad = any_nonzero8(bad);
#endif
      for (int l = 0; some_bad && l < kLanes; ++l) {
        if (bad[l] == T(0)) continue;
        for (int n = 0; n < N; ++n) {
          vr[n][l] = T(n == cur);
          vi[n][l] = T(0);
        }
      }
      // Step 5: Y[t,f] = sum_n X[t-(N-1-L)+n, f] w[n], every channel.
      for (int64_t c = 0; c < C; ++c) {
        const T* xs = spec + ((bb * C + c) * Tn) * F * 2;
        T* o = out + (((bb * C + c) * Tn + t) * F + f0) * 2;
#if SEPMECH_HAVE_AVX2_CLONE
        if constexpr (Avx2) {
          if (lanes == kLanes) {
            const float* x[N];
            for (int n = 0; n < N; ++n) {
              const int64_t tt = t - (N - 1 - L) + n;
              x[n] = (tt < 0 || tt >= Tn) ? nullptr : xs + (tt * F + f0) * 2;
            }
            filter8<N>(x, vr, vi, o);
            continue;
          }
        }
#endif
        T yr[kLanes] = {}, yi[kLanes] = {};
        for (int n = 0; n < N; ++n) {
          const int64_t tt = t - (N - 1 - L) + n;
          if (tt < 0 || tt >= Tn) continue;
          const T* x = xs + (tt * F + f0) * 2;
          if (lanes == kLanes) {
            T xr[kLanes], xi[kLanes];
            load_complex_lanes(x, xr, xi);
            for (int l = 0; l < kLanes; ++l) {
              yr[l] += xr[l] * vr[n][l] - xi[l] * vi[n][l];
              yi[l] += xr[l] * vi[n][l] + xi[l] * vr[n][l];
            }
          } else {
            for (int l = 0; l < lanes; ++l) {
              const T xr = x[2 * l], xi = x[2 * l + 1];
              yr[l] += xr * vr[n][l] - xi * vi[n][l];
              yi[l] += xr * vi[n][l] + xi * vr[n][l];
            }
          }
        }
        if (lanes == kLanes) {
          store_complex_lanes(o, yr, yi);
        } else {
          for (int l = 0; l < lanes; ++l) {
            o[2 * l] = yr[l];
            o[2 * l + 1] = yi[l];
          }
        }
      }
    }
  }
}

template <typename T, int N>
void mf_rows_base(const T* spec, const T* ifc, const T* R, T* out, const MfFusedArgs& a, int64_t r0, int64_t r1) {
  mf_rows<T, N, false>(spec, ifc, R, out, a, r0, r1);
}

#if SEPMECH_HAVE_AVX2_CLONE
template <typename T, int N>
__attribute__((target("avx2,fma"), flatten)) void mf_rows_avx2(const T* spec, const T* ifc, const T* R, T* out,
                                                                const MfFusedArgs& a, int64_t r0, int64_t r1) {
  mf_rows<T, N, std::is_same_v<T, float>>(spec, ifc, R, out, a, r0, r1);
}
#endif

template <typename T, int N>
void mf_fused_kernel(const T* spec, const T* ifc, const T* R, T* out, const MfFusedArgs& a) {
  const bool avx2 = kernels::use_avx2();
  at::parallel_for(0, a.B * a.T, 1, [&](int64_t r0, int64_t r1) {
#if SEPMECH_HAVE_AVX2_CLONE
    if (avx2) return mf_rows_avx2<T, N>(spec, ifc, R, out, a, r0, r1);
#endif
    mf_rows_base<T, N>(spec, ifc, R, out, a, r0, r1);
  });
}

template <typename T>
void mf_fused_dispatch(const T* spec, const T* ifc, const T* R, T* out, const MfFusedArgs& a) {
  switch (a.N) {
#define SEPMECH_CASE(K) \
  case K:               \
    return mf_fused_kernel<T, K>(spec, ifc, R, out, a);
    SEPMECH_CASE(1) SEPMECH_CASE(2) SEPMECH_CASE(3) SEPMECH_CASE(4)
    SEPMECH_CASE(5) SEPMECH_CASE(6) SEPMECH_CASE(7) SEPMECH_CASE(8)
#undef SEPMECH_CASE
    default:
      TORCH_CHECK(false, "sepmech::MfWf/MfMvdr: fused kernel supports frame_size 1..8, got ", a.N);
  }
}

/// spec [B,C,T,F,2], ifc [B,T,Fdf,2N], R [B,T,Fdf,2N^2] (same floating dtype) -> new spec.
torch::Tensor mf_filter_fused(const torch::Tensor& spec, const torch::Tensor& ifc, const torch::Tensor& R,
                              const MfFusedArgs& a) {
  auto s = spec.contiguous();
  auto g = ifc.contiguous();
  auto r = R.contiguous();
  auto out = torch::empty_like(s);
  if (s.scalar_type() == torch::kFloat)
    mf_fused_dispatch<float>(s.data_ptr<float>(), g.data_ptr<float>(), r.data_ptr<float>(), out.data_ptr<float>(), a);
  else
    mf_fused_dispatch<double>(s.data_ptr<double>(), g.data_ptr<double>(), r.data_ptr<double>(),
                              out.data_ptr<double>(), a);
  return out;
}

}  // namespace detail
}  // namespace sepmech::mf
