#pragma once
// CPU-feature dispatch for every SIMD kernel of the library, written once.
//
// A fused kernel picks its AVX2 path with `kernels::use_avx2()` and otherwise runs its portable
// twin. Tests flip ONE switch, `ForcePortable`, to run every kernel's portable path on a machine
// that has AVX2, so both paths are checked against each other and against the references:
//
//   {
//     sepmech::kernels::ForcePortable portable;   // every kernel takes its portable path
//     ... run the mechanism ...
//   }                                             // previous setting restored
#include <atomic>

namespace sepmech::kernels {

/// True when the CPU executes AVX2 and FMA (decided once per process).
bool cpu_has_avx2();

/// The process-wide "force the portable kernels" switch.
std::atomic<bool>& portable_forced_flag();

/// True when the AVX2 kernels should run: the CPU has them and the portable path is not forced.
inline bool use_avx2() { return cpu_has_avx2() && !portable_forced_flag().load(std::memory_order_relaxed); }

/// Scoped switch (tests): while alive, every kernel runs its portable path.
class ForcePortable {
 public:
  explicit ForcePortable(bool on = true) : previous_(portable_forced_flag().exchange(on)) {}
  ~ForcePortable() { portable_forced_flag().store(previous_); }
  ForcePortable(const ForcePortable&) = delete;
  ForcePortable& operator=(const ForcePortable&) = delete;

 private:
  bool previous_;
};

}  // namespace sepmech::kernels
