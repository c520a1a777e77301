#include <gtest/gtest.h>

#include "parity/parity.h"

using sepmech::parity::compare_tensor;

TEST(ParityCompare, WithinTolerancePassesOutsideFails) {
  auto want = torch::tensor({1.0f, -2.0f, 100.0f});
  auto ok = compare_tensor("out.y", want + torch::tensor({1e-6f, -1e-6f, 1e-3f}), want, {1e-5, 1e-4});
  EXPECT_TRUE(ok.pass) << ok.message;
  EXPECT_LT(ok.worst_ratio, 1.0);
  auto bad = compare_tensor("out.y", want + torch::tensor({0.0f, 0.0f, 0.5f}), want, {1e-5, 1e-4});
  EXPECT_FALSE(bad.pass);
  // |0.5| / (1e-5 + 1e-4 * 100) ~= 49.95
  EXPECT_NEAR(bad.worst_ratio, 0.5 / (1e-5 + 1e-2), 1e-2);
}
