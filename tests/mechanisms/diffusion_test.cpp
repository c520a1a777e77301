// Tests of the diffusion family: SDE identities and spec numbers, bad input, the noise source,
// training step and losses, parameterisations (incl. v-prediction), every predictor/corrector
// combination, the analytic laws of spec §6, the spectrogram transform and the option names.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>

#include "diffusion/kernels.h"
#include "diffusion/random.h"
#include "diffusion/reference_oracle.h"
#include "kernels/cpu.h"
#include "sepmech/diffusion/analytic.h"
#include "sepmech/diffusion/sampling.h"
#include "sepmech/diffusion/sde.h"
#include "sepmech/diffusion/spec.h"
#include "sepmech/diffusion/training.h"

using namespace sepmech::diffusion;
using torch::Tensor;

namespace {

torch::Generator gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

Tensor crandn(std::vector<int64_t> shape, uint64_t seed) {
  NoiseSource n(gen(seed));
  return n.randn_like(torch::empty(shape, torch::kComplexFloat));
}

// Expects `fn` to throw c10::Error whose message contains `needle`.
template <class F>
void expect_error(F&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

const GaussianOracle kOracle{{0.1, -0.05}, 0.2};

}  // namespace

// ---------------------------------------------------------------------------------------------
// SDEs
// ---------------------------------------------------------------------------------------------
TEST(DiffusionSDE, OuveMatchesSpecNumbers) {
  OUVESDE sde;
  Tensor t = torch::tensor({0.03f, 0.5f, 1.0f});
  Tensor s = sde.std(t);
  EXPECT_NEAR(s[0].item<double>(), 0.018830, 2e-6);
  EXPECT_NEAR(s[1].item<double>(), 0.121657, 2e-6);
  EXPECT_NEAR(s[2].item<double>(), 0.388983, 2e-6);
  Tensor g = sde.diffusion(torch::tensor({0.0f, 1.0f}));
  EXPECT_NEAR(g[0].item<double>(), 0.107298, 2e-6);
  EXPECT_NEAR(g[1].item<double>(), 1.072983, 2e-6);
  EXPECT_EQ(sde.std(torch::tensor({0.0f}))[0].item<float>(), 0.0f);
  OUVESDE hi(OUVESDEOptions::preset_48k());
  EXPECT_NEAR(hi.std(torch::tensor({1.0f}))[0].item<double>(), 0.731482, 2e-6);
  EXPECT_NEAR(hi.diffusion(torch::tensor({1.0f}))[0].item<double>(), 2.145966, 4e-6);
  EXPECT_EQ(sde.options.N(), 30);
}

TEST(DiffusionSDE, OuveStdSolvesItsVarianceOde) {
  // dP/dt = −2θP + g² with P = σ_t²: central differences in double against the closed form.
  OUVESDE sde;
  const double theta = 1.5, h = 1e-3;
  for (double t : {0.2, 0.5, 0.8}) {
    Tensor tt = torch::tensor({t - h, t, t + h}, torch::kFloat64).to(torch::kFloat32);
    Tensor p = sde.std(tt).to(torch::kFloat64).pow(2);
    const double dP = (p[2].item<double>() - p[0].item<double>()) / (2 * h);
    const double g = sde.diffusion(torch::tensor({float(t)}))[0].item<double>();
    EXPECT_NEAR(dP, -2 * theta * p[1].item<double>() + g * g, 2e-3 * g * g) << "t = " << t;
  }
}

TEST(DiffusionSDE, SbveScheduleIdentities) {
  SBVESDE sde;
  SBSchedule s = sde.sigmas_alphas(torch::tensor({0.0f, 1.0f}));
  EXPECT_NEAR(s.sigma_T.item<double>(), 1.098015, 2e-6);
  Tensor sd = sde.std(torch::tensor({0.0f, 1.0f}));
  EXPECT_EQ(sd[0].item<float>(), 0.0f);
  EXPECT_NEAR(sd[1].item<double>(), 1e-4, 1e-7);
  EXPECT_NEAR(s.sigma_bart[1].item<double>(), 1e-4, 1e-7);
  Tensor y = crandn({1, 1, 2, 3}, 1);
  NoiseSource n(gen(0));
  EXPECT_TRUE(torch::equal(sde.prior_sampling(y, n), y));
  EXPECT_EQ(n.normal_draws(), 0);
}

TEST(DiffusionSDE, OuvpReproducesVarianceAsStdBug) {
  OUVPSDE sde(OUVPSDEOptions().beta_min(0.1).beta_max(2.0));
  const double t = 0.6, B = 0.1 * t + 0.5 * 1.9 * t * t;
  EXPECT_NEAR(sde.std(torch::tensor({float(t)}))[0].item<double>(), 1 - std::exp(-B), 1e-6);
}

TEST(DiffusionSDE, ReverseDiscretizeIsForwardMinusScoreTerm) {
  OUVESDE sde;
  Tensor x = crandn({2, 1, 4, 5}, 2), y = crandn({2, 1, 4, 5}, 3);
  Tensor t = torch::tensor({0.3f, 0.9f}), dt = torch::tensor(0.05f);
  ScoreFn score = kOracle.score_fn(sde);
  for (bool pf : {false, true}) {
    auto [rf, rG] = sde.reverse(score, pf).discretize(x, y, t, dt);
    auto [f, G] = sde.discretize(x, y, t, dt);
    Tensor want = f - G.pow(2).reshape({-1, 1, 1, 1}) * score(x, y, t) * (pf ? 0.5 : 1.0);
    EXPECT_TRUE(torch::allclose(rf, want, 1e-6, 1e-7));
    EXPECT_TRUE(pf ? torch::all(rG == 0).item<bool>() : torch::equal(rG, G));
  }
}

TEST(DiffusionSDE, OuvpDiscretisationAlwaysUsesOneOverN) {
  // storm's OUVP discretize takes no step size: Δ = 1/N, and so do predictors on it.
  OUVPSDE sde(OUVPSDEOptions().beta_min(0.1).beta_max(2.0).N(20));
  Tensor x = crandn({1, 1, 3, 3}, 5), y = crandn({1, 1, 3, 3}, 6), t = torch::tensor({0.4f});
  auto [f, G] = sde.discretize(x, y, t, torch::tensor(0.3f));
  EXPECT_NEAR(G[0].item<double>(), sde.diffusion(t)[0].item<double>() * std::sqrt(1.0 / 20), 1e-6);
  ScoreFn score = kOracle.score_fn(sde);
  NoiseSource a(gen(1)), b(gen(1));
  auto r1 = predictor_step(PredictorType::reverse_diffusion, sde, score, x, y, t, torch::tensor(0.3f), a);
  auto r2 = predictor_step(PredictorType::reverse_diffusion, sde, score, x, y, t, torch::tensor(0.05f), b);
  EXPECT_TRUE(torch::equal(r1.first, r2.first));
  OUVESDE ouve;
  NoiseSource c(gen(1)), d(gen(1));
  const PredictorType rd = PredictorType::reverse_diffusion;
  auto r3 = predictor_step(rd, ouve, kOracle.score_fn(ouve), x, y, t, torch::tensor(0.3f), c);
  auto r4 = predictor_step(rd, ouve, kOracle.score_fn(ouve), x, y, t, torch::tensor(0.05f), d);
  EXPECT_FALSE(torch::equal(r3.first, r4.first));
}

TEST(DiffusionSDE, InvalidParametersAreRejected) {
  expect_error([] { OUVESDE s(OUVESDEOptions().sigma_min(0.5).sigma_max(0.5)); }, "sigma_max");
  expect_error([] { OUVESDE s(OUVESDEOptions().theta(-1)); }, "theta");
  expect_error([] { OUVESDE s(OUVESDEOptions().N(0)); }, "N must be >= 1");
  expect_error([] { SBVESDE s(SBVESDEOptions().k(1.0)); }, "k must be > 1");
  expect_error([] { SBVESDE s(SBVESDEOptions().c(0)); }, "c must be > 0");
  expect_error([] { OUVPSDE s{OUVPSDEOptions()}; }, "beta_min");
  expect_error([] { make_sde(SdeKind::ouve, {{"sigma", 1.0}}); }, "unknown keyword");
}

// ---------------------------------------------------------------------------------------------
// Option names: every choice is an enum with to_string / *_from_string
// ---------------------------------------------------------------------------------------------
namespace {
// Every value of E (`all`) has a distinct name that parses back to it; a value outside the
// enum prints as invalid; an unknown name throws c10::Error naming it and every valid name.
template <typename E>
void expect_names(std::initializer_list<E> all, E (*from_string)(const std::string&)) {
  std::set<std::string> seen;
  for (E v : all) {
    const std::string name = to_string(v);
    EXPECT_TRUE(seen.insert(name).second) << "duplicate name '" << name << "'";
    EXPECT_TRUE(from_string(name) == v) << name;
  }
  EXPECT_EQ(to_string(static_cast<E>(99)).rfind("<invalid ", 0), 0u) << to_string(static_cast<E>(99));
  try {
    from_string("no_such_name");
    ADD_FAILURE() << "expected c10::Error for 'no_such_name' (first name '" << *seen.begin() << "')";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("'no_such_name'"), std::string::npos) << msg;
    for (E v : all) EXPECT_NE(msg.find("'" + to_string(v) + "'"), std::string::npos) << msg;
  }
}
}  // namespace

TEST(DiffusionNames, EveryEnumRoundTripsAndUnknownNamesListTheValidOnes) {
  expect_names({SdeKind::ouve, SdeKind::ouvp, SdeKind::sbve}, sde_kind_from_string);
  expect_names({PredictorType::euler_maruyama, PredictorType::reverse_diffusion, PredictorType::none},
               predictor_type_from_string);
  expect_names({CorrectorType::langevin, CorrectorType::annealed_langevin, CorrectorType::none},
               corrector_type_from_string);
  expect_names({SBSamplerType::ode, SBSamplerType::sde}, sb_sampler_type_from_string);
  expect_names({Parameterisation::score, Parameterisation::denoiser, Parameterisation::data_prediction,
                Parameterisation::velocity},
               parameterisation_from_string);
  expect_names({BackboneKind::ncsnpp, BackboneKind::ncsnpp_v2}, backbone_kind_from_string);
  expect_names({LossType::score_matching, LossType::denoiser, LossType::data_prediction, LossType::v_prediction},
               loss_type_from_string);
  expect_names({LossWeighting::sigma_squared, LossWeighting::mae, LossWeighting::one, LossWeighting::edm},
               loss_weighting_from_string);
  expect_names({NetworkScaling::none, NetworkScaling::inv_sigma, NetworkScaling::inv_t}, network_scaling_from_string);
  expect_names({InputScaling::one, InputScaling::edm}, input_scaling_from_string);
  expect_names({OutputScaling::one, OutputScaling::sigma, OutputScaling::inv_sigma, OutputScaling::edm},
               output_scaling_from_string);
  expect_names({SkipScaling::zero, SkipScaling::edm}, skip_scaling_from_string);
  expect_names({SpecWindow::hann, SpecWindow::sqrt_hann}, spec_window_from_string);
  expect_names({SpecTransform::exponent, SpecTransform::log, SpecTransform::none}, spec_transform_from_string);
  expect_names({PadMode::zero_pad, PadMode::reflection, PadMode::replication}, pad_mode_from_string);
}

TEST(DiffusionNames, ReferenceSpellingsAndOlderAliases) {
  // to_string gives the reference's spelling where it has one
  EXPECT_EQ(to_string(CorrectorType::annealed_langevin), "ald");
  EXPECT_EQ(to_string(LossWeighting::sigma_squared), "sigma^2");
  EXPECT_EQ(to_string(LossWeighting::one), "1");
  EXPECT_EQ(to_string(NetworkScaling::inv_sigma), "1/sigma");
  EXPECT_EQ(to_string(NetworkScaling::inv_t), "1/t");
  EXPECT_EQ(to_string(InputScaling::one), "1");
  EXPECT_EQ(to_string(OutputScaling::inv_sigma), "1/sigma");
  EXPECT_EQ(to_string(SkipScaling::zero), "0");
  EXPECT_EQ(to_string(SpecWindow::sqrt_hann), "sqrthann");
  EXPECT_EQ(OUVPSDE(OUVPSDEOptions().beta_min(0.1).beta_max(2)).name(), "ouvp");
  // spellings accepted before the options became enums still parse
  EXPECT_TRUE(sde_kind_from_string("ouvesde") == SdeKind::ouve);
  EXPECT_TRUE(sde_kind_from_string("ouvpsde") == SdeKind::ouvp);
  EXPECT_TRUE(sde_kind_from_string("sbvesde") == SdeKind::sbve);
  EXPECT_TRUE(predictor_type_from_string("em") == PredictorType::euler_maruyama);
  EXPECT_TRUE(predictor_type_from_string("rd") == PredictorType::reverse_diffusion);
  EXPECT_TRUE(corrector_type_from_string("annealed_langevin") == CorrectorType::annealed_langevin);
  EXPECT_TRUE(parameterisation_from_string("score_matching") == Parameterisation::score);
  EXPECT_TRUE(parameterisation_from_string("v") == Parameterisation::velocity);
  EXPECT_TRUE(parameterisation_from_string("v_prediction") == Parameterisation::velocity);
  EXPECT_TRUE(loss_weighting_from_string("mse") == LossWeighting::sigma_squared);  // the legacy name
  EXPECT_TRUE(network_scaling_from_string("") == NetworkScaling::none);
  // names are case-sensitive, like the reference's
  EXPECT_THROW(spec_window_from_string("Hann"), c10::Error);
  // the error names the function and the option
  try {
    pad_mode_from_string("mirror");
    ADD_FAILURE() << "expected c10::Error";
  } catch (const c10::Error& e) {
    EXPECT_STREQ(e.what_without_backtrace(),
                 "sepmech::diffusion::pad_mode_from_string: mode must be one of 'zero_pad', 'reflection', "
                 "'replication', got 'mirror'");
  }
}

// ---------------------------------------------------------------------------------------------
// Noise source
// ---------------------------------------------------------------------------------------------
TEST(DiffusionNoise, SameSeedBitIdenticalOtherSeedDifferent) {
  Tensor a = crandn({3, 1, 16, 16}, 42), b = crandn({3, 1, 16, 16}, 42), c = crandn({3, 1, 16, 16}, 43);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
}

TEST(DiffusionNoise, ComplexNormalMoments) {
  // Re, Im ~ N(0, 1/2): check mean, variance, kurtosis, tail mass and Re/Im correlation.
  const int64_t n = 1 << 20;
  Tensor z = torch::view_as_real(crandn({n}, 7)).to(torch::kFloat64);
  Tensor re = z.select(1, 0), im = z.select(1, 1);
  for (const Tensor& v : {re, im}) {
    const double m = v.mean().item<double>(), var = v.var().item<double>();
    EXPECT_NEAR(m, 0.0, 5 * std::sqrt(0.5 / n));
    EXPECT_NEAR(var, 0.5, 5 * 0.5 * std::sqrt(2.0 / n));
    const double kurt = (v / std::sqrt(0.5)).pow(4).mean().item<double>();
    EXPECT_NEAR(kurt, 3.0, 5 * std::sqrt(96.0 / n));
    const double tail = (v.abs() > 2 * std::sqrt(0.5)).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(tail, 0.0455003, 5 * std::sqrt(0.0455 / n));
    const double far = (v.abs() > 3.6 * std::sqrt(0.5)).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(far, 3.18e-4, 6 * std::sqrt(3.18e-4 / n));  // exercises the ziggurat tail
  }
  EXPECT_NEAR((re * im).mean().item<double>(), 0.0, 5 * 0.5 / std::sqrt(double(n)));
}

TEST(DiffusionNoise, SimdAndPortablePathsGiveIdenticalBits) {
  // 100 003 values: many blocks, a partial last block and ~1500 slow-path candidates.
  const int64_t n = 100003;
  std::vector<float> a(n), b(n);
  for (uint64_t seed : {1ULL, 0xdeadbeefULL}) {
    kernels::fill_standard_normal_seeded(a.data(), n, seed, 0.7f);
    {
      sepmech::kernels::ForcePortable portable;
      ASSERT_FALSE(sepmech::kernels::use_avx2());
      kernels::fill_standard_normal_seeded(b.data(), n, seed, 0.7f);
    }
    EXPECT_EQ(std::memcmp(a.data(), b.data(), n * sizeof(float)), 0) << "seed " << seed;
  }
}

TEST(DiffusionNoise, ReplayChecksShapesAndCounts) {
  NoiseSource r = NoiseSource::replay(torch::zeros({1, 2, 3}, torch::kComplexFloat));
  expect_error([&] { r.randn_like(torch::zeros({3, 2}, torch::kComplexFloat)); }, "has shape");
  r.randn_like(torch::zeros({2, 3}, torch::kComplexFloat));
  expect_error([&] { r.randn_like(torch::zeros({2, 3}, torch::kComplexFloat)); }, "only 1 were recorded");
}

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------
TEST(DiffusionTraining, DsmLossMinimumMatchesFormula) {
  // x0 ~ CN(μ0, s0²), exact score, t fixed through a replayed uniform draw: the mean loss per
  // element converges to ½ α² s0² / (α² s0² + σ²) (spec §6.2).
  OUVESDE sde;
  const int64_t B = 2, F = 256, T = 256;
  for (double t : {0.1, 0.5, 0.9}) {
    Tensor x0 = crandn({B, 1, F, T}, 11) * std::sqrt(kOracle.s0sq) + c10::complex<float>(0.1f, -0.05f);
    Tensor y = crandn({B, 1, F, T}, 12);
    Tensor z = crandn({B, 1, F, T}, 13);
    Tensor u = torch::full({1, B}, float((t - 0.03) / 0.97));
    NoiseSource replay = NoiseSource::replay(z.unsqueeze(0), u);
    TrainStep st = dsm_step(sde, kOracle.score_fn(sde), x0, y, replay);
    const double per_elem = st.loss.item<double>() / double(F * T);
    const double want = dsm_loss_minimum(sde.options, t, kOracle.s0sq);
    // per element ½|e|² has variance ≈ (½ E|e|²)² for circular Gaussian e: 5σ of the mean
    EXPECT_NEAR(per_elem, want, 5 * want / std::sqrt(double(B * F * T))) << "t = " << t;
  }
}

TEST(DiffusionTraining, FusedDsmLossAndGradientMatchOpByOp) {
  Tensor s = crandn({3, 1, 8, 7}, 21).requires_grad_(true);
  Tensor z = crandn({3, 1, 8, 7}, 22);
  Tensor sigma = torch::tensor({0.1f, 0.3f, 0.7f});
  Tensor L = dsm_loss(s, z, sigma);
  Tensor s2 = s.detach().clone().requires_grad_(true);
  Tensor L2 = torch::mean(0.5 * torch::sum(torch::square(torch::abs(s2 * sigma.reshape({-1, 1, 1, 1}) + z)).reshape({3, -1}), -1));
  EXPECT_NEAR(L.item<double>(), L2.item<double>(), 1e-5 * L2.item<double>());
  (L * 1.7).backward();
  (L2 * 1.7).backward();
  EXPECT_TRUE(torch::allclose(s.grad(), s2.grad(), 1e-5, 1e-7));
}

TEST(DiffusionTraining, GradientsReachTheBackboneForEveryLoss) {
  auto sde = std::make_shared<OUVESDE>();
  auto sb = std::make_shared<SBVESDE>();
  Tensor x0 = crandn({2, 1, 8, 6}, 31), y = crandn({2, 1, 8, 6}, 32);
  struct Cfg {
    std::shared_ptr<const SDE> sde;
    ScoreModelOptions o;
  };
  std::vector<Cfg> cfgs = {
      {sde, ScoreModelOptions()},
      {sde, ScoreModelOptions()
                .backbone(BackboneKind::ncsnpp_v2)
                .loss_type(LossType::denoiser)
                .loss_weighting(LossWeighting::sigma_squared)},
      {sde, ScoreModelOptions().backbone(BackboneKind::ncsnpp_v2).loss_type(LossType::v_prediction)},
      {sde, ScoreModelOptions()
                .backbone(BackboneKind::ncsnpp_v2)
                .c_in(InputScaling::edm)
                .c_out(OutputScaling::edm)
                .c_skip(SkipScaling::edm)},
      {sb, ScoreModelOptions()
               .backbone(BackboneKind::ncsnpp_v2)
               .loss_type(LossType::data_prediction)
               .num_frames(6)
               .spec(SpecOptions().n_fft(14).hop_length(4))},
  };
  for (auto& cfg : cfgs) {
    Tensor w = torch::tensor({c10::complex<float>(0.3f, 0.1f), c10::complex<float>(-0.2f, 0.f),
                              c10::complex<float>(0.05f, 0.02f)})
                   .requires_grad_(true);
    Backbone net = [w](const Tensor& x, const Tensor& yy, const Tensor& t) {
      return w[0] * x + w[1] * yy + w[2] * t.reshape({-1, 1, 1, 1});
    };
    ScoreModel model(cfg.sde, net, cfg.o);
    NoiseSource n(gen(5));
    TrainStep st = model.step(x0, y, n);
    ASSERT_TRUE(std::isfinite(st.loss.item<double>())) << cfg.o.ToString();
    st.loss.backward();
    ASSERT_TRUE(w.grad().defined()) << cfg.o.ToString();
    EXPECT_GT(w.grad().abs().sum().item<double>(), 0.0) << cfg.o.ToString();
    EXPECT_TRUE(torch::all(st.t >= 0.03f).item<bool>() && torch::all(st.t <= 1.0f).item<bool>());
  }
}

// The reference squeezes x̂ and x0 with a bare squeeze(): for B = 1 the batch axis goes too and
// its time-domain L1 term ends up divided by the length once more. With the example duplicated
// (B = 2) the time-frequency term is unchanged and the L1 term is the plain one.
TEST(DiffusionTraining, DataPredictionL1TermOfASingleExampleIsDividedByTheLengthAgain) {
  auto sb = std::make_shared<SBVESDE>();
  const int64_t frames = 6, hop = 4, len = (frames - 1) * hop;
  Tensor x0 = crandn({1, 1, 8, frames}, 41), xh = crandn({1, 1, 8, frames}, 42);
  Tensor t1 = torch::tensor({0.4f}), t2 = torch::tensor({0.4f, 0.4f});
  auto loss_of = [&](double l1_weight, int64_t B) {
    ScoreModel m(sb, [](const Tensor& x, const Tensor&, const Tensor&) { return x; },
                 ScoreModelOptions()
                     .backbone(BackboneKind::ncsnpp_v2)
                     .loss_type(LossType::data_prediction)
                     .l1_weight(l1_weight)
                     .num_frames(frames)
                     .spec(SpecOptions().n_fft(14).hop_length(hop)));
    Tensor a = B == 1 ? xh : torch::cat({xh, xh}), b = B == 1 ? x0 : torch::cat({x0, x0});
    return m.loss(a, a, a, B == 1 ? t1 : t2, a, b).item<double>();
  };
  const double tf1 = loss_of(0, 1), tf2 = loss_of(0, 2);
  EXPECT_NEAR(tf1, tf2, 1e-6 * tf2);
  const double l1_single = loss_of(1, 1) - tf1, l1_batch = loss_of(1, 2) - tf2;
  ASSERT_GT(l1_batch, 0);
  EXPECT_NEAR(l1_single * double(len), l1_batch, 1e-4 * l1_batch);
}

// The parity adapters' oracle must round like the reference's op-by-op float32 formula (RK45's
// evaluation count depends on it); the fused oracle may differ only in the last bits.
TEST(DiffusionAnalytic, ReferenceOracleIsTheOpByOpFormula) {
  OUVESDE sde(OUVESDEOptions::preset_48k());
  Tensor x = crandn({2, 1, 8, 6}, 43), y = crandn({2, 1, 8, 6}, 44), t = torch::tensor({0.031f, 0.77f});
  const GaussianOracle o{{0.1, -0.05}, 0.5};
  Tensor a = torch::exp(-2.0 * t).reshape({-1, 1, 1, 1});
  Tensor m = a * torch::full({}, c10::complex<float>(0.1f, -0.05f), torch::kComplexFloat) + (1 - a) * y;
  Tensor v = a.pow(2) * 0.5 + sde.std(t).reshape({-1, 1, 1, 1}).pow(2);
  Tensor want = -(x - m) / v;
  EXPECT_TRUE(torch::equal(score_fn_reference(o, sde)(x, y, t), want));
  EXPECT_TRUE(torch::allclose(o.score_fn(sde)(x, y, t), want, 1e-5, 1e-6));
}

// A toy backbone module with the reference's parameter name: w0·x + w1·y + w2·t.
struct ToyDnnImpl : torch::nn::Module {
  ToyDnnImpl() {
    w = register_parameter("w", torch::tensor({c10::complex<float>(0.3f, 0.1f), c10::complex<float>(-0.2f, 0.f),
                                               c10::complex<float>(0.05f, 0.02f)}));
  }
  Tensor forward(const Tensor& x, const Tensor& y, const Tensor& t) {
    return w[0] * x + w[1] * y + w[2] * t.reshape({-1, 1, 1, 1});
  }
  Tensor w;
};
TORCH_MODULE(ToyDnn);

TEST(DiffusionTraining, ModuleInterfaceExposesTheBackboneAndMatchesTheCallable) {
  auto sde = std::make_shared<OUVESDE>();
  const auto o = ScoreModelOptions()
                     .backbone(BackboneKind::ncsnpp_v2)
                     .c_in(InputScaling::edm)
                     .c_out(OutputScaling::edm)
                     .c_skip(SkipScaling::edm);
  ScoreModelModule module(sde, ToyDnn(), o);
  auto named = module->named_parameters();
  ASSERT_EQ(named.size(), 1u);
  ASSERT_TRUE(named.contains("dnn.w"));
  Tensor x0 = crandn({2, 1, 8, 6}, 51), y = crandn({2, 1, 8, 6}, 52);
  NoiseSource n1(gen(9)), n2(gen(9));
  TrainStep st = module->step(x0, y, n1);
  st.loss.backward();
  // The same step through the callable ScoreModel with the same weights.
  Tensor w = named["dnn.w"].detach().clone().requires_grad_(true);
  ScoreModel plain(sde, [w](const Tensor& x, const Tensor& yy, const Tensor& t) {
    return w[0] * x + w[1] * yy + w[2] * t.reshape({-1, 1, 1, 1});
  }, o);
  TrainStep st2 = plain.step(x0, y, n2);
  st2.loss.backward();
  EXPECT_EQ(st.loss.item<float>(), st2.loss.item<float>());
  EXPECT_TRUE(torch::allclose(named["dnn.w"].grad(), w.grad()));
  // Optimiser over parameters(), eval(), and the samplers through score_fn().
  torch::optim::SGD opt(module->parameters(), 0.01);
  opt.step();
  EXPECT_FALSE(torch::equal(named["dnn.w"].detach(), w.detach()));
  module->eval();
  torch::NoGradGuard ng;
  NoiseSource n3(gen(10));
  SampleResult r = pc_sample(*sde, module->score_fn(), y, n3, PCSamplerOptions().N(3));
  EXPECT_EQ(r.nfe, 6);
  EXPECT_EQ(r.x.sizes(), y.sizes());
  expect_error([&] { ScoreModelModule(sde, torch::nn::AnyModule()); }, "dnn must be a module");
}

TEST(DiffusionTraining, BadInputIsRejected) {
  OUVESDE sde;
  Tensor x0 = crandn({2, 1, 4, 4}, 1), y = crandn({2, 1, 4, 5}, 2);
  NoiseSource n(gen(0));
  expect_error([&] { dsm_step(sde, kOracle.score_fn(sde), x0, y, n); }, "y must have the shape of x0");
  expect_error([&] { dsm_step(sde, kOracle.score_fn(sde), x0, torch::view_as_real(x0), n); }, "dtype");
  expect_error([&] { dsm_step(sde, kOracle.score_fn(sde), x0, x0, n, 0.0); }, "t_eps");
  ScoreFn bad = [](const Tensor& x, const Tensor&, const Tensor&) { return x.narrow(3, 0, 2); };
  expect_error([&] { dsm_step(sde, bad, x0, x0, n); }, "score function must return");
  // a weighting the loss type does not define
  expect_error(
      [&] {
        ScoreModel m(std::make_shared<OUVESDE>(), [](const Tensor& x, const Tensor&, const Tensor&) { return x; },
                     ScoreModelOptions().loss_weighting(LossWeighting::edm));
        NoiseSource k(gen(1));
        m.step(x0, x0, k);
      },
      "not defined for score_matching");
}

// ---------------------------------------------------------------------------------------------
// Parameterisations
// ---------------------------------------------------------------------------------------------
TEST(DiffusionParam, EveryParameterisationRoundTripsThroughTheScore) {
  OUVESDE ouve;
  SBVESDE sbve;
  // complex128: the data-prediction/denoiser maps divide by σ² (≈6e-4 at t = 0.05), which
  // would amplify float32 rounding beyond any meaningful tolerance.
  Tensor x = crandn({3, 1, 5, 4}, 41).to(torch::kComplexDouble), y = crandn({3, 1, 5, 4}, 42).to(torch::kComplexDouble),
         s = crandn({3, 1, 5, 4}, 43).to(torch::kComplexDouble);
  Tensor t = torch::tensor({0.05f, 0.5f, 0.95f});
  for (const SDE* sde : {static_cast<const SDE*>(&ouve), static_cast<const SDE*>(&sbve)}) {
    for (auto p : {Parameterisation::score, Parameterisation::denoiser, Parameterisation::data_prediction,
                   Parameterisation::velocity}) {
      Tensor out = score_to_output(p, *sde, s, x, y, t);
      Tensor back = output_to_score(p, *sde, out, x, y, t);
      EXPECT_TRUE(torch::allclose(back, s, 1e-9, 1e-9)) << sde->name() << " " << to_string(p);
    }
  }
}

TEST(DiffusionParam, VelocityOfTheConditionalScoreIsTheTarget) {
  // x_t = μ_t + σz; the conditional score −z/σ converted to v equals a z − b (x0 − y) exactly,
  // and converted to a data prediction it recovers x0.
  OUVESDE sde;
  Tensor x0 = crandn({2, 1, 6, 6}, 51), y = crandn({2, 1, 6, 6}, 52), z = crandn({2, 1, 6, 6}, 53);
  Tensor t = torch::tensor({0.2f, 0.8f});
  auto [mean, sd] = sde.marginal_prob(x0, y, t);
  Tensor sigma = sd.reshape({-1, 1, 1, 1});
  Tensor x_t = mean + sigma * z;
  Tensor s = -z / sigma;
  EXPECT_TRUE(torch::allclose(score_to_output(Parameterisation::velocity, sde, s, x_t, y, t),
                              velocity_target(sde, x0, y, z, t), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(score_to_output(Parameterisation::data_prediction, sde, s, x_t, y, t), x0, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(score_to_output(Parameterisation::denoiser, sde, s, x_t, y, t), mean, 1e-4, 1e-5));
  // a² + b² = 1: v has unit variance when z and x0 − y are independent with unit variance.
  Tensor alpha = sde.alpha(t);
  Tensor a = alpha / torch::sqrt(alpha.pow(2) + sd.pow(2)), b = sd / torch::sqrt(alpha.pow(2) + sd.pow(2));
  EXPECT_TRUE(torch::allclose(a.pow(2) + b.pow(2), torch::ones_like(a)));
}

// ---------------------------------------------------------------------------------------------
// Samplers
// ---------------------------------------------------------------------------------------------
TEST(DiffusionSampler, EveryCombinationRunsWithCorrectNfe) {
  OUVESDE sde(OUVESDEOptions().N(4));
  Tensor y = crandn({2, 1, 8, 6}, 61);
  for (PredictorType p : {PredictorType::reverse_diffusion, PredictorType::euler_maruyama, PredictorType::none})
    for (CorrectorType c : {CorrectorType::annealed_langevin, CorrectorType::langevin, CorrectorType::none})
      for (int64_t k : {0, 1, 2})
        for (bool denoise : {true, false}) {
          PCSamplerOptions o;
          o.predictor(p).corrector(c).corrector_steps(k).denoise(denoise);
          NoiseSource n(gen(1));
          SampleResult r = pc_sample(sde, kOracle.score_fn(sde), y, n, o);
          const int64_t nc = c == CorrectorType::none ? 0 : k;
          EXPECT_EQ(r.nfe, 4 * (nc + 1)) << o.ToString();
          EXPECT_EQ(r.x.sizes(), y.sizes());
          EXPECT_TRUE(torch::isfinite(torch::view_as_real(r.x)).all().item<bool>()) << o.ToString();
          const int64_t draws = 1 + 4 * (nc + (p == PredictorType::none ? 0 : 1));
          EXPECT_EQ(n.normal_draws(), draws) << o.ToString();
        }
  NoiseSource n(gen(2));
  SampleResult r = ode_sample(sde, kOracle.score_fn(sde), y, n, ODESamplerOptions().denoise(true));
  EXPECT_TRUE(torch::isfinite(torch::view_as_real(r.x)).all().item<bool>());
}

// get_pc_sampler(N=...) copies the SDE with that N: the sampler's N also sets Euler–Maruyama's
// dt = −1/N, so overriding N equals building the SDE with it.
TEST(DiffusionSampler, SamplerStepCountOverridesTheSdeN) {
  OUVESDE sde30(OUVESDEOptions().N(30)), sde5(OUVESDEOptions().N(5));
  Tensor y = crandn({2, 1, 4, 3}, 62);
  for (PredictorType p : {PredictorType::euler_maruyama, PredictorType::reverse_diffusion}) {
    NoiseSource a(gen(3)), b(gen(3));
    SampleResult r1 = pc_sample(sde30, kOracle.score_fn(sde30), y, a, PCSamplerOptions().predictor(p).N(5));
    SampleResult r2 = pc_sample(sde5, kOracle.score_fn(sde5), y, b, PCSamplerOptions().predictor(p));
    EXPECT_TRUE(torch::equal(r1.x, r2.x)) << to_string(p);
  }
}

TEST(DiffusionSampler, SameSeedSameSampleAndProgressPerStep) {
  OUVESDE sde;
  Tensor y = crandn({1, 1, 16, 16}, 71);
  std::vector<int64_t> steps;
  auto run = [&](uint64_t seed) {
    NoiseSource n(gen(seed));
    return pc_sample(sde, kOracle.score_fn(sde), y, n, {}, [&](int64_t i, int64_t total) {
             steps.push_back(i);
             EXPECT_EQ(total, 30);
           }).x;
  };
  Tensor a = run(9), b = run(9), c = run(10);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  ASSERT_EQ(steps.size(), 90u);
  EXPECT_EQ(steps[29], 29);
}

TEST(DiffusionSampler, LegacyStepRuleDiffersFromGridRule) {
  OUVESDE sde(OUVESDEOptions().N(5));
  Tensor y = crandn({1, 1, 8, 8}, 81);
  NoiseSource a(gen(3)), b(gen(3));
  Tensor grid = pc_sample(sde, kOracle.score_fn(sde), y, a, PCSamplerOptions()).x;
  Tensor legacy = pc_sample(sde, kOracle.score_fn(sde), y, b, PCSamplerOptions().legacy_stepsize(true)).x;
  EXPECT_GT((grid - legacy).abs().max().item<double>(), 1e-3);
  // The grid rule's steps sum to T: linspace(1, eps, N) differences plus the final eps.
  Tensor ts = torch::linspace(1.0, 0.03, 5, torch::kFloat32);
  EXPECT_NEAR((ts[0] - ts[4]).item<double>() + ts[4].item<double>(), 1.0, 1e-6);
}

TEST(DiffusionSampler, BadInputIsRejected) {
  OUVESDE sde;
  Tensor y = crandn({1, 1, 4, 4}, 1);
  NoiseSource n(gen(0));
  ScoreFn nan = [](const Tensor& x, const Tensor&, const Tensor&) { return x * std::nanf(""); };
  ScoreFn wrong = [](const Tensor& x, const Tensor&, const Tensor&) { return x.narrow(2, 0, 2).contiguous(); };
  ScoreFn real = [](const Tensor& x, const Tensor&, const Tensor&) { return torch::view_as_real(x).select(-1, 0); };
  expect_error([&] { pc_sample(sde, nan, y, n); }, "NaN");
  expect_error([&] { pc_sample(sde, wrong, y, n); }, "shape of x");
  expect_error([&] { pc_sample(sde, real, y, n); }, "complex64");
  expect_error([&] { pc_sample(sde, kOracle.score_fn(sde), y, n, PCSamplerOptions().eps(0)); }, "eps");
  expect_error([&] { pc_sample(sde, kOracle.score_fn(sde), y, n, PCSamplerOptions().snr(-1)); }, "snr");
  expect_error([&] { pc_sample(sde, kOracle.score_fn(sde), torch::view_as_real(y), n); }, "complex64");
  Tensor x = crandn({1, 1, 4, 5}, 2);
  expect_error(
      [&] {
        predictor_step(PredictorType::reverse_diffusion, sde, kOracle.score_fn(sde), x, y, torch::tensor({0.5f}),
                       torch::tensor(0.1f), n);
      },
      "y must have the shape of x");
  expect_error(
      [&] {
        predictor_step(PredictorType::reverse_diffusion, sde, kOracle.score_fn(sde), y, y, torch::tensor({1.5f}),
                       torch::tensor(0.1f), n);
      },
      "t must lie in (0, 1]");
  expect_error(
      [&] {
        corrector_step(CorrectorType::annealed_langevin, sde, kOracle.score_fn(sde), y, y, torch::tensor({0.0f}), 0.5,
                       1, n);
      },
      "t must lie in (0, 1]");
  ScoreFn zero = [](const Tensor& x, const Tensor&, const Tensor&) { return torch::zeros_like(x); };
  expect_error([&] { corrector_step(CorrectorType::langevin, sde, zero, y, y, torch::tensor({0.5f}), 0.5, 1, n); },
               "identically zero");
  // NaN inputs are named as such, not blamed on the score function.
  Tensor y_nan = y.clone();
  y_nan.view({-1})[3] = c10::complex<float>(std::nanf(""), 0.f);
  expect_error([&] { pc_sample(sde, kOracle.score_fn(sde), y_nan, n); }, "y contains NaN");
  expect_error([&] { sb_sample(SBVESDE(), [](const Tensor& x, const Tensor&, const Tensor&) { return x; }, y_nan, n); },
               "y contains NaN");
  expect_error(
      [&] {
        predictor_step(PredictorType::none, sde, kOracle.score_fn(sde), y_nan, y, torch::tensor({0.5f}),
                       torch::tensor(0.1f), n);
      },
      "x contains NaN");
}

TEST(DiffusionAnalytic, AffineRecursionReproducesSpecTable) {
  struct Row {
    int64_t N;
    CorrectorType corr;
    double A, B, V;
  };
  const CorrectorType ald = CorrectorType::annealed_langevin, none = CorrectorType::none;
  for (Row r : {Row{5, ald, 0.8811, 0.1189, 0.1685}, Row{30, ald, 0.9831, 0.0169, 0.1974},
                Row{50, ald, 0.9905, 0.0095, 0.2004}, Row{30, none, 0.9302, 0.0698, 0.1896},
                Row{1000, none, 0.9371, 0.0629, 0.1981}}) {
    AffineLaw L = pc_affine_law(OUVESDEOptions(), r.N, r.corr, 1, 0.5, 0.03, 0.2);
    EXPECT_NEAR(L.A, r.A, 6e-5) << r.N << to_string(r.corr);
    EXPECT_NEAR(L.B, r.B, 6e-5) << r.N << to_string(r.corr);
    EXPECT_NEAR(L.V_mean, r.V, 6e-5) << r.N << to_string(r.corr);  // the table lists the variance of x̄ (denoise)
  }
  expect_error([] { pc_affine_law(OUVESDEOptions(), 5, CorrectorType::langevin, 1, 0.5, 0.03, 0.2); },
               "corrector must be ald or none");
}

TEST(DiffusionAnalytic, PCSamplerOutputLawMatchesAffineRecursion) {
  // 65 536 i.i.d. elements with one y: sample mean and variance of the output (x, not denoised,
  // and x̄) against CN(Aμ0 + By, V) within Monte-Carlo error.
  OUVESDE sde;
  const int64_t n = 256 * 256;
  const c10::complex<double> y0(0.3, -0.2);
  Tensor y = torch::full({1, 1, 256, 256}, c10::complex<float>(y0), torch::kComplexFloat);
  for (bool denoise : {false, true}) {
    for (CorrectorType corr : {CorrectorType::annealed_langevin, CorrectorType::none}) {
      NoiseSource noise(gen(denoise ? 100 : 200));
      SampleResult r =
          pc_sample(sde, kOracle.score_fn(sde), y, noise, PCSamplerOptions().corrector(corr).denoise(denoise));
      AffineLaw L = pc_affine_law(sde.options, 30, corr, 1, 0.5, 0.03, kOracle.s0sq);
      const double V = denoise ? L.V_mean : L.V;
      const c10::complex<double> m = L.A * kOracle.mu0 + L.B * y0;
      Tensor x = r.x.to(torch::kComplexDouble);
      Tensor mean = x.mean();
      const double var = (x - mean).abs().pow(2).mean().item<double>();
      const auto mc = mean.item<c10::complex<double>>();
      const double se = std::sqrt(V / 2 / n);  // per real component
      EXPECT_NEAR(mc.real(), m.real(), 5 * se) << to_string(corr) << " denoise " << denoise;
      EXPECT_NEAR(mc.imag(), m.imag(), 5 * se) << to_string(corr) << " denoise " << denoise;
      EXPECT_NEAR(var, V, 5 * V / std::sqrt(double(n))) << to_string(corr) << " denoise " << denoise;
    }
  }
}

TEST(DiffusionAnalytic, OdeSamplerMatchesClosedForm) {
  OUVESDE sde;
  Tensor y = crandn({2, 1, 8, 6}, 91);
  NoiseSource a(gen(4)), b(gen(4));
  SampleResult r = ode_sample(sde, kOracle.score_fn(sde), y, a);
  Tensor xT = sde.prior_sampling(y, b);  // the same first draw the sampler made
  Tensor want = pflow_ode_closed_form(sde, kOracle, xT, y, 0.03);
  EXPECT_LT((r.x.to(torch::kComplexDouble) - want).abs().max().item<double>(), 5e-5);
  EXPECT_GT(r.nfe, 8);
}

TEST(DiffusionAnalytic, SbOdeWithPointMassOracleEndsAtThePoint) {
  SBVESDE sde;
  Tensor y = crandn({1, 1, 8, 8}, 95);
  const c10::complex<float> c(0.4f, -0.3f);
  DataPredictionFn model = [c](const Tensor& x, const Tensor&, const Tensor&) { return torch::full_like(x, c); };
  NoiseSource n(gen(0));
  SampleResult r = sb_sample(sde, model, y, n);
  EXPECT_EQ(r.nfe, 50);
  EXPECT_LT((r.x - c).abs().max().item<double>(), 2e-3);
  NoiseSource m(gen(0));
  SampleResult s = sb_sample(sde, model, y, m, SBSamplerOptions().sampler_type(SBSamplerType::sde));
  EXPECT_LT((s.x - c).abs().max().item<double>(), 2e-3);  // x̂ ≡ c: the last step has w_p ≈ 0
}

// ---------------------------------------------------------------------------------------------
// Spectrogram transform
// ---------------------------------------------------------------------------------------------
TEST(DiffusionSpec, TransformsRoundTrip) {
  Tensor X = crandn({1, 257, 9}, 101) * 3.0;
  for (SpecTransform type : {SpecTransform::exponent, SpecTransform::log, SpecTransform::none})
    for (double e : {0.5, 1.0}) {
      SpecOptions o = SpecOptions().transform_type(type).spec_abs_exponent(e);
      EXPECT_TRUE(torch::allclose(spec_back(spec_fwd(X, o), o), X, 1e-4, 1e-5)) << to_string(type) << " " << e;
    }
  SpecOptions o;
  Tensor wav = torch::randn({2, 4000}, gen(3));
  Tensor S = stft(wav, o);
  EXPECT_EQ(S.size(-2), 256);
  EXPECT_TRUE(torch::allclose(istft(S, o, 4000), wav, 1e-4, 1e-5));
}

TEST(DiffusionSpec, PadSpec) {
  Tensor Y = crandn({1, 1, 4, 37}, 111);
  Tensor z = pad_spec(Y, PadMode::zero_pad);
  EXPECT_EQ(z.size(3), 64);
  EXPECT_TRUE(torch::equal(z.narrow(3, 0, 37), Y));
  EXPECT_EQ(z.narrow(3, 37, 27).abs().max().item<float>(), 0.0f);
  Tensor r = pad_spec(Y, PadMode::reflection);
  EXPECT_TRUE(torch::equal(r.select(3, 37), Y.select(3, 35)));
  EXPECT_TRUE(torch::equal(r.select(3, 63), Y.select(3, 9)));
  Tensor short_y = crandn({1, 1, 4, 20}, 112);
  expect_error([&] { pad_spec(short_y, PadMode::reflection); }, "smaller than the number of frames");
  EXPECT_EQ(pad_spec(crandn({1, 1, 2, 128}, 113)).size(3), 128);
  Tensor rep = pad_spec(Y, PadMode::replication);
  EXPECT_TRUE(torch::equal(rep.select(3, 63), Y.select(3, 36)));
}

// ---------------------------------------------------------------------------------------------
// Figures of docs/diffusion.md. The curves are checked here; with SEPMECH_FIGURE_DIR=DIR
// set, they are also written as SVG files to DIR (docs/figures).
// ---------------------------------------------------------------------------------------------
namespace {

struct Series {
  std::string label, color;
  std::vector<double> x, y;
  bool dashed = false;
};

// A small SVG line chart: axes with ticks, one polyline per series, a legend.
void write_svg(const std::string& path, const std::string& title, const std::string& xlabel,
               const std::vector<Series>& series, double x0, double x1, double y0, double y1) {
  const double W = 720, H = 400, L = 60, R = 220, T = 40, Bm = 50;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - Bm - (y - y0) / (y1 - y0) * (H - T - Bm); };
  std::ofstream f(path);
  f << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  f << "<text x='" << W / 2 - 80 << "' y='22' font-size='14'>" << title << "</text>\n";
  f << "<line x1='" << L << "' y1='" << py(y0) << "' x2='" << W - R << "' y2='" << py(y0) << "' stroke='black'/>\n";
  f << "<line x1='" << L << "' y1='" << py(y0) << "' x2='" << L << "' y2='" << py(y1) << "' stroke='black'/>\n";
  for (int i = 0; i <= 5; ++i) {
    const double xv = x0 + (x1 - x0) * i / 5, yv = y0 + (y1 - y0) * i / 5;
    f << "<text x='" << px(xv) - 10 << "' y='" << H - Bm + 18 << "'>" << std::round(xv * 100) / 100 << "</text>\n";
    f << "<text x='" << 8 << "' y='" << py(yv) + 4 << "'>" << std::round(yv * 1000) / 1000 << "</text>\n";
    f << "<line x1='" << L << "' y1='" << py(yv) << "' x2='" << W - R << "' y2='" << py(yv)
      << "' stroke='#ddd'/>\n";
  }
  f << "<text x='" << (L + W - R) / 2 << "' y='" << H - 12 << "'>" << xlabel << "</text>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    f << "<polyline fill='none' stroke='" << s.color << "' stroke-width='2'"
      << (s.dashed ? " stroke-dasharray='6,4'" : "") << " points='";
    for (size_t i = 0; i < s.x.size(); ++i) f << px(s.x[i]) << "," << py(s.y[i]) << " ";
    f << "'/>\n";
    const double ly = T + 18 * k + 10;
    f << "<line x1='" << W - R + 10 << "' y1='" << ly << "' x2='" << W - R + 35 << "' y2='" << ly << "' stroke='"
      << s.color << "' stroke-width='2'" << (s.dashed ? " stroke-dasharray='6,4'" : "") << "/>\n";
    f << "<text x='" << W - R + 40 << "' y='" << ly + 4 << "'>" << s.label << "</text>\n";
  }
  f << "</svg>\n";
}

}  // namespace

TEST(DiffusionDocs, PathCurvesAndSamplerTrajectory) {
  const char* dir = std::getenv("SEPMECH_FIGURE_DIR");
  // 1. Forward-process paths: OUVE std and mean weights, 48 kHz std, SB-VE std.
  Tensor t = torch::linspace(0.0, 1.0, 101, torch::kFloat32);
  OUVESDE ouve, hi(OUVESDEOptions::preset_48k());
  SBVESDE sb;
  auto vec = [](const Tensor& v) {
    Tensor d = v.to(torch::kFloat64).contiguous();
    return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  };
  std::vector<double> tt = vec(t);
  Tensor s_ouve = ouve.std(t), a_ouve = ouve.alpha(t);
  EXPECT_TRUE(torch::all(s_ouve.slice(0, 1) > s_ouve.slice(0, 0, -1)).item<bool>());  // σ_t increases
  EXPECT_TRUE(torch::all(a_ouve.slice(0, 1) < a_ouve.slice(0, 0, -1)).item<bool>());  // α_t decreases
  Tensor s_sb = sb.std(t);
  EXPECT_GT(s_sb[50].item<double>(), s_sb[0].item<double>());
  EXPECT_GT(s_sb[50].item<double>(), s_sb[100].item<double>());  // the bridge pins both ends
  if (dir) {
    write_svg(std::string(dir) + "/diffusion_paths.svg", "Forward process: std and mean weight", "t",
              {{"OUVE std σ_t", "#1f77b4", tt, vec(s_ouve)},
               {"OUVE α_t (x0 weight)", "#ff7f0e", tt, vec(a_ouve)},
               {"OUVE 1−α_t (y weight)", "#ff7f0e", tt, vec(1 - a_ouve), true},
               {"OUVE 48 kHz std", "#2ca02c", tt, vec(hi.std(t))},
               {"SB-VE std", "#d62728", tt, vec(s_sb)},
               {"SB-VE x0 weight", "#9467bd", tt, vec(sb.mean_weights(t).first), true}},
              0, 1, 0, 1.1);
  }
  // 2. One PC-sampler trajectory (RD + ALD, N = 30) for three elements, with the oracle.
  OUVESDE sde;
  const c10::complex<float> yv(0.6f, 0.0f);
  Tensor y = torch::full({1, 1, 1, 3}, yv, torch::kComplexFloat);
  NoiseSource noise(gen(2024));
  PCTrace trace;
  pc_sample(sde, kOracle.score_fn(sde), y, noise, {}, nullptr, &trace);
  ASSERT_EQ(trace.x_mean.size(), 30u);
  // x_mean[i] is the state after step i, i.e. at t_{i+1} = t_i − Δ_i; the last step goes from
  // eps to 0 (docs/spec/diffusion.md, PC sampler grid).
  std::vector<double> grid = vec(trace.timesteps);
  std::vector<double> ts(grid.begin() + 1, grid.end());
  ts.push_back(0.0);
  std::vector<Series> series;
  const char* colors[3] = {"#1f77b4", "#2ca02c", "#d62728"};
  for (int e = 0; e < 3; ++e) {
    Series s{"element " + std::to_string(e) + " (Re x̄)", colors[e], ts, {}};
    for (const Tensor& xm : trace.x_mean) s.y.push_back(torch::real(xm).flatten()[e].item<double>());
    series.push_back(s);
  }
  Series mean{"E[x_t | y] (oracle)", "#7f7f7f", ts, {}, true};
  for (double tv : ts) {
    const double a = std::exp(-1.5 * tv);
    mean.y.push_back(a * kOracle.mu0.real() + (1 - a) * yv.real());
  }
  series.push_back(mean);
  // The final noise-free means lie within a few posterior std of μ0 (std √0.2 ≈ 0.45).
  for (int e = 0; e < 3; ++e) EXPECT_LT(std::abs(series[e].y.back() - kOracle.mu0.real()), 4 * std::sqrt(0.2));
  if (dir)
    write_svg(std::string(dir) + "/diffusion_trajectory.svg", "PC sampler (RD + ALD, N = 30), Re part",
              "t after the step (sampling runs from 1 to 0)", series, 1.0, 0.0, -1.2, 1.8);
}
