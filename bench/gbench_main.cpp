// Google Benchmark front end for the standard workloads registered by the families
// (the same registry `sepmech bench` uses). Threads: SEPMECH_THREADS (default 1).
// SEPMECH_KEEP_HEAP=1: keep freed memory in the process, as `sepmech bench --keep-heap`.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/bench.h"
#include "sepmech/runtime.h"

namespace {

// SEPMECH_THREADS: a whole number in [0, 1024] (0 = all cores); anything else is refused, not
// silently read as 0 (atoi) or left to abort in set_num_threads.
int threads_from_env() {
  const char* env = std::getenv("SEPMECH_THREADS");
  if (!env) return 1;
  char* end = nullptr;
  long n = std::strtol(env, &end, 10);
  if (end == env || *end != '\0' || n < 0 || n > 1024) {
    std::fprintf(stderr, "sepmech_bench: error: SEPMECH_THREADS must be an integer in [0, 1024], got '%s'\n", env);
    std::exit(2);
  }
  return static_cast<int>(n);
}

void keep_heap_from_env() {
  const char* env = std::getenv("SEPMECH_KEEP_HEAP");
  if (!env || std::string(env) == "0") return;
  if (std::string(env) != "1") {
    std::fprintf(stderr, "sepmech_bench: error: SEPMECH_KEEP_HEAP must be 0 or 1, got '%s'\n", env);
    std::exit(2);
  }
  if (!sepmech::bench::keep_freed_memory()) {
    std::fprintf(stderr, "sepmech_bench: error: SEPMECH_KEEP_HEAP=1 needs glibc's mallopt\n");
    std::exit(2);
  }
}

}  // namespace

int main(int argc, char** argv) try {
  keep_heap_from_env();
  sepmech::set_num_threads(threads_from_env());
  for (const auto& name : sepmech::bench::registered_workloads()) {
    auto impls = std::make_shared<std::vector<sepmech::bench::Impl>>(sepmech::bench::find_workload(name).setup());
    for (std::size_t i = 0; i < impls->size(); ++i) {
      const auto& impl = (*impls)[i];
      auto* b = benchmark::RegisterBenchmark((name + "/" + impl.name).c_str(), [impls, i](benchmark::State& st) {
        const auto& im = (*impls)[i];
        for (auto _ : st) im.run();
        st.SetItemsProcessed(st.iterations() * im.items_per_call);
        if (im.bytes > 0) st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * im.bytes));
      });
      b->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
} catch (const c10::Error& e) {
  std::fprintf(stderr, "sepmech_bench: error: %s\n", e.what_without_backtrace());
  return 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "sepmech_bench: error: %s\n", e.what());
  return 1;
}
