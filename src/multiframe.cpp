// The multi-frame family (spec: ../shared/spec/deepfilter.md §3; page: docs/multiframe.md).
#include "sepmech/multiframe.h"

#include "kernels/shape.h"
#include "kernels/cpu.h"
#include "kernels/deep_filter.h"
#include "kernels/multiframe_solver.h"

namespace sepmech {
namespace mf {


namespace {


void check_real_view(const char* who, const char* arg, const torch::Tensor& t, int64_t dim) {
  TORCH_CHECK(t.defined(), who, ": ", arg, " must be a tensor, got undefined");
  TORCH_CHECK(t.dim() == dim && t.size(-1) == 2, who, ": ", arg, " must be a real view with ", dim,
              " dims and last dim 2, got ", kernels::shape_str(t));
  TORCH_CHECK(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble, who, ": ", arg,
              " must be float32 or float64, got ", t.scalar_type());
}

torch::Tensor as_complex(const torch::Tensor& real_view) {
  return torch::view_as_complex(real_view.contiguous());
}

/// Replaces bins < num_freqs of the real view `spec` [...,F,2] by complex `y` [...,num_freqs].
torch::Tensor assign_bins(const torch::Tensor& spec, const torch::Tensor& y, int64_t num_freqs) {
  auto yr = torch::view_as_real(y.resolve_conj());
  if (num_freqs == spec.size(-2)) return yr.contiguous();
  return torch::cat({yr, spec.narrow(-2, num_freqs, spec.size(-2) - num_freqs)}, -2);
}

// -------------------------------------------------------------------------------------------
// The deep filter kernel (raw memory) and its hand-written backward.
// Coefficient addressing: element (b, c, t, n, f) sits at complex offset
//   b*sb + c*sc + t*st + n*sn + f*sf.
// -------------------------------------------------------------------------------------------
struct DfGeom {
  int64_t B, C, T, F, Fdf, N, L;
  int64_t sb, sc, st, sn, sf;
  bool conj;
};

DfGeom make_geom(const torch::Tensor& spec, CoefLayout layout, int64_t Fdf, int64_t N, int64_t L, bool conj) {
  DfGeom g{spec.size(0), spec.size(1), spec.size(2), spec.size(3), Fdf, N, N == 1 ? 0 : L, 0, 0, 0, 0, 0, conj};
  if (layout == CoefLayout::channel_time) {  // [B, C*N, T, Fdf]
    g.sf = 1;
    g.st = Fdf;
    g.sn = g.T * Fdf;
    g.sc = N * g.sn;
    g.sb = g.C * g.sc;
  } else {  // [B, T, Fdf, N], shared by the channels
    g.sn = 1;
    g.sf = N;
    g.st = Fdf * N;
    g.sc = 0;
    g.sb = g.T * g.st;
  }
  return g;
}

// Forward and backward are the deep-filter kernels shared with DfOp (src/kernels/deep_filter.h),
// which need the bins of a tap contiguous: the bin-tap layout [B,T,Fdf,N] (a small per-bin
// filter) is transposed to [B,T,N,Fdf] first (and its gradient transposed back).
torch::Tensor bins_contiguous(const torch::Tensor& h, const DfGeom& g) {
  return g.sf == 1 ? h : h.view({g.B, g.T, g.Fdf, g.N, 2}).permute({0, 1, 3, 2, 4}).contiguous();
}

sepmech::detail::DfKernelGeom kernel_geom(const DfGeom& g) {
  if (g.sf == 1) return {g.B, g.C, g.T, g.F, g.Fdf, g.N, g.L, 2 * g.sb, 2 * g.sc, 2 * g.st, 2 * g.sn, g.conj};
  return {g.B, g.C, g.T, g.F, g.Fdf, g.N, g.L, 2 * g.T * g.N * g.Fdf, 0, 2 * g.N * g.Fdf, 2 * g.Fdf, g.conj};
}

torch::Tensor df_forward(const torch::Tensor& x, const torch::Tensor& h, const DfGeom& g) {
  auto y = torch::empty_like(x);
  const torch::Tensor hk = bins_contiguous(h, g);
  const auto k = kernel_geom(g);
  const bool avx2 = kernels::use_avx2();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sepmech::mf::deep_filter", [&] {
    sepmech::detail::deep_filter_forward_kernel<scalar_t>(x.data_ptr<scalar_t>(), hk.data_ptr<scalar_t>(), nullptr,
                                                          y.data_ptr<scalar_t>(), k, avx2);
  });
  return y;
}

/// Gradients w.r.t. spec and coefs (coefs in their own layout).
std::pair<torch::Tensor, torch::Tensor> df_backward(const torch::Tensor& x, const torch::Tensor& h,
                                                    const torch::Tensor& gy, const DfGeom& g) {
  auto gx = torch::empty_like(x);
  const torch::Tensor hk = bins_contiguous(h, g);
  auto ghk = torch::empty_like(hk, at::MemoryFormat::Contiguous);
  const auto k = kernel_geom(g);
  const bool avx2 = kernels::use_avx2();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sepmech::mf::deep_filter_backward", [&] {
    sepmech::detail::deep_filter_backward_kernel<scalar_t>(x.data_ptr<scalar_t>(), hk.data_ptr<scalar_t>(), nullptr,
                                                           gy.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(),
                                                           ghk.data_ptr<scalar_t>(), nullptr, k, avx2);
  });
  if (g.sf == 1) return {gx, ghk};
  return {gx, ghk.view({g.B, g.T, g.N, g.Fdf, 2}).permute({0, 1, 3, 2, 4}).contiguous().view(h.sizes())};
}

struct DeepFilterFn : public torch::autograd::Function<DeepFilterFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& spec,
                               const torch::Tensor& coefs, int64_t layout, int64_t Fdf, int64_t N, int64_t L,
                               bool conj) {
    auto x = spec.contiguous();
    auto h = coefs.contiguous();
    const DfGeom g = make_geom(x, static_cast<CoefLayout>(layout), Fdf, N, L, conj);
    auto y = df_forward(x, h, g);
    ctx->save_for_backward({x, h});
    ctx->saved_data["layout"] = layout;
    ctx->saved_data["Fdf"] = Fdf;
    ctx->saved_data["N"] = N;
    ctx->saved_data["L"] = L;
    ctx->saved_data["conj"] = conj;
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& h = saved[1];
    auto gy = grads[0].contiguous();
    const DfGeom g = make_geom(x, static_cast<CoefLayout>(ctx->saved_data["layout"].toInt()),
                               ctx->saved_data["Fdf"].toInt(), ctx->saved_data["N"].toInt(),
                               ctx->saved_data["L"].toInt(), ctx->saved_data["conj"].toBool());
    auto [gx, gh] = df_backward(x, h, gy, g);
    return {gx, gh, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------
torch::Tensor spec_unfold(const torch::Tensor& spec, int64_t frame_size, int64_t lookahead) {
  TORCH_CHECK(spec.dim() >= 2, "sepmech::mf::spec_unfold: spec must be [...,T,F], got ", kernels::shape_str(spec));
  TORCH_CHECK(frame_size >= 1, "sepmech::mf::spec_unfold: frame_size must be >= 1, got ", frame_size);
  TORCH_CHECK(lookahead >= 0, "sepmech::mf::spec_unfold: lookahead must be >= 0, got ", lookahead);
  if (frame_size == 1) return spec.unsqueeze(-1);
  auto padded = torch::constant_pad_nd(spec, {0, 0, frame_size - 1 - lookahead, lookahead});
  return padded.unfold(-2, frame_size, 1);
}

torch::Tensor spec_unfold_real(const torch::Tensor& spec, int64_t frame_size, int64_t lookahead) {
  check_real_view("sepmech::mf::spec_unfold_real", "spec", spec, 5);
  TORCH_CHECK(frame_size >= 1, "sepmech::mf::spec_unfold_real: frame_size must be >= 1, got ", frame_size);
  TORCH_CHECK(lookahead >= 0, "sepmech::mf::spec_unfold_real: lookahead must be >= 0, got ", lookahead);
  if (frame_size == 1) return spec.unsqueeze(2);
  auto padded = torch::constant_pad_nd(spec, {0, 0, 0, 0, frame_size - 1 - lookahead, lookahead});
  return padded.unfold(2, frame_size, 1).permute({0, 1, 5, 2, 3, 4});  // [B,C,N,T,F,2]
}

// The reference's formulations (einsum) are kept on purpose: MfImpl::reference is the baseline the
// benchmarks measure the fused kernels against, so it must cost what the reference costs.
torch::Tensor apply_coefs(const torch::Tensor& spec_u, const torch::Tensor& w) {
  return torch::einsum("...n,...n->...", {spec_u, w});
}

torch::Tensor df(const torch::Tensor& spec_u, const torch::Tensor& coefs) {
  TORCH_CHECK(spec_u.dim() >= 3 && coefs.dim() >= 3, "sepmech::mf::df: spec_u must be [...,T,F,N] and coefs [...,N,T,F], got ",
              kernels::shape_str(spec_u), " and ", kernels::shape_str(coefs));
  TORCH_CHECK(spec_u.size(-1) == coefs.size(-3), "sepmech::mf::df: order of spec_u (", spec_u.size(-1),
              ") and coefs (", coefs.size(-3), ") must match");
  return torch::einsum("...tfn,...ntf->...tf", {spec_u, coefs});
}

torch::Tensor df_real(const torch::Tensor& spec, const torch::Tensor& coefs) {
  check_real_view("sepmech::mf::df_real", "spec", spec, 6);
  check_real_view("sepmech::mf::df_real", "coefs", coefs, 6);
  auto sr = spec.select(-1, 0), si = spec.select(-1, 1), cr = coefs.select(-1, 0), ci = coefs.select(-1, 1);
  auto re = (sr * cr - si * ci).sum(2);
  auto im = (sr * ci + si * cr).sum(2);
  return torch::stack({re, im}, -1);
}

torch::Tensor compute_mat_trace(const torch::Tensor& x, int64_t dim1, int64_t dim2) {
  return torch::diagonal(x, 0, dim1, dim2).sum(-1);
}

torch::Tensor tik_reg(const torch::Tensor& mat, double reg, double eps) {
  TORCH_CHECK(mat.dim() >= 2 && mat.size(-1) == mat.size(-2), "sepmech::mf::tik_reg: mat must be [...,N,N], got ",
              kernels::shape_str(mat));
  auto tr = compute_mat_trace(mat);
  auto delta = (mat.is_complex() ? torch::real(tr) : tr) * reg + eps;
  auto eye = torch::eye(mat.size(-1), mat.options());
  return mat + delta.unsqueeze(-1).unsqueeze(-1) * eye;
}

torch::Tensor solve(const torch::Tensor& Rxx, const torch::Tensor& rss, double diag_eps, double eps) {
  TORCH_CHECK(Rxx.is_complex() && rss.is_complex(), "sepmech::mf::solve: Rxx and rss must be complex, got ",
              Rxx.scalar_type(), " and ", rss.scalar_type());
  return small_solve(tik_reg(Rxx, diag_eps, eps), rss, /*hermitian=*/false);
}

torch::Tensor psd(const torch::Tensor& x, int64_t n) {
  TORCH_CHECK(x.is_complex() && x.dim() >= 2, "sepmech::mf::psd: x must be complex [...,T,F], got ",
              x.scalar_type(), " ", kernels::shape_str(x));
  TORCH_CHECK(n >= 1, "sepmech::mf::psd: n must be >= 1, got ", n);
  auto xu = torch::constant_pad_nd(x, {0, 0, n - 1, 0}).unfold(-2, n, 1);  // [...,T,F,n]
  return xu.unsqueeze(-2) * xu.conj().unsqueeze(-1);                       // [..., m, k] = x_k conj(x_m)
}

torch::Tensor deep_filter(const torch::Tensor& spec, const torch::Tensor& coefs, CoefLayout layout,
                          int64_t num_freqs, int64_t frame_size, int64_t lookahead, bool conj) {
  const char* who = "sepmech::mf::deep_filter";
  check_real_view(who, "spec", spec, 5);
  TORCH_CHECK(frame_size >= 1, who, ": frame_size must be >= 1, got ", frame_size);
  TORCH_CHECK(lookahead >= 0, who, ": lookahead must be >= 0, got ", lookahead);
  TORCH_CHECK(num_freqs >= 1 && num_freqs <= spec.size(3), who, ": num_freqs must be in [1, F=", spec.size(3),
              "], got ", num_freqs);
  const int64_t B = spec.size(0), C = spec.size(1), T = spec.size(2), N = frame_size;
  std::vector<int64_t> want = layout == CoefLayout::channel_time ? std::vector<int64_t>{B, C * N, T, num_freqs, 2}
                                                                 : std::vector<int64_t>{B, T, num_freqs, N, 2};
  TORCH_CHECK(coefs.sizes() == torch::IntArrayRef(want), who, ": coefs must be ",
              layout == CoefLayout::channel_time ? "[B, C*N, T, num_freqs, 2] = " : "[B, T, num_freqs, N, 2] = ",
              torch::IntArrayRef(want), ", got ", kernels::shape_str(coefs));
  TORCH_CHECK(coefs.scalar_type() == spec.scalar_type(), who, ": coefs must have the dtype of spec (",
              spec.scalar_type(), "), got ", coefs.scalar_type());
  return DeepFilterFn::apply(spec, coefs, static_cast<int64_t>(layout), num_freqs, N, lookahead, conj);
}

}  // namespace mf

// ---------------------------------------------------------------------------------------------
// MultiFrameModule
// ---------------------------------------------------------------------------------------------
void MultiFrameModule::set_geometry(const char* who, int64_t num_freqs, int64_t frame_size, int64_t lookahead) {
  TORCH_CHECK(num_freqs >= 1, who, ": num_freqs must be >= 1, got ", num_freqs);
  TORCH_CHECK(frame_size >= 1, who, ": frame_size must be >= 1, got ", frame_size);
  TORCH_CHECK(lookahead >= 0, who, ": lookahead must be >= 0, got ", lookahead);
  num_freqs_ = num_freqs;
  frame_size_ = frame_size;
  lookahead_ = lookahead;
}

namespace {

void check_spec(const char* who, const torch::Tensor& spec, int64_t num_freqs) {
  TORCH_CHECK(spec.defined() && spec.dim() == 5 && spec.size(-1) == 2, who,
              ": spec must be a real view [B,C,T,F,2], got ", spec.defined() ? c10::str(spec.sizes()) : "undefined");
  TORCH_CHECK(spec.scalar_type() == torch::kFloat || spec.scalar_type() == torch::kDouble, who,
              ": spec must be float32 or float64, got ", spec.scalar_type());
  TORCH_CHECK(num_freqs <= spec.size(3), who, ": num_freqs (", num_freqs, ") must be <= F = spec.size(3), got F = ",
              spec.size(3));
}

void check_coefs(const char* who, const torch::Tensor& coefs, const torch::Tensor& spec,
                 std::vector<int64_t> want, const char* layout) {
  TORCH_CHECK(coefs.defined() && coefs.sizes() == torch::IntArrayRef(want), who, ": coefs must be ", layout, " = ",
              torch::IntArrayRef(want), ", got ", coefs.defined() ? c10::str(coefs.sizes()) : "undefined");
  TORCH_CHECK(coefs.scalar_type() == spec.scalar_type(), who, ": coefs must have the dtype of spec (",
              spec.scalar_type(), "), got ", coefs.scalar_type());
}

bool needs_grad(std::initializer_list<torch::Tensor> ts) {
  if (!torch::GradMode::is_enabled()) return false;
  for (const auto& t : ts)
    if (t.requires_grad()) return true;
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// DF / DFreal
// ---------------------------------------------------------------------------------------------
DFImpl::DFImpl(DFOptions options_) : options(std::move(options_)) { reset(); }
void DFImpl::reset() { set_geometry("sepmech::DF", options.num_freqs(), options.frame_size(), options.lookahead()); }

torch::Tensor DFImpl::forward(const torch::Tensor& spec, const torch::Tensor& coefs) {
  const char* who = "sepmech::DF";
  check_spec(who, spec, num_freqs_);
  const int64_t B = spec.size(0), C = spec.size(1), T = spec.size(2), N = frame_size_;
  check_coefs(who, coefs, spec, {B, C * N, T, num_freqs_, 2}, "[B, C*frame_size, T, num_freqs, 2]");
  if (options.impl() == MfImpl::fused)
    return mf::deep_filter(spec, coefs, mf::CoefLayout::channel_time, num_freqs_, N, lookahead_, options.conj());
  // Reference transcription: unfold the complex spectrogram, multiply-sum with the coefficients.
  auto spec_u = spec_unfold(mf::as_complex(spec)).narrow(-2, 0, num_freqs_);  // [B,C,T,Fdf,N]
  auto h = mf::as_complex(coefs).view({B, C, N, T, num_freqs_});
  if (options.conj()) h = h.conj();
  return mf::assign_bins(spec, mf::df(spec_u, h), num_freqs_);
}

void DFImpl::pretty_print(std::ostream& s) const {
  s << "sepmech::DF(num_freqs=" << options.num_freqs() << ", frame_size=" << options.frame_size()
    << ", lookahead=" << options.lookahead() << ", conj=" << options.conj() << ")";
}

DFrealImpl::DFrealImpl(DFOptions options_) : options(std::move(options_)) { reset(); }
void DFrealImpl::reset() {
  set_geometry("sepmech::DFreal", options.num_freqs(), options.frame_size(), options.lookahead());
}

torch::Tensor DFrealImpl::forward(const torch::Tensor& spec, const torch::Tensor& coefs) {
  const char* who = "sepmech::DFreal";
  check_spec(who, spec, num_freqs_);
  const int64_t B = spec.size(0), C = spec.size(1), T = spec.size(2), N = frame_size_;
  check_coefs(who, coefs, spec, {B, C * N, T, num_freqs_, 2}, "[B, C*frame_size, T, num_freqs, 2]");
  auto spec_u = spec_unfold_real(spec.narrow(3, 0, num_freqs_));  // [B,C,N,T,Fdf,2]
  auto y = mf::df_real(spec_u, coefs.view({B, C, N, T, num_freqs_, 2}));
  if (num_freqs_ == spec.size(3)) return y;
  return torch::cat({y, spec.narrow(3, num_freqs_, spec.size(3) - num_freqs_)}, 3);
}

void DFrealImpl::pretty_print(std::ostream& s) const {
  s << "sepmech::DFreal(num_freqs=" << options.num_freqs() << ", frame_size=" << options.frame_size()
    << ", lookahead=" << options.lookahead() << ")";
}

// ---------------------------------------------------------------------------------------------
// CRM
// ---------------------------------------------------------------------------------------------
CRMImpl::CRMImpl(CRMOptions options_) : options(std::move(options_)) { reset(); }
void CRMImpl::reset() {
  TORCH_CHECK(options.frame_size() == 1, "sepmech::CRM: frame_size must be 1, got ", options.frame_size());
  TORCH_CHECK(options.lookahead() == 0, "sepmech::CRM: lookahead must be 0, got ", options.lookahead());
  set_geometry("sepmech::CRM", options.num_freqs(), 1, 0);
}

torch::Tensor CRMImpl::forward(const torch::Tensor& spec, const torch::Tensor& coefs) {
  const char* who = "sepmech::CRM";
  check_spec(who, spec, num_freqs_);
  check_coefs(who, coefs, spec, {spec.size(0), spec.size(1), spec.size(2), num_freqs_, 2},
              "[B, C, T, num_freqs, 2]");
  auto x = mf::as_complex(spec.narrow(3, 0, num_freqs_));
  return mf::assign_bins(spec, x * mf::as_complex(coefs), num_freqs_);
}

torch::Tensor CRMImpl::forward_impl(const torch::Tensor& spec_u, const torch::Tensor& coefs) const {
  TORCH_CHECK(spec_u.is_complex() && coefs.is_complex(), "sepmech::CRM::forward_impl: spec_u and coefs must be complex, got ",
              spec_u.scalar_type(), " and ", coefs.scalar_type());
  TORCH_CHECK(spec_u.dim() >= 1 && spec_u.size(-1) == 1, "sepmech::CRM::forward_impl: spec_u must be [...,1], got ",
              spec_u.sizes());
  return spec_u.squeeze(-1) * coefs;
}

void CRMImpl::pretty_print(std::ostream& s) const { s << "sepmech::CRM(num_freqs=" << options.num_freqs() << ")"; }

// ---------------------------------------------------------------------------------------------
// MfWf / MfMvdr
// ---------------------------------------------------------------------------------------------
std::array<double, 4> MfFilterBase::r_factor_table(bool mvdr) {
  if (mvdr) return {2e4, 3e8, 5e-5, 1e-6};
  return {2e3, 3e7, 2e-4, 5e-6};
}

double MfFilterBase::get_r_factor() const {
  const auto t = r_factor_table(mvdr_);
  const auto& o = opts();
  return t[(o.inverse() ? 0 : 2) + (o.cholesky_decomp() ? 0 : 1)];
}

void MfFilterBase::check_inputs(const torch::Tensor& spec, const torch::Tensor& ifc, const torch::Tensor& R) const {
  const char* who = mvdr_ ? "sepmech::MfMvdr" : "sepmech::MfWf";
  check_spec(who, spec, num_freqs_);
  const int64_t B = spec.size(0), T = spec.size(2), N = frame_size_;
  TORCH_CHECK(ifc.defined() && ifc.sizes() == torch::IntArrayRef({B, T, num_freqs_, 2 * N}), who,
              ": ifc must be [B, T, num_freqs, 2*frame_size] = ", torch::IntArrayRef({B, T, num_freqs_, 2 * N}),
              ", got ", ifc.defined() ? c10::str(ifc.sizes()) : "undefined");
  TORCH_CHECK(R.defined() && R.sizes() == torch::IntArrayRef({B, T, num_freqs_, 2 * N * N}), who,
              ": R must be [B, T, num_freqs, 2*frame_size^2] = ", torch::IntArrayRef({B, T, num_freqs_, 2 * N * N}),
              ", got ", R.defined() ? c10::str(R.sizes()) : "undefined");
  TORCH_CHECK(ifc.scalar_type() == spec.scalar_type() && R.scalar_type() == spec.scalar_type(), who,
              ": ifc and R must have the dtype of spec (", spec.scalar_type(), "), got ", ifc.scalar_type(), " and ",
              R.scalar_type());
}

torch::Tensor MfFilterBase::weights(const torch::Tensor& ifc, const torch::Tensor& R) const {
  const auto& o = opts();
  const char* who = mvdr_ ? "sepmech::MfMvdr::weights" : "sepmech::MfWf::weights";
  const int64_t N = frame_size_;
  TORCH_CHECK(ifc.dim() == 4 && ifc.size(-1) == 2 * N && R.dim() == 4 && R.size(-1) == 2 * N * N &&
                  ifc.sizes().slice(0, 3) == R.sizes().slice(0, 3),
              who, ": ifc must be [B,T,F,2N] and R [B,T,F,2N^2] with N = ", N, ", got ", ifc.sizes(), " and ",
              R.sizes());
  const bool fused = o.impl() == MfImpl::fused;
  const auto bshape = ifc.sizes().slice(0, 3).vec();
  auto shape_m = bshape;
  shape_m.insert(shape_m.end(), {N, N, 2});
  auto shape_v = bshape;
  shape_v.insert(shape_v.end(), {N, 2});
  auto A0 = torch::view_as_complex(R.contiguous().view(shape_m));
  auto gamma = torch::view_as_complex(ifc.contiguous().view(shape_v));
  // The fused path's guard: a bin whose matrix (the entries used after enforce_constraints) or
  // IFC is non-finite is computed on zeros -- so no NaN reaches the gradients -- and passed
  // through at the end. Entries that enforcement overwrites are ignored, as in the reference.
  torch::Tensor bin_ok;
  auto sanitize = [&](const torch::Tensor& m) {
    bin_ok = torch::isfinite(m).all(-1).all(-1).logical_and(torch::isfinite(gamma).all(-1));
    gamma = torch::where(bin_ok.unsqueeze(-1), gamma, torch::zeros({}, gamma.options()));
    return torch::where(bin_ok.unsqueeze(-1).unsqueeze(-1), m, torch::zeros({}, m.options()));
  };
  torch::Tensor A;
  if (o.cholesky_decomp()) {
    auto Lm = o.enforce_constraints() ? torch::tril(A0) : A0;
    if (fused) Lm = sanitize(Lm);
    A = torch::matmul(Lm, Lm.mH());
  } else {
    if (o.enforce_constraints() && !o.inverse()) {
      auto lower = torch::tril(A0, -1);
      auto diag = torch::real(torch::diagonal(A0, 0, -2, -1));
      A = lower + lower.mH() + torch::diag_embed(torch::complex(diag, torch::zeros_like(diag)));
    } else {
      A = A0;
    }
    if (fused) A = sanitize(A);
  }
  torch::Tensor v;
  if (!o.inverse()) {
    auto delta = torch::real(mf::compute_mat_trace(A)) * o.dload() + o.eps();
    auto eye = torch::eye(N, A.options());
    auto A2 = A + delta.unsqueeze(-1).unsqueeze(-1) * eye;
    if (fused)
      v = mf::detail::small_solve_floor(A2, gamma, o.cholesky_decomp() || o.enforce_constraints(), delta.abs() * 0.5);
    else
      v = torch::linalg_solve(A2, gamma.unsqueeze(-1)).squeeze(-1);
  } else {
    v = torch::einsum("...nm,...m->...n", {A, gamma});
  }
  torch::Tensor w = v;
  if (mvdr_) {
    auto ref = gamma.select(-1, N - 1).conj();
    auto den = torch::real(torch::einsum("...n,...n->...", {gamma.conj(), v})) + o.eps();
    w = v * (ref / den).unsqueeze(-1);
  }
  if (fused) {
    auto keep = bin_ok.logical_and(torch::isfinite(torch::view_as_real(w)).all(-1).all(-1));
    const int64_t cur = N - 1 - effective_lookahead();
    auto unit = torch::zeros({N}, w.options());
    if (cur >= 0 && cur < N) unit[cur] = 1;
    w = torch::where(keep.unsqueeze(-1), w, unit);
  }
  return w;
}

torch::Tensor MfFilterBase::filter(const torch::Tensor& spec, const torch::Tensor& ifc, const torch::Tensor& R) const {
  check_inputs(spec, ifc, R);
  const auto& o = opts();
  const int64_t N = frame_size_;
  if (o.impl() == MfImpl::fused && N <= 8 && !needs_grad({spec, ifc, R})) {
    mf::detail::MfFusedArgs a{spec.size(0), spec.size(1), spec.size(2), spec.size(3), num_freqs_, N,
                              effective_lookahead(), mvdr_, o.cholesky_decomp(), o.inverse(),
                              o.enforce_constraints(), o.eps(), o.dload()};
    return mf::detail::mf_filter_fused(spec, ifc, R, a);
  }
  auto w = weights(ifc, R);  // [B,T,Fdf,N] complex
  if (o.impl() == MfImpl::fused)
    return mf::deep_filter(spec, torch::view_as_real(w).contiguous(), mf::CoefLayout::bin_tap, num_freqs_, N,
                           lookahead_, false);
  auto spec_u = spec_unfold(mf::as_complex(spec)).narrow(-2, 0, num_freqs_);  // [B,C,T,Fdf,N]
  return mf::assign_bins(spec, apply_coefs(spec_u, w.unsqueeze(1)), num_freqs_);
}

namespace {
void print_filter(std::ostream& s, const char* name, const MfFilterOptions& o) {
  s << name << "(num_freqs=" << o.num_freqs() << ", frame_size=" << o.frame_size() << ", lookahead=" << o.lookahead()
    << ", cholesky_decomp=" << o.cholesky_decomp() << ", inverse=" << o.inverse()
    << ", enforce_constraints=" << o.enforce_constraints() << ", eps=" << o.eps() << ", dload=" << o.dload() << ")";
}
}  // namespace

MfWfImpl::MfWfImpl(MfWfOptions options_) : MfFilterBase(false), options(std::move(options_)) { reset(); }
void MfWfImpl::reset() {
  set_geometry("sepmech::MfWf", options.num_freqs(), options.frame_size(), options.lookahead());
}
void MfWfImpl::pretty_print(std::ostream& s) const { print_filter(s, "sepmech::MfWf", options); }

MfMvdrImpl::MfMvdrImpl(MfMvdrOptions options_) : MfFilterBase(true), options(std::move(options_)) { reset(); }
void MfMvdrImpl::reset() {
  set_geometry("sepmech::MfMvdr", options.num_freqs(), options.frame_size(), options.lookahead());
}
void MfMvdrImpl::pretty_print(std::ostream& s) const { print_filter(s, "sepmech::MfMvdr", options); }

// ---------------------------------------------------------------------------------------------
// 2022 variants
// ---------------------------------------------------------------------------------------------
namespace {
void print_old(std::ostream& s, const char* name, const MfWfOldOptions& o) {
  s << name << "(num_freqs=" << o.num_freqs() << ", frame_size=" << o.frame_size() << ")";
}
}  // namespace

MfWfDfImpl::MfWfDfImpl(MfWfOldOptions options_) : options(std::move(options_)) { reset(); }
void MfWfDfImpl::reset() { set_geometry("sepmech::MfWfDf", options.num_freqs(), options.frame_size(), 0); }

torch::Tensor MfWfDfImpl::forward(const torch::Tensor& spec, const torch::Tensor& coefs) {
  const char* who = "sepmech::MfWfDf";
  check_spec(who, spec, num_freqs_);
  const int64_t B = spec.size(0), C = spec.size(1), T = spec.size(2), N = frame_size_;
  check_coefs(who, coefs, spec, {B, 2 * C * N, T, num_freqs_, 2}, "[B, 2*C*frame_size, T, num_freqs, 2]");
  auto spec_u = spec_unfold(mf::as_complex(spec.narrow(3, 0, num_freqs_)));  // [B,C,T,Fdf,N]
  // The reference chunks the channels in two halves (speech coefs of every channel, then noisy
  // coefs), each viewed [B, C, N, T, Fdf].
  auto h = mf::as_complex(coefs).view({B, 2, C, N, T, num_freqs_});
  auto s_est = mf::df(spec_u, h.select(1, 0));  // speech estimate [B,C,T,Fdf]
  auto x_est = mf::df(spec_u, h.select(1, 1));  // noisy estimate
  auto rss = mf::psd(s_est, N).select(-1, N - 1);  // [B,C,T,Fdf,N]
  auto Rxx = mf::psd(x_est, N);
  auto w = mf::solve(Rxx, rss, options.eps_diag(), options.eps());
  return mf::assign_bins(spec, apply_coefs(spec_u, w), num_freqs_);
}
void MfWfDfImpl::pretty_print(std::ostream& s) const { print_old(s, "sepmech::MfWfDf", options); }

MfWfPsdImpl::MfWfPsdImpl(MfWfOldOptions options_) : options(std::move(options_)) { reset(); }
void MfWfPsdImpl::reset() { set_geometry("sepmech::MfWfPsd", options.num_freqs(), options.frame_size(), 0); }

torch::Tensor MfWfPsdImpl::forward(const torch::Tensor& spec, const torch::Tensor& coefs) {
  const char* who = "sepmech::MfWfPsd";
  check_spec(who, spec, num_freqs_);
  const int64_t B = spec.size(0), T = spec.size(2), N = frame_size_;
  check_coefs(who, coefs, spec, {B, N * N + N, T, num_freqs_, 2}, "[B, frame_size^2 + frame_size, T, num_freqs, 2]");
  auto spec_u = spec_unfold(mf::as_complex(spec.narrow(3, 0, num_freqs_)));  // [B,C,T,Fdf,N]
  auto h = mf::as_complex(coefs).permute({0, 2, 3, 1});                        // [B,T,Fdf,N^2+N]
  auto Rxx = h.narrow(-1, 0, N * N).reshape({B, T, num_freqs_, N, N});
  auto rss = h.narrow(-1, N * N, N);
  auto w = mf::solve(Rxx, rss).unsqueeze(1);  // [B,1,T,Fdf,N], shared by the channels
  return mf::assign_bins(spec, apply_coefs(spec_u, w), num_freqs_);
}
void MfWfPsdImpl::pretty_print(std::ostream& s) const { print_old(s, "sepmech::MfWfPsd", options); }

MfWfCImpl::MfWfCImpl(MfWfOldOptions options_) : options(std::move(options_)) { reset(); }
void MfWfCImpl::reset() { set_geometry("sepmech::MfWfC", options.num_freqs(), options.frame_size(), 0); }

torch::Tensor MfWfCImpl::forward(const torch::Tensor& spec, const torch::Tensor& coefs) {
  const char* who = "sepmech::MfWfC";
  check_spec(who, spec, num_freqs_);
  const int64_t B = spec.size(0), C = spec.size(1), T = spec.size(2), N = frame_size_;
  check_coefs(who, coefs, spec, {B, C * N, T, num_freqs_, 2}, "[B, C*frame_size, T, num_freqs, 2]");
  return mf::deep_filter(spec, coefs, mf::CoefLayout::channel_time, num_freqs_, N, 0, false);
}
void MfWfCImpl::pretty_print(std::ostream& s) const { print_old(s, "sepmech::MfWfC", options); }

}  // namespace sepmech
