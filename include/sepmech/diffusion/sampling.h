#pragma once
// Reverse-time samplers (spec §5): predictors (Euler–Maruyama, reverse diffusion, none),
// correctors (Langevin, annealed Langevin, none), the predictor–corrector sampler, the
// probability-flow ODE sampler with an adaptive Dormand–Prince RK45 solver, and the two
// Schrödinger-bridge samplers. Every combination runs (the reference crashes for some); all
// randomness comes from a NoiseSource; a progress callback is called once per step.
#include <functional>
#include <string>
#include <utility>

#include <torch/torch.h>

#include "sepmech/diffusion/sde.h"

namespace sepmech::diffusion {

/// The predictors of the PC sampler (the reference's registry names).
enum class PredictorType {
  euler_maruyama,     ///< Euler–Maruyama, dt = −1/N
  reverse_diffusion,  ///< reverse diffusion x̄ = x − (fΔ − G²s), x = x̄ + Gz
  none,               ///< no predictor step
};
/// "euler_maruyama", "reverse_diffusion" or "none".
std::string to_string(PredictorType type);
/// Parses euler_maruyama / reverse_diffusion / none (also em / rd); throws c10::Error
/// listing the valid names otherwise.
PredictorType predictor_type_from_string(const std::string& name);

/// The correctors of the PC sampler.
enum class CorrectorType {
  langevin,           ///< Langevin dynamics, step 2(r‖z‖/‖s‖)² ("langevin")
  annealed_langevin,  ///< annealed Langevin dynamics, step 2(rσ_t)² ("ald")
  none,               ///< no corrector step
};
/// The reference's name: "langevin", "ald" or "none".
std::string to_string(CorrectorType type);
/// Parses langevin / ald / none (also annealed_langevin); throws c10::Error listing the
/// valid names otherwise.
CorrectorType corrector_type_from_string(const std::string& name);

/// The two Schrödinger-bridge samplers.
enum class SBSamplerType {
  ode,  ///< the probability-flow ODE sampler
  sde,  ///< the stochastic sampler
};
/// "ode" or "sde".
std::string to_string(SBSamplerType type);
/// Parses ode / sde; throws c10::Error listing the valid names otherwise.
SBSamplerType sb_sampler_type_from_string(const std::string& name);

/// Called after step `step` (0-based) of `total` (−1 when unknown in advance: the adaptive ODE solver).
using ProgressFn = std::function<void(int64_t step, int64_t total)>;

/// (x, x̄): the new state and its noise-free part.
using StepResult = std::pair<torch::Tensor, torch::Tensor>;

/// One predictor update at t [B]. Euler–Maruyama uses dt = −1/N (sde.N()) and ignores
/// `stepsize`; reverse diffusion uses Δ = stepsize (0-dim float32; undefined → 1/N). The
/// reference's probability_flow flag has no effect on predictors and is therefore not taken.
StepResult predictor_step(PredictorType type, const SDE& sde, const ScoreFn& score, const torch::Tensor& x, const torch::Tensor& y,
                          const torch::Tensor& t, const torch::Tensor& stepsize, NoiseSource& noise);
/// n_steps corrector iterations at t [B] (each: one score evaluation, one draw). n_steps = 0 or
/// CorrectorType::none returns (x, x).
StepResult corrector_step(CorrectorType type, const SDE& sde, const ScoreFn& score, const torch::Tensor& x,
                          const torch::Tensor& y, const torch::Tensor& t, double snr, int64_t n_steps, NoiseSource& noise);

struct PCSamplerOptions {
  /// the predictor (the reference's default: reverse diffusion)
  TORCH_ARG(PredictorType, predictor) = PredictorType::reverse_diffusion;
  /// the corrector (the reference's default: annealed Langevin, "ald")
  TORCH_ARG(CorrectorType, corrector) = CorrectorType::annealed_langevin;
  /// corrector signal-to-noise ratio r (enhance()/enhancement.py use 0.5)
  TORCH_ARG(double, snr) = 0.5;
  /// corrector iterations per step
  TORCH_ARG(int64_t, corrector_steps) = 1;
  /// return the noise-free mean of the last predictor step
  TORCH_ARG(bool, denoise) = true;
  /// final time of the grid linspace(T, eps, N)
  TORCH_ARG(double, eps) = 0.03;
  /// number of steps; 0 means sde.N(). Like the reference's get_pc_sampler(N=...), which copies the
  /// SDE with this N, it is also the N of Euler–Maruyama's dt = −1/N and of fixed 1/N steps (OUVP).
  TORCH_ARG(int64_t, N) = 0;
  /// true: Δ = 1/N at every step (sgmse before 2b0609b, the published TASLP results);
  /// false: the grid step Δ_i = t_i − t_{i+1}, last Δ = eps
  TORCH_ARG(bool, legacy_stepsize) = false;
 public:
  void Validate() const;
  std::string ToString() const;
};

struct SampleResult {
  torch::Tensor x;         ///< the sample (complex64, shape of y)
  int64_t nfe = 0;  ///< network evaluations (as the reference reports them)
};

/// Optional record of a sampler run (trajectory after each predictor step, the grid).
struct PCTrace {
  std::vector<torch::Tensor> x, x_mean;
  torch::Tensor timesteps;
};

/// The predictor–corrector sampler: x = prior(y); for t_i in linspace(T, eps, N): corrector at
/// t_i, predictor at (t_i, Δ_i); returns x̄ (denoise) or x and NFE = N·(n_corrector + 1).
/// Checks every score output's shape and finiteness.
SampleResult pc_sample(const SDE& sde, const ScoreFn& score, const torch::Tensor& y, NoiseSource& noise,
                       const PCSamplerOptions& options = {}, const ProgressFn& progress = nullptr,
                       PCTrace* trace = nullptr);

struct ODESamplerOptions {
  /// relative tolerance of RK45 (reference 1e-5)
  TORCH_ARG(double, rtol) = 1e-5;
  /// absolute tolerance of RK45 (reference 1e-5)
  TORCH_ARG(double, atol) = 1e-5;
  /// final time
  TORCH_ARG(double, eps) = 0.03;
  /// finish with one reverse-diffusion predictor step of size eps (noise-free mean; the
  /// reference crashes here)
  TORCH_ARG(bool, denoise) = false;
  /// give up after this many function evaluations
  TORCH_ARG(int64_t, max_nfe) = 100000;
 public:
  void Validate() const;
};

/// Probability-flow ODE dx/dt = f − ½g²s from T to eps with scipy-equivalent adaptive RK45
/// (Dormand–Prince 5(4), float64 state, each evaluation in complex64 at float32 t).
SampleResult ode_sample(const SDE& sde, const ScoreFn& score, const torch::Tensor& y, NoiseSource& noise,
                        const ODESamplerOptions& options = {}, const ProgressFn& progress = nullptr);

/// A data-prediction model for the SB samplers: (x, y, t) → x̂.
using DataPredictionFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t)>;

struct SBSamplerOptions {
  /// the ODE or the SDE sampler
  TORCH_ARG(SBSamplerType, sampler_type) = SBSamplerType::ode;
  /// final time of linspace(T, eps, N + 1)
  TORCH_ARG(double, eps) = 1e-4;
  /// number of steps; 0 means sde.N()
  TORCH_ARG(int64_t, N) = 0;
  /// the step count the reference returns (its constant default n_steps, not N)
  TORCH_ARG(int64_t, n_steps_returned) = 50;
 public:
  void Validate() const;
};

/// Schrödinger-bridge samplers (x̂ evaluated at the new time τ_j). Returns (x, n_steps_returned).
SampleResult sb_sample(const SBVESDE& sde, const DataPredictionFn& model, const torch::Tensor& y, NoiseSource& noise,
                       const SBSamplerOptions& options = {}, const ProgressFn& progress = nullptr,
                       std::vector<torch::Tensor>* model_times = nullptr);

}  // namespace sepmech::diffusion
