// Predictors, correctors, the PC sampler, the probability-flow ODE sampler (RK45) and the
// Schrödinger-bridge samplers (spec §5).
#include "sepmech/diffusion/sampling.h"

#include <cmath>
#include <complex>
#include <limits>
#include <sstream>

#include "diffusion/kernels.h"
#include "diffusion/names.h"

namespace sepmech::diffusion {

using torch::Tensor;

namespace {

using kernels::cfptr;
using kernels::fptr;

Tensor b4(const Tensor& v, int64_t dim) {
  std::vector<int64_t> shape(dim, 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}

void check_state(const char* fn, const Tensor& x, const Tensor& y) {
  TORCH_CHECK(x.defined() && y.defined(), "sepmech::diffusion::", fn, ": x and y must be defined");
  TORCH_CHECK(x.scalar_type() == torch::kComplexFloat, "sepmech::diffusion::", fn, ": x must be complex64, got ",
              x.scalar_type());
  TORCH_CHECK(y.scalar_type() == torch::kComplexFloat, "sepmech::diffusion::", fn,
              ": y must be complex64 (the dtype of x), got ", y.scalar_type());
  TORCH_CHECK(x.dim() == 4, "sepmech::diffusion::", fn, ": x must be [B, C, F, T], got ", x.sizes());
  TORCH_CHECK(y.sizes() == x.sizes(), "sepmech::diffusion::", fn, ": y must have the shape of x ", x.sizes(),
              ", got ", y.sizes());
  TORCH_CHECK(x.device().is_cpu() && y.device().is_cpu(), "sepmech::diffusion::", fn, ": tensors must be on the CPU");
  // A NaN/inf input would otherwise surface later as "the score function returned NaN".
  TORCH_CHECK(kernels::all_finite(cfptr(y.contiguous()), 2 * y.numel()), "sepmech::diffusion::", fn,
              ": y contains NaN or inf");
  TORCH_CHECK(x.is_same(y) || kernels::all_finite(cfptr(x.contiguous()), 2 * x.numel()), "sepmech::diffusion::", fn,
              ": x contains NaN or inf");
}

void check_t(const SDE& sde, const Tensor& t, int64_t B, const char* fn) {
  sde.check_time(t, "t");
  TORCH_CHECK(t.size(0) == B, "sepmech::diffusion::", fn, ": t must have B = ", B, " entries, got ", t.size(0));
}

// Calls the score function and checks what comes back: shape, dtype, finiteness.
Tensor eval_score(const ScoreFn& score, const Tensor& x, const Tensor& y, const Tensor& t, const char* who) {
  Tensor s = score(x, y, t);
  TORCH_CHECK(s.defined(), "sepmech::diffusion::", who, ": the score function returned an undefined tensor");
  TORCH_CHECK(s.sizes() == x.sizes(), "sepmech::diffusion::", who, ": the score function must return the shape of x ",
              x.sizes(), ", got ", s.sizes());
  TORCH_CHECK(s.scalar_type() == torch::kComplexFloat, "sepmech::diffusion::", who,
              ": the score function must return complex64, got ", s.scalar_type());
  s = s.contiguous();
  TORCH_CHECK(kernels::all_finite(cfptr(s), 2 * s.numel()), "sepmech::diffusion::", who,
              ": the score function returned NaN or inf at t = ", t[0].item<double>());
  return s;
}

Tensor as_f32(const Tensor& v) { return v.to(torch::kFloat32).contiguous(); }

// Per-step coefficients [B] of a predictor update (computed once per step of a sampler).
struct PredictorCoef {
  Tensor a, g, G;  // drift rate, diffusion, diffusion·√Δ
  float dt = 0;
  int64_t N = 0;  // the step count in effect (the reference's sde.N, which get_pc_sampler(N=...) overrides)
};

PredictorCoef predictor_coef(PredictorType type, const SDE& sde, const Tensor& t, const Tensor& stepsize, int64_t N) {
  PredictorCoef c;
  c.N = N;
  c.a = as_f32(sde.drift_rate(t));
  if (type == PredictorType::reverse_diffusion) {
    Tensor dt = stepsize.defined() && !sde.fixed_stepsize() ? stepsize.to(torch::kFloat32)
                                                            : torch::tensor(static_cast<float>(1.0 / double(N)));
    TORCH_CHECK(dt.numel() == 1, "sepmech::diffusion::predictor_step: stepsize must be a scalar, got ", dt.sizes());
    c.dt = dt.item<float>();
    TORCH_CHECK(std::isfinite(c.dt) && c.dt > 0, "sepmech::diffusion::predictor_step: stepsize must be > 0, got ",
                c.dt);
    c.G = as_f32(sde.diffusion(t) * torch::sqrt(dt.reshape({})));
  } else {
    c.g = as_f32(sde.diffusion(t));
  }
  return c;
}

// Buffers: xm and xo must be complex64 contiguous, shape of x.
void predictor_into(PredictorType type, const SDE& sde, const ScoreFn& score, const Tensor& x, const Tensor& y,
                    const Tensor& t, const PredictorCoef& c, NoiseSource& noise, Tensor& xm, Tensor& xo) {
  const int64_t B = x.size(0), n = 2 * (x.numel() / B);
  if (type == PredictorType::reverse_diffusion) {
    Tensor s = eval_score(score, x, y, t, "reverse_diffusion predictor");
    Tensor z = noise.randn_like(x);
    kernels::reverse_diffusion(cfptr(x), cfptr(y), cfptr(s), cfptr(z), fptr(xm), fptr(xo), B, n,
                               c.a.data_ptr<float>(), c.dt, c.G.data_ptr<float>(), 1.0f);
  } else {  // Euler–Maruyama: dt = −1/N whatever the grid
    const double dt = -1.0 / double(c.N);
    Tensor s = eval_score(score, x, y, t, "euler_maruyama predictor");
    Tensor z = noise.randn_like(x);
    kernels::euler_maruyama(cfptr(x), cfptr(y), cfptr(s), cfptr(z), fptr(xm), fptr(xo), B, n, c.a.data_ptr<float>(),
                            c.g.data_ptr<float>(), static_cast<float>(dt), static_cast<float>(std::sqrt(-dt)));
  }
}

// ALD step sizes ε_b = 2 (r σ_b)² and √(2ε_b) at t (fixed within a step).
std::pair<Tensor, Tensor> ald_coef(const SDE& sde, const Tensor& t, double snr) {
  Tensor eps = as_f32((snr * sde.std(t)).pow(2) * 2);
  return {eps, as_f32(torch::sqrt(eps * 2))};
}

// One corrector iteration from x into (xm, xo); `ald` holds ald_coef for the annealed corrector.
void corrector_iter(CorrectorType type, const ScoreFn& score, const Tensor& x, const Tensor& y, const Tensor& t,
                    double snr, const std::pair<Tensor, Tensor>& ald, NoiseSource& noise, Tensor& xm, Tensor& xo) {
  const int64_t B = x.size(0), n = 2 * (x.numel() / B);
  Tensor s = eval_score(score, x, y, t, type == CorrectorType::langevin ? "langevin corrector" : "ald corrector");
  Tensor z = noise.randn_like(x);
  Tensor eps, sq;
  if (type == CorrectorType::langevin) {
    // ε = 2 (r ‖z‖/‖s‖)², norms averaged over the batch: one scalar for the whole batch.
    std::vector<double> ss(B), zz(B);
    kernels::sum_squares(cfptr(s), B, n, ss.data());
    kernels::sum_squares(cfptr(z), B, n, zz.data());
    double gn = 0, nn = 0;
    for (int64_t b = 0; b < B; ++b) {
      gn += std::sqrt(ss[b]);
      nn += std::sqrt(zz[b]);
    }
    gn /= double(B);
    nn /= double(B);
    TORCH_CHECK(gn > 0, "sepmech::diffusion::langevin corrector: the score is identically zero at t = ",
                t[0].item<double>(), ", the Langevin step size 2(r|z|/|s|)^2 is undefined");
    const float g32 = static_cast<float>(gn), n32 = static_cast<float>(nn);
    const float step = std::pow(static_cast<float>(snr) * n32 / g32, 2.0f) * 2.0f;
    eps = torch::full({B}, step, torch::kFloat32);
    sq = torch::full({B}, std::sqrt(step * 2.0f), torch::kFloat32);
  } else {
    eps = ald.first;
    sq = ald.second;
  }
  kernels::langevin(cfptr(x), cfptr(s), cfptr(z), fptr(xm), fptr(xo), B, n, eps.data_ptr<float>(),
                    sq.data_ptr<float>());
}

}  // namespace

namespace {
constexpr names::Entry<PredictorType> kPredictors[] = {{PredictorType::euler_maruyama, "euler_maruyama"},
                                                       {PredictorType::reverse_diffusion, "reverse_diffusion"},
                                                       {PredictorType::none, "none"}};
constexpr names::Entry<CorrectorType> kCorrectors[] = {
    {CorrectorType::langevin, "langevin"}, {CorrectorType::annealed_langevin, "ald"}, {CorrectorType::none, "none"}};
constexpr names::Entry<SBSamplerType> kSBSamplerTypes[] = {{SBSamplerType::ode, "ode"}, {SBSamplerType::sde, "sde"}};
}  // namespace

std::string to_string(PredictorType type) { return names::name_of(kPredictors, type, "PredictorType"); }

PredictorType predictor_type_from_string(const std::string& name) {
  return names::parse(kPredictors, name, "predictor_type_from_string", "predictor",
                      {{PredictorType::euler_maruyama, "em"}, {PredictorType::reverse_diffusion, "rd"}});
}

std::string to_string(CorrectorType type) { return names::name_of(kCorrectors, type, "CorrectorType"); }

CorrectorType corrector_type_from_string(const std::string& name) {
  return names::parse(kCorrectors, name, "corrector_type_from_string", "corrector",
                      {{CorrectorType::annealed_langevin, "annealed_langevin"}});
}

std::string to_string(SBSamplerType type) { return names::name_of(kSBSamplerTypes, type, "SBSamplerType"); }

SBSamplerType sb_sampler_type_from_string(const std::string& name) {
  return names::parse(kSBSamplerTypes, name, "sb_sampler_type_from_string", "sampler_type");
}

StepResult predictor_step(PredictorType type, const SDE& sde, const ScoreFn& score, const Tensor& x0, const Tensor& y0,
                          const Tensor& t, const Tensor& stepsize, NoiseSource& noise) {
  check_state("predictor_step", x0, y0);
  check_t(sde, t, x0.size(0), "predictor_step");
  if (type == PredictorType::none) return {x0, x0};
  Tensor x = x0.contiguous(), y = y0.contiguous();
  Tensor xm = torch::empty_like(x), xo = torch::empty_like(x);
  predictor_into(type, sde, score, x, y, t, predictor_coef(type, sde, t, stepsize, sde.N()), noise, xm, xo);
  return {xo, xm};
}

StepResult corrector_step(CorrectorType type, const SDE& sde, const ScoreFn& score, const Tensor& x0, const Tensor& y0,
                          const Tensor& t, double snr, int64_t n_steps, NoiseSource& noise) {
  check_state("corrector_step", x0, y0);
  check_t(sde, t, x0.size(0), "corrector_step");
  TORCH_CHECK(n_steps >= 0, "sepmech::diffusion::corrector_step: n_steps must be >= 0, got ", n_steps);
  TORCH_CHECK(std::isfinite(snr) && snr > 0, "sepmech::diffusion::corrector_step: snr must be > 0, got ", snr);
  if (type == CorrectorType::none || n_steps == 0) return {x0, x0};
  Tensor x = x0.contiguous(), y = y0.contiguous();
  Tensor xm = torch::empty_like(x), xo;
  const auto ald = type == CorrectorType::annealed_langevin ? ald_coef(sde, t, snr) : std::pair<Tensor, Tensor>();
  for (int64_t i = 0; i < n_steps; ++i) {
    xo = torch::empty_like(x);
    corrector_iter(type, score, x, y, t, snr, ald, noise, xm, xo);
    x = xo;
  }
  return {x, xm};
}

// ---------------------------------------------------------------------------------------------
// PC sampler
// ---------------------------------------------------------------------------------------------
void PCSamplerOptions::Validate() const {
  TORCH_CHECK(std::isfinite(snr()) && snr() > 0, "sepmech::diffusion::PCSamplerOptions: snr must be > 0, got ", snr());
  TORCH_CHECK(corrector_steps() >= 0, "sepmech::diffusion::PCSamplerOptions: corrector_steps must be >= 0, got ",
              corrector_steps());
  TORCH_CHECK(std::isfinite(eps()) && eps() > 0 && eps() < 1,
              "sepmech::diffusion::PCSamplerOptions: eps must be in (0, 1), got ", eps());
  TORCH_CHECK(N() >= 0, "sepmech::diffusion::PCSamplerOptions: N must be >= 1 (or 0 for sde.N), got ", N());
}

std::string PCSamplerOptions::ToString() const {
  std::ostringstream os;
  os << "PCSampler(predictor=" << to_string(predictor()) << ", corrector=" << to_string(corrector())
     << ", snr=" << snr()
     << ", corrector_steps=" << corrector_steps() << ", denoise=" << denoise() << ", eps=" << eps() << ", N=" << N()
     << ", legacy_stepsize=" << legacy_stepsize() << ")";
  return os.str();
}

SampleResult pc_sample(const SDE& sde, const ScoreFn& score, const Tensor& y0, NoiseSource& noise,
                       const PCSamplerOptions& o, const ProgressFn& progress, PCTrace* trace) {
  o.Validate();
  check_state("pc_sample", y0, y0);
  const PredictorType pt = o.predictor();
  const CorrectorType ct = o.corrector();
  const int64_t N = o.N() > 0 ? o.N() : sde.N();
  const int64_t n_corr = ct == CorrectorType::none ? 0 : o.corrector_steps();
  Tensor y = y0.contiguous();
  const int64_t B = y.size(0);

  Tensor x = sde.prior_sampling(y, noise).contiguous();
  Tensor timesteps = torch::linspace(sde.T(), o.eps(), N, torch::kFloat32);
  const float* ts = timesteps.data_ptr<float>();
  if (trace) trace->timesteps = timesteps;
  // Ping-pong buffers: the hot loop allocates nothing but the noise draws.
  Tensor xm = torch::empty_like(x), xn = torch::empty_like(x), x_mean = x;
  for (int64_t i = 0; i < N; ++i) {
    Tensor vec_t = torch::full({B}, ts[i], torch::kFloat32);
    Tensor stepsize = o.legacy_stepsize() ? torch::tensor(1.0f / float(N))
                      : i + 1 < N         ? torch::tensor(ts[i] - ts[i + 1])
                                          : torch::tensor(ts[N - 1]);
    if (n_corr > 0) {
      const auto ald = ct == CorrectorType::annealed_langevin ? ald_coef(sde, vec_t, o.snr())
                                                               : std::pair<Tensor, Tensor>();
      for (int64_t k = 0; k < n_corr; ++k) {
        corrector_iter(ct, score, x, y, vec_t, o.snr(), ald, noise, xm, xn);
        std::swap(x, xn);
      }
    }
    if (pt == PredictorType::none) {
      x_mean = x;
    } else {
      predictor_into(pt, sde, score, x, y, vec_t, predictor_coef(pt, sde, vec_t, stepsize, N), noise, xm, xn);
      std::swap(x, xn);
      x_mean = xm;
    }
    if (trace) {
      trace->x.push_back(x.clone());
      trace->x_mean.push_back(x_mean.clone());
    }
    if (progress) progress(i, N);
  }
  Tensor result = (o.denoise() ? x_mean : x).clone();
  TORCH_CHECK(kernels::all_finite(cfptr(result), 2 * result.numel()),
              "sepmech::diffusion::pc_sample: the sample contains NaN or inf");
  const int64_t nfe = N * (n_corr + 1);
  return {result, nfe};
}

// ---------------------------------------------------------------------------------------------
// Probability-flow ODE sampler: adaptive Dormand–Prince 5(4) with scipy's RK45 step control
// ---------------------------------------------------------------------------------------------
void ODESamplerOptions::Validate() const {
  TORCH_CHECK(std::isfinite(rtol()) && rtol() > 0, "sepmech::diffusion::ODESamplerOptions: rtol must be > 0, got ",
              rtol());
  TORCH_CHECK(std::isfinite(atol()) && atol() > 0, "sepmech::diffusion::ODESamplerOptions: atol must be > 0, got ",
              atol());
  TORCH_CHECK(std::isfinite(eps()) && eps() > 0 && eps() < 1,
              "sepmech::diffusion::ODESamplerOptions: eps must be in (0, 1), got ", eps());
  TORCH_CHECK(max_nfe() > 0, "sepmech::diffusion::ODESamplerOptions: max_nfe must be > 0, got ", max_nfe());
}

namespace {
using cd = std::complex<double>;

// RMS norm of v / scale (scipy's `norm(x) = ‖x‖ / √size`).
double rms_scaled(const std::vector<cd>& v, const std::vector<double>& scale) {
  double acc = 0;
  for (size_t i = 0; i < v.size(); ++i) acc += std::norm(v[i] / scale[i]);
  return std::sqrt(acc / double(v.size()));
}
}  // namespace

SampleResult ode_sample(const SDE& sde, const ScoreFn& score, const Tensor& y0, NoiseSource& noise,
                        const ODESamplerOptions& o, const ProgressFn& progress) {
  o.Validate();
  check_state("ode_sample", y0, y0);
  Tensor y = y0.contiguous();
  const int64_t B = y.size(0);
  const auto shape = y.sizes().vec();
  ReverseSDE rsde = sde.reverse(
      [&](const Tensor& x, const Tensor& yy, const Tensor& t) { return eval_score(score, x, yy, t, "ode_sample"); },
      /*probability_flow=*/true);

  int64_t nfe = 0;
  // f(t, state): the state is cast to complex64 and t to a float32 vector, like the reference.
  auto fun = [&](double t, const std::vector<cd>& state) {
    TORCH_CHECK(nfe < o.max_nfe(), "sepmech::diffusion::ode_sample: no convergence within max_nfe = ", o.max_nfe(),
                " evaluations");
    ++nfe;
    Tensor xs = torch::empty(shape, torch::kComplexFloat);
    auto* p = xs.data_ptr<c10::complex<float>>();
    for (size_t i = 0; i < state.size(); ++i)
      p[i] = c10::complex<float>(static_cast<float>(state[i].real()), static_cast<float>(state[i].imag()));
    Tensor vec_t = torch::ones({B}, torch::kFloat32) * t;
    Tensor drift = rsde.sde(xs, y, vec_t).first.contiguous();
    const auto* d = drift.data_ptr<c10::complex<float>>();
    std::vector<cd> out(state.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = cd(d[i].real(), d[i].imag());
    return out;
  };

  Tensor xT = sde.prior_sampling(y, noise).contiguous();
  const int64_t M = xT.numel();
  std::vector<cd> state(M);
  {
    const auto* p = xT.data_ptr<c10::complex<float>>();
    for (int64_t i = 0; i < M; ++i) state[i] = cd(p[i].real(), p[i].imag());
  }

  // Dormand–Prince tableau (scipy.integrate.RK45).
  static const double C[6] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1};
  static const double A[6][5] = {{0, 0, 0, 0, 0},
                                 {1.0 / 5, 0, 0, 0, 0},
                                 {3.0 / 40, 9.0 / 40, 0, 0, 0},
                                 {44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0},
                                 {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0},
                                 {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656}};
  static const double Bw[6] = {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84};
  static const double E[7] = {-71.0 / 57600, 0, 71.0 / 16695, -71.0 / 1920, 17253.0 / 339200, -22.0 / 525, 1.0 / 40};
  const double rtol = o.rtol(), atol = o.atol();
  const double t0 = sde.T(), t_bound = o.eps(), direction = t_bound > t0 ? 1.0 : -1.0;
  const double SAFETY = 0.9, MIN_FACTOR = 0.2, MAX_FACTOR = 10, error_exponent = -1.0 / 5.0;

  double t = t0;
  std::vector<cd> f = fun(t, state);
  // Initial step (scipy select_initial_step, order 4 error estimator → order + 1 = 5).
  double h_abs;
  {
    std::vector<double> scale(M);
    for (int64_t i = 0; i < M; ++i) scale[i] = atol + std::abs(state[i]) * rtol;
    const double d0 = rms_scaled(state, scale), d1 = rms_scaled(f, scale);
    const double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    std::vector<cd> y1(M);
    for (int64_t i = 0; i < M; ++i) y1[i] = state[i] + h0 * direction * f[i];
    std::vector<cd> f1 = fun(t + h0 * direction, y1);
    std::vector<cd> df(M);
    for (int64_t i = 0; i < M; ++i) df[i] = f1[i] - f[i];
    const double d2 = rms_scaled(df, scale) / h0;
    const double h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? std::max(1e-6, h0 * 1e-3)
                                                   : std::pow(0.01 / std::max(d1, d2), 1.0 / 5.0);
    h_abs = std::min({100 * h0, h1, std::abs(t_bound - t0)});
  }

  std::vector<std::vector<cd>> K(7, std::vector<cd>(M));
  std::vector<cd> y_new(M), tmp(M), err(M);
  std::vector<double> scale(M);
  int64_t steps = 0;
  while (direction * (t - t_bound) < 0) {
    const double min_step = 10 * std::abs(std::nextafter(t, direction * std::numeric_limits<double>::infinity()) - t);
    if (h_abs < min_step) h_abs = min_step;
    bool accepted = false, rejected = false;
    double t_new = t, factor;
    std::vector<cd> f_new;
    while (!accepted) {
      TORCH_CHECK(h_abs >= min_step, "sepmech::diffusion::ode_sample: required step size is below the minimum at t = ",
                  t);
      double h = h_abs * direction;
      t_new = t + h;
      if (direction * (t_new - t_bound) > 0) t_new = t_bound;
      h = t_new - t;
      h_abs = std::abs(h);
      K[0] = f;
      for (int s = 1; s < 6; ++s) {
        for (int64_t i = 0; i < M; ++i) {
          cd dy = 0;
          for (int j = 0; j < s; ++j) dy += K[j][i] * A[s][j];
          tmp[i] = state[i] + dy * h;
        }
        K[s] = fun(t + C[s] * h, tmp);
      }
      for (int64_t i = 0; i < M; ++i) {
        cd acc = 0;
        for (int j = 0; j < 6; ++j) acc += K[j][i] * Bw[j];
        y_new[i] = state[i] + h * acc;
      }
      f_new = fun(t + h, y_new);
      K[6] = f_new;
      for (int64_t i = 0; i < M; ++i) {
        cd acc = 0;
        for (int j = 0; j < 7; ++j) acc += K[j][i] * E[j];
        err[i] = acc * h;
        scale[i] = atol + std::max(std::abs(state[i]), std::abs(y_new[i])) * rtol;
      }
      const double error_norm = rms_scaled(err, scale);
      if (error_norm < 1) {
        factor = error_norm == 0 ? MAX_FACTOR : std::min(MAX_FACTOR, SAFETY * std::pow(error_norm, error_exponent));
        if (rejected) factor = std::min(1.0, factor);
        h_abs *= factor;
        accepted = true;
      } else {
        h_abs *= std::max(MIN_FACTOR, SAFETY * std::pow(error_norm, error_exponent));
        rejected = true;
      }
    }
    t = t_new;
    state.swap(y_new);
    f = std::move(f_new);
    if (progress) progress(steps, -1);
    ++steps;
  }

  Tensor x = torch::empty(shape, torch::kComplexFloat);
  {
    auto* p = x.data_ptr<c10::complex<float>>();
    for (int64_t i = 0; i < M; ++i)
      p[i] = c10::complex<float>(static_cast<float>(state[i].real()), static_cast<float>(state[i].imag()));
  }
  if (o.denoise()) {
    // One noise-free reverse-diffusion step of size eps from t = eps to 0.
    const int64_t n = 2 * (M / B);
    Tensor vec_t = torch::full({B}, static_cast<float>(o.eps()), torch::kFloat32);
    Tensor dt = torch::tensor(static_cast<float>(o.eps()));
    Tensor a = as_f32(sde.drift_rate(vec_t));
    Tensor G = as_f32(sde.diffusion(vec_t) * torch::sqrt(dt));
    Tensor s = eval_score(score, x, y, vec_t, "ode_sample denoise");
    Tensor xm = torch::empty_like(x);
    kernels::reverse_diffusion(cfptr(x), cfptr(y), cfptr(s), nullptr, fptr(xm), nullptr, B, n, a.data_ptr<float>(),
                               dt.item<float>(), G.data_ptr<float>(), 1.0f);
    x = xm;
    ++nfe;
  }
  TORCH_CHECK(kernels::all_finite(cfptr(x), 2 * x.numel()), "sepmech::diffusion::ode_sample: the sample contains NaN or inf");
  return {x, nfe};
}

// ---------------------------------------------------------------------------------------------
// Schrödinger-bridge samplers
// ---------------------------------------------------------------------------------------------
void SBSamplerOptions::Validate() const {
  TORCH_CHECK(std::isfinite(eps()) && eps() > 0 && eps() < 1,
              "sepmech::diffusion::SBSamplerOptions: eps must be in (0, 1), got ", eps());
  TORCH_CHECK(N() >= 0, "sepmech::diffusion::SBSamplerOptions: N must be >= 1 (or 0 for sde.N), got ", N());
}

SampleResult sb_sample(const SBVESDE& sde, const DataPredictionFn& model, const Tensor& y0, NoiseSource& noise,
                       const SBSamplerOptions& o, const ProgressFn& progress, std::vector<Tensor>* model_times) {
  o.Validate();
  check_state("sb_sample", y0, y0);
  const bool ode = o.sampler_type() == SBSamplerType::ode;
  const int64_t N = o.N() > 0 ? o.N() : sde.N();
  const double eps_reg = sde.options.eps();
  Tensor y = y0.contiguous();
  Tensor xt = ode ? y.clone() : y.index({torch::indexing::Slice(), torch::indexing::Slice(0, 1)}).contiguous();
  const int64_t B = xt.size(0);
  Tensor time_steps = torch::linspace(sde.T(), o.eps(), N + 1, torch::kFloat32);
  const float* ts = time_steps.data_ptr<float>();
  SBSchedule prev = sde.sigmas_alphas(torch::full({B}, ts[0], torch::kFloat32));
  for (int64_t j = 1; j <= N; ++j) {
    Tensor time = torch::full({B}, ts[j], torch::kFloat32);
    SBSchedule cur = sde.sigmas_alphas(time);
    if (model_times) model_times->push_back(time);
    Tensor est = model(xt, y, time);
    TORCH_CHECK(est.defined() && est.sizes() == xt.sizes() && est.scalar_type() == torch::kComplexFloat,
                "sepmech::diffusion::sb_sample: the model must return complex64 ", xt.sizes(), ", got ",
                est.defined() ? c10::str(est.scalar_type(), " ", est.sizes()) : std::string("undefined"));
    TORCH_CHECK(torch::isfinite(est).all().item<bool>(),
                "sepmech::diffusion::sb_sample: the model returned NaN or inf at t = ", ts[j]);
    const int64_t d = xt.dim();
    if (ode) {
      Tensor w_prev = cur.alpha_t * cur.sigma_t * cur.sigma_bart /
                      (prev.alpha_t * prev.sigma_t * prev.sigma_bart + eps_reg);
      Tensor w_est = cur.alpha_t / (cur.sigma_T.pow(2) + eps_reg) *
                     (cur.sigma_bart.pow(2) - prev.sigma_bart * cur.sigma_t * cur.sigma_bart / (prev.sigma_t + eps_reg));
      Tensor w_y = cur.alpha_t / (cur.alpha_T * (cur.sigma_T.pow(2) + eps_reg)) *
                   (cur.sigma_t.pow(2) - prev.sigma_t * cur.sigma_t * cur.sigma_bart / (prev.sigma_bart + eps_reg));
      xt = b4(w_prev, d) * xt + b4(w_est, d) * est + b4(w_y, d) * y;
    } else {
      Tensor w_prev = cur.alpha_t * cur.sigma_t.pow(2) / (prev.alpha_t * prev.sigma_t.pow(2) + eps_reg);
      Tensor tmp = 1 - cur.sigma_t.pow(2) / (prev.sigma_t.pow(2) + eps_reg);
      Tensor w_est = cur.alpha_t * tmp;
      Tensor w_z = cur.alpha_t * cur.sigma_t * torch::sqrt(tmp);
      Tensor z = noise.randn_like(xt);  // drawn on the last step too (then unused), like the reference
      if (j == N) w_z = torch::zeros_like(w_z);
      xt = b4(w_prev, d) * xt + b4(w_est, d) * est + b4(w_z, d) * z;
    }
    prev = cur;
    if (progress) progress(j - 1, N);
  }
  return {xt, o.n_steps_returned()};
}

}  // namespace sepmech::diffusion
