#include "kernels/cpu.h"

namespace sepmech::kernels {

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

std::atomic<bool>& portable_forced_flag() {
  static std::atomic<bool> forced{false};
  return forced;
}

}  // namespace sepmech::kernels
