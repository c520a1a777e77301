// sepmech sample: runs the SGMSE+ reverse-time samplers end to end on built-in data whose
// exact score is known (clean spectrogram bins x0 ~ CN(mu0, s0^2), the closed-form Gaussian
// oracle of docs/diffusion.md §6), shows a progress bar, and checks the result against the exact
// answer: the PC sampler's output law (affine recursion) or the probability-flow ODE's closed
// form. Exit code 1 if the check fails, so the command doubles as an end-to-end test.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>

#include <unistd.h>

#include "command.h"
#include "sepmech/diffusion/all.h"

namespace {

namespace sd = sepmech::diffusion;

// A one-line progress bar on stderr, redrawn in place; total < 0 means "unknown" (adaptive ODE).
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void operator()(int64_t step, int64_t total) {
    if (!enabled_) return;
    const int width = 30;
    if (total > 0) {
      int filled = static_cast<int>(width * (step + 1) / total);
      std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld", filled, "##############################", width - filled, "",
                   static_cast<long long>(step + 1), static_cast<long long>(total));
    } else {
      std::fprintf(stderr, "\r[ODE] %lld function evaluations", static_cast<long long>(step + 1));
    }
    std::fflush(stderr);
  }
  void finish() {
    if (enabled_) std::fprintf(stderr, "\n");
  }

 private:
  bool enabled_;
};

// A CLI11 check from a library name parser: on failure, the parser's message (it lists the valid
// names), so `--predictor ddim` is refused before anything runs.
template <typename E>
CLI::Validator parsed_by(E (*parse)(const std::string&), std::string names) {
  return CLI::Validator(
      [parse](std::string& s) {
        try {
          parse(s);
          return std::string();
        } catch (const c10::Error& e) {
          return std::string(e.what_without_backtrace());
        }
      },
      std::move(names));
}

// The options as typed on the command line; run() parses the names once.
struct Args {
  std::string sampler = "pc", predictor = "reverse_diffusion", corrector = "ald";
  int64_t N = 30, corrector_steps = 1, size = 256;
  double snr = 0.5, s0sq = 0.2;
  uint64_t seed = 0;
  bool denoise = true, quiet = false;
};

int run(const Args& a) {
  const sd::PredictorType predictor = sd::predictor_type_from_string(a.predictor);
  const sd::CorrectorType corrector = sd::corrector_type_from_string(a.corrector);
  sd::OUVESDE sde(sd::OUVESDEOptions().N(a.N));
  sd::GaussianOracle oracle{{0.1, -0.05}, a.s0sq};
  const c10::complex<double> y0(0.3, -0.2);
  torch::Tensor y = torch::full({1, 1, a.size, a.size}, c10::complex<float>(y0), torch::kComplexFloat);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(a.seed);
  sd::NoiseSource noise(gen);
  ProgressBar bar(!a.quiet && isatty(fileno(stderr)));
  auto progress = [&bar](int64_t s, int64_t t) { bar(s, t); };
  auto t0 = std::chrono::steady_clock::now();
  bool ok = true;
  if (a.sampler == "pc") {
    auto opt = sd::PCSamplerOptions()
                   .predictor(predictor)
                   .corrector(corrector)
                   .snr(a.snr)
                   .corrector_steps(a.corrector_steps)
                   .denoise(a.denoise)
                   .N(a.N);
    sd::SampleResult r = sd::pc_sample(sde, oracle.score_fn(sde), y, noise, opt, progress);
    bar.finish();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    torch::Tensor x = r.x.to(torch::kComplexDouble);
    auto mean = x.mean().item<c10::complex<double>>();
    double var = (x - x.mean()).abs().pow(2).mean().item<double>();
    std::printf("PC sampler (%s + %s x%lld, snr %.2f, N %lld): %lld network evaluations, %.1f ms\n",
                sd::to_string(predictor).c_str(), sd::to_string(corrector).c_str(),
                static_cast<long long>(a.corrector_steps), a.snr,
                static_cast<long long>(a.N), static_cast<long long>(r.nfe), secs * 1e3);
    std::printf("  sample mean %.5f%+.5fi, variance %.6f over %lld bins\n", mean.real(), mean.imag(), var,
                static_cast<long long>(x.numel()));
    // The exact output law is known for the reverse-diffusion predictor with ald/none correctors.
    if (predictor == sd::PredictorType::reverse_diffusion &&
        (corrector == sd::CorrectorType::annealed_langevin || corrector == sd::CorrectorType::none)) {
      sd::AffineLaw L = sd::pc_affine_law(sde.options, a.N, corrector, a.corrector_steps, a.snr, 0.03, a.s0sq);
      const double V = a.denoise ? L.V_mean : L.V;
      const c10::complex<double> m = L.A * oracle.mu0 + L.B * y0;
      const double n = static_cast<double>(x.numel());
      const double se = std::sqrt(V / 2 / n);
      const double dm = std::max(std::abs(mean.real() - m.real()), std::abs(mean.imag() - m.imag())) / se;
      const double dv = std::abs(var - V) / (V / std::sqrt(n));
      ok = dm < 5 && dv < 5;
      std::printf("  exact law:   mean %.5f%+.5fi, variance %.6f -> deviation %.2f / %.2f standard errors: %s\n",
                  m.real(), m.imag(), V, dm, dv, ok ? "consistent" : "INCONSISTENT");
    } else {
      std::printf("  (no closed form for this predictor/corrector; nothing to check)\n");
    }
  } else if (a.sampler == "ode") {
    sd::NoiseSource replay_prior(at::make_generator<at::CPUGeneratorImpl>(a.seed));
    sd::SampleResult r = sd::ode_sample(sde, oracle.score_fn(sde), y, noise, sd::ODESamplerOptions(), progress);
    bar.finish();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    torch::Tensor xT = sde.prior_sampling(y, replay_prior);  // the same first draw the sampler made
    torch::Tensor want = sd::pflow_ode_closed_form(sde, oracle, xT, y, 0.03);
    double err = (r.x.to(torch::kComplexDouble) - want).abs().max().item<double>();
    ok = err < 5e-5;
    std::printf("probability-flow ODE (RK45, rtol=atol=1e-5): %lld evaluations, %.1f ms\n",
                static_cast<long long>(r.nfe), secs * 1e3);
    std::printf("  max |x - closed form| = %.2e: %s\n", err, ok ? "consistent" : "INCONSISTENT");
  } else {
    throw std::invalid_argument("--sampler must be 'pc' or 'ode', got '" + a.sampler + "'");
  }
  return ok ? 0 : 1;
}

sepmech::cli::RegisterCommand reg(40, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "sample", "run an SGMSE+ sampler on built-in Gaussian data with the exact score and check it against the "
                "closed-form answer");
  auto a = std::make_shared<Args>();
  cmd->add_option("--sampler", a->sampler, "pc | ode")->check(CLI::IsMember({"pc", "ode"}))->capture_default_str();
  cmd->add_option("--predictor", a->predictor, "reverse_diffusion | euler_maruyama | none")
      ->check(parsed_by(sd::predictor_type_from_string, "PREDICTOR"))
      ->capture_default_str();
  cmd->add_option("--corrector", a->corrector, "ald | langevin | none")
      ->check(parsed_by(sd::corrector_type_from_string, "CORRECTOR"))
      ->capture_default_str();
  cmd->add_option("--N", a->N, "reverse steps")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--corrector-steps", a->corrector_steps, "corrector iterations per step")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--snr", a->snr, "corrector signal-to-noise ratio")->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--size", a->size, "the built-in spectrogram is size x size bins")
      ->check(CLI::Range(int64_t{4}, int64_t{2048}))
      ->capture_default_str();
  cmd->add_option("--s0sq", a->s0sq, "variance of the clean data")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the torch::Generator every draw comes from")->capture_default_str();
  cmd->add_flag("--no-denoise{false}", a->denoise, "return the last noisy state instead of its noise-free mean");
  cmd->add_flag("--quiet", a->quiet, "no progress bar (it is only drawn on a terminal anyway)");
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
});

}  // namespace
