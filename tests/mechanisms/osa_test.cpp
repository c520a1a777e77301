// Tests of OSA_RES_eSE (sepmech/osa.h) beyond the golden files: backbone shapes and parameter
// counts, fuse() equivalence, the causal spectrogram option, the 1-D form, norms, bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "parity/parity.h"
#include "sepmech/io/safetensors.h"
#include "sepmech/io/state_dict.h"
#include "kernels/cpu.h"
#include "sepmech/osa.h"

namespace {

using sepmech::NormKind;

/// Random BN/FrozenBN statistics and affine parameters, so that folding is not a no-op.
void randomise_norms(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& item : m.named_buffers()) {
    const auto& k = item.key();
    if (k.find("running_mean") != std::string::npos) item.value().normal_(0, 0.1);
    if (k.find("running_var") != std::string::npos) item.value().uniform_(0.5, 1.5);
  }
  auto touch = [](const std::string& k, torch::Tensor t) {
    if (k.find("norm.weight") != std::string::npos) t.uniform_(0.5, 1.5);
    if (k.find("norm.bias") != std::string::npos) t.normal_(0, 0.1);
  };
  for (auto& item : m.named_parameters()) touch(item.key(), item.value());
  for (auto& item : m.named_buffers()) touch(item.key(), item.value());
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

bool has_key(const torch::nn::Module& m, const std::string& key) {
  auto sd = sepmech::io::state_dict(m);
  return sd.count(key) != 0;
}

}  // namespace

TEST(OSAHardSigmoid, ValuesAndDerivative) {
  auto u = torch::tensor({-4.0f, -3.0f, -1.5f, 0.0f, 1.5f, 3.0f, 4.0f}, torch::requires_grad());
  auto g = sepmech::hard_sigmoid(u);
  auto want = torch::tensor({0.0f, 0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.0f});
  EXPECT_TRUE(torch::equal(g.detach(), want)) << g;
  g.sum().backward();
  // relu6 (hardtanh) backward: 1/6 strictly inside (-3, 3), 0 at and beyond +-3.
  auto dg = torch::tensor({0.0f, 0.0f, 1.0f / 6, 1.0f / 6, 1.0f / 6, 0.0f, 0.0f});
  EXPECT_LT(max_abs_diff(u.grad(), dg), 1e-7) << u.grad();
}

TEST(OSAESE, GateIsHardSigmoidOfFcOfGlobalMean) {
  torch::manual_seed(1);
  sepmech::ESE ese(sepmech::ESEOptions(5));
  auto a = torch::randn({2, 5, 4, 3});
  auto y = ese(a);
  auto s = a.to(torch::kDouble).mean({2, 3});                                 // (B, C)
  auto w = ese->fc->weight.to(torch::kDouble).view({5, 5});
  auto u = torch::matmul(s, w.t()) + ese->fc->bias.to(torch::kDouble);
  auto g = torch::clamp(u + 3, 0, 6) / 6;
  auto want = a.to(torch::kDouble) * g.view({2, 5, 1, 1});
  EXPECT_LT(max_abs_diff(y, want), 1e-5);
}

TEST(OSANorm, BatchNormTrainUpdatesRunningStatsLikeTheReference) {
  torch::manual_seed(2);
  sepmech::Norm2d bn(sepmech::Norm2dOptions(NormKind::batch_norm, 3));
  bn->train();
  auto x = torch::randn({4, 3, 5, 6}) * 2 + 1;
  auto y = bn(x);
  auto xd = x.to(torch::kDouble);
  auto mean = xd.mean({0, 2, 3});
  auto var_b = xd.var({0, 2, 3}, /*unbiased=*/false);
  auto var_u = xd.var({0, 2, 3}, /*unbiased=*/true);
  EXPECT_LT(max_abs_diff(bn->running_mean, 0.1 * mean), 1e-6);
  EXPECT_LT(max_abs_diff(bn->running_var, 0.9 + 0.1 * var_u), 1e-6);
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 1);
  auto want = (xd - mean.view({1, 3, 1, 1})) / torch::sqrt(var_b.view({1, 3, 1, 1}) + 1e-5);
  EXPECT_LT(max_abs_diff(y, want), 1e-5);
}

TEST(OSANorm, FrozenBatchNormHasFourBuffersAndIgnoresTrainMode) {
  sepmech::Norm2d fbn(sepmech::Norm2dOptions(NormKind::frozen_batch_norm, 4));
  EXPECT_TRUE(fbn->parameters().empty());
  auto sd = sepmech::io::state_dict(*fbn);
  EXPECT_EQ(sd.size(), 4u);
  EXPECT_EQ(sd.count("num_batches_tracked"), 0u);
  EXPECT_EQ(fbn->running_var[0].item<float>(), 1.0f - 1e-5f);
  randomise_norms(*fbn);
  auto before = fbn->running_mean.clone();
  auto x = torch::randn({2, 4, 3, 3});
  fbn->eval();
  auto y_eval = fbn(x);
  fbn->train();
  auto y_train = fbn(x);
  EXPECT_TRUE(torch::equal(y_eval, y_train));
  EXPECT_TRUE(torch::equal(before, fbn->running_mean));
}

TEST(OSANorm, GroupNormNeedsMultipleOf32) {
  EXPECT_THROW(sepmech::Norm2d(sepmech::Norm2dOptions(NormKind::group_norm, 48)), c10::Error);
  sepmech::Norm2d gn(sepmech::Norm2dOptions(NormKind::group_norm, 64));
  auto x = torch::randn({2, 64, 3, 4});
  auto y = gn(x);
  // each group of 2 channels of each sample is standardised
  auto g = y.view({2, 32, -1});
  EXPECT_LT(g.mean(-1).abs().max().item<float>(), 1e-5);
}

TEST(OSABlock, ReferenceKeyNamesWithSlash) {
  sepmech::OSABlock b(sepmech::OSABlockOptions(8, 6, 12, 3).module_name("OSA2_1").depthwise(true));
  EXPECT_TRUE(has_key(*b, "layers.0.OSA2_1_0/dw_conv3x3.weight"));
  EXPECT_TRUE(has_key(*b, "layers.2.OSA2_1_2/pw_norm.num_batches_tracked"));
  EXPECT_TRUE(has_key(*b, "conv_reduction.OSA2_1_reduction_0/conv.weight"));
  EXPECT_TRUE(has_key(*b, "concat.OSA2_1_concat/norm.running_var"));
  EXPECT_TRUE(has_key(*b, "ese.fc.bias"));
  sepmech::OSABlock v1(sepmech::OSABlockOptions(8, 6, 8, 2).identity(true).ese(false));
  EXPECT_FALSE(has_key(*v1, "ese.fc.bias"));
}

TEST(OSABlock, LoadsGoldenWeightsWithDetectronPrefix) {
  auto f = sepmech::io::load_safetensors(std::string(SEPMECH_TEST_DATA) + "/golden/osa/osa_ese_bn_eval.safetensors");
  std::map<std::string, torch::Tensor> ckpt;
  for (const auto& [k, v] : f.tensors)
    if (k.rfind("param.", 0) == 0) ckpt["backbone.bottom_up.stage2.OSA2_1." + k.substr(6)] = v;
  sepmech::OSABlock b(sepmech::OSABlockOptions(8, 6, 12, 3).module_name("OSA2_1"));
  sepmech::io::LoadOptions opt;
  opt.strip_prefix = "backbone.bottom_up.stage2.OSA2_1.";
  sepmech::io::load_state_dict(*b, ckpt, opt);
  b->eval();
  auto y = b(f.tensors.at("in.x"));
  const auto& want = f.tensors.at("out.y");
  EXPECT_TRUE(torch::allclose(y, want, 1e-4, 1e-5));
}

TEST(OSABlock, ParameterCountMatchesTheSpecFormula) {
  const int64_t ci = 10, cs = 6, co = 14, L = 4;
  sepmech::OSABlock b(sepmech::OSABlockOptions(ci, cs, co, L).norm(NormKind::frozen_batch_norm));
  int64_t n = 0;
  for (const auto& p : b->parameters()) n += p.numel();
  EXPECT_EQ(n, 9 * cs * (ci + (L - 1) * cs) + co * (ci + L * cs) + co * co + co);
}

TEST(OSABlock, ResidualAddedAfterESEWithoutActivation) {
  torch::manual_seed(3);
  sepmech::OSABlock b(sepmech::OSABlockOptions(6, 4, 6, 2).identity(true));
  b->eval();
  auto x = torch::randn({2, 6, 5, 5});
  std::map<std::string, torch::Tensor> mid;
  auto y = b->forward_with_intermediates(x, &mid);
  EXPECT_TRUE(torch::equal(y, mid.at("ese") + x));
  EXPECT_LT(y.min().item<float>(), 0.0f);  // no final ReLU
  EXPECT_EQ(mid.at("gate").sizes(), (std::vector<int64_t>{2, 6, 1, 1}));
}

TEST(OSABlock, OneDimensionalFormEqualsTwoDimensionalBlockOnHeightOne) {
  torch::manual_seed(4);
  for (bool dw : {false, true}) {
    sepmech::OSABlock b(sepmech::OSABlockOptions(8, 6, 8, 3).identity(true).depthwise(dw));
    randomise_norms(*b);
    b->eval();
    auto x = torch::randn({2, 8, 37});
    auto y1 = b(x);
    auto y2 = b(x.unsqueeze(2)).squeeze(2);
    EXPECT_EQ(y1.sizes(), x.sizes());
    EXPECT_LT(max_abs_diff(y1, y2), 1e-5) << "depthwise=" << dw;
  }
}

TEST(OSABlock, BackwardReachesEveryTrainableParameter) {
  torch::manual_seed(5);
  sepmech::OSABlock b(sepmech::OSABlockOptions(8, 6, 8, 2).identity(true).depthwise(true));
  b->train();
  auto x = torch::randn({2, 8, 5, 6}, torch::requires_grad());
  b(x).pow(2).sum().backward();
  EXPECT_TRUE(x.grad().defined());
  for (const auto& item : b->named_parameters()) EXPECT_TRUE(item.value().grad().defined()) << item.key();
}

TEST(OSABlock, BadInputsGiveClearErrors) {
  using sepmech::OSABlock;
  using sepmech::OSABlockOptions;
  // identity needs in_ch == concat_ch; the reference silently broadcasts in_ch = 1
  EXPECT_THROW(OSABlock(OSABlockOptions(1, 4, 8, 2).identity(true)), c10::Error);
  EXPECT_THROW(OSABlock(OSABlockOptions(6, 4, 8, 2).identity(true)), c10::Error);
  EXPECT_THROW(OSABlock(OSABlockOptions(6, 4, 8, 0)), c10::Error);
  EXPECT_THROW(OSABlock(OSABlockOptions(6, 4, 8, 2).module_name("a.b")), c10::Error);
  EXPECT_THROW(OSABlock(OSABlockOptions(32, 48, 64, 2).norm(NormKind::group_norm)), c10::Error);
  EXPECT_THROW(OSABlock(OSABlockOptions(32, 32, 64, 2).norm(NormKind::group_norm).causal_time(true)), c10::Error);
  OSABlock b(OSABlockOptions(6, 4, 8, 2));
  try {
    b(torch::randn({2, 5, 4, 4}));
    FAIL() << "wrong channel count accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("6 channels"), std::string::npos) << e.what();
  }
  EXPECT_THROW(b(torch::randn({2, 6})), c10::Error);
  EXPECT_THROW(b(torch::randn({1, 6, 2, 2, 2})), c10::Error);
  EXPECT_THROW(b(torch::randint(0, 3, {1, 6, 4, 4})), c10::Error);
  b->train();
  EXPECT_THROW(b(torch::randn({1, 6, 1, 1})), c10::Error);  // BN batch statistics of one value
  EXPECT_THROW(sepmech::norm_kind_from_string("LN"), c10::Error);
}

TEST(OSAStage, PoolingCeilModeAndSizeOneError) {
  sepmech::OSAStage s3(sepmech::OSAStageOptions(4, 4, 8, 2, 2, 3).norm(NormKind::frozen_batch_norm));
  EXPECT_EQ(s3(torch::randn({1, 4, 11, 14})).sizes(), (std::vector<int64_t>{1, 8, 5, 7}));
  EXPECT_EQ(s3(torch::randn({1, 4, 2, 2})).sizes(), (std::vector<int64_t>{1, 8, 1, 1}));
  try {
    s3(torch::randn({1, 4, 1, 9}));
    FAIL() << "H = 1 accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("H >= 2"), std::string::npos) << e.what();
  }
  sepmech::OSAStage s2(sepmech::OSAStageOptions(4, 4, 8, 2, 2, 2).norm(NormKind::frozen_batch_norm));
  EXPECT_FALSE(s2->has_pooling());
  EXPECT_EQ(s2(torch::randn({1, 4, 1, 9})).sizes(), (std::vector<int64_t>{1, 8, 1, 9}));
  // 1-D stage: MaxPool1d(3, 2, ceil_mode) over T
  EXPECT_EQ(s3(torch::randn({1, 4, 11})).sizes(), (std::vector<int64_t>{1, 8, 5}));
  EXPECT_TRUE(has_key(*s3, "OSA3_2.layers.1.OSA3_2_1/conv.weight"));
}

TEST(VoVNet, EverySpecShapesStridesAndParameterCounts) {
  // Parameter counts (conv weights + eSE, FrozenBN buffers excluded) from the spec's table §7.
  const std::map<std::string, double> params_m = {
      {"V-19-slim-dw-eSE", 1.38}, {"V-19-dw-eSE", 5.51}, {"V-19-slim-eSE", 2.65}, {"V-19-eSE", 10.17},
      {"V-39-eSE", 25.16},        {"V-57-eSE", 41.42},   {"V-99-eSE", 69.47}};
  torch::NoGradGuard ng;
  for (const auto& name : sepmech::VoVNetSpec::names()) {
    auto spec = sepmech::VoVNetSpec::named(name);
    sepmech::VoVNet net(sepmech::VoVNetOptions(spec).out_features({"stem", "stage2", "stage3", "stage4", "stage5"}));
    net->eval();
    int64_t n = 0;
    for (const auto& p : net->parameters()) n += p.numel();
    EXPECT_NEAR(n / 1e6, params_m.at(name), 0.006) << name;
    auto out = net(torch::randn({1, 3, 67, 45}));
    ASSERT_EQ(out.size(), 5u) << name;
    // stride-2 convs: ceil(H/2) (67 -> 34 -> 17, 45 -> 23 -> 12); max-pool 3/2 ceil:
    // ceil((H-3)/2)+1 (17 -> 8 -> 4 -> 2, 12 -> 6 -> 3 -> 1)
    const std::vector<std::pair<std::string, std::vector<int64_t>>> hw = {
        {"stem", {17, 12}}, {"stage2", {17, 12}}, {"stage3", {8, 6}}, {"stage4", {4, 3}}, {"stage5", {2, 1}}};
    for (const auto& [f, s] : hw) {
      const auto& t = out.at(f);
      EXPECT_EQ(t.size(1), net->feature_channels(f)) << name << " " << f;
      EXPECT_EQ(t.size(2), s[0]) << name << " " << f;
      EXPECT_EQ(t.size(3), s[1]) << name << " " << f;
    }
  }
  EXPECT_EQ(sepmech::VoVNetSpec::named("v-39").layer_per_block, 5);
  EXPECT_THROW(sepmech::VoVNetSpec::named("V-18"), c10::Error);
  EXPECT_EQ(sepmech::VoVNetImpl::feature_stride("stage5"), 32);
}

TEST(VoVNet, DefaultOutFeaturesAndBadInput) {
  sepmech::VoVNetSpec tiny{{8, 8, 16}, {8, 8, 8, 8}, {16, 16, 16, 16}, 2, {1, 1, 1, 2}, true, false};
  sepmech::VoVNet net(sepmech::VoVNetOptions(tiny).input_ch(1));
  auto out = net(torch::randn({1, 1, 40, 40}));
  EXPECT_EQ(out.size(), 4u);
  EXPECT_EQ(out.count("stem"), 0u);
  EXPECT_THROW(net(torch::randn({1, 3, 40, 40})), c10::Error);
  EXPECT_THROW(net(torch::randn({1, 1, 40})), c10::Error);
  EXPECT_THROW(sepmech::VoVNet(sepmech::VoVNetOptions(tiny).out_features({"stage6"})), c10::Error);
  auto bad = tiny;
  bad.dw = true;  // a depthwise stem needs equal widths
  EXPECT_THROW(sepmech::VoVNet(sepmech::VoVNetOptions(bad)), c10::Error);
  bad = tiny;
  bad.block_per_stage = {1, 1, 1};
  EXPECT_THROW(sepmech::VoVNet(sepmech::VoVNetOptions(bad)), c10::Error);
}

TEST(OSAFuse, BlockVariantsMatchUnfusedEval) {
  torch::manual_seed(6);
  struct V {
    bool dw, identity, ese;
    NormKind norm;
    int64_t in, cs, co;
  };
  for (const V& v : {V{false, true, true, NormKind::batch_norm, 16, 8, 16}, V{true, false, true, NormKind::batch_norm, 12, 8, 16},
                     V{true, true, true, NormKind::frozen_batch_norm, 8, 8, 8}, V{false, true, false, NormKind::batch_norm, 8, 6, 8},
                     V{false, false, true, NormKind::group_norm, 32, 32, 64}}) {
    sepmech::OSABlock b(sepmech::OSABlockOptions(v.in, v.cs, v.co, 3)
                            .identity(v.identity)
                            .depthwise(v.dw)
                            .ese(v.ese)
                            .norm(v.norm));
    randomise_norms(*b);
    b->eval();
    auto fused = b->fuse();
    EXPECT_TRUE(fused->is_fused());
    auto x = torch::randn({2, v.in, 9, 7});
    auto y = b(x);
    auto yf = fused->forward(x);
    const double scale = y.abs().max().item<double>();
    EXPECT_LT(max_abs_diff(y, yf), 1e-5 * std::max(1.0, scale)) << b;
    {  // an input that requires grad takes the differentiable module path
      auto xg = x.clone().requires_grad_(true);
      auto yg = fused->forward(xg);
      EXPECT_LT(max_abs_diff(y, yg), 1e-5 * std::max(1.0, scale)) << b;
      yg.sum().backward();
      EXPECT_TRUE(xg.grad().defined());
    }
    for (const auto& p : fused->parameters()) EXPECT_FALSE(p.requires_grad());
    // the fused module has no BN left (GroupNorm cannot be folded and stays)
    for (const auto& item : fused->named_buffers()) EXPECT_EQ(item.key().find("running"), std::string::npos) << item.key();
    if (v.norm != NormKind::group_norm) EXPECT_TRUE(has_key(*fused, "concat." + b->options.module_name() + "_concat/conv.bias"));
    // the fused module also runs the 1-D form and can be cloned
    auto x1 = torch::randn({1, v.in, 20});
    EXPECT_LT(max_abs_diff(b(x1), fused->forward(x1)), 1e-5 * std::max(1.0, scale));
    auto cl = std::dynamic_pointer_cast<sepmech::OSABlockImpl>(fused->clone());
    EXPECT_TRUE(cl->is_fused());
    EXPECT_LT(max_abs_diff(cl->forward(x), yf), 1e-5 * std::max(1.0, scale));
  }
}

// The fused path's NCHW -> NHWC input copy has an AVX2 8x8-tile kernel and a portable twin: a
// copy, so both must give bit-identical outputs (channel and position counts with tails).
TEST(OSAFuse, PortableAndAvx2InputTransposeAgreeBitForBit) {
  torch::manual_seed(12);
  sepmech::OSABlock b(sepmech::OSABlockOptions(20, 8, 20, 2).identity(true));
  randomise_norms(*b);
  b->eval();
  auto fused = b->fuse();
  auto x = torch::randn({2, 20, 13, 7});
  auto y = fused->forward(x);
  torch::Tensor yp;
  {
    sepmech::kernels::ForcePortable portable;
    yp = fused->forward(x);
  }
  EXPECT_TRUE(torch::equal(y, yp));
}

TEST(OSAFuse, BackboneMatchesUnfusedEvalAndLeavesOriginalAlone) {
  torch::manual_seed(7);
  for (bool dw : {false, true}) {
    sepmech::VoVNetSpec tiny{{8, 8, dw ? 8 : 16}, {8, 8, 12, 12}, {16, 24, 32, 40}, 2, {1, 2, 1, 2}, true, dw};
    sepmech::VoVNet net(sepmech::VoVNetOptions(tiny).norm(NormKind::batch_norm).out_features({"stem", "stage5"}));
    randomise_norms(*net);
    net->train();  // fuse() must not depend on the current mode: it folds the eval formula
    auto fused = net->fuse();
    net->eval();
    auto x = torch::randn({2, 3, 48, 40});
    auto y = net(x);
    torch::NoGradGuard ng;
    auto yf = fused->forward(x);
    for (const auto& f : {"stem", "stage5"}) {
      const double scale = std::max(1.0, y.at(f).abs().max().item<double>());
      EXPECT_LT(max_abs_diff(y.at(f), yf.at(f)), 2e-5 * scale) << f << " dw=" << dw;
    }
    EXPECT_TRUE(has_key(*net, "stage3.OSA3_1.concat.OSA3_1_concat/norm.running_mean"));
  }
}

TEST(OSACausal, FutureFramesNeverChangePastOutputs) {
  torch::manual_seed(8);
  const int64_t T = 30, F = 12, t0 = 17;
  sepmech::OSABlock causal(sepmech::OSABlockOptions(4, 6, 4, 3).identity(true).causal_time(true));
  sepmech::OSABlock plain(sepmech::OSABlockOptions(4, 6, 4, 3).identity(true));
  sepmech::io::load_state_dict(*plain, sepmech::io::state_dict(*causal));
  randomise_norms(*causal);
  causal->eval();
  plain->eval();
  sepmech::OSAStage stage(sepmech::OSAStageOptions(4, 6, 8, 2, 2, 3).causal_time(true));
  stage->eval();
  auto x = torch::randn({2, 4, T, F});
  auto x2 = x.clone();
  x2.narrow(2, t0, T - t0).normal_(0, 3);  // change the future only
  auto y = causal(x), y2 = causal(x2);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(torch::equal(y.narrow(2, 0, t0), y2.narrow(2, 0, t0)));
  EXPECT_FALSE(torch::equal(y.narrow(2, t0, T - t0), y2.narrow(2, t0, T - t0)));
  auto s = stage(x), s2 = stage(x2);
  EXPECT_EQ(s.sizes(), (std::vector<int64_t>{2, 8, T, 6}));  // pooled over frequency only
  EXPECT_TRUE(torch::equal(s.narrow(2, 0, t0), s2.narrow(2, 0, t0)));
  // the reference form is not causal: the same perturbation leaks into the past
  EXPECT_FALSE(torch::equal(plain(x).narrow(2, 0, t0), plain(x2).narrow(2, 0, t0)));
  // causal 1-D form and causal fused form
  auto x1 = torch::randn({1, 4, T}), x1b = x1.clone();
  x1b.narrow(2, t0, T - t0).zero_();
  EXPECT_TRUE(torch::equal(causal(x1).narrow(2, 0, t0), causal(x1b).narrow(2, 0, t0)));
  auto fused = causal->fuse();
  EXPECT_LT(max_abs_diff(fused->forward(x), y), 1e-4);
  EXPECT_TRUE(torch::equal(fused->forward(x).narrow(2, 0, t0), fused->forward(x2).narrow(2, 0, t0)));
}

TEST(OSACausal, StreamingStepsEqualTheWholeSequence) {
  torch::manual_seed(9);
  for (bool dw : {false, true}) {
    sepmech::OSABlock b(sepmech::OSABlockOptions(6, 4, 6, 3).identity(true).depthwise(dw).causal_time(true));
    randomise_norms(*b);
    b->eval();
    auto x = torch::randn({2, 6, 23, 9});
    auto whole = b(x);
    for (auto blk : {b.ptr(), b->fuse()}) {
      auto st = blk->init_state(2, 9);
      std::vector<torch::Tensor> parts;
      int64_t t = 0;
      for (int64_t len : {1, 4, 2, 7, 1, 8}) {
        parts.push_back(blk->step(x.narrow(2, t, len), st));
        t += len;
      }
      ASSERT_EQ(t, 23);
      EXPECT_LT(max_abs_diff(torch::cat(parts, 2), whole), 1e-5) << "depthwise=" << dw;
    }
  }
  sepmech::OSABlock plain(sepmech::OSABlockOptions(6, 4, 6, 3));
  EXPECT_THROW(plain->init_state(1, 4), c10::Error);
  sepmech::OSABlock c(sepmech::OSABlockOptions(6, 4, 6, 3).causal_time(true));
  c->eval();
  auto st = c->init_state(1, 4);
  const auto before = st;  // a copy: its own histories
  EXPECT_THROW(c->step(torch::randn({1, 6, 2, 5}), st), c10::Error);  // F differs from the state
  for (size_t i = 0; i < st.history.size(); ++i) EXPECT_TRUE(torch::equal(st.history[i], before.history[i]));
}

TEST(OSACausal, CopiedStateBranchesTheStreamAndResetRestarts) {
  torch::manual_seed(10);
  sepmech::OSABlock b(sepmech::OSABlockOptions(6, 4, 6, 3).identity(true).causal_time(true));
  randomise_norms(*b);
  b->eval();
  auto x = torch::randn({1, 6, 10, 5});
  auto st = b->init_state(1, 5);
  b->step(x.narrow(2, 0, 4), st);
  auto branch = st;  // a copy: stepping one must not move the other
  auto y1 = b->step(x.narrow(2, 4, 6), st);
  auto y2 = b->step(x.narrow(2, 4, 6), branch);
  EXPECT_TRUE(torch::equal(y1, y2));
  auto z = b->step(x.narrow(2, 4, 6), st);  // st has moved on: a different past
  EXPECT_FALSE(torch::equal(z, y1));
  st.reset();
  EXPECT_LT(max_abs_diff(b->step(x, st), b->forward(x)), 1e-5);
}

// ---------------------------------------------------------------------------------------------
// A plain transcription of the spec (conv2d / max_pool2d / elementwise ops on the state_dict
// tensors, looked up by the reference's key names), independent of the module code, for the
// configurations the shipped golden files do not cover: GroupNorm, depthwise with identity,
// depthwise stages, stages without pooling, whole (tiny) backbones.
namespace {

using SD = std::map<std::string, torch::Tensor>;

torch::Tensor ref_norm(const SD& sd, const std::string& key, NormKind kind, const torch::Tensor& u) {
  auto v = [](const torch::Tensor& t) { return t.view({1, -1, 1, 1}); };
  const auto& w = sd.at(key + ".weight");
  const auto& b = sd.at(key + ".bias");
  if (kind == NormKind::group_norm) {  // 32 groups, biased variance over (C/32, H, W)
    auto g = u.reshape({u.size(0), 32, -1});
    auto d = g - g.mean(-1, true);
    auto n = (d / torch::sqrt(d.pow(2).mean(-1, true) + 1e-5)).reshape(u.sizes());
    return n * v(w) + v(b);
  }
  // eval BN and FrozenBN: the running statistics
  return (u - v(sd.at(key + ".running_mean"))) / torch::sqrt(v(sd.at(key + ".running_var")) + 1e-5) * v(w) + v(b);
}

// conv3x3 / conv1x1 / dw_conv3x3 helper of vovnet.py; `key` = "<prefix>{name}" without "/conv".
torch::Tensor ref_unit(const SD& sd, const std::string& key, NormKind kind, const torch::Tensor& x, int64_t stride) {
  if (sd.count(key + "/dw_conv3x3.weight")) {  // depthwise 3x3 (no norm), pointwise 1x1, norm, ReLU
    auto h = torch::conv2d(x, sd.at(key + "/dw_conv3x3.weight"), {}, stride, 1, 1, x.size(1));
    h = torch::conv2d(h, sd.at(key + "/pw_conv1x1.weight"));
    return torch::relu(ref_norm(sd, key + "/pw_norm", kind, h));
  }
  const auto& w = sd.at(key + "/conv.weight");
  return torch::relu(ref_norm(sd, key + "/norm", kind, torch::conv2d(x, w, {}, stride, w.size(3) == 3 ? 1 : 0)));
}

// _OSA_module.forward; `pre` = key prefix of the block ("" or "stage3.OSA3_2."), `n` its name.
torch::Tensor ref_block(const SD& sd, const std::string& pre, const std::string& n, bool identity, NormKind kind,
                        const torch::Tensor& x) {
  std::vector<torch::Tensor> outs{x};
  torch::Tensor h = x;
  const std::string red = pre + "conv_reduction." + n + "_reduction_0";
  if (sd.count(red + "/conv.weight")) h = ref_unit(sd, red, kind, h, 1);
  for (int i = 0; sd.count(pre + "layers." + std::to_string(i) + "." + n + "_" + std::to_string(i) + "/norm.weight") ||
                  sd.count(pre + "layers." + std::to_string(i) + "." + n + "_" + std::to_string(i) + "/pw_norm.weight");
       ++i) {
    h = ref_unit(sd, pre + "layers." + std::to_string(i) + "." + n + "_" + std::to_string(i), kind, h, 1);
    outs.push_back(h);
  }
  auto a = ref_unit(sd, pre + "concat." + n + "_concat", kind, torch::cat(outs, 1), 1);
  auto u = torch::conv2d(a.mean({2, 3}, true), sd.at(pre + "ese.fc.weight"), sd.at(pre + "ese.fc.bias"));
  auto e = a * (torch::clamp(u + 3, 0, 6) / 6);
  return identity ? e + x : e;
}

// _OSA_stage.forward: max-pool 3/2 ceil_mode unless stage 2, then OSA{s}_1, OSA{s}_2 (identity), ...
torch::Tensor ref_stage(const SD& sd, const std::string& pre, int64_t s, NormKind kind, torch::Tensor x) {
  if (s != 2) x = torch::max_pool2d(x, {3, 3}, {2, 2}, {0, 0}, {1, 1}, /*ceil_mode=*/true);
  const std::string ss = std::to_string(s);
  for (int j = 1; sd.count(pre + "OSA" + ss + "_" + std::to_string(j) + ".ese.fc.bias"); ++j) {
    const std::string n = "OSA" + ss + "_" + std::to_string(j);
    x = ref_block(sd, pre + n + ".", n, j > 1, kind, x);
  }
  return x;
}

std::map<std::string, torch::Tensor> ref_backbone(const SD& sd, NormKind kind, const torch::Tensor& x) {
  std::map<std::string, torch::Tensor> out;
  auto h = ref_unit(sd, "stem.stem_1", kind, x, 2);
  h = ref_unit(sd, "stem.stem_2", kind, h, 1);
  h = ref_unit(sd, "stem.stem_3", kind, h, 2);
  out["stem"] = h;
  for (int s = 2; s <= 5; ++s) out["stage" + std::to_string(s)] = h = ref_stage(sd, "stage" + std::to_string(s) + ".", s, kind, h);
  return out;
}

/// float64, every weight random (eSE gates partly saturated), norm statistics random.
void randomise_all(torch::nn::Module& m, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard ng;
  for (auto& p : m.parameters())
    if (p.is_floating_point()) p.set_data(p.to(torch::kDouble));
  for (auto& b : m.buffers())
    if (b.is_floating_point()) b.set_data(b.to(torch::kDouble));
  for (auto& item : m.named_parameters()) {
    const auto& k = item.key();
    auto t = item.value();
    if (k.find("ese.fc.weight") != std::string::npos) t.normal_(0, 4.0 / std::sqrt(double(t.size(0))));
    else if (k.find("ese.fc.bias") != std::string::npos) t.normal_(0, 1.5);
    else if (t.dim() == 4) t.normal_(0, 1.0 / std::sqrt(double(t[0].numel())));
  }
  randomise_norms(m);
}

SD sd_of(const torch::nn::Module& m) { return sepmech::io::state_dict(m); }

}  // namespace

TEST(OSAReference, HeldOutStyleConfigurationsMatchAPlainTranscription) {
  torch::NoGradGuard ng;
  auto check_block = [](sepmech::OSABlockOptions o, std::vector<int64_t> shape, const std::string& what) {
    auto b = std::make_shared<sepmech::OSABlockImpl>(o);
    randomise_all(*b, 3);
    b->eval();
    auto x = torch::randn(shape, torch::kDouble);
    auto want = ref_block(sd_of(*b), "", o.module_name(), o.identity(), o.norm(), x);
    EXPECT_LT(max_abs_diff(b->forward(x), want), 1e-10) << what;
    EXPECT_GT(want.abs().max().item<double>(), 0.1) << what << ": degenerate case";
  };
  check_block(sepmech::OSABlockOptions(32, 32, 64, 2).module_name("OSA2_1").norm(NormKind::group_norm), {2, 32, 6, 7}, "GN");
  check_block(sepmech::OSABlockOptions(64, 32, 64, 3).module_name("OSA3_2").identity(true).norm(NormKind::group_norm),
              {2, 64, 5, 4}, "GN identity");
  check_block(sepmech::OSABlockOptions(12, 6, 12, 3).module_name("OSA4_2").identity(true).depthwise(true),
              {2, 12, 7, 9}, "depthwise + reduction + identity, BN");
  check_block(sepmech::OSABlockOptions(6, 6, 10, 2).module_name("OSA2_1").depthwise(true).norm(NormKind::frozen_batch_norm),
              {2, 6, 7, 9}, "depthwise without reduction, FrozenBN");
  check_block(sepmech::OSABlockOptions(32, 32, 32, 2).module_name("OSA2_2").identity(true).depthwise(true).norm(NormKind::group_norm),
              {2, 32, 5, 6}, "depthwise GN identity");

  auto check_stage = [](sepmech::OSAStageOptions o, std::vector<int64_t> shape, const std::string& what) {
    auto s = std::make_shared<sepmech::OSAStageImpl>(o);
    randomise_all(*s, 4);
    s->eval();
    auto x = torch::randn(shape, torch::kDouble);
    auto want = ref_stage(sd_of(*s), "", o.stage_num(), o.norm(), x);
    auto got = s->forward(x);
    ASSERT_EQ(got.sizes(), want.sizes()) << what;
    EXPECT_LT(max_abs_diff(got, want), 1e-10) << what;
  };
  check_stage(sepmech::OSAStageOptions(8, 6, 12, 2, 3, 4).depthwise(true), {2, 8, 9, 12}, "depthwise stage, pooled");
  check_stage(sepmech::OSAStageOptions(8, 6, 12, 3, 2, 2), {2, 8, 7, 5}, "stage 2: no pooling, 3 blocks");
  check_stage(sepmech::OSAStageOptions(32, 32, 64, 2, 2, 3).norm(NormKind::group_norm), {2, 32, 9, 8}, "GN stage");
  check_stage(sepmech::OSAStageOptions(12, 8, 16, 2, 3, 5).norm(NormKind::frozen_batch_norm), {2, 12, 8, 7},
              "FrozenBN stage 5");

  const std::vector<std::string> all = {"stem", "stage2", "stage3", "stage4", "stage5"};
  auto check_net = [&](sepmech::VoVNetSpec spec, NormKind norm, int64_t in_ch, std::vector<int64_t> shape,
                       const std::string& what) {
    auto net = std::make_shared<sepmech::VoVNetImpl>(
        sepmech::VoVNetOptions(spec).input_ch(in_ch).out_features(all).norm(norm));
    randomise_all(*net, 5);
    net->eval();
    auto x = torch::randn(shape, torch::kDouble);
    auto want = ref_backbone(sd_of(*net), norm, x);
    auto got = net->forward(x);
    for (const auto& f : all) {
      ASSERT_EQ(got.at(f).sizes(), want.at(f).sizes()) << what << " " << f;
      EXPECT_LT(max_abs_diff(got.at(f), want.at(f)), 1e-10) << what << " " << f;
    }
  };
  check_net({{8, 8, 16}, {8, 8, 12, 12}, {16, 24, 24, 32}, 2, {1, 2, 1, 2}, true, false}, NormKind::frozen_batch_norm, 3,
            {2, 3, 37, 45}, "tiny backbone");
  check_net({{8, 8, 8}, {8, 8, 12, 12}, {16, 24, 24, 32}, 2, {1, 1, 2, 1}, true, true}, NormKind::batch_norm, 3,
            {1, 3, 40, 33}, "tiny depthwise backbone");
  check_net({{32, 32, 64}, {32, 32, 32, 32}, {64, 64, 96, 96}, 1, {1, 1, 1, 2}, true, false}, NormKind::group_norm, 1,
            {1, 1, 64, 48}, "tiny GN backbone");
}

TEST(OSAParity, AdapterRunsHeldOutStyleCasesInTheirDtype) {
  // Case files as the held-out generator writes them (config in the reference's names, float64
  // here), expected values from the plain transcription above: the adapter must build the right
  // module, find the norm and out_features of a dumped detectron2 cfg (whose FPN.NORM is ""),
  // infer a custom spec's widths, and compute in the file's dtype.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("sepmech_osa_parity_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string v2 = "youngwanLEE/vovnet-detectron2@b81c813cbf6e7253655c20a16b83038988b881d9 vovnet/vovnet.py::";
  auto write_case = [&](const std::string& name, const torch::nn::Module& m, const torch::Tensor& x,
                        const std::map<std::string, torch::Tensor>& outs, const torch::Tensor& go, const torch::Tensor& gx,
                        const std::string& cls, const std::string& config, const std::string& mode) {
    sepmech::io::TensorMap t;
    for (const auto& [k, v] : sepmech::io::state_dict(m)) t["param." + k] = v;
    t["in.x"] = x;
    for (const auto& [k, v] : outs) t["out." + k] = v;
    if (go.defined()) {
      t["in.grad_out." + outs.begin()->first] = go;
      t["grad.in.x"] = gx;
    }
    const std::string path = (dir / (name + ".safetensors")).string();
    sepmech::io::save_safetensors(path, t,
                                  {{"module", "osa"}, {"reference", v2 + cls + ".forward"}, {"config", config},
                                   {"call", R"({"method": "forward", "inputs": ["x"], "mode": ")" + mode + R"("})"},
                                   {"atol", "1e-9"}, {"rtol", "1e-9"}});
    return path;
  };
  std::vector<std::string> paths;
  {  // GN block with backward: grad.in.x by autograd through the transcription
    auto b = std::make_shared<sepmech::OSABlockImpl>(
        sepmech::OSABlockOptions(32, 32, 64, 2).module_name("OSA2_1").norm(NormKind::group_norm));
    randomise_all(*b, 6);
    auto x = torch::randn({2, 32, 5, 6}, torch::kDouble).requires_grad_(true);
    auto y = ref_block(sd_of(*b), "", "OSA2_1", false, NormKind::group_norm, x);
    auto go = torch::randn_like(y);
    (y * go).sum().backward();
    paths.push_back(write_case("gn_block", *b, x.detach(), {{"y", y.detach()}}, go, x.grad(), "_OSA_module",
                               R"({"in_ch": 32, "stage_ch": 32, "concat_ch": 64, "layer_per_block": 2,
                                   "module_name": "OSA2_1", "SE": true, "identity": false, "depthwise": false,
                                   "_NORM": "GN"})",
                               "eval"));
  }
  {  // depthwise stage without pooling
    auto s = std::make_shared<sepmech::OSAStageImpl>(sepmech::OSAStageOptions(8, 6, 12, 2, 3, 2).depthwise(true));
    randomise_all(*s, 7);
    s->eval();
    torch::NoGradGuard ng;
    auto x = torch::randn({2, 8, 7, 9}, torch::kDouble);
    paths.push_back(write_case("dw_stage2", *s, x, {{"y", ref_stage(sd_of(*s), "", 2, NormKind::batch_norm, x)}}, {}, {},
                               "_OSA_stage",
                               R"({"in_ch": 8, "stage_ch": 6, "concat_ch": 12, "block_per_stage": 2,
                                   "layer_per_block": 3, "stage_num": 2, "SE": true, "depthwise": true, "_NORM": "BN"})",
                               "eval"));
  }
  {  // tiny custom-spec backbone; the norm only in cfg.MODEL.VOVNET.NORM, FPN.NORM = ""
    sepmech::VoVNetSpec tiny{{8, 8, 16}, {8, 8, 12, 12}, {16, 24, 24, 32}, 2, {1, 2, 1, 2}, true, false};
    auto net = std::make_shared<sepmech::VoVNetImpl>(
        sepmech::VoVNetOptions(tiny).input_ch(2).out_features({"stage3", "stage5"}).norm(NormKind::frozen_batch_norm));
    randomise_all(*net, 8);
    torch::NoGradGuard ng;
    auto x = torch::randn({2, 2, 37, 45}, torch::kDouble);
    auto all = ref_backbone(sd_of(*net), NormKind::frozen_batch_norm, x);
    paths.push_back(write_case("tiny_backbone", *net, x, {{"stage3", all.at("stage3")}, {"stage5", all.at("stage5")}}, {},
                               {}, "VoVNet",
                               R"({"cfg": {"MODEL": {"BACKBONE": {"FREEZE_AT": 0}, "FPN": {"NORM": ""},
                                   "VOVNET": {"CONV_BODY": "V-tiny-eSE", "NORM": "FrozenBN",
                                              "OUT_FEATURES": ["stage3", "stage5"]}}},
                                   "input_ch": 2, "out_features": ["stage3", "stage5"]})",
                               "eval"));
  }
  for (const auto& p : paths) {
    const auto rep = sepmech::parity::run_case(p);
    EXPECT_TRUE(rep.pass) << sepmech::parity::to_line(rep);
  }
  fs::remove_all(dir);
}
