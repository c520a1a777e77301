// Float32 GEMMs on oneDNN's sgemm, and a differentiable linear built on them (see gemm.h).
#include "kernels/gemm.h"

#include <oneapi/dnnl/dnnl.h>

namespace sepmech::detail {

void gemm_into(torch::Tensor& out, const torch::Tensor& a, bool a_transposed, const torch::Tensor& b,
               bool b_transposed, const torch::Tensor& bias) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && out.dim() == 2, "sepmech gemm: a, b and out must be 2-D, got ",
              a.sizes(), ", ", b.sizes(), ", ", out.sizes());
  const int64_t M = a_transposed ? a.size(1) : a.size(0), K = a_transposed ? a.size(0) : a.size(1);
  const int64_t N = b_transposed ? b.size(0) : b.size(1);
  TORCH_CHECK((b_transposed ? b.size(1) : b.size(0)) == K && out.size(0) == M && out.size(1) == N,
              "sepmech gemm: shapes do not match: a ", a.sizes(), (a_transposed ? " (transposed)" : ""), ", b ",
              b.sizes(), (b_transposed ? " (transposed)" : ""), ", out ", out.sizes());
  const bool rows_ok = a.stride(1) == 1 && b.stride(1) == 1 && out.stride(1) == 1 &&
                       a.stride(0) >= std::max<int64_t>(a.size(1), 1) && b.stride(0) >= std::max<int64_t>(b.size(1), 1) &&
                       out.stride(0) >= std::max<int64_t>(N, 1);
  const bool f32 = a.scalar_type() == torch::kFloat && b.scalar_type() == torch::kFloat && out.scalar_type() == torch::kFloat;
  if (!f32 || !rows_ok || M == 0 || N == 0 || K == 0 || a.is_same(out) || b.is_same(out)) {
    const torch::Tensor at = a_transposed ? a.t() : a, bt = b_transposed ? b.t() : b;
    if (bias.defined())
      torch::addmm_out(out, bias.expand({M, N}), at, bt);
    else
      torch::mm_out(out, at, bt);
    return;
  }
  float beta = 0.f;
  if (bias.defined()) {
    out.copy_(bias.expand({M, N}));
    beta = 1.f;
  }
  const dnnl_status_t st = dnnl_sgemm(a_transposed ? 'T' : 'N', b_transposed ? 'T' : 'N', M, N, K, 1.f,
                                      a.data_ptr<float>(), a.stride(0), b.data_ptr<float>(), b.stride(0), beta,
                                      out.data_ptr<float>(), out.stride(0));
  TORCH_CHECK(st == dnnl_success, "sepmech gemm: oneDNN sgemm failed with status ", static_cast<int>(st));
}

namespace {
struct LinearFn : public torch::autograd::Function<LinearFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    // No bias is passed as an empty tensor: Function::apply cannot take an undefined one.
    const bool has_bias = bias.numel() > 0;
    auto out = torch::empty({input.size(0), weight.size(0)}, input.options());
    gemm_into(out, input, weight, /*b_transposed=*/true, has_bias ? bias : torch::Tensor());
    ctx->save_for_backward({input, weight});
    ctx->saved_data["has_bias"] = has_bias;
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &input = saved[0], &weight = saved[1];
    const torch::Tensor go = grads[0].contiguous();
    torch::Tensor gi, gw, gb;
    if (torch::GradMode::is_enabled()) {  // create_graph: keep the graph of the gradients
      gi = go.mm(weight);
      gw = go.t().mm(input);
    } else {
      gi = torch::empty_like(input, torch::MemoryFormat::Contiguous);
      gemm_into(gi, go, weight, /*b_transposed=*/false);
      gw = torch::empty({weight.size(0), weight.size(1)}, weight.options());
      gemm_into(gw, go, /*a_transposed=*/true, input, false);
    }
    if (ctx->saved_data["has_bias"].toBool()) gb = go.sum(0);
    return {gi, gw, gb};
  }
};
}  // namespace

torch::Tensor linear(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias) {
  // gemm_into picks oneDNN or LibTorch per call, so every dtype and layout can take this Function.
  return LinearFn::apply(input, weight, bias.defined() ? bias : torch::empty({0}, input.options()));
}

}  // namespace sepmech::detail
