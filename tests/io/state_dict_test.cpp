// load_state_dict: strict reports, prefix/rename rules, non-strict loading.
#include <gtest/gtest.h>

#include "sepmech/io/state_dict.h"

using sepmech::io::LoadOptions;
using sepmech::io::StateDictError;

namespace {

struct Net : torch::nn::Module {
  Net() {
    lin = register_module("lin", torch::nn::Linear(3, 2));
    scale = register_buffer("scale", torch::ones({2}));
  }
  torch::nn::Linear lin{nullptr};
  torch::Tensor scale;
};

std::map<std::string, torch::Tensor> good_weights(const std::string& prefix = "") {
  return {{prefix + "lin.weight", torch::arange(6.0f).reshape({2, 3})},
          {prefix + "lin.bias", torch::tensor({-1.0f, 1.0f})},
          {prefix + "scale", torch::tensor({2.0f, 3.0f})}};
}

void expect_loaded(Net& net) {
  EXPECT_TRUE(net.lin->weight.equal(torch::arange(6.0f).reshape({2, 3})));
  EXPECT_TRUE(net.lin->bias.equal(torch::tensor({-1.0f, 1.0f})));
  EXPECT_TRUE(net.scale.equal(torch::tensor({2.0f, 3.0f})));
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

TEST(StateDict, ExactMatchLoadsEverything) {
  Net net;
  auto rep = sepmech::io::load_state_dict(net, good_weights());
  EXPECT_TRUE(rep.ok());
  EXPECT_EQ(rep.loaded.size(), 3u);
  expect_loaded(net);
}

TEST(StateDict, StrictReportsAllProblemsAtOnceAndLoadsNothing) {
  Net net;
  auto before = net.lin->weight.clone();
  std::map<std::string, torch::Tensor> src = {
      {"lin.weight", torch::zeros({3, 2})},  // wrong shape
      {"extra.a", torch::zeros({1})},        // unexpected
      {"extra.b", torch::zeros({1})},        // unexpected
      {"scale", torch::zeros({2})},          // fine
  };                                         // lin.bias missing
  try {
    sepmech::io::load_state_dict(net, src);
    FAIL() << "expected StateDictError";
  } catch (const StateDictError& e) {
    const auto& r = e.report();
    EXPECT_EQ(r.missing, std::vector<std::string>{"lin.bias"});
    EXPECT_EQ(r.unexpected, (std::vector<std::string>{"extra.a", "extra.b"}));
    ASSERT_EQ(r.mismatched.size(), 1u);
    EXPECT_NE(r.mismatched[0].find("lin.weight"), std::string::npos);
    std::string msg = e.what();
    for (const char* s : {"missing keys (1)", "lin.bias", "unexpected keys (2)", "extra.a", "extra.b",
                          "shape mismatches (1)", "[2, 3]", "[3, 2]"})
      EXPECT_NE(msg.find(s), std::string::npos) << s << " not in " << msg;
  }
  EXPECT_TRUE(net.lin->weight.equal(before)) << "a failed strict load must not change the module";
  EXPECT_TRUE(net.scale.equal(torch::ones({2})));
}

TEST(StateDict, NonStrictLoadsWhatMatchesAndReports) {
  Net net;
  auto src = good_weights();
  src.erase("lin.bias");
  src["other"] = torch::zeros({5});
  LoadOptions opt;
  opt.strict = false;
  auto rep = sepmech::io::load_state_dict(net, src, opt);
  EXPECT_EQ(rep.missing, std::vector<std::string>{"lin.bias"});
  EXPECT_EQ(rep.unexpected, std::vector<std::string>{"other"});
  EXPECT_EQ(rep.loaded.size(), 2u);
  EXPECT_TRUE(net.scale.equal(torch::tensor({2.0f, 3.0f})));
  // Shape mismatches are errors even when not strict.
  src["scale"] = torch::zeros({3});
  EXPECT_THROW(sepmech::io::load_state_dict(net, src, opt), StateDictError);
}

TEST(StateDict, StripPrefixDropsOtherKeys) {
  Net net;
  auto src = good_weights("model.encoder.");
  src["model.decoder.lin.weight"] = torch::zeros({7});
  LoadOptions opt;
  opt.strip_prefix = "model.encoder.";
  EXPECT_TRUE(sepmech::io::load_state_dict(net, src, opt).ok());
  expect_loaded(net);
}

TEST(StateDict, AddPrefixAndRenamesInOrder) {
  Net net;
  // Reference layout: "fc.weight", "fc.bias", "gain"; ours: "lin.*", "scale".
  std::map<std::string, torch::Tensor> src = {{"fc.weight", torch::arange(6.0f).reshape({2, 3})},
                                              {"fc.bias", torch::tensor({-1.0f, 1.0f})},
                                              {"gain", torch::tensor({2.0f, 3.0f})}};
  LoadOptions opt;
  opt.add_prefix = "ref.";
  opt.renames = {{R"(^ref\.fc\.)", "lin."}, {R"(^ref\.gain$)", "scale"}};
  auto mapped = sepmech::io::map_keys(src, opt);
  EXPECT_TRUE(mapped.count("lin.weight") && mapped.count("lin.bias") && mapped.count("scale"));
  EXPECT_TRUE(sepmech::io::load_state_dict(net, src, opt).ok());
  expect_loaded(net);
}

TEST(StateDict, IgnoreRules) {
  Net net;
  auto src = good_weights();
  src["bn.num_batches_tracked"] = torch::tensor(3);
  LoadOptions opt;
  EXPECT_THROW(sepmech::io::load_state_dict(net, src, opt), StateDictError);
  opt.ignore = {"num_batches_tracked$"};
  EXPECT_TRUE(sepmech::io::load_state_dict(net, src, opt).ok());
}

TEST(StateDict, RenameCollisionIsAnError) {
  LoadOptions opt;
  opt.renames = {{"^(a|b)$", "c"}};
  EXPECT_THROW(sepmech::io::map_keys({{"a", torch::zeros({1})}, {"b", torch::zeros({1})}}, opt), std::invalid_argument);
}

TEST(StateDict, ConvertsDtypeAndKeepsNoAutogradHistory) {
  Net net;
  auto src = good_weights();
  for (auto& [k, v] : src) v = v.to(torch::kFloat64);
  sepmech::io::load_state_dict(net, src);
  EXPECT_EQ(net.lin->weight.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(net.lin->weight.requires_grad());
  EXPECT_TRUE(net.lin->weight.is_leaf());
  expect_loaded(net);
}

TEST(StateDict, ComplexParameterFromItsRealView) {
  struct C : torch::nn::Module {
    C() { w = register_parameter("w", torch::zeros({2}, torch::kComplexFloat)); }
    torch::Tensor w;
  } c;
  auto want = torch::complex(torch::tensor({1.0f, 2.0f}), torch::tensor({-3.0f, 4.0f}));
  sepmech::io::load_state_dict(c, {{"w", torch::view_as_real(want)}});
  EXPECT_TRUE(c.w.equal(want));
}

TEST(StateDict, StateDictRoundTrip) {
  Net a, b;
  sepmech::io::load_state_dict(a, good_weights());
  sepmech::io::load_state_dict(b, sepmech::io::state_dict(a));
  expect_loaded(b);
  auto sd = sepmech::io::state_dict(a);
  EXPECT_TRUE(contains({"lin.weight", "lin.bias", "scale"}, sd.begin()->first));
  EXPECT_EQ(sd.size(), 3u);
  EXPECT_FALSE(sd.at("lin.weight").requires_grad());
}

TEST(StateDict, ComplexSourceIntoARealParameterIsAMismatch) {
  // Copying complex into real would silently drop the imaginary part.
  Net net;
  auto src = good_weights();
  src["lin.bias"] = torch::complex(torch::tensor({-1.0f, 1.0f}), torch::tensor({0.5f, 0.0f}));
  auto before = net.lin->bias.clone();
  try {
    sepmech::io::load_state_dict(net, src);
    ADD_FAILURE() << "no error";
  } catch (const StateDictError& e) {
    ASSERT_EQ(e.report().mismatched.size(), 1u) << e.what();
    EXPECT_NE(e.report().mismatched[0].find("lin.bias"), std::string::npos) << e.what();
    EXPECT_NE(e.report().mismatched[0].find("ComplexFloat"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(net.lin->bias.equal(before)) << "nothing may be loaded when there is a mismatch";
}
