// DfOp: the deep-filtering operator, its six reference methods and the fused method.
#include "sepmech/dfop.h"

#include "kernels/shape.h"
#include "kernels/cpu.h"
#include "kernels/deep_filter.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cstring>
#include <ostream>
#include <type_traits>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sepmech {

using torch::Tensor;
namespace idx = torch::indexing;

std::string to_string(DfMethod method) {
  switch (method) {
    case DfMethod::fused: return "fused";
    case DfMethod::real_loop: return "real_loop";
    case DfMethod::real_strided: return "real_strided";
    case DfMethod::real_unfold: return "real_unfold";
    case DfMethod::complex_strided: return "complex_strided";
    case DfMethod::real_one_step: return "real_one_step";
    case DfMethod::real_hidden_state_loop: return "real_hidden_state_loop";
  }
  return "unknown";
}

DfMethod df_method_from_string(const std::string& name) {
  for (DfMethod m : {DfMethod::fused, DfMethod::real_loop, DfMethod::real_strided, DfMethod::real_unfold,
                     DfMethod::complex_strided, DfMethod::real_one_step, DfMethod::real_hidden_state_loop})
    if (to_string(m) == name) return m;
  TORCH_CHECK(false, "sepmech::DfOp: method must be one of fused, real_loop, real_strided, real_unfold, "
                     "complex_strided, real_one_step, real_hidden_state_loop, got '", name, "'");
}

Tensor spec_pad(const Tensor& x, int64_t window_size, int64_t lookahead, int64_t dim) {
  const int64_t d = c10::maybe_wrap_dim(dim, x.dim());
  // constant_pad_nd lists (before, after) pairs starting from the last dimension.
  std::vector<int64_t> pad(2 * (x.dim() - d), 0);
  pad[pad.size() - 2] = window_size - lookahead - 1;
  pad[pad.size() - 1] = lookahead;
  return torch::constant_pad_nd(x, pad, 0);
}

namespace {

// ---------------------------------------------------------------------------------------------
// Shared pieces of the reference methods
// ---------------------------------------------------------------------------------------------

// Complex multiply-sum over dim `sum_dim` of two real views [..., 2].
Tensor real_cmul_sum(const Tensor& x, const Tensor& h, int64_t sum_dim) {
  auto xr = x.select(-1, 0), xi = x.select(-1, 1), hr = h.select(-1, 0), hi = h.select(-1, 1);
  auto re = (xr * hr - xi * hi).sum(sum_dim);
  auto im = (xr * hi + xi * hr).sum(sum_dim);
  return torch::stack({re, im}, -1);
}

// Copies `spec` and writes the (blended) filtered bins spec_f into bins [0, df_bins).
// spec [..., F, 2], spec_f [..., df_bins, 2]; alpha (if defined) broadcastable to spec_f[..., :1, :1].
Tensor assign_df(const Tensor& spec, const Tensor& spec_f, int64_t df_bins, const Tensor& alpha_b) {
  auto out = spec.clone();
  auto low = spec.narrow(-2, 0, df_bins);
  Tensor val = alpha_b.defined() ? spec_f * alpha_b + low * (1 - alpha_b) : spec_f;
  out.narrow(-2, 0, df_bins).copy_(val);
  return out;
}

// The padded 4-D spectrum [B, T+N-1, F, 2] of spec [B,1,T,F,2], made contiguous for as_strided.
Tensor padded_4d(const Tensor& spec, int64_t N, int64_t L) {
  return spec_pad(spec.squeeze(1), N, L, 1).contiguous();
}

// Window [B,T,N,F,2] over a contiguous padded [B,T+N-1,F,2] (the reference's as_strided helper).
Tensor strided_window(const Tensor& xp, int64_t T, int64_t N) {
  return xp.as_strided({xp.size(0), T, N, xp.size(2), xp.size(3)},
                       {xp.stride(0), xp.stride(1), xp.stride(1), xp.stride(2), xp.stride(3)}, xp.storage_offset());
}

// Differentiable composite of the deep filter (unfold window, real arithmetic); used for
// non-CPU tensors and for double backward of the fused function.
Tensor deep_filter_composite(const Tensor& spec, const Tensor& coefs, const Tensor& alpha, int64_t N, int64_t L) {
  const int64_t B = spec.size(0), T = spec.size(2), Fdf = coefs.size(3);
  auto w = padded_4d(spec, N, L).unfold(1, N, 1).permute({0, 1, 4, 2, 3}).narrow(3, 0, Fdf);
  auto y = real_cmul_sum(w, coefs, 2).unsqueeze(1);
  Tensor a = alpha.defined() ? alpha.reshape({B, 1, T, 1, 1}).to(spec.scalar_type()) : Tensor();
  return assign_df(spec, y, Fdf, a);
}

// ---------------------------------------------------------------------------------------------
// The fused kernels: one pass over (frame, bin, tap) on raw memory
// ---------------------------------------------------------------------------------------------

struct Dims {
  int64_t B, T, F, Fdf, N, L;
};

// coefs [B,T,N,Fdf,2]: one channel, taps Fdf complex bins apart, frames N taps apart.
detail::DfKernelGeom kernel_geom(const Dims& d) {
  return {d.B, 1, d.T, d.F, d.Fdf, d.N, d.L, d.T * d.N * 2 * d.Fdf, 0, d.N * 2 * d.Fdf, 2 * d.Fdf, false};
}

Dims dims_of(const Tensor& spec, const Tensor& coefs, int64_t N, int64_t L) {
  return Dims{spec.size(0), spec.size(2), spec.size(3), coefs.size(3), N, L};
}

Tensor fused_forward(const Tensor& spec, const Tensor& coefs, const Tensor& alpha, int64_t N, int64_t L) {
  auto x = spec.contiguous(), h = coefs.contiguous();
  Tensor a = alpha.defined() ? alpha.contiguous() : Tensor();
  auto y = torch::empty_like(x, at::MemoryFormat::Contiguous);
  const Dims d = dims_of(x, h, N, L);
  const detail::DfKernelGeom g = kernel_geom(d);
  const bool avx2 = kernels::use_avx2();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sepmech::deep_filter", [&] {
    detail::deep_filter_forward_kernel<scalar_t>(x.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                                 a.defined() ? a.data_ptr<scalar_t>() : nullptr,
                                                 y.data_ptr<scalar_t>(), g, avx2);
  });
  return y;
}

class DeepFilterFunction : public torch::autograd::Function<DeepFilterFunction> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& spec, const Tensor& coefs,
                        const Tensor& alpha, int64_t N, int64_t L) {
    ctx->save_for_backward({spec, coefs, alpha});
    ctx->saved_data["N"] = N;
    ctx->saved_data["L"] = L;
    return fused_forward(spec, coefs, alpha.numel() ? alpha : Tensor(), N, L);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const Tensor &spec = saved[0], &coefs = saved[1];
    const Tensor alpha = saved[2].numel() ? saved[2] : Tensor();
    const int64_t N = ctx->saved_data["N"].toInt(), L = ctx->saved_data["L"].toInt();
    Tensor g = grads[0];
    const bool need_x = ctx->needs_input_grad(0), need_h = ctx->needs_input_grad(1),
               need_a = alpha.defined() && ctx->needs_input_grad(2);
    if (!g.defined()) return {Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    if (torch::GradMode::is_enabled()) {
      // create_graph: the gradients must themselves be differentiable, so take them through the
      // composite of differentiable operations (same function, summation order aside).
      std::vector<Tensor> inputs;
      if (need_x) inputs.push_back(spec);
      if (need_h) inputs.push_back(coefs);
      if (need_a) inputs.push_back(alpha);
      auto y = deep_filter_composite(spec, coefs, alpha, N, L);
      auto gi = torch::autograd::grad({y}, inputs, {g}, /*retain_graph=*/true, /*create_graph=*/true,
                                      /*allow_unused=*/true);
      size_t i = 0;
      Tensor gx = need_x ? gi[i++] : Tensor(), gh = need_h ? gi[i++] : Tensor(), ga = need_a ? gi[i++] : Tensor();
      return {gx, gh, ga, Tensor(), Tensor()};
    }
    auto x = spec.contiguous(), h = coefs.contiguous();
    g = g.contiguous();
    Tensor a = alpha.defined() ? alpha.contiguous() : Tensor();
    Tensor gx = need_x ? torch::empty_like(x, at::MemoryFormat::Contiguous) : Tensor();
    Tensor gh = need_h ? torch::empty_like(h, at::MemoryFormat::Contiguous) : Tensor();
    Tensor ga = need_a ? torch::empty_like(a, at::MemoryFormat::Contiguous) : Tensor();
    const Dims d = dims_of(x, h, N, L);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sepmech::deep_filter_backward", [&] {
      detail::deep_filter_backward_kernel<scalar_t>(x.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                                    a.defined() ? a.data_ptr<scalar_t>() : nullptr,
                                                    g.data_ptr<scalar_t>(), need_x ? gx.data_ptr<scalar_t>() : nullptr,
                                                    need_h ? gh.data_ptr<scalar_t>() : nullptr,
                                                    need_a ? ga.data_ptr<scalar_t>() : nullptr, kernel_geom(d),
                                                    kernels::use_avx2());
    });
    return {gx, gh, ga, Tensor(), Tensor()};
  }
};


// Shape checks shared by the offline methods and the free function; df_bins < 0: any.
void check_offline_args(const char* who, const Tensor& spec, const Tensor& coefs, const Tensor& alpha, int64_t N,
                        int64_t df_bins) {
  TORCH_CHECK(spec.defined() && spec.dim() == 5 && spec.size(1) == 1 && spec.size(4) == 2, who,
              ": spec must be the real view [B,1,T,F,2] (one channel), got ",
              kernels::shape_str(spec));
  const int64_t B = spec.size(0), T = spec.size(2), F = spec.size(3);
  TORCH_CHECK(coefs.defined() && coefs.dim() == 5 && coefs.size(4) == 2, who,
              ": coefs must be the real view [B,T,order,df_bins,2], got ",
              kernels::shape_str(coefs));
  const bool swapped = coefs.size(1) == N && coefs.size(2) == T && N != T;
  TORCH_CHECK(coefs.size(0) == B && coefs.size(1) == T && coefs.size(2) == N, who,
              ": coefs must be [B,T,order,df_bins,2] = [", B, ",", T, ",", N, ",df_bins,2], got ", kernels::shape_str(coefs),
              swapped ? " (this looks like the multi-frame DF layout [B,order,T,F,2]; permute dims 1 and 2)" : "");
  if (df_bins >= 0)
    TORCH_CHECK(coefs.size(3) == df_bins, who, ": coefs must have df_bins = ", df_bins, " bins in dim 3, got ",
                kernels::shape_str(coefs));
  TORCH_CHECK(coefs.size(3) <= F, who, ": df_bins must be <= the number of bins F of spec (", F, "), got ",
              coefs.size(3));
  TORCH_CHECK(spec.is_floating_point() && coefs.is_floating_point(), who,
              ": spec and coefs must be floating point, got ", spec.scalar_type(), " and ", coefs.scalar_type());
  if (alpha.defined())
    TORCH_CHECK(alpha.numel() == B * T, who, ": alpha must have B*T = ", B * T, " elements (e.g. [B,T,1]), got ",
                kernels::shape_str(alpha));
}

}  // namespace

Tensor deep_filter(const Tensor& spec, const Tensor& coefs, const Tensor& alpha, int64_t df_order,
                   int64_t df_lookahead) {
  TORCH_CHECK(df_order >= 1, "sepmech::deep_filter: df_order must be >= 1, got ", df_order);
  TORCH_CHECK(df_lookahead >= 0, "sepmech::deep_filter: df_lookahead must be >= 0, got ", df_lookahead);
  check_offline_args("sepmech::deep_filter", spec, coefs, alpha, df_order, -1);
  TORCH_CHECK(spec.scalar_type() == coefs.scalar_type(), "sepmech::deep_filter: coefs must have the dtype of spec (",
              spec.scalar_type(), "), got ", coefs.scalar_type());
  TORCH_CHECK(spec.device() == coefs.device(), "sepmech::deep_filter: coefs must be on the device of spec (",
              spec.device(), "), got ", coefs.device());
  Tensor a;
  if (alpha.defined()) a = alpha.reshape({spec.size(0), spec.size(2)}).to(spec.scalar_type());
  const bool raw_ok = spec.device().is_cpu() &&
                      (spec.scalar_type() == torch::kFloat || spec.scalar_type() == torch::kDouble);
  if (!raw_ok) {
    auto y = deep_filter_composite(spec, coefs, a, df_order, df_lookahead);
    return y;
  }
  // Custom autograd functions cannot take undefined tensors: "no alpha" is an empty tensor there.
  if (!a.defined()) a = torch::empty({0}, spec.options());
  return DeepFilterFunction::apply(spec, coefs, a, df_order, df_lookahead);
}

// -------------------------------------------------------------------------------------------------
// DfOp
// -------------------------------------------------------------------------------------------------

DfOpImpl::DfOpImpl(DfOpOptions options_) : options(std::move(options_)) { reset(); }

void DfOpImpl::reset() {
  TORCH_CHECK(options.df_bins() >= 1, "sepmech::DfOp: df_bins must be >= 1, got ", options.df_bins());
  TORCH_CHECK(options.df_order() >= 1, "sepmech::DfOp: df_order must be >= 1, got ", options.df_order());
  TORCH_CHECK(options.df_lookahead() >= 0, "sepmech::DfOp: df_lookahead must be >= 0, got ", options.df_lookahead());
  TORCH_CHECK(options.freq_bins() >= 0, "sepmech::DfOp: freq_bins must be >= 0, got ", options.freq_bins());
  set_method(options.method());
}

void DfOpImpl::set_method(DfMethod method) {
  const bool stepping = method == DfMethod::real_one_step || method == DfMethod::real_hidden_state_loop;
  // Offline methods accept L > N-1 (the window then lies wholly in the future); the stepping
  // methods blend with window index N-1-L, which must exist.
  TORCH_CHECK(!stepping || options.df_lookahead() <= options.df_order() - 1, "sepmech::DfOp: df_lookahead must be <= ",
              "df_order-1 = ", options.df_order() - 1, " for method ", to_string(method), ", got ",
              options.df_lookahead());
  if (method == DfMethod::real_hidden_state_loop) {
    TORCH_CHECK(options.freq_bins() >= options.df_bins(), "sepmech::DfOp: freq_bins must be >= df_bins (",
                options.df_bins(), ") for method real_hidden_state_loop, got ", options.freq_bins());
    spec_buf_ = torch::zeros({1, 1, options.df_order(), options.freq_bins(), 2});
  } else {
    spec_buf_ = Tensor();
  }
  options.method(method);
}

void DfOpImpl::reset_hidden_state() {
  if (spec_buf_.defined()) spec_buf_.zero_();
}

void DfOpImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::DfOp(df_bins=" << options.df_bins() << ", df_order=" << options.df_order()
         << ", df_lookahead=" << options.df_lookahead() << ", method=" << to_string(options.method());
  if (options.freq_bins() > 0) stream << ", freq_bins=" << options.freq_bins();
  stream << ")";
}

Tensor DfOpImpl::forward(const Tensor& spec, const Tensor& coefs, const Tensor& alpha) {
  switch (options.method()) {
    case DfMethod::fused: return forward_fused(spec, coefs, alpha);
    case DfMethod::real_loop: return forward_real_loop(spec, coefs, alpha);
    case DfMethod::real_strided: return forward_real_strided(spec, coefs, alpha);
    case DfMethod::real_unfold: return forward_real_unfold(spec, coefs, alpha);
    case DfMethod::complex_strided: return forward_complex_strided(spec, coefs, alpha);
    case DfMethod::real_one_step: return forward_real_one_step(spec, coefs, alpha);
    case DfMethod::real_hidden_state_loop: return forward_real_hidden_state_loop(spec, coefs, alpha);
  }
  TORCH_CHECK(false, "sepmech::DfOp: unknown method");
}

void DfOpImpl::check_offline(const Tensor& spec, const Tensor& coefs, const Tensor& alpha) const {
  check_offline_args("sepmech::DfOp", spec, coefs, alpha, options.df_order(), options.df_bins());
}

namespace {
Tensor alpha_5d(const Tensor& alpha, const Tensor& spec) {
  return alpha.defined() ? alpha.reshape({spec.size(0), 1, spec.size(2), 1, 1}) : Tensor();
}
}  // namespace

Tensor DfOpImpl::forward_fused(const Tensor& spec, const Tensor& coefs, const Tensor& alpha) {
  check_offline(spec, coefs, alpha);
  return deep_filter(spec, coefs, alpha, options.df_order(), options.df_lookahead());
}

Tensor DfOpImpl::forward_real_loop(const Tensor& spec, const Tensor& coefs, const Tensor& alpha) {
  check_offline(spec, coefs, alpha);
  const int64_t N = options.df_order(), Fdf = options.df_bins(), B = spec.size(0), T = spec.size(2);
  auto xp = spec_pad(spec.squeeze(1), N, options.df_lookahead(), -3);  // [B, T+N-1, F, 2]
  // The reference accumulates in a buffer of the default dtype, whatever the input dtype.
  auto acc = torch::zeros({B, T, Fdf, 2}, spec.options().dtype(torch::get_default_dtype()));
  for (int64_t n = 0; n < N; ++n) {
    auto x = xp.narrow(1, n, T).narrow(2, 0, Fdf);
    auto h = coefs.select(2, n);
    auto xr = x.select(-1, 0), xi = x.select(-1, 1), hr = h.select(-1, 0), hi = h.select(-1, 1);
    acc.select(-1, 0).add_(xr * hr - xi * hi);
    acc.select(-1, 1).add_(xr * hi + xi * hr);
  }
  return assign_df(spec, acc.unsqueeze(1), Fdf, alpha_5d(alpha, spec));
}

Tensor DfOpImpl::forward_real_strided(const Tensor& spec, const Tensor& coefs, const Tensor& alpha) {
  check_offline(spec, coefs, alpha);
  const int64_t N = options.df_order(), Fdf = options.df_bins(), T = spec.size(2);
  auto w = strided_window(padded_4d(spec, N, options.df_lookahead()), T, N).narrow(3, 0, Fdf);
  auto y = real_cmul_sum(w, coefs, 2);
  return assign_df(spec, y.unsqueeze(1), Fdf, alpha_5d(alpha, spec));
}

Tensor DfOpImpl::forward_real_unfold(const Tensor& spec, const Tensor& coefs, const Tensor& alpha) {
  check_offline(spec, coefs, alpha);
  const int64_t N = options.df_order(), Fdf = options.df_bins();
  // unfold appends the window as the last dim: [B,T,F,2,N] -> [B,T,N,F,2]
  auto w = padded_4d(spec, N, options.df_lookahead()).unfold(1, N, 1).permute({0, 1, 4, 2, 3}).narrow(3, 0, Fdf);
  auto y = real_cmul_sum(w, coefs, 2);
  return assign_df(spec, y.unsqueeze(1), Fdf, alpha_5d(alpha, spec));
}

Tensor DfOpImpl::forward_complex_strided(const Tensor& spec, const Tensor& coefs, const Tensor& alpha) {
  check_offline(spec, coefs, alpha);
  const int64_t N = options.df_order(), Fdf = options.df_bins(), T = spec.size(2);
  auto xc = torch::view_as_complex(padded_4d(spec, N, options.df_lookahead()));  // [B, T+N-1, F]
  auto w = xc.as_strided({xc.size(0), T, N, xc.size(2)}, {xc.stride(0), xc.stride(1), xc.stride(1), xc.stride(2)},
                         xc.storage_offset())
               .narrow(3, 0, Fdf);
  auto hc = torch::view_as_complex(coefs.stride(-1) == 1 && coefs.stride(-2) == 2 ? coefs : coefs.contiguous());
  auto y = torch::view_as_real((w * hc).sum(2));
  return assign_df(spec, y.unsqueeze(1), Fdf, alpha_5d(alpha, spec));
}

Tensor DfOpImpl::forward_real_one_step(const Tensor& spec_win, const Tensor& coefs, const Tensor& alpha) {
  const int64_t N = options.df_order(), L = options.df_lookahead(), Fdf = options.df_bins();
  TORCH_CHECK(spec_win.defined() && spec_win.dim() == 5 && spec_win.size(1) == 1 && spec_win.size(2) == N &&
                  spec_win.size(4) == 2,
              "sepmech::DfOp(real_one_step): spec must be the window [B,1,order,F,2] with order = ", N, ", got ",
              kernels::shape_str(spec_win));
  const int64_t B = spec_win.size(0), F = spec_win.size(3);
  TORCH_CHECK(Fdf <= F, "sepmech::DfOp(real_one_step): df_bins must be <= the number of bins F of spec (", F,
              "), got ", Fdf);
  TORCH_CHECK(coefs.defined() && coefs.dim() == 5 && coefs.size(0) == B && coefs.size(1) == 1 &&
                  coefs.size(2) == N && coefs.size(3) == Fdf && coefs.size(4) == 2,
              "sepmech::DfOp(real_one_step): coefs must be [B,1,order,df_bins,2] = [", B, ",1,", N, ",", Fdf,
              ",2], got ", kernels::shape_str(coefs));
  if (alpha.defined())
    TORCH_CHECK(alpha.numel() == B, "sepmech::DfOp(real_one_step): alpha must have B = ", B,
                " elements (e.g. [B,1]), got ", kernels::shape_str(alpha));
  auto y = real_cmul_sum(spec_win.squeeze(1).narrow(2, 0, Fdf), coefs.squeeze(1), 1);  // [B, Fdf, 2]
  auto base = spec_win.select(2, N - L - 1);                                           // [B, 1, F, 2]
  Tensor a = alpha.defined() ? alpha.reshape({B, 1, 1, 1}) : Tensor();
  return assign_df(base, y.unsqueeze(1), Fdf, a);
}

Tensor DfOpImpl::forward_real_hidden_state_loop(const Tensor& spec, const Tensor& coefs, const Tensor& alpha) {
  const int64_t N = options.df_order(), L = options.df_lookahead(), Fdf = options.df_bins(),
                Fb = options.freq_bins();
  const char* who = "sepmech::DfOp(real_hidden_state_loop)";
  TORCH_CHECK(spec_buf_.defined(), who, ": the hidden state is missing (method switched without set_method)");
  TORCH_CHECK(spec.defined() && spec.dim() == 5 && spec.size(0) == 1 && spec.size(1) == 1 && spec.size(3) == Fb &&
                  spec.size(4) == 2,
              who, ": spec must be [1,1,T,freq_bins,2] with freq_bins = ", Fb,
              " (B must be 1: the state is a single buffer; use sepmech::StreamingDeepFilter for B>1), got ",
              kernels::shape_str(spec));
  const int64_t T = spec.size(2);
  TORCH_CHECK(coefs.defined() && coefs.dim() == 5 && coefs.size(0) == 1 && coefs.size(1) == T &&
                  coefs.size(2) == N && coefs.size(3) == Fdf && coefs.size(4) == 2,
              who, ": coefs must be [1,T,order,df_bins,2] = [1,", T, ",", N, ",", Fdf, ",2], got ",
              kernels::shape_str(coefs));
  TORCH_CHECK(alpha.defined(), who, ": alpha is required for this method");
  TORCH_CHECK(alpha.numel() == T, who, ": alpha must have T = ", T, " elements (e.g. [1,T,1]), got ",
              kernels::shape_str(alpha));
  // The buffer lives in the default dtype (the reference writes frames into a float32 buffer).
  const auto dt = spec_buf_.scalar_type();
  if (T == 0) return torch::empty({1, 1, 0, Fb, 2}, spec.options().dtype(dt));
  std::vector<Tensor> frames;
  for (int64_t n = 0; n < N; ++n) frames.push_back(spec_buf_[0][0][n]);  // [Fb, 2], oldest first
  auto a_all = alpha.reshape({T}).to(dt);
  std::vector<Tensor> outs;
  outs.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    frames.erase(frames.begin());
    frames.push_back(spec.select(2, t).reshape({Fb, 2}).to(dt));
    auto win = torch::stack(frames, 0);                                          // [N, Fb, 2]
    auto y = real_cmul_sum(win.narrow(1, 0, Fdf), coefs[0][t].to(dt), 0);        // [Fdf, 2]
    outs.push_back(assign_df(frames[N - L - 1], y, Fdf, a_all[t]));
  }
  spec_buf_ = torch::stack(frames, 0).reshape({1, 1, N, Fb, 2}).detach().clone();
  return torch::stack(outs, 0).reshape({1, 1, T, Fb, 2});
}

}  // namespace sepmech
