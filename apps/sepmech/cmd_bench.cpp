// sepmech bench [--json] [--threads N] [WORKLOAD...]: the standard workloads, with the baseline
// in the same run.
#include <iomanip>
#include <iostream>

#include "bench/bench.h"
#include "command.h"

namespace {

sepmech::cli::RegisterCommand reg(30, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("bench", "time the standard workloads (docs/workloads.md)");
  struct Args {
    std::vector<std::string> names;
    bool json = false, list = false;
    int threads = 0;  // 0: the tool's --threads if given, else 1 (docs/workloads.md)
    double seconds = 0.5;
    bool keep_heap = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("workloads", a->names, "workloads to run (default: all registered)");
  cmd->add_flag("--json", a->json, "one JSON line per (workload, implementation)");
  cmd->add_flag("--list", a->list, "list the registered workloads and exit");
  cmd->add_option("--threads", a->threads,
                  "intra-op threads for the timed calls (0 = the tool's --threads if given, else 1 as "
                  "docs/workloads.md specifies)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--seconds", a->seconds, "time budget per implementation")->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--keep-heap", a->keep_heap,
                "keep freed memory in the process (glibc mallopt) so no implementation pays page faults for "
                "its temporaries: the ratios then measure computation, not the allocator");
  const CLI::Option* tool_threads = app.get_option("--threads");
  cmd->callback([a, tool_threads, &exit_code] {
    auto names = a->names.empty() ? sepmech::bench::registered_workloads() : a->names;
    if (a->list) {
      for (const auto& n : sepmech::bench::registered_workloads())
        std::cout << n << "  " << sepmech::bench::find_workload(n).description << "\n";
      return;
    }
    if (names.empty()) throw std::runtime_error("no benchmark workloads are registered in this build");
    for (const auto& n : names) sepmech::bench::find_workload(n);  // fail early on a typo
    if (a->keep_heap && !sepmech::bench::keep_freed_memory())
      throw std::runtime_error("--keep-heap needs glibc's mallopt, which this build does not have");
    sepmech::bench::Options opt;
    // The standard workloads are defined at 1 thread; an explicit `sepmech --threads N bench`
    // (already applied, 0 = all cores) is honoured rather than silently overridden.
    opt.threads = a->threads > 0 ? a->threads : tool_threads->count() > 0 ? torch::get_num_threads() : 1;
    opt.min_seconds = a->seconds;
    for (const auto& n : names) {
      for (const auto& r : sepmech::bench::run_workload(n, opt)) {
        if (a->json) {
          std::cout << sepmech::bench::to_json(r).dump() << std::endl;
          continue;
        }
        std::cout << std::left << std::setw(20) << r.workload << std::setw(26) << r.impl << std::right
                  << std::fixed << std::setprecision(2) << std::setw(12) << r.median_us << " us (min "
                  << r.min_us << ")";
        if (r.speedup_vs_baseline > 0 && !r.baseline) std::cout << "  x" << r.speedup_vs_baseline << " vs baseline";
        if (r.baseline) std::cout << "  [baseline]";
        if (r.gb_per_s > 0)
          std::cout << "  " << r.gb_per_s << " GB/s = " << 100 * r.bandwidth_fraction << "% DRAM, "
                    << 100 * r.cache_bandwidth_fraction << "% L3 bw";
        if (r.gflop_per_s > 0) std::cout << "  " << r.gflop_per_s << " GFLOP/s = " << 100 * r.peak_fraction << "% of sgemm";
        std::cout << std::endl;
      }
    }
    exit_code = 0;
  });
});

}  // namespace
