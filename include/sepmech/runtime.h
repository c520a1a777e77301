#pragma once
// Process-wide runtime settings that matter for speed: LibTorch's intra-op thread count
// and which BLAS LibTorch ended up linked against.
#include <string>

namespace sepmech {

/// Sets LibTorch's intra-op thread count. n <= 0 means "all cores".
/// Debian's LibTorch starts with 1 thread, so call this where parallelism matters.
void set_num_threads(int n);

/// Number of cores the process may use.
int hardware_threads();

/// What BLAS provides `sgemm_` in this process.
struct BlasInfo {
  std::string library;   ///< resolved path of the library that provides sgemm_ ("" if unknown)
  std::string vendor;    ///< "openblas", "blis", "mkl", "reference" or "unknown"
  bool is_reference() const { return vendor == "reference"; }
};
BlasInfo blas_info();

/// A one-paragraph warning if LibTorch runs on the reference (netlib) BLAS, "" otherwise.
/// Matrix work is ~40x slower there; the fix is `apt-get install libopenblas0-pthread`.
std::string blas_warning();

}  // namespace sepmech
