// The benchmark framework behind `sepmech bench`: timing, per-item scaling, baseline ratios,
// thread count and the JSON fields every workload line must carry.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "bench/bench.h"

namespace {

void sleep_us(int us) { std::this_thread::sleep_for(std::chrono::microseconds(us)); }

// A baseline that sleeps ~4 ms and an implementation that sleeps ~1 ms per call of 2 items.
sepmech::bench::RegisterWorkload test_workload({"sepmech_test_sleep", "test only: sleeps", [] {
  return std::vector<sepmech::bench::Impl>{
      {"slow_baseline", [] { sleep_us(4000); }, /*baseline=*/true},
      {"fast", [] { sleep_us(1000); }, false, 0, 0, /*items_per_call=*/2},
  };
}});

}  // namespace

TEST(BenchFramework, RegistersAndRejectsUnknownNames) {
  auto names = sepmech::bench::registered_workloads();
  EXPECT_NE(std::find(names.begin(), names.end(), "sepmech_test_sleep"), names.end());
  EXPECT_EQ(sepmech::bench::find_workload("sepmech_test_sleep").description, "test only: sleeps");
  try {
    sepmech::bench::find_workload("no_such_workload");
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown workload 'no_such_workload'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sepmech_test_sleep"), std::string::npos) << "lists the known ones: " << e.what();
  }
  EXPECT_THROW(sepmech::bench::register_workload({"sepmech_test_sleep", "again", [] { return std::vector<sepmech::bench::Impl>{}; }}),
               std::logic_error);
}

TEST(BenchFramework, TimesEveryImplAgainstTheBaselineAndReportsTheJsonFields) {
  sepmech::bench::Options opt;
  opt.threads = 2;
  opt.min_seconds = 0.02;
  opt.min_reps = 5;
  auto results = sepmech::bench::run_workload("sepmech_test_sleep", opt);
  EXPECT_EQ(torch::get_num_threads(), 2) << "the thread count must be applied to LibTorch";
  ASSERT_EQ(results.size(), 2u);
  const auto& base = results[0];
  const auto& fast = results[1];
  EXPECT_EQ(base.impl, "slow_baseline");
  EXPECT_TRUE(base.baseline);
  EXPECT_EQ(fast.impl, "fast");
  EXPECT_FALSE(fast.baseline);
  for (const auto& r : results) {
    EXPECT_EQ(r.workload, "sepmech_test_sleep");
    EXPECT_EQ(r.threads, 2);
    EXPECT_GE(r.reps, 5);
    EXPECT_LE(r.min_us, r.median_us);
  }
  // Sleeps last at least what was asked: 4000 us per call; 1000 us per call of 2 items = 500 per item.
  EXPECT_GE(base.min_us, 4000.0);
  EXPECT_GE(fast.min_us, 500.0);
  EXPECT_LT(fast.median_us, base.median_us);
  EXPECT_DOUBLE_EQ(base.speedup_vs_baseline, 1.0);
  EXPECT_DOUBLE_EQ(fast.speedup_vs_baseline, base.median_us / fast.median_us);
  EXPECT_GT(fast.speedup_vs_baseline, 2.0);  // ~8 (4000 / 500) unless the machine is very loaded

  auto j = sepmech::bench::to_json(fast);
  for (const char* field : {"workload", "median_us", "min_us", "threads", "impl"})
    EXPECT_TRUE(j.contains(field)) << "missing '" << field << "' in " << j.dump();
  EXPECT_EQ(j["workload"], "sepmech_test_sleep");
  EXPECT_EQ(j["impl"], "fast");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_DOUBLE_EQ(j["median_us"].get<double>(), fast.median_us);
  EXPECT_DOUBLE_EQ(j["min_us"].get<double>(), fast.min_us);
  EXPECT_EQ(j["speedup_vs_baseline"].get<double>(), fast.speedup_vs_baseline);

  opt.threads = 1;
  auto one = sepmech::bench::run_workload("sepmech_test_sleep", opt);
  EXPECT_EQ(torch::get_num_threads(), 1);
  EXPECT_EQ(sepmech::bench::to_json(one[0])["threads"], 1);
  EXPECT_THROW(sepmech::bench::run_workload("no_such_workload", opt), std::invalid_argument);
}

#if defined(__GLIBC__)
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>

namespace {
long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}
/// Three 16 MiB temporaries, written, freed: the pattern of an unfused module's intermediates.
void temporaries() {
  constexpr std::size_t kBytes = 16u << 20;
  void* p[3];
  for (auto& q : p) {
    q = std::malloc(kBytes);
    ASSERT_NE(q, nullptr);
    std::memset(q, 1, kBytes);
  }
  for (auto* q : p) std::free(q);
}
}  // namespace

TEST(BenchFramework, KeepFreedMemoryStopsPageFaultsOnRepeatedTemporaries) {
  // Under a replacement allocator (ASan's, say) mallopt does nothing and says so.
  if (!sepmech::bench::keep_freed_memory()) GTEST_SKIP() << "malloc is not glibc's (mallopt refused)";
  EXPECT_TRUE(sepmech::bench::freed_memory_kept());
  temporaries();  // grows the heap once
  const long before = minor_faults();
  for (int i = 0; i < 10; ++i) temporaries();
  // Returned to the OS each time, these 10 x 48 MiB would fault ~120,000 pages back in.
  EXPECT_LT(minor_faults() - before, 1000);
}
#endif
