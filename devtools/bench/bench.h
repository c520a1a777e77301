#pragma once
// Standard benchmark workloads (../shared/bench/WORKLOADS.md, copied to docs/workloads.md).
//
// A family registers each workload once; a workload's setup builds seeded inputs and returns
// the implementations to time, one of them marked as the baseline (a straightforward LibTorch
// transcription of the reference algorithm), so every run reports ratios measured in the
// same process on the same machine state.
//
//   static sepmech::bench::RegisterWorkload w({"tac_varmic", "TAC, B=4, mics [6,4,2,3]",
//     [] {
//       auto state = std::make_shared<...>();             // inputs, modules
//       return std::vector<sepmech::bench::Impl>{
//         {"reference_loop", [state] { ... }, /*baseline=*/true},
//         {"sepmech", [state] { ... }},
//       };
//     }});
//
// Both `sepmech bench` (JSON lines) and the Google Benchmark binary `sepmech_bench` run them.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sepmech::bench {

struct Impl {
  std::string name;
  std::function<void()> run;  ///< one call of the workload
  bool baseline = false;      ///< the ratio of every other impl is baseline_median / impl_median
  double bytes = 0;           ///< bytes that must be read+written per call (0: not memory-bound)
  double flops = 0;           ///< useful floating-point operations per call (0: n/a)
  int items_per_call = 1;     ///< e.g. 1000 frames in one call of a streaming workload
};

struct Workload {
  std::string name;
  std::string description;
  std::function<std::vector<Impl>()> setup;
};

void register_workload(Workload w);
std::vector<std::string> registered_workloads();
const Workload& find_workload(const std::string& name);  ///< throws std::invalid_argument

struct RegisterWorkload {
  explicit RegisterWorkload(Workload w) { register_workload(std::move(w)); }
};

struct Options {
  int threads = 1;
  double min_seconds = 0.5;  ///< time budget per impl (after warm-up)
  int min_reps = 5;
  int max_reps = 10000;
};

struct Result {
  std::string workload, impl;
  int threads = 1;
  int reps = 0;
  double median_us = 0, min_us = 0;  ///< per item (per call unless items_per_call > 1)
  bool baseline = false;
  double speedup_vs_baseline = 0;  ///< 0 if the workload has no baseline
  double gb_per_s = 0, gflop_per_s = 0;
  double bandwidth_fraction = 0;   ///< achieved GB/s / machine DRAM GB/s (memory-bound impls)
  double cache_bandwidth_fraction = 0;  ///< achieved GB/s / machine L3-resident GB/s
  double peak_fraction = 0;        ///< achieved GFLOP/s / machine sgemm GFLOP/s
};

/// Machine figures measured in-process (cached after the first call).
double machine_bandwidth_gbps();  ///< single-thread STREAM-triad style bandwidth, large arrays (DRAM)
double machine_cache_bandwidth_gbps();  ///< the same triad on 12 MiB (L3-resident on the machines here)
double machine_sgemm_gflops();    ///< best of LibTorch matmul and oneDNN sgemm, 1024^3 float32, current threads

/// Makes glibc keep freed memory in the process (mallopt: no trimming, no per-allocation mmap up to
/// 32 MiB), for the rest of the process. By default glibc hands large freed blocks back to the OS,
/// and a path that allocates big temporaries then pays page faults on every call -- real for a
/// program on default glibc, but a property of the allocator, not of the algorithm: with this on,
/// ratios measure computation. Returns false where it is not supported (non-glibc).
bool keep_freed_memory();
bool freed_memory_kept();  ///< whether keep_freed_memory() took effect in this process

/// Times one workload's impls. Throws if the workload is unknown.
std::vector<Result> run_workload(const std::string& name, const Options& opt);

nlohmann::json to_json(const Result& r);

}  // namespace sepmech::bench
