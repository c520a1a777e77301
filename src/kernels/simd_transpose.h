#pragma once
// One 8x8 float transpose in AVX2 registers, shared by the kernels that change data layout on the
// fly (the multi-frame filter's bin-to-lane gather, OSA's NCHW -> NHWC input copy). Callers are
// compiled for AVX2 (target attribute) and check the CPU at run time.
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

#define SEPMECH_HAVE_AVX2_TRANSPOSE 1

namespace sepmech::detail {

/// dst row j (8 floats at dst + j*dst_stride) = column j of the 8x8 block whose row l is the 8
/// floats at src + l*src_stride.
inline __attribute__((target("avx2"))) void transpose8x8_avx2(const float* src, int64_t src_stride, float* dst,
                                                               int64_t dst_stride) {
  __m256 r[8], t[8], u[8];
  for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(src + l * src_stride);
  for (int l = 0; l < 8; l += 2) {
    t[l] = _mm256_unpacklo_ps(r[l], r[l + 1]);
    t[l + 1] = _mm256_unpackhi_ps(r[l], r[l + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    u[h] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_ps(dst + j * dst_stride, _mm256_permute2f128_ps(u[j], u[j + 4], 0x20));
    _mm256_storeu_ps(dst + (j + 4) * dst_stride, _mm256_permute2f128_ps(u[j], u[j + 4], 0x31));
  }
}

}  // namespace sepmech::detail
#endif
