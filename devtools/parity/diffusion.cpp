// Parity adapters for the diffusion golden files (modules sde, train_step, sampler, spec).
// Random draws are inputs of the files and are replayed in the order the metadata lists; the
// oracle score / data prediction is spec §6.1 with the file's `config.oracle`.
#include <torch/torch.h>

#include "diffusion/reference_oracle.h"
#include "parity/parity.h"
#include "sepmech/diffusion/analytic.h"
#include "sepmech/diffusion/sampling.h"
#include "sepmech/diffusion/sde.h"
#include "sepmech/diffusion/spec.h"
#include "sepmech/diffusion/training.h"

namespace {

using namespace sepmech::diffusion;
using sepmech::parity::Case;
using sepmech::parity::Outputs;
using sepmech::parity::RegisterAdapter;
using sepmech::parity::Unsupported;

std::string kind_of(const Case& c) {
  auto it = c.meta.find("case_kind");
  if (it == c.meta.end()) throw Unsupported("diffusion case without metadata case_kind");
  return it->second;
}

std::shared_ptr<SDE> sde_of(const Case& c) {
  if (!c.config.contains("sde")) throw Unsupported("config has no 'sde'");
  std::map<std::string, double> kw;
  if (c.config.contains("sde_kwargs"))
    for (auto& [k, v] : c.config["sde_kwargs"].items()) kw[k] = v.get<double>();
  return make_sde(sde_kind_from_string(c.config["sde"].get<std::string>()), kw);
}

GaussianOracle oracle_of(const Case& c) {
  GaussianOracle o;
  if (!c.config.contains("oracle")) throw Unsupported("config has no 'oracle'");
  const auto& j = c.config["oracle"];
  o.mu0 = {j["mu0"][0].get<double>(), j["mu0"][1].get<double>()};
  o.s0sq = j["s0sq"].get<double>();
  return o;
}

NoiseSource replay_of(const Case& c) {
  return NoiseSource::replay(c.has("in.noise") ? c.at("in.noise") : torch::Tensor(),
                             c.has("in.u") ? c.at("in.u") : torch::Tensor());
}

void check_all_draws_used(const Case& c, const NoiseSource& n) {
  if (c.has("in.noise") && n.normal_draws() != c.at("in.noise").size(0))
    throw std::runtime_error("consumed " + std::to_string(n.normal_draws()) + " of " +
                             std::to_string(c.at("in.noise").size(0)) + " recorded normal draws");
}

// storm's OUVP reverse returns its diffusion broadcast to [B, 1, 1, 1]; keep the file's shape.
torch::Tensor like_file(const Case& c, const std::string& key, const torch::Tensor& v) {
  if (c.has(key) && c.at(key).numel() == v.numel() && c.at(key).sizes() != v.sizes())
    return v.reshape(c.at(key).sizes());
  return v;
}

Outputs run_sde(const Case& c) {
  auto sde = sde_of(c);
  const std::string kind = kind_of(c);
  Outputs out;
  if (kind == "sde_marginal") {
    auto [mean, std] = sde->marginal_prob(c.at("in.x0"), c.at("in.y"), c.at("in.t"));
    out["out.mean"] = mean;
    out["out.std"] = std;
    const torch::Tensor& tv = c.at("in.t_vec");
    out["out.std_vec"] = sde->std(tv);
    if (c.has("out.alpha_vec")) out["out.alpha_vec"] = sde->alpha(tv);
    if (auto* sb = dynamic_cast<SBVESDE*>(sde.get())) {
      SBSchedule s = sb->sigmas_alphas(tv);
      out["out.sigma_t_vec"] = s.sigma_t;
      out["out.sigma_T_vec"] = s.sigma_T;
      out["out.sigma_bart_vec"] = s.sigma_bart;
      out["out.alpha_t_vec"] = s.alpha_t;
      out["out.alpha_T_vec"] = s.alpha_T;
      out["out.alpha_bart_vec"] = s.alpha_bart;
    }
  } else if (kind == "sde_sde") {
    auto [drift, diffusion] = sde->sde(c.at("in.x"), c.at("in.y"), c.at("in.t"));
    out["out.drift"] = drift;
    out["out.diffusion"] = diffusion;
  } else if (kind == "sde_discretize") {
    auto [f, G] = sde->discretize(c.at("in.x"), c.at("in.y"), c.at("in.t"),
                                  c.has("in.stepsize") ? c.at("in.stepsize") : torch::Tensor());
    out["out.f"] = f;
    out["out.G"] = G;
  } else if (kind == "sde_prior") {
    NoiseSource noise = replay_of(c);
    out["out.x_T"] = sde->prior_sampling(c.at("in.y"), noise);
    check_all_draws_used(c, noise);
  } else if (kind == "sde_reverse") {
    GaussianOracle oracle = oracle_of(c);
    const bool pf = c.call.value("probability_flow", false);
    ReverseSDE rsde = sde->reverse(score_fn_reference(oracle, *sde), pf);
    const auto &x = c.at("in.x"), &y = c.at("in.y"), &t = c.at("in.t");
    auto [drift, diffusion] = rsde.sde(x, y, t);
    auto [rev_f, rev_G] = rsde.discretize(x, y, t, c.has("in.stepsize") ? c.at("in.stepsize") : torch::Tensor());
    out["out.rsde_drift"] = drift;
    out["out.rsde_diffusion"] = like_file(c, "out.rsde_diffusion", diffusion);
    out["out.rev_f"] = rev_f;
    out["out.rev_G"] = like_file(c, "out.rev_G", rev_G);
  } else {
    throw Unsupported("sde adapter: unknown case_kind '" + kind + "'");
  }
  return out;
}

// The goldens' toy backbone: w0·x + w1·y + w2·t (complex weights).
Backbone toy_backbone(const torch::Tensor& w) {
  return [w](const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t) {
    return w[0] * x + w[1] * y + w[2] * t.reshape({-1, 1, 1, 1});
  };
}

// A string option of the reference parsed with `parse` (JSON null, e.g. `network_scaling: None`,
// means its default `fallback`).
template <typename E>
E parse_or(const nlohmann::json& v, E (*parse)(const std::string&), E fallback) {
  return v.is_null() ? fallback : parse(v.get<std::string>());
}

// ScoreModel options from the reference's keyword arguments (`model_kwargs`, or the loss keys of a
// dsm_given_score call) and the data module's STFT settings (`data_kwargs`).
void apply_model_kwargs(ScoreModelOptions& o, const nlohmann::json& kw, bool ignore_unknown) {
  for (auto& [k, v] : kw.items()) {
    if (k == "t_eps") o.t_eps(v.get<double>());
    else if (k == "loss_type") o.loss_type(parse_or(v, loss_type_from_string, LossType::score_matching));
    else if (k == "loss_weighting")
      o.loss_weighting(parse_or(v, loss_weighting_from_string, LossWeighting::sigma_squared));
    else if (k == "network_scaling") o.network_scaling(parse_or(v, network_scaling_from_string, NetworkScaling::none));
    else if (k == "c_in") o.c_in(parse_or(v, input_scaling_from_string, InputScaling::one));
    else if (k == "c_out") o.c_out(parse_or(v, output_scaling_from_string, OutputScaling::one));
    else if (k == "c_skip") o.c_skip(parse_or(v, skip_scaling_from_string, SkipScaling::zero));
    else if (k == "sigma_data") o.sigma_data(v.get<double>());
    else if (k == "l1_weight") o.l1_weight(v.get<double>());
    else if (k == "pesq_weight") {
      if (!v.is_null() && v.get<double>() != 0) throw Unsupported("pesq_weight != 0 (PESQ loss not implemented)");
    } else if (k == "lr" || k == "ema_decay" || k == "num_eval_files" || k == "eval_start" || k == "sr") {
      // optimiser / evaluation settings: no effect on one training step
    } else if (!ignore_unknown) {
      throw Unsupported("model_kwargs key '" + k + "'");
    }
  }
}

// SpecOptions from a data module's kwargs; the data module's defaults where the file does not
// say (e.g. no exponent for "log").
SpecOptions spec_options_from(const nlohmann::json& d) {
  SpecOptions so;
  so.n_fft(d.value("n_fft", so.n_fft()))
      .hop_length(d.value("hop_length", so.hop_length()))
      .window(spec_window_from_string(d.value("window", to_string(so.window()))))
      .spec_factor(d.value("spec_factor", so.spec_factor()))
      .spec_abs_exponent(d.value("spec_abs_exponent", so.spec_abs_exponent()))
      .transform_type(spec_transform_from_string(d.value("transform_type", to_string(so.transform_type()))));
  return so;
}

void apply_data_kwargs(ScoreModelOptions& o, const Case& c) {
  if (!c.config.contains("data_kwargs")) return;
  const auto& d = c.config["data_kwargs"];
  o.spec(spec_options_from(d));
  o.num_frames(d.value("num_frames", o.num_frames()));
}

// sgmse's ScoreModel.forward has two conventions: "ncsnpp_v2" (scalings, loss-type outputs) and
// every other backbone (ncsnpp, ncsnpp_48k, dcunet): score = −dnn(cat([x_t, y]), t).
BackboneKind backbone_convention(const std::string& name) {
  if (name == "ncsnpp_v2") return BackboneKind::ncsnpp_v2;
  if (name == "ncsnpp" || name == "ncsnpp_48k" || name == "dcunet") return BackboneKind::ncsnpp;
  throw Unsupported("backbone '" + name + "'");
}

Outputs run_train(const Case& c) {
  auto sde = sde_of(c);
  const std::string kind = kind_of(c);
  Outputs out;
  NoiseSource noise = replay_of(c);
  if (kind == "dsm_given_score") {
    const LossType lt = parse_or(c.call.value("loss_type", nlohmann::json()), loss_type_from_string,
                                 LossType::score_matching);
    const LossWeighting lw = parse_or(c.call.value("loss_weighting", nlohmann::json()), loss_weighting_from_string,
                                      LossWeighting::sigma_squared);
    const double t_eps = c.call.value("t_eps", 0.03);
    torch::Tensor score = c.at("in.score");
    if (lt == LossType::score_matching && lw == LossWeighting::sigma_squared) {
      ScoreFn given = [&](const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) { return score; };
      TrainStep st = dsm_step(*sde, given, c.at("in.x"), c.at("in.y"), noise, t_eps);
      out["out.loss"] = st.loss;
    } else {  // other loss types / weightings: ScoreModel's loss with forward() returning in.score
      ScoreModelOptions o;
      o.backbone(BackboneKind::ncsnpp);  // forward = −backbone
      apply_model_kwargs(o, c.call, /*ignore_unknown=*/true);
      apply_data_kwargs(o, c);
      ScoreModel m(sde, [&](const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) { return -score; }, o);
      out["out.loss"] = m.step(c.at("in.x"), c.at("in.y"), noise).loss;
    }
  } else if (kind == "train_step") {
    ScoreModelOptions o;
    o.backbone(backbone_convention(c.config.value("backbone", "ncsnpp")));
    if (c.config.contains("model_kwargs")) apply_model_kwargs(o, c.config["model_kwargs"], /*ignore_unknown=*/false);
    apply_data_kwargs(o, c);
    torch::Tensor w = c.at("param.dnn.w").clone().set_requires_grad(true);
    ScoreModel model(sde, toy_backbone(w), o);
    TrainStep st = model.step(c.at("in.x"), c.at("in.y"), noise);
    sepmech::parity::backward_with_cotangents(c, {{"loss", st.loss}});
    out["grad.param.dnn.w"] = w.grad();
    out["out.loss"] = st.loss.detach();
  } else {
    throw Unsupported("train_step adapter: unknown case_kind '" + kind + "'");
  }
  check_all_draws_used(c, noise);
  return out;
}

Outputs run_sampler(const Case& c) {
  auto sde = sde_of(c);
  const std::string kind = kind_of(c);
  Outputs out;
  NoiseSource noise = replay_of(c);
  if (kind == "predictor_step") {
    GaussianOracle oracle = oracle_of(c);
    auto [x, xm] = predictor_step(predictor_type_from_string(c.call.at("predictor").get<std::string>()), *sde,
                                  score_fn_reference(oracle, *sde), c.at("in.x"), c.at("in.y"), c.at("in.t"),
                                  c.has("in.stepsize") ? c.at("in.stepsize") : torch::Tensor(), noise);
    out["out.x"] = x;
    out["out.x_mean"] = xm;
  } else if (kind == "corrector_step") {
    GaussianOracle oracle = oracle_of(c);
    auto [x, xm] = corrector_step(corrector_type_from_string(c.call.at("corrector").get<std::string>()), *sde,
                                  score_fn_reference(oracle, *sde), c.at("in.x"), c.at("in.y"), c.at("in.t"),
                                  c.call.value("snr", 0.1), c.call.value("n_steps", int64_t(1)), noise);
    out["out.x"] = x;
    out["out.x_mean"] = xm;
  } else if (kind == "pc_sampler") {
    GaussianOracle oracle = oracle_of(c);
    PCSamplerOptions o;
    // get_pc_sampler's own defaults where the file does not say
    o.predictor(predictor_type_from_string(c.call.value("predictor", "reverse_diffusion")))
        .corrector(corrector_type_from_string(c.call.value("corrector", "ald")))
        .snr(c.call.value("snr", 0.1))
        .corrector_steps(c.call.value("corrector_steps", int64_t(1)))
        .denoise(c.call.value("denoise", true))
        .eps(c.call.value("eps", 0.03))
        .N(c.call.value("N", int64_t(0)));
    SampleResult r = pc_sample(*sde, score_fn_reference(oracle, *sde), c.at("in.y"), noise, o);
    out["out.x_result"] = r.x;
    out["out.nfe"] = torch::tensor(r.nfe, torch::kLong);
  } else if (kind == "ode_sampler") {
    GaussianOracle oracle = oracle_of(c);
    if (c.call.value("method_ivp", "RK45") != "RK45") throw Unsupported("ODE method other than RK45");
    ODESamplerOptions o;
    o.rtol(c.call.value("rtol", 1e-5)).atol(c.call.value("atol", 1e-5)).eps(c.call.value("eps", 0.03));
    o.denoise(c.call.value("denoise", false));
    SampleResult r = ode_sample(*sde, score_fn_reference(oracle, *sde), c.at("in.y"), noise, o);
    out["out.x"] = r.x;
    out["out.nfe"] = torch::tensor(r.nfe, torch::kLong);
  } else if (kind == "sb_sampler") {
    GaussianOracle oracle = oracle_of(c);
    auto* sb = dynamic_cast<SBVESDE*>(sde.get());
    if (!sb) throw Unsupported("sb_sampler case with a non-SB SDE");
    SBSamplerOptions o;
    o.sampler_type(sb_sampler_type_from_string(c.call.value("sampler_type", "ode")))
        .eps(c.call.value("eps", 1e-4))
        .N(c.call.value("N", int64_t(0)))
        .n_steps_returned(c.call.value("n_steps", int64_t(50)));
    SampleResult r = sb_sample(
        *sb,
        [&](const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t) {
          return oracle.data_prediction(*sb, x, y, t);
        },
        c.at("in.y"), noise, o);
    out["out.x"] = r.x;
    out["out.n_steps_returned"] = torch::tensor(r.nfe, torch::kLong);
  } else {
    throw Unsupported("sampler adapter: unknown case_kind '" + kind + "'");
  }
  check_all_draws_used(c, noise);
  return out;
}

Outputs run_spec(const Case& c) {
  const std::string kind = kind_of(c);
  Outputs out;
  if (kind == "spec_transform") {
    const auto& d = c.config.at("data_kwargs");
    const SpecOptions so = spec_options_from(d);
    const torch::Tensor& wav = c.at("in.wav");
    torch::Tensor X = stft(wav, so);
    torch::Tensor Y = spec_fwd(X, so);
    torch::Tensor Xb = spec_back(Y, so);
    out["out.stft"] = X;
    out["out.spec_fwd"] = Y;
    out["out.spec_back"] = Xb;
    out["out.wav_rec"] = istft(Xb, so, wav.size(-1));
  } else if (kind == "pad_spec") {
    // one output per mode the file lists (out.<mode>)
    const nlohmann::json modes = c.call.value("modes", nlohmann::json::array({"zero_pad", "reflection"}));
    for (const auto& m : modes) {
      const std::string name = m.get<std::string>();
      out["out." + name] = pad_spec(c.at("in.Y"), pad_mode_from_string(name));
    }
  } else {
    throw Unsupported("spec adapter: unknown case_kind '" + kind + "'");
  }
  return out;
}

RegisterAdapter reg_sde("sde", run_sde);
RegisterAdapter reg_train("train_step", run_train);
RegisterAdapter reg_sampler("sampler", run_sampler);
RegisterAdapter reg_spec("spec", run_spec);

}  // namespace
