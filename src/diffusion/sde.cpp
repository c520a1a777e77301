// Forward SDEs (spec §2): OUVE, OUVP, SB-VE, their reverse processes and the factory.
#include "sepmech/diffusion/sde.h"

#include <cmath>
#include <set>
#include <sstream>

#include "diffusion/names.h"
#include "kernels/shape.h"

namespace sepmech::diffusion {

using torch::Tensor;

namespace {

using sepmech::kernels::shape_str;

// A float32 0-dim tensor; double scalars meet float32 tensors rounded to float32, like the reference.
Tensor scalar_f32(double v) { return torch::tensor(static_cast<float>(v), torch::kFloat32); }

// [B] → [B, 1, 1, 1] (or to x.dim() dims).
Tensor bcast(const Tensor& v, int64_t dim) {
  std::vector<int64_t> shape(dim, 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------
void OUVESDEOptions::Validate() const {
  TORCH_CHECK(std::isfinite(theta()) && theta() >= 0, "sepmech::diffusion::OUVESDE: theta must be >= 0, got ",
              theta());
  TORCH_CHECK(std::isfinite(sigma_min()) && sigma_min() > 0,
              "sepmech::diffusion::OUVESDE: sigma_min must be > 0, got ", sigma_min());
  TORCH_CHECK(std::isfinite(sigma_max()) && sigma_max() > sigma_min(),
              "sepmech::diffusion::OUVESDE: sigma_max must be > sigma_min (", sigma_min(), "), got ", sigma_max());
  TORCH_CHECK(N() >= 1, "sepmech::diffusion::OUVESDE: N must be >= 1, got ", N());
}
std::string OUVESDEOptions::ToString() const {
  std::ostringstream os;
  os << "OUVESDE(theta=" << theta() << ", sigma_min=" << sigma_min() << ", sigma_max=" << sigma_max()
     << ", N=" << N() << ")";
  return os.str();
}

void OUVPSDEOptions::Validate() const {
  TORCH_CHECK(std::isfinite(beta_min()) && beta_min() >= 0,
              "sepmech::diffusion::OUVPSDE: beta_min must be given and >= 0, got ", beta_min());
  TORCH_CHECK(std::isfinite(beta_max()) && beta_max() > 0 && beta_max() >= beta_min(),
              "sepmech::diffusion::OUVPSDE: beta_max must be given, > 0 and >= beta_min (", beta_min(), "), got ",
              beta_max());
  TORCH_CHECK(std::isfinite(stiffness()) && stiffness() > 0,
              "sepmech::diffusion::OUVPSDE: stiffness must be > 0, got ", stiffness());
  TORCH_CHECK(N() >= 1, "sepmech::diffusion::OUVPSDE: N must be >= 1, got ", N());
}
std::string OUVPSDEOptions::ToString() const {
  std::ostringstream os;
  os << "OUVPSDE(beta_min=" << beta_min() << ", beta_max=" << beta_max() << ", stiffness=" << stiffness()
     << ", N=" << N() << ")";
  return os.str();
}

void SBVESDEOptions::Validate() const {
  TORCH_CHECK(std::isfinite(k()) && k() > 1, "sepmech::diffusion::SBVESDE: k must be > 1, got ", k());
  TORCH_CHECK(std::isfinite(c()) && c() > 0, "sepmech::diffusion::SBVESDE: c must be > 0, got ", c());
  TORCH_CHECK(N() >= 1, "sepmech::diffusion::SBVESDE: N must be >= 1, got ", N());
  TORCH_CHECK(std::isfinite(eps()) && eps() >= 0, "sepmech::diffusion::SBVESDE: eps must be >= 0, got ", eps());
}
std::string SBVESDEOptions::ToString() const {
  std::ostringstream os;
  os << "SBVESDE(k=" << k() << ", c=" << c() << ", N=" << N() << ", eps=" << eps() << ")";
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// SDE base
// ---------------------------------------------------------------------------------------------
void SDE::check_time(const Tensor& t, const char* what, bool allow_zero) const {
  TORCH_CHECK(t.defined() && t.dim() == 1, "sepmech::diffusion::", name(), ": ", what,
              " must be a vector [B], got ", t.defined() ? shape_str(t) : std::string("undefined"));
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, "sepmech::diffusion::", name(), ": ", what,
              " must be float32, got ", t.scalar_type());
  if (t.numel() == 0) return;
  const double lo = t.min().item<double>(), hi = t.max().item<double>();
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi) && (allow_zero ? lo >= 0 : lo > 0) && hi <= T(),
              "sepmech::diffusion::", name(), ": ", what, " must lie in ", allow_zero ? "[" : "(", "0, ", T(),
              "], got values in [", lo, ", ", hi, "]");
}

std::pair<Tensor, Tensor> SDE::sde(const Tensor& x, const Tensor& y, const Tensor& t) const {
  // f = a(t)·(y − x); for OUVE a = θ is a plain scalar in the reference.
  Tensor drift = bcast(drift_rate(t), x.dim()) * (y - x);
  return {drift, diffusion(t)};
}

std::pair<Tensor, Tensor> SDE::marginal_prob(const Tensor& x0, const Tensor& y, const Tensor& t) const {
  return {marginal_mean(x0, y, t), std(t)};
}

std::pair<Tensor, Tensor> SDE::discretize(const Tensor& x, const Tensor& y, const Tensor& t,
                                          const Tensor& stepsize) const {
  Tensor dt = stepsize.defined() && !fixed_stepsize() ? stepsize.to(torch::kFloat32) : scalar_f32(1.0 / double(N()));
  auto [drift, g] = sde(x, y, t);
  Tensor f = drift * dt;
  Tensor G = g * torch::sqrt(dt);
  return {f, G};
}

ReverseSDE SDE::reverse(ScoreFn score, bool probability_flow) const {
  return ReverseSDE(*this, std::move(score), probability_flow);
}

std::pair<Tensor, Tensor> ReverseSDE::sde(const Tensor& x, const Tensor& y, const Tensor& t) const {
  auto [drift, g] = sde_->sde(x, y, t);
  Tensor score = score_(x, y, t);
  Tensor score_drift = -bcast(g, x.dim()).pow(2) * score * (pf_ ? 0.5 : 1.0);
  Tensor diffusion = pf_ ? torch::zeros_like(g) : g;
  return {drift + score_drift, diffusion};
}

std::pair<Tensor, Tensor> ReverseSDE::discretize(const Tensor& x, const Tensor& y, const Tensor& t,
                                                 const Tensor& stepsize) const {
  auto [f, G] = sde_->discretize(x, y, t, stepsize);
  Tensor rev_f = f - bcast(G, x.dim()).pow(2) * score_(x, y, t) * (pf_ ? 0.5 : 1.0);
  Tensor rev_G = pf_ ? torch::zeros_like(G) : G;
  return {rev_f, rev_G};
}

// ---------------------------------------------------------------------------------------------
// OUVE
// ---------------------------------------------------------------------------------------------
OUVESDE::OUVESDE(OUVESDEOptions o) : options(o) {
  options.Validate();
  logsig = std::log(options.sigma_max() / options.sigma_min());
}

Tensor OUVESDE::drift_rate(const Tensor& t) const { return torch::full_like(t, options.theta()); }

Tensor OUVESDE::diffusion(const Tensor& t) const {
  Tensor sigma = options.sigma_min() * torch::pow(options.sigma_max() / options.sigma_min(), t);
  return sigma * std::sqrt(2 * logsig);
}

Tensor OUVESDE::marginal_mean(const Tensor& x0, const Tensor& y, const Tensor& t) const {
  Tensor e = bcast(torch::exp(-options.theta() * t), x0.dim());
  return e * x0 + (1 - e) * y;
}

Tensor OUVESDE::std(const Tensor& t) const {
  // Literal formula (exp(.) − 1, not expm1): the goldens contain its float32 cancellation near 0.
  const double smin = options.sigma_min(), theta = options.theta();
  return torch::sqrt((smin * smin * torch::exp(-2 * theta * t) * (torch::exp(2 * (theta + logsig) * t) - 1) * logsig) /
                     (theta + logsig));
}

std::pair<Tensor, Tensor> OUVESDE::mean_weights(const Tensor& t) const {
  Tensor e = torch::exp(-options.theta() * t);
  return {e, 1 - e};
}

Tensor OUVESDE::alpha(const Tensor& t) const { return torch::exp(-options.theta() * t); }

Tensor OUVESDE::prior_sampling(const Tensor& y, NoiseSource& noise) const {
  Tensor s = std(torch::ones({y.size(0)}, torch::kFloat32));
  return y + noise.randn_like(y) * bcast(s, y.dim());
}

// ---------------------------------------------------------------------------------------------
// OUVP (storm; argument order there is (x, t, y))
// ---------------------------------------------------------------------------------------------
OUVPSDE::OUVPSDE(OUVPSDEOptions o) : options(o) { options.Validate(); }

Tensor OUVPSDE::beta(const Tensor& t) const {
  return options.beta_min() + t * (options.beta_max() - options.beta_min());
}
Tensor OUVPSDE::drift_rate(const Tensor& t) const { return 0.5 * options.stiffness() * beta(t); }
Tensor OUVPSDE::diffusion(const Tensor& t) const { return torch::sqrt(beta(t)); }

std::pair<Tensor, Tensor> OUVPSDE::sde(const Tensor& x, const Tensor& y, const Tensor& t) const {
  Tensor drift = 0.5 * options.stiffness() * bcast(beta(t), x.dim()) * (y - x);
  return {drift, diffusion(t)};
}

Tensor OUVPSDE::alpha(const Tensor& t) const {
  const double b0 = options.beta_min(), b1 = options.beta_max(), s = options.stiffness();
  return torch::exp(-0.25 * s * t * (t * (b1 - b0) + 2 * b0));
}

Tensor OUVPSDE::marginal_mean(const Tensor& x0, const Tensor& y, const Tensor& t) const {
  Tensor e = bcast(alpha(t), x0.dim());
  return y + e * (x0 - y);
}

Tensor OUVPSDE::std(const Tensor& t) const {
  const double b0 = options.beta_min(), b1 = options.beta_max(), s = options.stiffness();
  return (1 - torch::exp(-0.5 * s * t * (t * (b1 - b0) + 2 * b0))) / s;
}

std::pair<Tensor, Tensor> OUVPSDE::mean_weights(const Tensor& t) const {
  Tensor e = alpha(t);
  return {e, 1 - e};
}

Tensor OUVPSDE::prior_sampling(const Tensor& y, NoiseSource& noise) const {
  Tensor s = std(torch::ones({y.size(0)}, torch::kFloat32));
  return y + noise.randn_like(y) * bcast(s, y.dim());
}

// ---------------------------------------------------------------------------------------------
// SB-VE
// ---------------------------------------------------------------------------------------------
SBVESDE::SBVESDE(SBVESDEOptions o) : options(o) { options.Validate(); }

Tensor SBVESDE::drift_rate(const Tensor& t) const { return torch::zeros_like(t); }

Tensor SBVESDE::diffusion(const Tensor& t) const { return std::sqrt(options.c()) * torch::pow(options.k(), t); }

std::pair<Tensor, Tensor> SBVESDE::sde(const Tensor& x, const Tensor& y, const Tensor& t) const {
  // The reference's drift is the Python float 0.0.
  return {torch::zeros({}, torch::kFloat32), diffusion(t)};
}

SBSchedule SBVESDE::sigmas_alphas(const Tensor& t) const {
  const double k = options.k(), c = options.c(), eps = options.eps();
  SBSchedule s;
  s.alpha_t = torch::ones_like(t);
  s.alpha_T = torch::ones_like(t);
  s.alpha_bart = s.alpha_t / (s.alpha_T + eps);
  s.sigma_T = scalar_f32(std::sqrt(c * (std::pow(k, 2 * T()) - 1) / (2 * std::log(k))));
  s.sigma_t = torch::sqrt(c * (torch::pow(k, 2 * t) - 1) / (2 * std::log(k)));
  // σ_t(T) is σ_T by definition; float32 pow may round the two differently by one ulp, which
  // would turn σ̄_T = √ε = 1e-4 into ~5e-4 and derail the SB samplers' first step.
  s.sigma_t = torch::where(t == T(), s.sigma_T, s.sigma_t);
  s.sigma_bart = torch::sqrt(s.sigma_T.pow(2) - s.sigma_t.pow(2) + eps);
  return s;
}

std::pair<Tensor, Tensor> SBVESDE::mean_weights(const Tensor& t) const {
  SBSchedule s = sigmas_alphas(t);
  const double eps = options.eps();
  Tensor wx = s.alpha_t * s.sigma_bart.pow(2) / (s.sigma_T.pow(2) + eps);
  Tensor wy = s.alpha_bart * s.sigma_t.pow(2) / (s.sigma_T.pow(2) + eps);
  return {wx, wy};
}

Tensor SBVESDE::marginal_mean(const Tensor& x0, const Tensor& y, const Tensor& t) const {
  auto [wx, wy] = mean_weights(t);
  return bcast(wx, x0.dim()) * x0 + bcast(wy, x0.dim()) * y;
}

Tensor SBVESDE::std(const Tensor& t) const {
  SBSchedule s = sigmas_alphas(t);
  return s.alpha_t * s.sigma_bart * s.sigma_t / (s.sigma_T + options.eps());
}

Tensor SBVESDE::alpha(const Tensor& t) const { return torch::ones_like(t); }

Tensor SBVESDE::prior_sampling(const Tensor& y, NoiseSource&) const { return y.clone(); }

// ---------------------------------------------------------------------------------------------
namespace {
constexpr names::Entry<SdeKind> kSdeKinds[] = {
    {SdeKind::ouve, "ouve"}, {SdeKind::ouvp, "ouvp"}, {SdeKind::sbve, "sbve"}};
}  // namespace

std::string to_string(SdeKind kind) { return names::name_of(kSdeKinds, kind, "SdeKind"); }

SdeKind sde_kind_from_string(const std::string& name) {
  return names::parse(kSdeKinds, name, "sde_kind_from_string", "sde",
                      {{SdeKind::ouve, "ouvesde"}, {SdeKind::ouvp, "ouvpsde"}, {SdeKind::sbve, "sbvesde"}});
}

std::shared_ptr<SDE> make_sde(SdeKind kind, const std::map<std::string, double>& kw) {
  auto get = [&](const char* key, double fallback) {
    auto it = kw.find(key);
    return it == kw.end() ? fallback : it->second;
  };
  for (const auto& [key, v] : kw) {
    static const std::set<std::string> known = {"theta", "sigma_min", "sigma_max", "N", "beta_min", "beta_max",
                                                "stiffness", "k", "c", "eps"};
    TORCH_CHECK(known.count(key), "sepmech::diffusion::make_sde: unknown keyword '", key, "'");
  }
  switch (kind) {
    case SdeKind::ouve: {
      OUVESDEOptions o;
      return std::make_shared<OUVESDE>(o.theta(get("theta", o.theta()))
                                            .sigma_min(get("sigma_min", o.sigma_min()))
                                            .sigma_max(get("sigma_max", o.sigma_max()))
                                            .N(static_cast<int64_t>(get("N", double(o.N())))));
    }
    case SdeKind::ouvp: {
      OUVPSDEOptions o;
      return std::make_shared<OUVPSDE>(o.beta_min(get("beta_min", o.beta_min()))
                                           .beta_max(get("beta_max", o.beta_max()))
                                           .stiffness(get("stiffness", o.stiffness()))
                                           .N(static_cast<int64_t>(get("N", double(o.N())))));
    }
    case SdeKind::sbve: {
      SBVESDEOptions o;
      return std::make_shared<SBVESDE>(o.k(get("k", o.k()))
                                           .c(get("c", o.c()))
                                           .eps(get("eps", o.eps()))
                                           .N(static_cast<int64_t>(get("N", double(o.N())))));
    }
  }
  TORCH_CHECK(false, "sepmech::diffusion::make_sde: invalid SdeKind ", static_cast<int>(kind));
}

}  // namespace sepmech::diffusion
