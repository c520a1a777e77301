// Google Benchmark front end for the standard workloads registered by the families
// (the same registry `sepmech bench` uses). Threads: SEPMECH_THREADS (default 1).
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "bench/bench.h"
#include "sepmech/runtime.h"

int main(int argc, char** argv) {
  const char* env = std::getenv("SEPMECH_THREADS");
  sepmech::set_num_threads(env ? std::atoi(env) : 1);
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
}
