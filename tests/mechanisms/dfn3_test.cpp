// DeepFilterNet3: configuration, front end, network, offline forward and the stream.
#include <gtest/gtest.h>

#include "sepmech/dfn3.h"

namespace {

TEST(Dfn3Front, ErbWidthsMatchTheReferenceLayout) {
  const std::vector<int64_t> want = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 5, 5, 7,
                                     7, 8, 10, 12, 13, 15, 18, 20, 24, 28, 31, 37, 42, 50, 56, 67};
  EXPECT_EQ(sepmech::dfn3::erb_widths(sepmech::DfNetOptions{}), want);
}

}  // namespace
