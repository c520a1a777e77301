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

// ---------------------------------------------------------------------------------------------
// detail::gemm_into (src/gemm.h)
// ---------------------------------------------------------------------------------------------
#include <oneapi/dnnl/dnnl.h>

#include "gemm.h"

namespace sepmech::detail {

void gemm_into(torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b, bool b_transposed,
               const torch::Tensor& bias) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && out.dim() == 2, "sepmech gemm: a, b and out must be 2-D, got ",
              a.sizes(), ", ", b.sizes(), ", ", out.sizes());
  const int64_t M = a.size(0), K = a.size(1), N = b_transposed ? b.size(0) : b.size(1);
  TORCH_CHECK((b_transposed ? b.size(1) : b.size(0)) == K && out.size(0) == M && out.size(1) == N,
              "sepmech gemm: shapes do not match: a ", a.sizes(), ", b ", b.sizes(), (b_transposed ? " (transposed)" : ""),
              ", out ", out.sizes());
  const bool rows_ok = a.stride(1) == 1 && b.stride(1) == 1 && out.stride(1) == 1 && a.stride(0) >= std::max<int64_t>(K, 1) &&
                       b.stride(0) >= std::max<int64_t>(b.size(1), 1) && out.stride(0) >= std::max<int64_t>(N, 1);
  const bool f32 = a.scalar_type() == torch::kFloat && b.scalar_type() == torch::kFloat && out.scalar_type() == torch::kFloat;
  if (!f32 || !rows_ok || M == 0 || N == 0 || K == 0 || a.is_same(out) || b.is_same(out)) {
    const torch::Tensor bt = b_transposed ? b.t() : b;
    if (bias.defined())
      torch::addmm_out(out, bias.expand({M, N}), a, bt);
    else
      torch::mm_out(out, a, bt);
    return;
  }
  float beta = 0.f;
  if (bias.defined()) {
    out.copy_(bias.expand({M, N}));
    beta = 1.f;
  }
  const dnnl_status_t st =
      dnnl_sgemm('N', b_transposed ? 'T' : 'N', M, N, K, 1.f, a.data_ptr<float>(), a.stride(0), b.data_ptr<float>(),
                 b.stride(0), beta, out.data_ptr<float>(), out.stride(0));
  TORCH_CHECK(st == dnnl_success, "sepmech gemm: oneDNN sgemm failed with status ", static_cast<int>(st));
}

}  // namespace sepmech::detail
