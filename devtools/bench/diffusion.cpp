// Benchmark workloads of the diffusion family (docs/workloads.md): sde_train_step and
// pc_sampler_oracle. The baseline is a straightforward op-by-op LibTorch transcription of the
// reference (sgmse ScoreModel._step / get_pc_sampler) with torch's own randn; "sepmech" is the
// library path (fused kernels, ziggurat noise from the same torch::Generator).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "bench/bench.h"
#include "sepmech/diffusion/analytic.h"
#include "sepmech/diffusion/sampling.h"
#include "sepmech/diffusion/sde.h"
#include "sepmech/diffusion/training.h"

namespace {

using namespace sepmech::diffusion;
using torch::Tensor;

Tensor torch_crandn(const std::vector<int64_t>& shape, torch::Generator& g) {
  return torch::randn(shape, g, torch::TensorOptions().dtype(torch::kComplexFloat));
}

Tensor b4(const Tensor& v) { return v.reshape({-1, 1, 1, 1}); }

const GaussianOracle kOracle{{0.1, -0.05}, 0.2};

sepmech::bench::RegisterWorkload train_step(
    {"sde_train_step", "OUVE perturbation + DSM loss, x0/y complex [4,1,256,256], Gaussian-oracle score", [] {
       struct State {
         OUVESDE sde;
         Tensor x0, y;
         torch::Generator g0 = at::make_generator<at::CPUGeneratorImpl>(1);
         torch::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(1);
         float sink = 0;
       };
       auto s = std::make_shared<State>();
       torch::Generator init = at::make_generator<at::CPUGeneratorImpl>(123);
       s->x0 = torch_crandn({4, 1, 256, 256}, init) * std::sqrt(0.2) + c10::complex<float>(0.1f, -0.05f);
       s->y = torch_crandn({4, 1, 256, 256}, init);
       const double bytes = 2.0 * s->x0.numel() * 8;
       return std::vector<sepmech::bench::Impl>{
           {"op_by_op",
            [s] {
              const double theta = s->sde.options.theta(), t_eps = 0.03;
              const int64_t B = s->x0.size(0);
              Tensor t = torch::rand({B}, s->g0, torch::kFloat32) * (1 - t_eps) + t_eps;
              Tensor e = b4(torch::exp(-theta * t));
              Tensor mean = e * s->x0 + (1 - e) * s->y;
              Tensor sd = s->sde.std(t);
              Tensor z = torch_crandn(s->x0.sizes().vec(), s->g0);
              Tensor sigma = b4(sd);
              Tensor x_t = mean + sigma * z;
              Tensor score = kOracle.score_unfused(s->sde, x_t, s->y, t);
              Tensor losses = torch::square(torch::abs(score * sigma + z));
              Tensor loss = torch::mean(0.5 * torch::sum(losses.reshape({B, -1}), -1));
              s->sink += loss.item<float>();
            },
            /*baseline=*/true, bytes},
           {"sepmech",
            [s] {
              NoiseSource noise(s->g1);
              TrainStep st = dsm_step(s->sde, kOracle.score_fn(s->sde), s->x0, s->y, noise, 0.03);
              s->sink += st.loss.item<float>();
            },
            false, bytes},
       };
     }});

sepmech::bench::RegisterWorkload pc_sampler(
    {"pc_sampler_oracle", "OUVE PC sampler N=30, reverse diffusion + ALD (1 step, snr 0.5), y [1,1,256,256]", [] {
       struct State {
         OUVESDE sde;
         Tensor y;
         torch::Generator g0 = at::make_generator<at::CPUGeneratorImpl>(2);
         torch::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(2);
         float sink = 0;
       };
       auto s = std::make_shared<State>();
       torch::Generator init = at::make_generator<at::CPUGeneratorImpl>(321);
       s->y = torch_crandn({1, 1, 256, 256}, init);
       // Minimal traffic per network evaluation: read x, write x (complex64).
       const double bytes = 60.0 * 2 * s->y.numel() * 8;
       return std::vector<sepmech::bench::Impl>{
           {"op_by_op",
            [s] {
              const OUVESDE& sde = s->sde;
              const Tensor& y = s->y;
              const int64_t N = sde.N(), B = y.size(0);
              const double snr = 0.5, eps = 0.03;
              ScoreFn score = [&](const Tensor& x, const Tensor& yy, const Tensor& t) {
                return kOracle.score_unfused(sde, x, yy, t);
              };
              ReverseSDE rsde = sde.reverse(score, false);
              Tensor x = y + torch_crandn(y.sizes().vec(), s->g0) * b4(sde.std(torch::ones({B})));
              Tensor ts = torch::linspace(1.0, eps, N, torch::kFloat32);
              Tensor x_mean;
              for (int64_t i = 0; i < N; ++i) {
                Tensor t = ts[i];
                Tensor stepsize = i + 1 < N ? t - ts[i + 1] : ts[N - 1];
                Tensor vec_t = torch::ones({B}) * t;
                // annealed Langevin corrector, 1 step
                Tensor std = sde.std(vec_t);
                Tensor grad = score(x, y, vec_t);
                Tensor noise = torch_crandn(y.sizes().vec(), s->g0);
                Tensor step = (snr * std).pow(2) * 2;
                x_mean = x + b4(step) * grad;
                x = x_mean + noise * b4(torch::sqrt(step * 2));
                // reverse-diffusion predictor
                auto [f, G] = rsde.discretize(x, y, vec_t, stepsize);
                Tensor z = torch_crandn(y.sizes().vec(), s->g0);
                x_mean = x - f;
                x = x_mean + b4(G) * z;
              }
              s->sink += torch::view_as_real(x_mean).select(-1, 0).sum().item<float>();
            },
            /*baseline=*/true, bytes},
           {"sepmech",
            [s] {
              NoiseSource noise(s->g1);
              SampleResult r = pc_sample(s->sde, kOracle.score_fn(s->sde), s->y, noise, PCSamplerOptions());
              s->sink += torch::view_as_real(r.x).select(-1, 0).sum().item<float>();
            },
            false, bytes},
       };
     }});

}  // namespace
