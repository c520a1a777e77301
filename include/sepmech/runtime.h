#pragma once
// Process-wide runtime settings that matter for speed: LibTorch's intra-op thread count
// and which BLAS LibTorch ended up linked against.
#include <string>

namespace sepmech {

/// Sets LibTorch's intra-op thread count and OpenBLAS's thread pool. n == 0 means "all cores".
/// Debian's LibTorch starts with 1 thread, so call this where parallelism matters.
void set_num_threads(int n);

/// Threads of OpenBLAS's own pool (set together with LibTorch's by set_num_threads);
/// -1 if the BLAS in use is not OpenBLAS.
int blas_num_threads();

/// Number of cores the process may use.
int hardware_threads();

/// What BLAS provides `sgemm_` in this process.
struct BlasInfo {
  std::string library;   ///< resolved path of the library that provides sgemm_ ("" if unknown)
  std::string vendor;    ///< "openblas", "blis", "mkl", "reference" or "unknown"
  bool is_reference() const { return vendor == "reference"; }
};
BlasInfo blas_info();

/// The vendor a BLAS library path names (Debian's alternatives resolve libblas.so.3 to
/// .../openblas-pthread/libblas.so.3, .../blis-openmp/..., or the reference .../blas/libblas.so.3).
std::string blas_vendor_of(const std::string& library_path);

/// A one-paragraph warning if LibTorch runs on the reference (netlib) BLAS, "" otherwise.
/// Matrix work is ~40x slower there; the fix is `apt-get install libopenblas0-pthread`.
std::string blas_warning();
/// The same for a given BlasInfo.
std::string blas_warning(const BlasInfo& info);

}  // namespace sepmech
