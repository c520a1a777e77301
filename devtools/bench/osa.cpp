// Bench workloads osa_block / osa_block_dw (docs/workloads.md): eval-mode OSA_RES_eSE block,
// BN, in = stage = concat = 64, 3 layers, identity, eSE, x [1, 64, 256, 64]. The baseline is the
// unfused module (a direct transcription of the reference: conv, BN, ReLU, cat, conv, BN, ReLU,
// eSE, add; NCHW); "unfused_channels_last" feeds it NHWC input; "fused" is fuse() (folded norms,
// NHWC oneDNN convolutions, workspace concatenation, GEMM aggregation; see docs/osa.md).
#include "bench/bench.h"

#include "sepmech/osa.h"

namespace {

struct OsaBenchState {
  sepmech::OSABlock block{nullptr};
  std::shared_ptr<sepmech::OSABlockImpl> fused;
  std::shared_ptr<sepmech::OSABlockImpl> unfused_cl;  // unfused, input already channels-last
  torch::Tensor x, x_cl;
};

/// Useful FLOPs of one call: 2 x multiply-accumulates of every convolution.
double osa_flops(bool depthwise, int64_t c, int64_t l, int64_t hw) {
  double macs = 0;
  for (int64_t i = 0; i < l; ++i) macs += depthwise ? double(c) * 9 * hw + double(c) * c * hw : double(c) * c * 9 * hw;
  macs += double(c) * (c + l * c) * hw;  // 1x1 aggregation
  macs += double(c) * c;                  // eSE fc
  return 2 * macs;
}

std::vector<sepmech::bench::Impl> setup_osa(bool depthwise) {
  torch::manual_seed(0);
  auto s = std::make_shared<OsaBenchState>();
  const int64_t c = 64, l = 3, h = 256, w = 64;
  s->block = sepmech::OSABlock(sepmech::OSABlockOptions(c, c, c, l)
                                   .module_name("OSA2_2")
                                   .identity(true)
                                   .depthwise(depthwise)
                                   .norm(sepmech::NormKind::batch_norm));
  {
    torch::NoGradGuard ng;
    for (auto& item : s->block->named_buffers()) {
      if (item.key().find("running_mean") != std::string::npos) item.value().normal_(0, 0.1);
      if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 1.5);
    }
    for (auto& item : s->block->named_parameters())
      if (item.key().find("norm.weight") != std::string::npos) item.value().uniform_(0.5, 1.5);
  }
  s->block->eval();
  s->fused = s->block->fuse();
  s->x = torch::randn({1, c, h, w});
  s->x_cl = s->x.contiguous(at::MemoryFormat::ChannelsLast);
  const double flops = osa_flops(depthwise, c, l, h * w);
  return {
      {"unfused_nchw", [s] {
         torch::NoGradGuard ng;
         auto y = s->block->forward(s->x);
       },
       /*baseline=*/true, 0, flops},
      {"unfused_channels_last", [s] {
         torch::NoGradGuard ng;
         auto y = s->block->forward(s->x_cl);
       },
       false, 0, flops},
      {"fused", [s] {
         torch::NoGradGuard ng;
         auto y = s->fused->forward(s->x);
       },
       false, 0, flops},
  };
}

const sepmech::bench::RegisterWorkload w_block({"osa_block",
                                                "OSA_RES_eSE eval, BN, 64->64, 3 layers, identity, x [1,64,256,64]",
                                                [] { return setup_osa(false); }});
const sepmech::bench::RegisterWorkload w_block_dw({"osa_block_dw",
                                                   "OSA_RES_eSE depthwise eval, BN, 64->64, 3 layers, identity, x [1,64,256,64]",
                                                   [] { return setup_osa(true); }});

}  // namespace
