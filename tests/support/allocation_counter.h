#pragma once
// Counts global operator new calls while armed: proves a real-time path allocates nothing
// (every torch::Tensor creation allocates its TensorImpl through operator new).
//
// This header REPLACES the global operator new/delete of the executable it is linked into, so
// include it from exactly one test file per test executable (today dfop_test.cpp in
// sepmech_test_deepfilter and stft_test.cpp in sepmech_test_core).
//
//   g_allocs = 0; g_count_allocs = true;  stream.step_into(...);  g_count_allocs = false;
//   EXPECT_EQ(g_allocs.load(), 0);
#include <atomic>
#include <cstdlib>
#include <new>

static std::atomic<bool> g_count_allocs{false};
static std::atomic<long> g_allocs{0};

void* operator new(std::size_t n) {
  if (g_count_allocs.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
