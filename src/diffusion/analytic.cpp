// The Gaussian oracle and the closed forms for Gaussian data (spec §6).
#include "sepmech/diffusion/analytic.h"

#include <cmath>

#include "diffusion/kernels.h"
#include "diffusion/reference_oracle.h"

namespace sepmech::diffusion {

using torch::Tensor;

Tensor GaussianOracle::marginal_variance(const SDE& sde, const Tensor& t) const {
  Tensor a = sde.alpha(t);
  Tensor s = sde.std(t);
  Tensor p = sde.kind() == SdeKind::ouvp ? s : s.pow(2);
  return a.pow(2) * s0sq + p;
}

Tensor GaussianOracle::score_unfused(const SDE& sde, const Tensor& x, const Tensor& y, const Tensor& t) const {
  Tensor a = sde.alpha(t).reshape({-1, 1, 1, 1});
  Tensor mu = torch::full({}, c10::complex<float>(mu0), torch::kComplexFloat);
  Tensor m = a * mu + (1 - a) * y;
  Tensor v = marginal_variance(sde, t).reshape({-1, 1, 1, 1});
  return -(x - m) / v;
}

Tensor GaussianOracle::score(const SDE& sde, const Tensor& x0, const Tensor& y0, const Tensor& t) const {
  TORCH_CHECK(sde.kind() != SdeKind::sbve,
              "sepmech::diffusion::GaussianOracle::score: the SB-VE oracle is a data prediction, use data_prediction");
  TORCH_CHECK(x0.sizes() == y0.sizes() && x0.scalar_type() == torch::kComplexFloat &&
                  y0.scalar_type() == torch::kComplexFloat,
              "sepmech::diffusion::GaussianOracle::score: x and y must be complex64 of one shape, got ",
              x0.sizes(), " ", x0.scalar_type(), " and ", y0.sizes(), " ", y0.scalar_type());
  Tensor x = x0.contiguous(), y = y0.contiguous();
  const int64_t B = x.size(0), n = 2 * (x.numel() / std::max<int64_t>(B, 1));
  TORCH_CHECK(t.dim() == 1 && t.size(0) == B, "sepmech::diffusion::GaussianOracle::score: t must be [B = ", B,
              "], got ", t.sizes());
  // The per-example scalars go through the same float32 tensor formulas as the reference's
  // oracle: its float32 rounding steers RK45's step control (a double-precision oracle changes
  // the ODE sampler's evaluation count from the reference's 38 to 32).
  Tensor a = sde.alpha(t).contiguous();
  Tensor wy = (1 - a).contiguous();
  Tensor inv_v = marginal_variance(sde, t).reciprocal().contiguous();
  Tensor s = torch::empty_like(x);
  kernels::oracle_score(kernels::cfptr(x), kernels::cfptr(y), kernels::fptr(s), B, n, a.data_ptr<float>(),
                        wy.data_ptr<float>(), inv_v.data_ptr<float>(), static_cast<float>(mu0.real()),
                        static_cast<float>(mu0.imag()));
  return s;
}

Tensor GaussianOracle::data_prediction(const SBVESDE& sde, const Tensor& x, const Tensor& y, const Tensor& t) const {
  auto [wx, wy] = sde.mean_weights(t);
  Tensor sx = sde.std(t);
  Tensor mu = torch::full({}, c10::complex<float>(mu0), torch::kComplexFloat);
  Tensor gain = (wx * s0sq / (wx.pow(2) * s0sq + sx.pow(2))).reshape({-1, 1, 1, 1});
  return mu + gain * (x - wx.reshape({-1, 1, 1, 1}) * mu - wy.reshape({-1, 1, 1, 1}) * y);
}

ScoreFn GaussianOracle::score_fn(const SDE& sde) const {
  GaussianOracle self = *this;
  const SDE* s = &sde;
  return [self, s](const Tensor& x, const Tensor& y, const Tensor& t) { return self.score(*s, x, y, t); };
}

ScoreFn score_fn_reference(const GaussianOracle& oracle, const SDE& sde) {
  GaussianOracle self = oracle;
  const SDE* s = &sde;
  return [self, s](const Tensor& x, const Tensor& y, const Tensor& t) { return self.score_unfused(*s, x, y, t); };
}

namespace {
struct OuveScalars {
  double theta, smin, smax, lam;
  double alpha(double t) const { return std::exp(-theta * t); }
  double var(double t) const {
    return smin * smin * lam * (std::exp(2 * (theta + lam) * t) - 1) * std::exp(-2 * theta * t) / (theta + lam);
  }
  double g2(double t) const {
    const double g = smin * std::pow(smax / smin, t) * std::sqrt(2 * lam);
    return g * g;
  }
};
OuveScalars ouve_scalars(const OUVESDEOptions& o) {
  o.Validate();
  return {o.theta(), o.sigma_min(), o.sigma_max(), std::log(o.sigma_max() / o.sigma_min())};
}
}  // namespace

AffineLaw pc_affine_law(const OUVESDEOptions& o, int64_t N, CorrectorType corrector, int64_t corrector_steps,
                        double snr, double eps, double s0sq, bool legacy_step) {
  const OuveScalars S = ouve_scalars(o);
  TORCH_CHECK(N >= 1, "sepmech::diffusion::pc_affine_law: N must be >= 1, got ", N);
  TORCH_CHECK(corrector == CorrectorType::annealed_langevin || corrector == CorrectorType::none,
              "sepmech::diffusion::pc_affine_law: corrector must be ald or none, got '", to_string(corrector), "'");
  AffineLaw L;
  L.A = 0;
  L.B = 1;
  L.V = S.var(1.0);
  for (int64_t i = 0; i < N; ++i) {
    const double t = N == 1 ? 1.0 : 1.0 + (eps - 1.0) * double(i) / double(N - 1);
    const double tn = N == 1 ? 0.0 : 1.0 + (eps - 1.0) * double(i + 1) / double(N - 1);
    const double dt = legacy_step ? 1.0 / double(N) : (i + 1 < N ? t - tn : eps);
    const double a = S.alpha(t), sig2 = S.var(t), v = a * a * s0sq + sig2;
    if (corrector == CorrectorType::annealed_langevin) {
      for (int64_t k = 0; k < corrector_steps; ++k) {
        const double e = 2 * snr * snr * sig2, q = 1 - e / v;
        L.A = q * L.A + e * a / v;
        L.B = q * L.B + e * (1 - a) / v;
        L.V = q * q * L.V + 2 * e;
      }
    }
    const double G2 = S.g2(t) * dt, q = 1 + S.theta * dt - G2 / v;
    L.A = q * L.A + G2 * a / v;
    L.B = q * L.B - S.theta * dt + G2 * (1 - a) / v;
    L.V_mean = q * q * L.V;
    L.V = L.V_mean + G2;
  }
  return L;
}

Tensor pflow_ode_closed_form(const OUVESDE& sde, const GaussianOracle& oracle, const Tensor& x_T, const Tensor& y,
                             double eps) {
  const OuveScalars S = ouve_scalars(sde.options);
  auto m_at = [&](double t) {
    const double a = S.alpha(t);
    return y.to(torch::kComplexDouble) * (1 - a) + c10::complex<double>(oracle.mu0) * a;
  };
  auto v_at = [&](double t) { return S.alpha(t) * S.alpha(t) * oracle.s0sq + S.var(t); };
  Tensor out = m_at(eps) + std::sqrt(v_at(eps) / v_at(1.0)) * (x_T.to(torch::kComplexDouble) - m_at(1.0));
  return out;
}

double dsm_loss_minimum(const OUVESDEOptions& o, double t, double s0sq) {
  const OuveScalars S = ouve_scalars(o);
  const double a2 = S.alpha(t) * S.alpha(t);
  return 0.5 * a2 * s0sq / (a2 * s0sq + S.var(t));
}

}  // namespace sepmech::diffusion
