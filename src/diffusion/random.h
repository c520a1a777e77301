#pragma once
// The diffusion family's random source (random.cpp): i.i.d. normal draws from xoshiro256++
// streams and a 256-layer ziggurat, about half the cost of torch::randn here. The AVX2 path
// (taken when kernels::use_avx2()) and the portable path give identical bits; tests compare
// them with kernels::ForcePortable.
#include <torch/torch.h>

#include <cstdint>

namespace sepmech::diffusion::kernels {

/// Fills out[0..n) with i.i.d. N(0, scale²) draws. The stream is seeded by one 64-bit draw of
/// `gen` (so a seeded generator gives bit-identical output).
void fill_standard_normal(float* out, int64_t n, torch::Generator& gen, float scale);
/// The same from an explicit seed.
void fill_standard_normal_seeded(float* out, int64_t n, uint64_t seed, float scale);

}  // namespace sepmech::diffusion::kernels
