// Bench workloads tac_fasnet_default and tac_varmic (docs/workloads.md).
//
// The baseline is a straightforward LibTorch transcription of the reference algorithm
// (../shared/spec/tac.md, "Shapes inside the references"): permute to rows, transform, a
// per-example loop for the masked mean, broadcast the average back over the mics as a
// materialised copy, concatenate, one (2H -> N) output transform per mic, permute back for
// GroupNorm, residual. It uses the very same weights as the sepmech module.
#include "bench/bench.h"
#include "sepmech/tac.h"

namespace {

torch::Tensor reference_tac(sepmech::TACImpl& tac, const torch::Tensor& x, const torch::Tensor& num_mic) {
  const int64_t B = x.size(0), M = x.size(1), N = x.size(2), K = x.size(3), S = x.size(4);
  const int64_t H = tac.options.hidden_dim();
  auto& l1 = *tac.input_tf->ptr<torch::nn::LinearImpl>(0);
  auto& l2 = *tac.avg_tf->ptr<torch::nn::LinearImpl>(0);
  auto& l3 = *tac.concat_tf->ptr<torch::nn::LinearImpl>(0);
  const auto& a1 = tac.input_tf->ptr<torch::nn::PReLUImpl>(1)->weight;
  const auto& a2 = tac.avg_tf->ptr<torch::nn::PReLUImpl>(1)->weight;
  const auto& a3 = tac.concat_tf->ptr<torch::nn::PReLUImpl>(1)->weight;

  torch::Tensor out = x.permute({0, 3, 4, 1, 2}).reshape({B * K * S * M, N});
  out = torch::prelu(torch::linear(out, l1.weight, l1.bias), a1).reshape({B, K * S, M, H});
  torch::Tensor mean;
  if (num_mic.max().item<int64_t>() == 0) {
    mean = out.mean(2);
  } else {
    std::vector<torch::Tensor> per_example;
    for (int64_t b = 0; b < B; ++b)
      per_example.push_back(out[b].narrow(1, 0, num_mic[b].item<int64_t>()).mean(1).unsqueeze(0));
    mean = torch::cat(per_example, 0);
  }
  mean = torch::prelu(torch::linear(mean.reshape({B * K * S, H}), l2.weight, l2.bias), a2);
  mean = mean.reshape({B, K * S, 1, H}).expand_as(out).contiguous();
  torch::Tensor cat = torch::cat({out, mean}, 3);
  torch::Tensor z = torch::prelu(torch::linear(cat.reshape({-1, 2 * H}), l3.weight, l3.bias), a3);
  z = z.reshape({B, K, S, M, N}).permute({0, 3, 4, 1, 2}).reshape({B * M, N, K, S});
  z = torch::group_norm(z, 1, tac.layer_norm->gamma, tac.layer_norm->beta, 1e-8);
  return z.reshape({B, M, N, K, S}) + x;
}

double flops(int64_t B, int64_t M, int64_t P, int64_t N, int64_t H, bool split) {
  const double rows = double(B) * M * P, frames = double(B) * P;
  double f = 2 * rows * N * H + 2 * frames * H * H;
  f += split ? 2 * rows * H * N + 2 * frames * H * N : 2 * rows * 2 * H * N;
  return f;
}

std::function<std::vector<sepmech::bench::Impl>()> make(int64_t B, std::vector<int64_t> valid) {
  return [B, valid] {
    struct State {
      sepmech::TAC tac{sepmech::TACOptions(64).hidden_dim(384)};
      torch::Tensor x, counts;
    };
    torch::manual_seed(0);
    auto st = std::make_shared<State>();
    st->tac->eval();
    {
      // Non-default PReLU slopes and norm affine so that every term of the computation matters.
      torch::NoGradGuard g;
      for (auto& p : st->tac->parameters())
        if (p.dim() <= 1) p.uniform_(-0.5, 1.0);
    }
    const int64_t M = 6, N = 64, K = 50, S = 22;
    st->x = torch::randn({B, M, N, K, S});
    st->counts = torch::tensor(valid, torch::kLong);
    const double f_ref = flops(B, M, K * S, N, 384, false), f_new = flops(B, M, K * S, N, 384, true);
    sepmech::bench::Impl base{"reference_loop", [st] {
                                torch::NoGradGuard g;
                                reference_tac(*st->tac, st->x, st->counts);
                              },
                              true};
    base.flops = f_ref;
    sepmech::bench::Impl ours{"sepmech", [st] {
                                torch::NoGradGuard g;
                                st->tac->forward(st->x, st->counts);
                              }};
    ours.flops = f_new;
    // The same module with autograd recording (training forward): whole-tensor path, no blocking.
    sepmech::bench::Impl train{"sepmech_autograd_fwd", [st] { st->tac->forward(st->x, st->counts); }};
    train.flops = f_new;
    return std::vector<sepmech::bench::Impl>{base, ours, train};
  };
}

sepmech::bench::RegisterWorkload w1({"tac_fasnet_default",
                                     "TAC 64->384 gLN PReLU, x [1,6,64,50,22], all 6 mics valid", make(1, {6})});
sepmech::bench::RegisterWorkload w2({"tac_varmic", "TAC 64->384 gLN PReLU, x [4,6,64,50,22], mics [6,4,2,3]",
                                     make(4, {6, 4, 2, 3})});

}  // namespace
