#include "sepmech/runtime.h"

#include "sepmech/version.h"
#include "sepmech_build_config.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <thread>

namespace sepmech {

std::string version() { return SEPMECH_VERSION; }

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int blas_num_threads() {
  using GetFn = int (*)();
  if (auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) return get();
  return -1;
}

void set_num_threads(int n) {
  TORCH_CHECK(n >= 0, "sepmech::set_num_threads: n must be >= 0 (0 = all cores), got ", n);
  const int threads = n == 0 ? hardware_threads() : n;
  torch::set_num_threads(threads);
  // LibTorch only sets its OpenMP pool; Debian's pthread OpenBLAS keeps its own pool (all cores
  // by default), so without this a "1 thread" matmul or convolution silently runs on every core.
  using SetFn = void (*)(int);
  if (auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(threads);
}

BlasInfo blas_info() {
  BlasInfo info;
  info.vendor = "unknown";
  // Force LibTorch's BLAS into the process (it is loaded lazily with libtorch_cpu anyway).
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  if (!sym) return info;
  Dl_info dl{};
  if (dladdr(sym, &dl) == 0 || dl.dli_fname == nullptr) return info;
  char resolved[PATH_MAX];
  info.library = realpath(dl.dli_fname, resolved) ? std::string(resolved) : std::string(dl.dli_fname);
  info.vendor = dlsym(RTLD_DEFAULT, "openblas_get_config") ? "openblas" : blas_vendor_of(info.library);
  return info;
}

std::string blas_vendor_of(const std::string& library) {
  auto has = [&](const char* s) { return library.find(s) != std::string::npos; };
  if (has("openblas")) return "openblas";
  if (has("blis")) return "blis";
  if (has("mkl")) return "mkl";
  if (has("/blas/libblas") || has("libblas.so")) return "reference";
  return "unknown";
}

std::string blas_warning() { return blas_warning(blas_info()); }

std::string blas_warning(const BlasInfo& b) {
  if (!b.is_reference()) return "";
  return "warning: LibTorch is using the reference BLAS (" + b.library +
         "); matrix work is about 40x slower. Install an optimised one: "
         "apt-get install -y libopenblas0-pthread";
}

}  // namespace sepmech
