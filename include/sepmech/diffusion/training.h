#pragma once
// Training ("perturbed data", spec §3): sample t ∈ [t_eps, T], build x_t = μ_t + σ_t z on the
// SDE's path and score the network output with denoising score matching or the other sgmse
// objectives (denoiser, data prediction) — plus a v-prediction parameterisation (docs/diffusion.md
// §5) with exact conversions between every parameterisation and the score.
#include <functional>
#include <string>

#include <torch/torch.h>

#include "sepmech/diffusion/sde.h"
#include "sepmech/diffusion/spec.h"

namespace sepmech::diffusion {

/// A backbone: (x, y, t) → complex [B, 1, F, T]. For the BackboneKind::ncsnpp convention it gets
/// (x_t, y, t) and its output is minus the score; for ncsnpp_v2 it gets (c_in x_t, c_in y, t).
using Backbone = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t)>;

/// What a network output means.
enum class Parameterisation {
  score,            ///< s ≈ ∇ log p_t(x_t | y) (target −z/σ)
  denoiser,         ///< D ≈ μ_t = E[mean of the path | x_t] (Tweedie: s = (D − x_t)/σ²)
  data_prediction,  ///< x̂ ≈ E[x0 | x_t]
  velocity,         ///< v ≈ a·z − b·(x0 − y), a = α/√(α²+σ²), b = σ/√(α²+σ²)
};
/// "score", "denoiser", "data_prediction" or "velocity".
std::string to_string(Parameterisation p);
/// Parses score / denoiser / data_prediction / velocity (also score_matching, v, v_prediction);
/// throws c10::Error listing the valid names otherwise.
Parameterisation parameterisation_from_string(const std::string& name);

/// Converts a network output under `p` at (x_t, y, t) to the score (exact for the Gaussian path
/// x_t = w_x x0 + w_y y + σ z of `sde`, w_x = α).
torch::Tensor output_to_score(Parameterisation p, const SDE& sde, const torch::Tensor& out, const torch::Tensor& x_t, const torch::Tensor& y,
                       const torch::Tensor& t);
/// The inverse of output_to_score.
torch::Tensor score_to_output(Parameterisation p, const SDE& sde, const torch::Tensor& score, const torch::Tensor& x_t, const torch::Tensor& y,
                       const torch::Tensor& t);
/// The v-prediction target a·z − b·(x0 − y) for the perturbation x_t = μ_t + σ_t z.
torch::Tensor velocity_target(const SDE& sde, const torch::Tensor& x0, const torch::Tensor& y, const torch::Tensor& z, const torch::Tensor& t);

/// Everything one training step computes (all [B, C, F, T] except t, std [B] and loss []).
struct TrainStep {
  torch::Tensor loss, t, mean, std, z, x_t, forward_out;
};

/// Plain DSM step with a score function (the `sde_train_step` workload): t = u(T − t_eps) + t_eps,
/// x_t = μ_t + σ_t z, L = mean_b ½ Σ |s σ + z|². Fused perturbation and loss kernels; the loss is
/// differentiable with respect to the score. The result's `mean` is left undefined (not needed).
TrainStep dsm_step(const SDE& sde, const ScoreFn& score, const torch::Tensor& x0, const torch::Tensor& y, NoiseSource& noise,
                   double t_eps = 0.03);
/// DSM loss mean_b ½ Σ |s σ_b + z|² in one fused pass (autograd-aware in `score`).
torch::Tensor dsm_loss(const torch::Tensor& score, const torch::Tensor& z, const torch::Tensor& std);

// The choices of sgmse's ScoreModel (spec §3). Each c_in / c_out / c_skip / network_scaling value
// names one formula of σ = std(t), σ_d = sigma_data and t, not a free number: to_string gives the
// reference's spelling ("1", "1/sigma", "sigma^2", ...), the enum value a lower snake_case word.

/// How ScoreModel calls its backbone (the reference's backbone names).
enum class BackboneKind {
  ncsnpp,     ///< forward = −backbone(x_t, y, t) (ncsnpp, ncsnpp_48k, dcunet)
  ncsnpp_v2,  ///< backbone(c_in x_t, c_in y, t) with network_scaling, c_skip and c_out
};
/// "ncsnpp" or "ncsnpp_v2".
std::string to_string(BackboneKind kind);
/// Parses ncsnpp / ncsnpp_v2; throws c10::Error listing the valid names otherwise.
BackboneKind backbone_kind_from_string(const std::string& name);

/// What ScoreModel is trained to output, and its loss.
enum class LossType {
  score_matching,   ///< the score, denoising score matching
  denoiser,         ///< a denoiser D of μ_t (forward still returns the score)
  data_prediction,  ///< x̂ of x0 (Schrödinger bridge), time-frequency MSE + time-domain L1
  v_prediction,     ///< the velocity v (sepmech's; see docs/diffusion.md §3)
};
/// "score_matching", "denoiser", "data_prediction" or "v_prediction".
std::string to_string(LossType type);
/// Parses the names of to_string; throws c10::Error listing them otherwise.
LossType loss_type_from_string(const std::string& name);

/// The weighting of the loss over t.
enum class LossWeighting {
  sigma_squared,  ///< "sigma^2": |sσ + z|² (score matching, the SGMSE+ default), ℓσ² (denoiser)
  mae,            ///< "mae": |sσ + z| (score matching only; legacy)
  one,            ///< "1": ℓ unweighted (denoiser only)
  edm,            ///< "edm": (σ² + σ_d²)/(σσ_d)² (denoiser only; the reference's batch bug reproduced)
};
/// The reference's name: "sigma^2", "mae", "1" or "edm".
std::string to_string(LossWeighting weighting);
/// Parses sigma^2 / mae / 1 / edm (also the legacy "mse" for sigma^2); throws
/// c10::Error listing the valid names otherwise.
LossWeighting loss_weighting_from_string(const std::string& name);

/// What the ncsnpp_v2 backbone output F is divided by.
enum class NetworkScaling {
  none,       ///< nothing (the reference's None)
  inv_sigma,  ///< "1/sigma": F/σ
  inv_t,      ///< "1/t": F/t
};
/// "none", "1/sigma" or "1/t".
std::string to_string(NetworkScaling scaling);
/// Parses none / 1/sigma / 1/t (also "" for none); throws c10::Error listing the valid
/// names otherwise.
NetworkScaling network_scaling_from_string(const std::string& name);

/// c_in: the scale of the ncsnpp_v2 backbone's inputs.
enum class InputScaling {
  one,  ///< "1": 1
  edm,  ///< "edm": 1/√(σ² + σ_d²)
};
/// The reference's name: "1" or "edm".
std::string to_string(InputScaling scaling);
/// Parses 1 / edm; throws c10::Error listing the valid names otherwise.
InputScaling input_scaling_from_string(const std::string& name);

/// c_out: the scale of the ncsnpp_v2 backbone's output.
enum class OutputScaling {
  one,        ///< "1": 1
  sigma,      ///< "sigma": σ
  inv_sigma,  ///< "1/sigma": 1/σ
  edm,        ///< "edm": σσ_d/√(σ_d² + σ²)
};
/// The reference's name: "1", "sigma", "1/sigma" or "edm".
std::string to_string(OutputScaling scaling);
/// Parses 1 / sigma / 1/sigma / edm; throws c10::Error listing the valid names otherwise.
OutputScaling output_scaling_from_string(const std::string& name);

/// c_skip: the weight of the skip connection x_t.
enum class SkipScaling {
  zero,  ///< "0": no skip connection
  edm,   ///< "edm": σ_d²/(σ² + σ_d²)
};
/// The reference's name: "0" or "edm".
std::string to_string(SkipScaling scaling);
/// Parses 0 / edm; throws c10::Error listing the valid names otherwise.
SkipScaling skip_scaling_from_string(const std::string& name);

struct ScoreModelOptions {
  /// the backbone's calling convention
  TORCH_ARG(BackboneKind, backbone) = BackboneKind::ncsnpp;
  /// lower end of the training time interval [t_eps, T]; also the samplers' eps
  TORCH_ARG(double, t_eps) = 0.03;
  /// what the model outputs and how it is trained
  TORCH_ARG(LossType, loss_type) = LossType::score_matching;
  /// the loss weighting (as in the reference, incl. its edm batch bug)
  TORCH_ARG(LossWeighting, loss_weighting) = LossWeighting::sigma_squared;
  /// what the ncsnpp_v2 backbone output is divided by
  TORCH_ARG(NetworkScaling, network_scaling) = NetworkScaling::none;
  /// c_in (ncsnpp_v2)
  TORCH_ARG(InputScaling, c_in) = InputScaling::one;
  /// c_out (ncsnpp_v2, score_matching and data_prediction)
  TORCH_ARG(OutputScaling, c_out) = OutputScaling::one;
  /// c_skip (ncsnpp_v2, score_matching and data_prediction)
  TORCH_ARG(SkipScaling, c_skip) = SkipScaling::zero;
  /// σ_d of the EDM scalings
  TORCH_ARG(double, sigma_data) = 0.1;
  /// weight of the time-domain L1 term of the data-prediction loss
  TORCH_ARG(double, l1_weight) = 0.001;
  /// STFT settings for the data-prediction loss's time-domain term
  TORCH_ARG(SpecOptions, spec) = SpecOptions();
  /// training crop length in frames (time-domain term length = (num_frames − 1)·hop)
  TORCH_ARG(int64_t, num_frames) = 256;
 public:
  void Validate() const;
  std::string ToString() const;
};

/// sgmse's ScoreModel without Lightning: the backbone, its output convention, the losses.
class ScoreModel {
 public:
  ScoreModel(std::shared_ptr<const SDE> sde, Backbone backbone, ScoreModelOptions options = {});
  /// The reference's forward: score (score_matching, denoiser), x̂ (data_prediction) or v̂ (v_prediction).
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& y, const torch::Tensor& t) const;
  /// The score implied by forward() (exact conversion for data_prediction and v_prediction).
  torch::Tensor score(const torch::Tensor& x_t, const torch::Tensor& y, const torch::Tensor& t) const;
  ScoreFn score_fn() const;
  /// One training step: draws u (torch.rand) then z (randn_like) from `noise`, in that order.
  TrainStep step(const torch::Tensor& x0, const torch::Tensor& y, NoiseSource& noise) const;
  /// The loss of `forward_out` (as in the reference's _loss; y is needed by v_prediction only).
  torch::Tensor loss(const torch::Tensor& forward_out, const torch::Tensor& x_t, const torch::Tensor& z, const torch::Tensor& t, const torch::Tensor& mean,
              const torch::Tensor& x0, const torch::Tensor& y = torch::Tensor()) const;
  torch::Tensor c_in(const torch::Tensor& t) const;
  torch::Tensor c_out(const torch::Tensor& t) const;
  torch::Tensor c_skip(const torch::Tensor& t) const;
  const SDE& sde() const { return *sde_; }
  const ScoreModelOptions& options() const { return options_; }

 private:
  std::shared_ptr<const SDE> sde_;
  Backbone backbone_;
  ScoreModelOptions options_;
};

/// `ScoreModel` as a `torch::nn::Module`: the backbone is a registered submodule "dnn", so
/// `parameters()` (for the optimiser), `named_parameters()` / `load_state_dict`-style loading under the
/// reference's `dnn.*` keys, `to()`, `train()` / `eval()` and serialisation cover the network. The
/// backbone is any module with `torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t)`
/// (the input convention of `Backbone`).
class ScoreModelModuleImpl : public torch::nn::Module {
 public:
  ScoreModelModuleImpl(std::shared_ptr<const SDE> sde, torch::nn::AnyModule dnn, ScoreModelOptions options = {});
  template <typename M>
  ScoreModelModuleImpl(std::shared_ptr<const SDE> sde, torch::nn::ModuleHolder<M> dnn, ScoreModelOptions options = {})
      : ScoreModelModuleImpl(std::move(sde), torch::nn::AnyModule(std::move(dnn)), std::move(options)) {}
  /// The reference's forward (see ScoreModel::forward).
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& y, const torch::Tensor& t) { return model_.forward(x_t, y, t); }
  /// The score implied by forward().
  torch::Tensor score(const torch::Tensor& x_t, const torch::Tensor& y, const torch::Tensor& t) const { return model_.score(x_t, y, t); }
  /// A ScoreFn for the samplers (this module must outlive it).
  ScoreFn score_fn() const { return model_.score_fn(); }
  /// One training step (draws u then z from `noise`); loss.backward() reaches the dnn's parameters.
  TrainStep step(const torch::Tensor& x0, const torch::Tensor& y, NoiseSource& noise) const { return model_.step(x0, y, noise); }
  const ScoreModel& model() const { return model_; }
  /// The backbone submodule.
  torch::nn::AnyModule& dnn() { return dnn_; }
  void pretty_print(std::ostream& stream) const override;

 private:
  torch::nn::AnyModule dnn_;
  ScoreModel model_;
};
TORCH_MODULE(ScoreModelModule);

}  // namespace sepmech::diffusion
