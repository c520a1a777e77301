// Spectrogram transforms (spec §4), parameterisations and the training step (spec §3).
#include "sepmech/diffusion/training.h"

#include <cmath>
#include <sstream>

#include "diffusion/kernels.h"
#include "diffusion/names.h"
#include "sepmech/diffusion/spec.h"

namespace sepmech::diffusion {

using torch::Tensor;

namespace {
Tensor b4(const Tensor& v, int64_t dim = 4) {
  std::vector<int64_t> shape(dim, 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}

void check_pair(const char* fn, const Tensor& x, const char* xn, const Tensor& y, const char* yn) {
  TORCH_CHECK(x.defined() && y.defined(), "sepmech::diffusion::", fn, ": ", xn, " and ", yn, " must be defined");
  TORCH_CHECK(x.scalar_type() == torch::kComplexFloat, "sepmech::diffusion::", fn, ": ", xn,
              " must be complex64, got ", x.scalar_type());
  TORCH_CHECK(y.scalar_type() == x.scalar_type(), "sepmech::diffusion::", fn, ": ", yn, " must have the dtype of ", xn,
              " (", x.scalar_type(), "), got ", y.scalar_type());
  TORCH_CHECK(x.dim() == 4, "sepmech::diffusion::", fn, ": ", xn, " must be [B, C, F, T], got ", x.sizes());
  TORCH_CHECK(y.sizes() == x.sizes(), "sepmech::diffusion::", fn, ": ", yn, " must have the shape of ", xn, " ",
              x.sizes(), ", got ", y.sizes());
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Spectrogram representation
// ---------------------------------------------------------------------------------------------
namespace {
constexpr names::Entry<SpecWindow> kSpecWindows[] = {{SpecWindow::hann, "hann"}, {SpecWindow::sqrt_hann, "sqrthann"}};
constexpr names::Entry<SpecTransform> kSpecTransforms[] = {
    {SpecTransform::exponent, "exponent"}, {SpecTransform::log, "log"}, {SpecTransform::none, "none"}};
constexpr names::Entry<PadMode> kPadModes[] = {
    {PadMode::zero_pad, "zero_pad"}, {PadMode::reflection, "reflection"}, {PadMode::replication, "replication"}};
}  // namespace

std::string to_string(SpecWindow window) { return names::name_of(kSpecWindows, window, "SpecWindow"); }
SpecWindow spec_window_from_string(const std::string& name) {
  return names::parse(kSpecWindows, name, "spec_window_from_string", "window");
}

std::string to_string(SpecTransform transform) { return names::name_of(kSpecTransforms, transform, "SpecTransform"); }
SpecTransform spec_transform_from_string(const std::string& name) {
  return names::parse(kSpecTransforms, name, "spec_transform_from_string", "transform_type");
}

std::string to_string(PadMode mode) { return names::name_of(kPadModes, mode, "PadMode"); }
PadMode pad_mode_from_string(const std::string& name) {
  return names::parse(kPadModes, name, "pad_mode_from_string", "mode");
}

void SpecOptions::Validate() const {
  TORCH_CHECK(n_fft() >= 2, "sepmech::diffusion::SpecOptions: n_fft must be >= 2, got ", n_fft());
  TORCH_CHECK(hop_length() >= 1 && hop_length() <= n_fft(),
              "sepmech::diffusion::SpecOptions: hop_length must be in [1, n_fft], got ", hop_length());
  TORCH_CHECK(std::isfinite(spec_factor()) && spec_factor() > 0,
              "sepmech::diffusion::SpecOptions: spec_factor must be > 0, got ", spec_factor());
  TORCH_CHECK(std::isfinite(spec_abs_exponent()) && spec_abs_exponent() > 0,
              "sepmech::diffusion::SpecOptions: spec_abs_exponent must be > 0, got ", spec_abs_exponent());
}

std::string SpecOptions::ToString() const {
  std::ostringstream os;
  os << "SpecOptions(n_fft=" << n_fft() << ", hop_length=" << hop_length() << ", window=" << to_string(window())
     << ", spec_factor=" << spec_factor() << ", spec_abs_exponent=" << spec_abs_exponent()
     << ", transform_type=" << to_string(transform_type()) << ")";
  return os.str();
}

Tensor spec_window(const SpecOptions& o) {
  o.Validate();
  Tensor w = torch::hann_window(o.n_fft(), torch::TensorOptions().dtype(torch::kFloat32));
  return o.window() == SpecWindow::sqrt_hann ? torch::sqrt(w) : w;
}

Tensor stft(const Tensor& wav, const SpecOptions& o) {
  TORCH_CHECK(wav.defined() && wav.is_floating_point() && wav.dim() >= 1,
              "sepmech::diffusion::stft: wav must be a float tensor [..., L]");
  TORCH_CHECK(wav.size(-1) > o.n_fft() / 2, "sepmech::diffusion::stft: wav must have more than n_fft/2 = ",
              o.n_fft() / 2, " samples for reflect padding, got ", wav.size(-1));
  Tensor w = spec_window(o);
  auto lead = wav.sizes().vec();
  lead.pop_back();
  Tensor flat = wav.reshape({-1, wav.size(-1)});
  Tensor X = torch::stft(flat, o.n_fft(), o.hop_length(), o.n_fft(), w, /*center=*/true, "reflect",
                         /*normalized=*/false, /*onesided=*/true, /*return_complex=*/true);
  lead.push_back(X.size(-2));
  lead.push_back(X.size(-1));
  return X.reshape(lead);
}

Tensor istft(const Tensor& spec, const SpecOptions& o, int64_t length) {
  TORCH_CHECK(spec.defined() && spec.is_complex() && spec.dim() >= 2,
              "sepmech::diffusion::istft: spec must be complex [..., F, frames]");
  TORCH_CHECK(spec.size(-2) == o.n_fft() / 2 + 1, "sepmech::diffusion::istft: spec must have n_fft/2+1 = ",
              o.n_fft() / 2 + 1, " bins, got ", spec.size(-2));
  Tensor w = spec_window(o);
  auto lead = spec.sizes().vec();
  lead.resize(lead.size() - 2);
  Tensor flat = spec.reshape({-1, spec.size(-2), spec.size(-1)});
  Tensor x = torch::istft(flat, o.n_fft(), o.hop_length(), o.n_fft(), w, /*center=*/true, /*normalized=*/false,
                          /*onesided=*/true, length);
  lead.push_back(x.size(-1));
  return x.reshape(lead);
}

Tensor spec_fwd(const Tensor& spec, const SpecOptions& o) {
  o.Validate();
  if (o.transform_type() == SpecTransform::exponent) {
    Tensor s = spec;
    if (o.spec_abs_exponent() != 1) s = torch::polar(s.abs().pow(o.spec_abs_exponent()), s.angle());
    return s * o.spec_factor();
  }
  if (o.transform_type() == SpecTransform::log)
    return torch::polar(torch::log(1 + spec.abs()), spec.angle()) * o.spec_factor();
  return spec;
}

Tensor spec_back(const Tensor& spec, const SpecOptions& o) {
  o.Validate();
  if (o.transform_type() == SpecTransform::exponent) {
    Tensor s = spec / o.spec_factor();
    if (o.spec_abs_exponent() != 1) s = torch::polar(s.abs().pow(1 / o.spec_abs_exponent()), s.angle());
    return s;
  }
  if (o.transform_type() == SpecTransform::log) {
    Tensor s = spec / o.spec_factor();
    return torch::polar(torch::exp(s.abs()) - 1, s.angle());
  }
  return spec;
}

Tensor pad_spec(const Tensor& Y, PadMode mode) {
  TORCH_CHECK(Y.defined() && Y.dim() == 4, "sepmech::diffusion::pad_spec: Y must be [B, C, F, T], got ",
              Y.defined() ? c10::str(Y.sizes()) : std::string("undefined"));
  const int64_t T = Y.size(3);
  const int64_t pad = T % 64 != 0 ? 64 - T % 64 : 0;
  if (mode == PadMode::zero_pad) return torch::constant_pad_nd(Y, {0, pad}, 0);
  if (pad == 0 && (mode == PadMode::reflection || mode == PadMode::replication)) return Y;
  if (mode == PadMode::reflection) {
    TORCH_CHECK(pad < T, "sepmech::diffusion::pad_spec: reflection padding needs the pad (", pad,
                " frames) to be smaller than the number of frames T = ", T,
                "; use mode zero_pad for inputs this short");
    Tensor idx = torch::arange(T - 2, T - 2 - pad, -1, torch::kLong);
    return torch::cat({Y, Y.index_select(3, idx)}, 3);
  }
  if (mode == PadMode::replication) {
    Tensor idx = torch::full({pad}, T - 1, torch::kLong);
    return torch::cat({Y, Y.index_select(3, idx)}, 3);
  }
  TORCH_CHECK(false, "sepmech::diffusion::pad_spec: invalid PadMode ", static_cast<int>(mode));
}

// ---------------------------------------------------------------------------------------------
// Parameterisations
// ---------------------------------------------------------------------------------------------
namespace {
constexpr names::Entry<Parameterisation> kParameterisations[] = {{Parameterisation::score, "score"},
                                                                 {Parameterisation::denoiser, "denoiser"},
                                                                 {Parameterisation::data_prediction, "data_prediction"},
                                                                 {Parameterisation::velocity, "velocity"}};
}  // namespace

std::string to_string(Parameterisation p) { return names::name_of(kParameterisations, p, "Parameterisation"); }

Parameterisation parameterisation_from_string(const std::string& name) {
  return names::parse(kParameterisations, name, "parameterisation_from_string", "parameterisation",
                      {{Parameterisation::score, "score_matching"},
                       {Parameterisation::velocity, "v"},
                       {Parameterisation::velocity, "v_prediction"}});
}

namespace {
// Path coefficients at t, [B, 1, 1, 1]: x_t − (w_x + w_y) y = w_x (x0 − y) + σ z.
struct PathCoef {
  Tensor wx, wy, sigma, norm;  // norm = √(w_x² + σ²)
};
PathCoef path_coef(const SDE& sde, const Tensor& t) {
  auto [wx, wy] = sde.mean_weights(t);
  PathCoef c;
  c.wx = b4(wx);
  c.wy = b4(wy);
  c.sigma = b4(sde.std(t));
  c.norm = torch::sqrt(c.wx.pow(2) + c.sigma.pow(2));
  return c;
}
}  // namespace

Tensor output_to_score(Parameterisation p, const SDE& sde, const Tensor& out, const Tensor& x_t, const Tensor& y,
                       const Tensor& t) {
  TORCH_CHECK(out.sizes() == x_t.sizes(), "sepmech::diffusion::output_to_score: out must have the shape of x_t ",
              x_t.sizes(), ", got ", out.sizes());
  if (p == Parameterisation::score) return out;
  PathCoef c = path_coef(sde, t);
  Tensor sig2 = c.sigma.pow(2);
  switch (p) {
    case Parameterisation::denoiser:  // D estimates μ_t: s = (D − x_t)/σ²
      return (out - x_t) / sig2;
    case Parameterisation::data_prediction:  // μ̂ = w_x x̂ + w_y y
      return (c.wx * out + c.wy * y - x_t) / sig2;
    case Parameterisation::velocity: {
      // ũ = (x_t − (w_x + w_y) y)/n = a d + b z, v = a z − b d  ⇒  ẑ = a v + b ũ, s = −ẑ/σ
      Tensor a = c.wx / c.norm, b = c.sigma / c.norm;
      Tensor u = (x_t - (c.wx + c.wy) * y) / c.norm;
      return -(a * out + b * u) / c.sigma;
    }
    default:
      return out;
  }
}

Tensor score_to_output(Parameterisation p, const SDE& sde, const Tensor& score, const Tensor& x_t, const Tensor& y,
                       const Tensor& t) {
  if (p == Parameterisation::score) return score;
  PathCoef c = path_coef(sde, t);
  Tensor sig2 = c.sigma.pow(2);
  Tensor mean = x_t + sig2 * score;  // Tweedie: E[μ_t | x_t]
  switch (p) {
    case Parameterisation::denoiser:
      return mean;
    case Parameterisation::data_prediction:
      return (mean - c.wy * y) / c.wx;
    case Parameterisation::velocity: {
      Tensor a = c.wx / c.norm, b = c.sigma / c.norm;
      Tensor z = -c.sigma * score;
      Tensor u = (x_t - (c.wx + c.wy) * y) / c.norm;
      return (z - b * u) / a;
    }
    default:
      return score;
  }
}

Tensor velocity_target(const SDE& sde, const Tensor& x0, const Tensor& y, const Tensor& z, const Tensor& t) {
  PathCoef c = path_coef(sde, t);
  return (c.wx * z - c.sigma * (x0 - y)) / c.norm;
}

// ---------------------------------------------------------------------------------------------
// DSM loss (fused, autograd-aware)
// ---------------------------------------------------------------------------------------------
namespace {
struct DsmLossFn : public torch::autograd::Function<DsmLossFn> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, Tensor score, Tensor z, Tensor sigma) {
    Tensor s = score.contiguous(), zz = z.contiguous(), sg = sigma.contiguous();
    const int64_t B = s.size(0), n = 2 * (s.numel() / B);
    const double L = kernels::dsm_loss(kernels::cfptr(s), kernels::cfptr(zz), B, n, sg.data_ptr<float>());
    ctx->save_for_backward({s, zz, sg});
    return torch::tensor(static_cast<float>(L), torch::kFloat32);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    auto saved = ctx->get_saved_variables();
    const Tensor &s = saved[0], &z = saved[1], &sg = saved[2];
    const int64_t B = s.size(0), n = 2 * (s.numel() / B);
    Tensor gs = torch::empty_like(s);
    const float c = grad[0].item<float>() / static_cast<float>(B);
    kernels::dsm_loss_backward(kernels::cfptr(s), kernels::cfptr(z), kernels::fptr(gs), B, n, sg.data_ptr<float>(),
                               c);
    return {gs, Tensor(), Tensor()};
  }
};
}  // namespace

Tensor dsm_loss(const Tensor& score, const Tensor& z, const Tensor& std) {
  TORCH_CHECK(score.sizes() == z.sizes(), "sepmech::diffusion::dsm_loss: score must have the shape of z ", z.sizes(),
              ", got ", score.sizes());
  TORCH_CHECK(score.scalar_type() == torch::kComplexFloat && z.scalar_type() == torch::kComplexFloat,
              "sepmech::diffusion::dsm_loss: score and z must be complex64, got ", score.scalar_type(), " and ",
              z.scalar_type());
  TORCH_CHECK(std.dim() == 1 && std.size(0) == score.size(0) && std.scalar_type() == torch::kFloat32,
              "sepmech::diffusion::dsm_loss: std must be float32 [B = ", score.size(0), "], got ", std.sizes());
  return DsmLossFn::apply(score, z, std.detach());
}

namespace {
Tensor sample_times(const SDE& sde, NoiseSource& noise, int64_t B, double t_eps) {
  TORCH_CHECK(std::isfinite(t_eps) && t_eps > 0 && t_eps < sde.T(), "sepmech::diffusion: t_eps must be in (0, ",
              sde.T(), "), got ", t_eps);
  return noise.rand(B) * (sde.T() - t_eps) + t_eps;
}
}  // namespace

TrainStep dsm_step(const SDE& sde, const ScoreFn& score, const Tensor& x0_, const Tensor& y_, NoiseSource& noise,
                   double t_eps) {
  check_pair("dsm_step", x0_, "x0", y_, "y");
  Tensor x0 = x0_.contiguous(), y = y_.contiguous();
  const int64_t B = x0.size(0), n = 2 * (x0.numel() / B);
  TrainStep st;
  st.t = sample_times(sde, noise, B, t_eps);
  auto [wx, wy] = sde.mean_weights(st.t);
  wx = wx.contiguous();
  wy = wy.contiguous();
  st.std = sde.std(st.t).contiguous();
  st.z = noise.randn_like(x0);
  st.x_t = torch::empty_like(x0);
  // The DSM loss does not need the mean: not writing it saves a full pass of stores.
  kernels::perturb(kernels::cfptr(x0), kernels::cfptr(y), kernels::cfptr(st.z), nullptr, kernels::fptr(st.x_t), B, n,
                   wx.data_ptr<float>(), wy.data_ptr<float>(), st.std.data_ptr<float>());
  st.forward_out = score(st.x_t, y, st.t);
  TORCH_CHECK(st.forward_out.sizes() == x0.sizes() && st.forward_out.scalar_type() == torch::kComplexFloat,
              "sepmech::diffusion::dsm_step: the score function must return complex64 ", x0.sizes(), ", got ",
              st.forward_out.scalar_type(), " ", st.forward_out.sizes());
  st.loss = dsm_loss(st.forward_out, st.z, st.std);
  return st;
}

// ---------------------------------------------------------------------------------------------
// ScoreModel
// ---------------------------------------------------------------------------------------------
namespace {
constexpr names::Entry<BackboneKind> kBackbones[] = {{BackboneKind::ncsnpp, "ncsnpp"},
                                                     {BackboneKind::ncsnpp_v2, "ncsnpp_v2"}};
constexpr names::Entry<LossType> kLossTypes[] = {{LossType::score_matching, "score_matching"},
                                                 {LossType::denoiser, "denoiser"},
                                                 {LossType::data_prediction, "data_prediction"},
                                                 {LossType::v_prediction, "v_prediction"}};
constexpr names::Entry<LossWeighting> kLossWeightings[] = {{LossWeighting::sigma_squared, "sigma^2"},
                                                           {LossWeighting::mae, "mae"},
                                                           {LossWeighting::one, "1"},
                                                           {LossWeighting::edm, "edm"}};
constexpr names::Entry<NetworkScaling> kNetworkScalings[] = {{NetworkScaling::none, "none"},
                                                             {NetworkScaling::inv_sigma, "1/sigma"},
                                                             {NetworkScaling::inv_t, "1/t"}};
constexpr names::Entry<InputScaling> kInputScalings[] = {{InputScaling::one, "1"}, {InputScaling::edm, "edm"}};
constexpr names::Entry<OutputScaling> kOutputScalings[] = {{OutputScaling::one, "1"},
                                                           {OutputScaling::sigma, "sigma"},
                                                           {OutputScaling::inv_sigma, "1/sigma"},
                                                           {OutputScaling::edm, "edm"}};
constexpr names::Entry<SkipScaling> kSkipScalings[] = {{SkipScaling::zero, "0"}, {SkipScaling::edm, "edm"}};
}  // namespace

std::string to_string(BackboneKind kind) { return names::name_of(kBackbones, kind, "BackboneKind"); }
BackboneKind backbone_kind_from_string(const std::string& name) {
  return names::parse(kBackbones, name, "backbone_kind_from_string", "backbone");
}

std::string to_string(LossType type) { return names::name_of(kLossTypes, type, "LossType"); }
LossType loss_type_from_string(const std::string& name) {
  return names::parse(kLossTypes, name, "loss_type_from_string", "loss_type");
}

std::string to_string(LossWeighting weighting) { return names::name_of(kLossWeightings, weighting, "LossWeighting"); }
LossWeighting loss_weighting_from_string(const std::string& name) {
  return names::parse(kLossWeightings, name, "loss_weighting_from_string", "loss_weighting",
                      {{LossWeighting::sigma_squared, "mse"}});
}

std::string to_string(NetworkScaling scaling) { return names::name_of(kNetworkScalings, scaling, "NetworkScaling"); }
NetworkScaling network_scaling_from_string(const std::string& name) {
  return names::parse(kNetworkScalings, name, "network_scaling_from_string", "network_scaling",
                      {{NetworkScaling::none, ""}});
}

std::string to_string(InputScaling scaling) { return names::name_of(kInputScalings, scaling, "InputScaling"); }
InputScaling input_scaling_from_string(const std::string& name) {
  return names::parse(kInputScalings, name, "input_scaling_from_string", "c_in");
}

std::string to_string(OutputScaling scaling) { return names::name_of(kOutputScalings, scaling, "OutputScaling"); }
OutputScaling output_scaling_from_string(const std::string& name) {
  return names::parse(kOutputScalings, name, "output_scaling_from_string", "c_out");
}

std::string to_string(SkipScaling scaling) { return names::name_of(kSkipScalings, scaling, "SkipScaling"); }
SkipScaling skip_scaling_from_string(const std::string& name) {
  return names::parse(kSkipScalings, name, "skip_scaling_from_string", "c_skip");
}

void ScoreModelOptions::Validate() const {
  TORCH_CHECK(std::isfinite(t_eps()) && t_eps() > 0 && t_eps() < 1,
              "sepmech::diffusion::ScoreModelOptions: t_eps must be in (0, 1), got ", t_eps());
  TORCH_CHECK(sigma_data() > 0, "sepmech::diffusion::ScoreModelOptions: sigma_data must be > 0, got ", sigma_data());
  TORCH_CHECK(num_frames() >= 2, "sepmech::diffusion::ScoreModelOptions: num_frames must be >= 2, got ",
              num_frames());
}

std::string ScoreModelOptions::ToString() const {
  std::ostringstream os;
  os << "ScoreModel(backbone=" << to_string(backbone()) << ", t_eps=" << t_eps()
     << ", loss_type=" << to_string(loss_type()) << ", loss_weighting=" << to_string(loss_weighting())
     << ", network_scaling=" << to_string(network_scaling()) << ", c_in=" << to_string(c_in())
     << ", c_out=" << to_string(c_out()) << ", c_skip=" << to_string(c_skip()) << ", sigma_data=" << sigma_data()
     << ")";
  return os.str();
}

ScoreModel::ScoreModel(std::shared_ptr<const SDE> sde, Backbone backbone, ScoreModelOptions options)
    : sde_(std::move(sde)), backbone_(std::move(backbone)), options_(std::move(options)) {
  TORCH_CHECK(sde_, "sepmech::diffusion::ScoreModel: sde must not be null");
  TORCH_CHECK(backbone_, "sepmech::diffusion::ScoreModel: backbone must be callable");
  options_.Validate();
}

Tensor ScoreModel::c_in(const Tensor& t) const {
  if (options_.c_in() == InputScaling::one) return torch::ones_like(t);
  const double sd = options_.sigma_data();
  return 1 / torch::sqrt(sde_->std(t).pow(2) + sd * sd);
}

Tensor ScoreModel::c_out(const Tensor& t) const {
  const OutputScaling c = options_.c_out();
  if (c == OutputScaling::one) return torch::ones_like(t);
  Tensor s = sde_->std(t);
  if (c == OutputScaling::sigma) return s;
  if (c == OutputScaling::inv_sigma) return 1 / s;
  const double sd = options_.sigma_data();
  return s * sd / torch::sqrt(sd * sd + s.pow(2));
}

Tensor ScoreModel::c_skip(const Tensor& t) const {
  if (options_.c_skip() == SkipScaling::zero) return torch::zeros_like(t);
  const double sd = options_.sigma_data();
  return sd * sd / (sde_->std(t).pow(2) + sd * sd);
}

Tensor ScoreModel::forward(const Tensor& x, const Tensor& y, const Tensor& t) const {
  check_pair("ScoreModel::forward", x, "x_t", y, "y");
  sde_->check_time(t, "t");
  TORCH_CHECK(t.size(0) == x.size(0), "sepmech::diffusion::ScoreModel::forward: t must have B = ", x.size(0),
              " entries, got ", t.size(0));
  Tensor out;
  if (options_.backbone() == BackboneKind::ncsnpp) {
    out = -backbone_(x, y, t);
  } else {
    Tensor cin = b4(c_in(t));
    Tensor F = backbone_(cin * x, cin * y, t);
    TORCH_CHECK(F.defined() && F.sizes() == x.sizes(), "sepmech::diffusion::ScoreModel: backbone output must be ",
                x.sizes(), ", got ", F.defined() ? c10::str(F.sizes()) : std::string("undefined"));
    if (options_.network_scaling() == NetworkScaling::inv_sigma)
      F = F / b4(sde_->std(t));
    else if (options_.network_scaling() == NetworkScaling::inv_t)
      F = F / b4(t);
    const LossType lt = options_.loss_type();
    if (lt == LossType::score_matching || lt == LossType::data_prediction)
      out = b4(c_skip(t)) * x + b4(c_out(t)) * F;
    else if (lt == LossType::denoiser)
      out = (F - x) / b4(sde_->std(t)).pow(2);
    else  // v_prediction: the raw output is v̂
      out = F;
  }
  TORCH_CHECK(out.sizes() == x.sizes() && out.scalar_type() == torch::kComplexFloat,
              "sepmech::diffusion::ScoreModel: network output must be complex64 ", x.sizes(), ", got ",
              out.scalar_type(), " ", out.sizes());
  return out;
}

Tensor ScoreModel::score(const Tensor& x, const Tensor& y, const Tensor& t) const {
  Tensor out = forward(x, y, t);
  const LossType lt = options_.loss_type();
  if (lt == LossType::data_prediction) return output_to_score(Parameterisation::data_prediction, *sde_, out, x, y, t);
  if (lt == LossType::v_prediction) return output_to_score(Parameterisation::velocity, *sde_, out, x, y, t);
  return out;  // score_matching and denoiser forwards already return a score
}

ScoreFn ScoreModel::score_fn() const {
  return [this](const Tensor& x, const Tensor& y, const Tensor& t) { return score(x, y, t); };
}

Tensor ScoreModel::loss(const Tensor& out, const Tensor& x_t, const Tensor& z, const Tensor& t, const Tensor& mean,
                        const Tensor& x0, const Tensor& y) const {
  const int64_t B = out.size(0);
  auto reduce = [B](const Tensor& losses) { return torch::mean(0.5 * torch::sum(losses.reshape({B, -1}), -1)); };
  const LossType lt = options_.loss_type();
  const LossWeighting w = options_.loss_weighting();
  if (lt == LossType::score_matching) {
    Tensor sigma = sde_->std(t);
    if (w == LossWeighting::sigma_squared) return dsm_loss(out, z, sigma);
    TORCH_CHECK(w == LossWeighting::mae, "sepmech::diffusion::ScoreModel: loss_weighting '", to_string(w),
                "' is not defined for score_matching (use sigma^2 or mae)");
    return reduce(torch::abs(out * b4(sigma) + z));
  }
  if (lt == LossType::denoiser) {
    Tensor sigma = b4(sde_->std(t));
    Tensor denoised = out * sigma.pow(2) + x_t;
    Tensor losses = torch::square(torch::abs(denoised - mean));
    if (w == LossWeighting::one) return reduce(losses);
    if (w == LossWeighting::sigma_squared) return reduce(losses * sigma.pow(2));
    TORCH_CHECK(w == LossWeighting::edm, "sepmech::diffusion::ScoreModel: loss_weighting '", to_string(w),
                "' is not defined for denoiser (use 1, sigma^2 or edm)");
    // Reference broadcasting bug, reproduced: the [B,1,1,1] weight is indexed to 7 dims, so
    // every example's weight multiplies the whole batch: ½·mean_b(w_b)·Σ_all ℓ.
    const double sd = options_.sigma_data();
    Tensor wb = (sigma.pow(2) + sd * sd) / (sigma * sd).pow(2);
    return 0.5 * wb.mean() * losses.sum();
  }
  if (lt == LossType::v_prediction) {
    TORCH_CHECK(y.defined(), "sepmech::diffusion::ScoreModel::loss: v_prediction needs y");
    Tensor target = velocity_target(*sde_, x0, y, z, t);
    return reduce(torch::square(torch::abs(out - target)));
  }
  // data_prediction (SB): time-frequency MSE + l1_weight · time-domain L1 through spec_back + iSTFT
  const int64_t F = out.size(2), T = out.size(3);
  Tensor tf = reduce((1.0 / double(F * T)) * torch::square(torch::abs(out - x0)));
  const SpecOptions& so = options_.spec();
  const int64_t len = (options_.num_frames() - 1) * so.hop_length();
  Tensor xh_td = istft(spec_back(out.squeeze(1), so), so, len);
  Tensor x_td = istft(spec_back(x0.squeeze(1), so), so, len);
  Tensor l1 = reduce((1.0 / double(len)) * torch::abs(xh_td - x_td));
  // Reference quirk, reproduced: it squeezes x̂ and x0 with a bare squeeze(), so for B = 1 the
  // batch axis goes too, iSTFT returns [len] and the "mean over the batch" runs over the len
  // samples: the time-domain term is divided by len once more.
  if (B == 1) l1 = l1 / double(len);
  return tf + options_.l1_weight() * l1;
}

TrainStep ScoreModel::step(const Tensor& x0, const Tensor& y, NoiseSource& noise) const {
  check_pair("ScoreModel::step", x0, "x0", y, "y");
  TrainStep st;
  const int64_t B = x0.size(0);
  st.t = sample_times(*sde_, noise, B, options_.t_eps());
  auto mp = sde_->marginal_prob(x0, y, st.t);
  st.mean = mp.first;
  st.std = mp.second;
  st.z = noise.randn_like(x0);
  st.x_t = st.mean + b4(st.std) * st.z;
  st.forward_out = forward(st.x_t, y, st.t);
  st.loss = loss(st.forward_out, st.x_t, st.z, st.t, st.mean, x0, y);
  return st;
}

// ---------------------------------------------------------------------------------------------
// ScoreModelModule
// ---------------------------------------------------------------------------------------------
namespace {
Backbone call_module(const torch::nn::AnyModule& dnn) {
  TORCH_CHECK(!dnn.is_empty(), "sepmech::diffusion::ScoreModelModule: dnn must be a module");
  torch::nn::AnyModule m = dnn;  // shares the module
  return [m](const Tensor& x, const Tensor& y, const Tensor& t) mutable { return m.forward(x, y, t); };
}
}  // namespace

ScoreModelModuleImpl::ScoreModelModuleImpl(std::shared_ptr<const SDE> sde, torch::nn::AnyModule dnn,
                                           ScoreModelOptions options)
    : dnn_(std::move(dnn)), model_(std::move(sde), call_module(dnn_), std::move(options)) {
  register_module("dnn", dnn_.ptr());
}

void ScoreModelModuleImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::diffusion::ScoreModelModule(" << model_.sde().name() << ", " << model_.options().ToString()
         << ")";
}

}  // namespace sepmech::diffusion
