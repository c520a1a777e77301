#pragma once
// Closed forms for Gaussian data (spec §6): the exact score / posterior mean used as an oracle
// by the goldens, tests and benchmarks, the exact output law of the PC sampler with that
// oracle, the closed-form probability-flow ODE solution and the minimum DSM loss.
#include <c10/util/complex.h>
#include <torch/torch.h>

#include "sepmech/diffusion/sampling.h"
#include "sepmech/diffusion/sde.h"

namespace sepmech::diffusion {

/// Clean data x0 ~ CN(μ0, s0²) i.i.d. per element.
struct GaussianOracle {
  c10::complex<double> mu0{0.0, 0.0};
  double s0sq = 0.2;

  /// Marginal variance v_t [B] of x_t given y: α²s0² + σ_t² (OUVE/SB-VE), e²s0² + P(t) (OUVP,
  /// whose reference `_std` already returns the variance P).
  torch::Tensor marginal_variance(const SDE& sde, const torch::Tensor& t) const;
  /// Exact score −(x − m_t)/v_t with m_t = α_t μ0 + (1 − α_t) y (OUVE, OUVP); fused kernel.
  torch::Tensor score(const SDE& sde, const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t) const;
  /// The same, op by op (the benchmark baseline and a cross-check).
  torch::Tensor score_unfused(const SDE& sde, const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t) const;
  /// SB-VE posterior mean x̂ = μ0 + w_x s0²/(w_x² s0² + σ_x²)·(x − w_x μ0 − w_y y).
  torch::Tensor data_prediction(const SBVESDE& sde, const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& t) const;
  /// A ScoreFn bound to `sde` (which must outlive it), using the fused `score`.
  ScoreFn score_fn(const SDE& sde) const;
};

/// Exact law of the PC sampler's output with the oracle score, per element:
/// x ~ CN(A·μ0 + B·y, V) (V_mean: variance of the noise-free mean returned with denoise=true).
struct AffineLaw {
  double A = 0, B = 1, V = 0, V_mean = 0;
};
/// Runs the affine recursion of spec §6.3 in double precision for the OUVE PC sampler with the
/// reverse-diffusion predictor and the annealed Langevin corrector ("ald") or none (n corrector
/// steps, snr r), grid linspace(1, eps, N) with the grid Δ rule (legacy_step: Δ = 1/N). The Langevin
/// corrector (its step size depends on the state) is not affine and throws.
AffineLaw pc_affine_law(const OUVESDEOptions& sde, int64_t N, CorrectorType corrector, int64_t corrector_steps,
                        double snr, double eps, double s0sq, bool legacy_step = false);

/// Closed-form probability-flow ODE solution (spec §6.4): x_eps = m_eps + √(v_eps/v_1)(x_T − m_1).
torch::Tensor pflow_ode_closed_form(const OUVESDE& sde, const GaussianOracle& oracle, const torch::Tensor& x_T, const torch::Tensor& y,
                             double eps);

/// Minimum of the DSM loss per element at time t (spec §6.2): ½ α_t² s0² / (α_t² s0² + σ_t²).
double dsm_loss_minimum(const OUVESDEOptions& sde, double t, double s0sq);

}  // namespace sepmech::diffusion
