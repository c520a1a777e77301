#pragma once
// Forward SDEs of the SGMSE family (docs/diffusion.md §1, spec ../shared/spec/diffusion.md §2):
// OUVE (SGMSE/SGMSE+), OUVP (storm, legacy) and SB-VE (Schrödinger bridge), their marginals,
// priors, discretisation and reverse-time / probability-flow processes.
//
// Conventions: states are complex64 [B, C, F, T]; time is a float32 vector [B]; per-example
// scalars (diffusion g, std σ) are [B] and broadcast as [B, 1, 1, 1]. Complex noise z has
// Re, Im ~ N(0, 1/2), so E|z|² = 1 and "std σ" means x = mean + σ·z. The score is the
// Wirtinger derivative of log p (target −z/σ), so every reverse-time formula uses g²·s.
//
// Every SDE here has an affine drift f(x, y, t) = a(t)·(y − x) (a = θ for OUVE, ½sβ(t) for
// OUVP, 0 for SB-VE); `drift_rate` exposes a(t) so the samplers can fuse their updates.
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <torch/torch.h>

namespace sepmech::diffusion {

/// A score model: (x_t, y, t) → score, complex [B, C, F, T] for complex x_t, y and float t [B].
using ScoreFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t)>;

/// The source of every random draw of the diffusion code. Either a `torch::Generator`
/// (same seed → bit-identical draws) or a replay of pre-drawn tensors (the golden files store
/// every draw as an input, consumed in call order).
class NoiseSource {
 public:
  /// Fresh draws from `gen` (a CPU generator, e.g. at::make_generator<at::CPUGeneratorImpl>(seed)).
  explicit NoiseSource(torch::Generator gen);
  /// Replays `normal_draws` [K, ...] (complex; draw k is normal_draws[k]) and `uniform_draws`
  /// [K', B] (float) in order; a draw beyond the recorded ones or of the wrong shape throws.
  static NoiseSource replay(torch::Tensor normal_draws, torch::Tensor uniform_draws = torch::Tensor());

  /// Circular complex normal like `like` (complex64): Re, Im i.i.d. N(0, 1/2), E|z|² = 1.
  torch::Tensor randn_like(const torch::Tensor& like);
  /// Uniform [0, 1) float32 vector of length n (torch.rand).
  torch::Tensor rand(int64_t n);
  int64_t normal_draws() const { return n_normal_; }
  int64_t uniform_draws() const { return n_uniform_; }

 private:
  NoiseSource() = default;
  std::optional<torch::Generator> gen_;
  torch::Tensor replay_normal_, replay_uniform_;
  int64_t n_normal_ = 0, n_uniform_ = 0;
};

/// The forward SDEs of the family.
enum class SdeKind {
  ouve,  ///< Ornstein–Uhlenbeck with variance-exploding diffusion (SGMSE, SGMSE+): `OUVESDE`
  ouvp,  ///< storm's Ornstein–Uhlenbeck variance-preserving SDE: `OUVPSDE`
  sbve,  ///< Schrödinger bridge with the VE schedule: `SBVESDE`
};
/// "ouve", "ouvp" or "sbve" (the reference's names).
std::string to_string(SdeKind kind);
/// Parses ouve / ouvp / sbve (also the class names ouvesde / ouvpsde / sbvesde); throws
/// c10::Error listing the valid names otherwise.
SdeKind sde_kind_from_string(const std::string& name);

struct OUVESDEOptions {
  /// stiffness θ of the drift θ(y − x)
  TORCH_ARG(double, theta) = 1.5;
  /// diffusion scale at t = 0
  TORCH_ARG(double, sigma_min) = 0.05;
  /// diffusion scale at t = 1
  TORCH_ARG(double, sigma_max) = 0.5;
  /// number of reverse steps
  TORCH_ARG(int64_t, N) = 30;
 public:
  /// The 48 kHz preset of the README (θ 2.0, σ_min 0.1, σ_max 1.0).
  static OUVESDEOptions preset_48k() { return OUVESDEOptions().theta(2.0).sigma_min(0.1).sigma_max(1.0); }
  void Validate() const;
  std::string ToString() const;
};

struct OUVPSDEOptions {
  /// β(0) (required: the reference has no default)
  TORCH_ARG(double, beta_min) = std::numeric_limits<double>::quiet_NaN();
  /// β(1) (required)
  TORCH_ARG(double, beta_max) = std::numeric_limits<double>::quiet_NaN();
  /// stiffness s of the drift ½sβ(t)(y − x)
  TORCH_ARG(double, stiffness) = 1.0;
  /// number of reverse steps
  TORCH_ARG(int64_t, N) = 1000;
 public:
  void Validate() const;
  std::string ToString() const;
};

struct SBVESDEOptions {
  /// base k > 1 of the VE schedule g(t) = √c·k^t
  TORCH_ARG(double, k) = 2.6;
  /// scale c > 0
  TORCH_ARG(double, c) = 0.4;
  /// number of sampler steps
  TORCH_ARG(int64_t, N) = 50;
  /// regulariser ε added to the denominators (reference value)
  TORCH_ARG(double, eps) = 1e-8;
 public:
  void Validate() const;
  std::string ToString() const;
};

/// The Schrödinger-bridge schedule quantities of `SBVESDE::sigmas_alphas`.
struct SBSchedule {
  torch::Tensor sigma_t, sigma_T, sigma_bart, alpha_t, alpha_T, alpha_bart;
};

class ReverseSDE;

/// A forward SDE dx = f(x, y, t) dt + g(t) dw on t ∈ [0, T], T = 1.
class SDE {
 public:
  virtual ~SDE() = default;
  virtual SdeKind kind() const = 0;
  /// to_string(kind()).
  std::string name() const { return to_string(kind()); }
  double T() const { return 1.0; }
  virtual int64_t N() const = 0;

  /// a(t) [B] with f(x, y, t) = a(t)·(y − x).
  virtual torch::Tensor drift_rate(const torch::Tensor& t) const = 0;
  /// g(t) [B].
  virtual torch::Tensor diffusion(const torch::Tensor& t) const = 0;
  /// (drift f [B, C, F, T] (0-dim zero for SB-VE), diffusion g [B]).
  virtual std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t) const;
  /// Mean of the perturbation kernel p_t(x_t | x0, y).
  virtual torch::Tensor marginal_mean(const torch::Tensor& x0, const torch::Tensor& y, const torch::Tensor& t) const = 0;
  /// The reference's `_std(t)` [B] (for OUVP this is the variance, a reproduced reference bug).
  virtual torch::Tensor std(const torch::Tensor& t) const = 0;
  /// (mean, std) of p_t(x_t | x0, y).
  std::pair<torch::Tensor, torch::Tensor> marginal_prob(const torch::Tensor& x0, const torch::Tensor& y, const torch::Tensor& t) const;
  /// Weights (w_x, w_y) [B] with marginal mean = w_x·x0 + w_y·y.
  virtual std::pair<torch::Tensor, torch::Tensor> mean_weights(const torch::Tensor& t) const = 0;
  /// The x0 weight α(t) of the mean (OUVE e^{−θt}, OUVP e^{−sB(t)/2}, SB-VE 1).
  virtual torch::Tensor alpha(const torch::Tensor& t) const = 0;
  /// x_T for the reverse process (OUVE/OUVP y + std(1)·z, SB-VE y without a draw).
  virtual torch::Tensor prior_sampling(const torch::Tensor& y, NoiseSource& noise) const = 0;
  /// True if the reference's discretisation ignores the step size and always uses Δ = 1/N
  /// (storm's OUVP); predictors follow it.
  virtual bool fixed_stepsize() const { return false; }
  /// (f·Δ, g·√Δ) for a step Δ (0-dim float32 tensor); undefined Δ (or fixed_stepsize()) means 1/N.
  virtual std::pair<torch::Tensor, torch::Tensor> discretize(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t,
                                               const torch::Tensor& stepsize) const;
  /// The reverse-time SDE (or probability-flow ODE) driven by `score`.
  ReverseSDE reverse(ScoreFn score, bool probability_flow = false) const;

  /// Checks t: finite float32 vector [B] with 0 < t ≤ T (0 ≤ t ≤ T if allow_zero, as for the
  /// marginals); names `what` in the error.
  void check_time(const torch::Tensor& t, const char* what, bool allow_zero = false) const;
};

/// The reverse process of `SDE::reverse`.
class ReverseSDE {
 public:
  /// `sde` must outlive this object.
  ReverseSDE(const SDE& sde, ScoreFn score, bool probability_flow)
      : sde_(&sde), score_(std::move(score)), pf_(probability_flow) {}
  /// (f − g²·s·(½ if pf), g or 0 if pf): drift for integration with negative dt.
  std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t) const;
  /// (f·Δ − G²·s·(½ if pf), G or 0 if pf); a reverse step is x − rev_f + rev_G·z.
  std::pair<torch::Tensor, torch::Tensor> discretize(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t,
                                       const torch::Tensor& stepsize) const;
  const SDE& forward_sde() const { return *sde_; }
  bool probability_flow() const { return pf_; }
  int64_t N() const { return sde_->N(); }

 private:
  const SDE* sde_;
  ScoreFn score_;
  bool pf_;
};

/// Ornstein–Uhlenbeck drift θ(y − x) with variance-exploding diffusion σ_min(σ_max/σ_min)^t·√(2λ).
class OUVESDE : public SDE {
 public:
  explicit OUVESDE(OUVESDEOptions options = {});
  SdeKind kind() const override { return SdeKind::ouve; }
  int64_t N() const override { return options.N(); }
  torch::Tensor drift_rate(const torch::Tensor& t) const override;
  torch::Tensor diffusion(const torch::Tensor& t) const override;
  torch::Tensor marginal_mean(const torch::Tensor& x0, const torch::Tensor& y, const torch::Tensor& t) const override;
  torch::Tensor std(const torch::Tensor& t) const override;
  std::pair<torch::Tensor, torch::Tensor> mean_weights(const torch::Tensor& t) const override;
  torch::Tensor alpha(const torch::Tensor& t) const override;
  torch::Tensor prior_sampling(const torch::Tensor& y, NoiseSource& noise) const override;
  OUVESDEOptions options;
  double logsig;  ///< λ = ln(σ_max/σ_min)
};

/// storm's OU-VP SDE (removed from sgmse in Oct 2024). Reproduces its `_std` bug: the variance
/// P(t) = (1 − e^{−sB(t)})/s is used as the std in marginal_prob, prior and training.
class OUVPSDE : public SDE {
 public:
  explicit OUVPSDE(OUVPSDEOptions options);
  SdeKind kind() const override { return SdeKind::ouvp; }
  int64_t N() const override { return options.N(); }
  torch::Tensor beta(const torch::Tensor& t) const;
  torch::Tensor drift_rate(const torch::Tensor& t) const override;
  torch::Tensor diffusion(const torch::Tensor& t) const override;
  std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t) const override;
  torch::Tensor marginal_mean(const torch::Tensor& x0, const torch::Tensor& y, const torch::Tensor& t) const override;
  torch::Tensor std(const torch::Tensor& t) const override;
  std::pair<torch::Tensor, torch::Tensor> mean_weights(const torch::Tensor& t) const override;
  torch::Tensor alpha(const torch::Tensor& t) const override;
  torch::Tensor prior_sampling(const torch::Tensor& y, NoiseSource& noise) const override;
  bool fixed_stepsize() const override { return true; }
  OUVPSDEOptions options;
};

/// Schrödinger bridge with the VE schedule (Jukić et al. 2024): f = 0, g = √c·k^t.
class SBVESDE : public SDE {
 public:
  explicit SBVESDE(SBVESDEOptions options = {});
  SdeKind kind() const override { return SdeKind::sbve; }
  int64_t N() const override { return options.N(); }
  torch::Tensor drift_rate(const torch::Tensor& t) const override;
  torch::Tensor diffusion(const torch::Tensor& t) const override;
  std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t) const override;
  torch::Tensor marginal_mean(const torch::Tensor& x0, const torch::Tensor& y, const torch::Tensor& t) const override;
  torch::Tensor std(const torch::Tensor& t) const override;
  std::pair<torch::Tensor, torch::Tensor> mean_weights(const torch::Tensor& t) const override;
  torch::Tensor alpha(const torch::Tensor& t) const override;
  torch::Tensor prior_sampling(const torch::Tensor& y, NoiseSource& noise) const override;
  /// σ_t, σ_T (0-dim), σ̄_t = √(σ_T² − σ_t² + ε), α_t = α_T = 1, ᾱ_t = 1/(1 + ε).
  SBSchedule sigmas_alphas(const torch::Tensor& t) const;
  SBVESDEOptions options;
};

/// Builds an SDE of `kind` from the reference's keyword arguments as key/value doubles (theta,
/// sigma_min, sigma_max, N; beta_min, beta_max, stiffness, N; k, c, eps, N); an unknown key throws.
/// From a name: make_sde(sde_kind_from_string(name), kwargs).
std::shared_ptr<SDE> make_sde(SdeKind kind, const std::map<std::string, double>& kwargs);

}  // namespace sepmech::diffusion
