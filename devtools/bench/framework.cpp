#include <chrono>
#include <numeric>

#include "bench/bench.h"
#include "kernels/gemm.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include "sepmech/runtime.h"

namespace sepmech::bench {
namespace {

std::vector<Workload>& registry() {
  static std::vector<Workload> r;
  return r;
}

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

void register_workload(Workload w) {
  for (const auto& x : registry())
    if (x.name == w.name) throw std::logic_error("bench workload '" + w.name + "' registered twice");
  registry().push_back(std::move(w));
}

std::vector<std::string> registered_workloads() {
  std::vector<std::string> names;
  for (const auto& w : registry()) names.push_back(w.name);
  std::sort(names.begin(), names.end());
  return names;
}

const Workload& find_workload(const std::string& name) {
  for (const auto& w : registry())
    if (w.name == name) return w;
  std::string known;
  for (const auto& n : registered_workloads()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown workload '" + name + "' (known: " + (known.empty() ? "none" : known) + ")");
}

namespace {
/// Best of `reps` triads a[i] = b[i] + s*c[i] over 3 arrays of n floats, in GB/s (3 n floats moved).
double triad_gbps(std::size_t n, int reps) {
  std::vector<float> a(n, 0.f), b(n, 1.f), c(n, 2.f);
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = Clock::now();
    float* pa = a.data();
    const float* pb = b.data();
    const float* pc = c.data();
    for (std::size_t i = 0; i < n; ++i) pa[i] = pb[i] + 0.5f * pc[i];
    double s = seconds_since(t0);
    best = std::max(best, 3.0 * n * sizeof(float) / s / 1e9);
  }
  volatile float sink = a[n / 2];
  (void)sink;
  return best;
}
}  // namespace

namespace {
bool g_heap_kept = false;
}

bool keep_freed_memory() {
#if defined(__GLIBC__)
  // 32 MiB is the largest mmap threshold glibc accepts; setting it also stops glibc's own
  // adjustment of it. Trim threshold and top pad keep the heap from shrinking between calls.
  g_heap_kept = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 &&
                mallopt(M_TOP_PAD, 256 << 20) == 1;
#endif
  return g_heap_kept;
}

bool freed_memory_kept() { return g_heap_kept; }

double machine_bandwidth_gbps() {
  // 3 x 64 MiB: far beyond the caches, so DRAM bandwidth.
  static double cached = triad_gbps(16u << 20, 5);
  return cached;
}

double machine_cache_bandwidth_gbps() {
  // 3 x 4 MiB: beyond L2, inside the 32 MiB L3 of the machines here -- where the warm repeated
  // calls of a 5-15 MB workload actually run, so the fair bound for them.
  static double cached = triad_gbps(1u << 20, 50);
  return cached;
}

double machine_sgemm_gflops() {
  // The faster of the two float32 GEMMs in the process: LibTorch's matmul (Debian: OpenBLAS,
  // AVX2 kernel) and oneDNN's sgemm (AVX-512; what sepmech's hot GEMMs use, src/kernels/gemm.h), 1024^3.
  static double cached = [] {
    torch::NoGradGuard ng;
    auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
    auto c = torch::mm(a, b);
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      auto t0 = Clock::now();
      torch::mm_out(c, a, b);
      best = std::max(best, 2.0 * 1024 * 1024 * 1024 / seconds_since(t0) / 1e9);
      t0 = Clock::now();
      detail::gemm_into(c, a, b, /*b_transposed=*/false);
      best = std::max(best, 2.0 * 1024 * 1024 * 1024 / seconds_since(t0) / 1e9);
    }
    return best;
  }();
  return cached;
}

std::vector<Result> run_workload(const std::string& name, const Options& opt) {
  const Workload& w = find_workload(name);
  set_num_threads(opt.threads);
  torch::manual_seed(0);
  std::vector<Impl> impls = w.setup();
  std::vector<Result> results;
  for (auto& impl : impls) {
    // Warm-up: first calls allocate, fault pages in and pick kernels.
    auto tw = Clock::now();
    for (int i = 0; i < 3 && (i == 0 || seconds_since(tw) < opt.min_seconds); ++i) impl.run();
    std::vector<double> times;
    auto t_all = Clock::now();
    while ((int)times.size() < opt.max_reps &&
           ((int)times.size() < opt.min_reps || seconds_since(t_all) < opt.min_seconds)) {
      auto t0 = Clock::now();
      impl.run();
      times.push_back(seconds_since(t0));
    }
    std::sort(times.begin(), times.end());
    Result r;
    r.workload = w.name;
    r.impl = impl.name;
    r.threads = opt.threads;
    r.reps = static_cast<int>(times.size());
    r.baseline = impl.baseline;
    double per = 1e6 / std::max(1, impl.items_per_call);
    r.median_us = times[times.size() / 2] * per;
    r.min_us = times.front() * per;
    double med_s = times[times.size() / 2];
    if (impl.bytes > 0) {
      r.gb_per_s = impl.bytes / med_s / 1e9;
      r.bandwidth_fraction = r.gb_per_s / machine_bandwidth_gbps();
      r.cache_bandwidth_fraction = r.gb_per_s / machine_cache_bandwidth_gbps();
    }
    if (impl.flops > 0) {
      r.gflop_per_s = impl.flops / med_s / 1e9;
      r.peak_fraction = r.gflop_per_s / machine_sgemm_gflops();
    }
    results.push_back(r);
  }
  for (const auto& b : results)
    if (b.baseline)
      for (auto& r : results) r.speedup_vs_baseline = b.median_us / r.median_us;
  return results;
}

nlohmann::json to_json(const Result& r) {
  nlohmann::json j = {{"workload", r.workload}, {"impl", r.impl},         {"threads", r.threads},
                      {"reps", r.reps},         {"median_us", r.median_us}, {"min_us", r.min_us},
                      {"baseline", r.baseline}, {"freed_memory_kept", freed_memory_kept()}};
  if (r.speedup_vs_baseline > 0) j["speedup_vs_baseline"] = r.speedup_vs_baseline;
  if (r.gb_per_s > 0) {
    j["gb_per_s"] = r.gb_per_s;
    j["machine_gb_per_s"] = machine_bandwidth_gbps();
    j["bandwidth_fraction"] = r.bandwidth_fraction;
    j["machine_cache_gb_per_s"] = machine_cache_bandwidth_gbps();
    j["cache_bandwidth_fraction"] = r.cache_bandwidth_fraction;
  }
  if (r.gflop_per_s > 0) {
    j["gflop_per_s"] = r.gflop_per_s;
    j["machine_sgemm_gflop_per_s"] = machine_sgemm_gflops();
    j["peak_fraction"] = r.peak_fraction;
  }
  return j;
}

}  // namespace sepmech::bench
