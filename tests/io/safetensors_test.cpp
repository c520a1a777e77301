#include <gtest/gtest.h>

#include "sepmech/io/safetensors.h"

using sepmech::io::FormatError;
using sepmech::io::parse_safetensors;
using sepmech::io::serialize_safetensors;

TEST(Safetensors, RoundTripsEveryDtypeAndComplex) {
  sepmech::io::TensorMap m{
      {"f32", torch::randn({2, 3})},
      {"f64", torch::randn({4}, torch::kFloat64)},
      {"f16", torch::randn({3}).to(torch::kFloat16)},
      {"bf16", torch::randn({3}).to(torch::kBFloat16)},
      {"i64", torch::arange(5, torch::kInt64)},
      {"i32", torch::arange(5, torch::kInt32)},
      {"i16", torch::arange(5, torch::kInt16)},
      {"i8", torch::arange(5, torch::kInt8)},
      {"u8", torch::arange(5, torch::kUInt8)},
      {"b", torch::tensor({true, false, true})},
      {"c64", torch::randn({2, 2}, torch::kComplexFloat)},
      {"empty", torch::zeros({0, 3})},
      {"scalar", torch::tensor(3.5)},
  };
  auto bytes = serialize_safetensors(m, {{"k", "v"}});
  auto back = parse_safetensors(bytes.data(), bytes.size());
  ASSERT_EQ(back.tensors.size(), m.size());
  for (const auto& [k, t] : m) {
    ASSERT_TRUE(back.tensors.count(k)) << k;
    EXPECT_EQ(back.tensors[k].scalar_type(), t.scalar_type()) << k;
    EXPECT_TRUE(back.tensors[k].equal(t)) << k;
  }
  EXPECT_EQ(back.metadata.at("k"), "v");
  EXPECT_EQ(back.metadata.at("complex"), "c64");
}
