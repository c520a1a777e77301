// OSA_RES_eSE block, stage and VoVNet backbone (see include/sepmech/osa.h, docs/osa.md).
#include "sepmech/osa.h"

#include "kernels/shape.h"
#include "kernels/cpu.h"
#include "kernels/gemm.h"

#include "kernels/simd_transpose.h"

#include <cctype>

#include "sepmech/io/state_dict.h"

namespace sepmech {

namespace {


void check_input(const torch::Tensor& x, int64_t channels, const char* who) {
  TORCH_CHECK(x.defined(), "sepmech::", who, ": input must be a defined tensor");
  TORCH_CHECK(x.dim() == 3 || x.dim() == 4, "sepmech::", who,
              ": input must be (B, C, H, W) or (B, C, T), got shape ", kernels::shape_str(x));
  TORCH_CHECK(x.is_floating_point(), "sepmech::", who, ": input must be floating point, got ", x.scalar_type());
  TORCH_CHECK(x.size(1) == channels, "sepmech::", who, ": input must have ", channels,
              " channels (dim 1), got shape ", kernels::shape_str(x));
  for (int64_t d = 2; d < x.dim(); ++d)
    TORCH_CHECK(x.size(d) >= 1, "sepmech::", who, ": spatial sizes must be >= 1, got shape ", kernels::shape_str(x));
}

/// [c][hw] -> [hw][c] for one image, by cache-sized tiles (portable).
void transpose_tiled(const float* s, float* d, int64_t c, int64_t hw) {
  constexpr int64_t kTile = 32;
  for (int64_t p0 = 0; p0 < hw; p0 += kTile) {
    const int64_t p1 = std::min(p0 + kTile, hw);
    for (int64_t c0 = 0; c0 < c; c0 += kTile) {
      const int64_t c1 = std::min(c0 + kTile, c);
      for (int64_t p = p0; p < p1; ++p)
        for (int64_t ch = c0; ch < c1; ++ch) d[p * c + ch] = s[ch * hw + p];
    }
  }
}

#if SEPMECH_HAVE_AVX2_TRANSPOSE
/// The same with 8x8 register transposes (AVX2) on the full 8-channel x 8-position tiles; the
/// ragged edges go through the portable loop.
__attribute__((target("avx2"))) void transpose_avx2(const float* s, float* d, int64_t c, int64_t hw) {
  const int64_t c8 = c / 8 * 8, p8 = hw / 8 * 8;
  for (int64_t p = 0; p < p8; p += 8) {
    for (int64_t ch = 0; ch < c8; ch += 8) detail::transpose8x8_avx2(s + ch * hw + p, hw, d + p * c + ch, c);
    for (int64_t q = p; q < p + 8; ++q)
      for (int64_t ch = c8; ch < c; ++ch) d[q * c + ch] = s[ch * hw + q];
  }
  for (int64_t q = p8; q < hw; ++q)
    for (int64_t ch = 0; ch < c; ++ch) d[q * c + ch] = s[ch * hw + q];
}
#endif

/// NCHW float tensor -> NHWC copy (channels-last). LibTorch's generic strided copy takes 1.7 ms
/// for the 4 MB osa_block input here, the portable tiled loop 0.96 ms, the AVX2 one 0.2-0.3 ms.
torch::Tensor to_channels_last(const torch::Tensor& x) {
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast) || x.scalar_type() != torch::kFloat || !x.is_contiguous())
    return x.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = torch::empty_like(x, at::MemoryFormat::ChannelsLast);
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
#if SEPMECH_HAVE_AVX2_TRANSPOSE
  const bool avx2 = kernels::use_avx2();
#endif
  for (int64_t b = 0; b < n; ++b) {
#if SEPMECH_HAVE_AVX2_TRANSPOSE
    if (avx2) {
      transpose_avx2(src + b * c * hw, dst + b * c * hw, c, hw);
      continue;
    }
#endif
    transpose_tiled(src + b * c * hw, dst + b * c * hw, c, hw);
  }
  return y;
}

/// Copies every parameter and buffer of `src` into the identically structured `dst`.
void copy_state(const torch::nn::Module& src, torch::nn::Module& dst) {
  io::load_state_dict(dst, io::state_dict(src));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Norm2d
// ---------------------------------------------------------------------------------------------

NormKind norm_kind_from_string(const std::string& name) {
  if (name == "BN" || name == "SyncBN") return NormKind::batch_norm;
  if (name == "FrozenBN") return NormKind::frozen_batch_norm;
  if (name == "GN") return NormKind::group_norm;
  TORCH_CHECK(false, "sepmech::norm_kind_from_string: norm must be one of \"BN\", \"SyncBN\", \"FrozenBN\", \"GN\", got \"",
              name, "\"");
  return NormKind::batch_norm;
}

std::string to_string(NormKind kind) {
  switch (kind) {
    case NormKind::batch_norm: return "BN";
    case NormKind::frozen_batch_norm: return "FrozenBN";
    case NormKind::group_norm: return "GN";
    case NormKind::identity: return "Identity";
  }
  return "?";
}

Norm2dImpl::Norm2dImpl(Norm2dOptions options_) : options(std::move(options_)) { reset(); }

void Norm2dImpl::reset() {
  const int64_t c = options.channels();
  TORCH_CHECK(c > 0, "sepmech::Norm2d: channels must be > 0, got ", c);
  TORCH_CHECK(options.eps() >= 0, "sepmech::Norm2d: eps must be >= 0, got ", options.eps());
  switch (options.kind()) {
    case NormKind::batch_norm:
      weight = register_parameter("weight", torch::ones({c}));
      bias = register_parameter("bias", torch::zeros({c}));
      running_mean = register_buffer("running_mean", torch::zeros({c}));
      running_var = register_buffer("running_var", torch::ones({c}));
      num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
      break;
    case NormKind::frozen_batch_norm:
      // detectron2 FrozenBatchNorm2d: four buffers, no trainable parameter; running_var starts
      // at 1 - eps so that a fresh layer is the identity.
      weight = register_buffer("weight", torch::ones({c}));
      bias = register_buffer("bias", torch::zeros({c}));
      running_mean = register_buffer("running_mean", torch::zeros({c}));
      running_var = register_buffer("running_var", torch::ones({c}) - options.eps());
      break;
    case NormKind::group_norm:
      TORCH_CHECK(options.groups() > 0 && c % options.groups() == 0, "sepmech::Norm2d: GroupNorm(",
                  options.groups(), ") needs channels divisible by ", options.groups(), ", got ", c);
      weight = register_parameter("weight", torch::ones({c}));
      bias = register_parameter("bias", torch::zeros({c}));
      break;
    case NormKind::identity:
      break;
  }
}

torch::Tensor Norm2dImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() >= 2 && x.size(1) == options.channels(), "sepmech::Norm2d: input must have ",
              options.channels(), " channels (dim 1), got shape ", kernels::shape_str(x));
  switch (options.kind()) {
    case NormKind::batch_norm: {
      const bool train = is_training();
      if (train) {
        TORCH_CHECK(x.numel() / options.channels() > 1,
                    "sepmech::Norm2d: BatchNorm in training mode needs more than 1 value per channel, got shape ",
                    kernels::shape_str(x));
        torch::NoGradGuard ng;
        num_batches_tracked.add_(1);
      }
      return torch::batch_norm(x, weight, bias, running_mean, running_var, train, options.momentum(),
                               options.eps(), false);
    }
    case NormKind::frozen_batch_norm:
      return torch::batch_norm(x, weight, bias, running_mean, running_var, false, 0.0, options.eps(), false);
    case NormKind::group_norm:
      return torch::group_norm(x, options.groups(), weight, bias, options.eps(), false);
    case NormKind::identity:
      return x;
  }
  return x;
}

std::pair<torch::Tensor, torch::Tensor> Norm2dImpl::affine_equivalent() const {
  TORCH_CHECK(foldable(), "sepmech::Norm2d: GroupNorm has no input-independent affine equivalent");
  const int64_t c = options.channels();
  if (options.kind() == NormKind::identity) return {torch::ones({c}), torch::zeros({c})};
  torch::NoGradGuard ng;
  auto w = weight.to(torch::kDouble), b = bias.to(torch::kDouble);
  auto scale = w / torch::sqrt(running_var.to(torch::kDouble) + options.eps());
  auto shift = b - running_mean.to(torch::kDouble) * scale;
  return {scale, shift};
}

void Norm2dImpl::pretty_print(std::ostream& s) const {
  s << "sepmech::Norm2d(" << to_string(options.kind()) << ", " << options.channels();
  if (options.kind() == NormKind::group_norm) s << ", groups=" << options.groups();
  if (options.kind() != NormKind::identity) s << ", eps=" << options.eps();
  s << ")";
}

// ---------------------------------------------------------------------------------------------
// eSE
// ---------------------------------------------------------------------------------------------

torch::Tensor hard_sigmoid(const torch::Tensor& u) {
  // relu6 is hardtanh(0, 6): same values as clamp, and a zero derivative at exactly u = +-3.
  return torch::hardtanh(u + 3.0, 0.0, 6.0) / 6.0;
}

ESEImpl::ESEImpl(ESEOptions options_) : options(std::move(options_)) { reset(); }

void ESEImpl::reset() {
  TORCH_CHECK(options.channels() > 0, "sepmech::ESE: channels must be > 0, got ", options.channels());
  fc = register_module("fc", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.channels(), options.channels(), 1)));
}

torch::Tensor ESEImpl::gate(const torch::Tensor& a) {
  check_input(a, options.channels(), "ESE");
  if (a.dim() == 4) {
    auto s = options.frequency_only() ? a.mean({3}, true) : a.mean({2, 3}, true);
    return hard_sigmoid(torch::conv2d(s, fc->weight, fc->bias));
  }
  auto s = options.frequency_only() ? a : a.mean({2}, true);  // (B, C, T) has no frequency axis
  return hard_sigmoid(torch::conv1d(s, fc->weight.select(3, 0), fc->bias));
}

torch::Tensor ESEImpl::forward(const torch::Tensor& a) { return a * gate(a); }

void ESEImpl::pretty_print(std::ostream& s) const {
  s << "sepmech::ESE(" << options.channels() << (options.frequency_only() ? ", frequency_only" : "") << ")";
}

// ---------------------------------------------------------------------------------------------
// ConvUnit
// ---------------------------------------------------------------------------------------------

ConvUnitImpl::ConvUnitImpl(ConvUnitOptions options_) : options(std::move(options_)) { reset(); }

void ConvUnitImpl::reset() {
  using torch::nn::Conv2d;
  using torch::nn::Conv2dOptions;
  parts.clear();
  TORCH_CHECK(!options.units().empty(), "sepmech::ConvUnit: units must not be empty");
  const bool fold = fused && options.norm() != NormKind::group_norm;
  const NormKind nk = fold ? NormKind::identity : options.norm();
  for (const auto& u : options.units()) {
    TORCH_CHECK(u.in_channels > 0 && u.out_channels > 0, "sepmech::ConvUnit: ", u.name,
                ": channels must be > 0, got in ", u.in_channels, ", out ", u.out_channels);
    TORCH_CHECK(u.stride >= 1, "sepmech::ConvUnit: ", u.name, ": stride must be >= 1, got ", u.stride);
    TORCH_CHECK(!u.name.empty() && u.name.find('.') == std::string::npos, "sepmech::ConvUnit: unit name must be ",
                "non-empty without '.', got \"", u.name, "\"");
    Part p;
    p.spec = u;
    if (u.kind == UnitKind::dw_conv3x3) {
      TORCH_CHECK(u.in_channels == u.out_channels, "sepmech::ConvUnit: ", u.name,
                  ": a depthwise unit needs in_channels == out_channels, got ", u.in_channels, " and ",
                  u.out_channels);
      p.dw = register_module(u.name + "/dw_conv3x3",
                             Conv2d(Conv2dOptions(u.in_channels, u.out_channels, 3)
                                        .stride(u.stride)
                                        .padding(1)
                                        .groups(u.out_channels)
                                        .bias(false)));
      p.conv = register_module(u.name + "/pw_conv1x1",
                               Conv2d(Conv2dOptions(u.in_channels, u.out_channels, 1).bias(fold)));
      p.norm = register_module(u.name + "/pw_norm", Norm2d(Norm2dOptions(nk, u.out_channels)));
    } else {
      const bool k3 = u.kind == UnitKind::conv3x3;
      p.conv = register_module(u.name + "/conv", Conv2d(Conv2dOptions(u.in_channels, u.out_channels, k3 ? 3 : 1)
                                                            .stride(u.stride)
                                                            .padding(k3 ? 1 : 0)
                                                            .bias(fold)));
      p.norm = register_module(u.name + "/norm", Norm2d(Norm2dOptions(nk, u.out_channels)));
    }
    parts.push_back(std::move(p));
  }
}

namespace {

/// One convolution of a unit, 2-D or (for 3-D input) its exact 1-D form on H = 1: with padding 1
/// only the middle row of a 3x3 kernel meets data.
torch::Tensor unit_conv(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, bool k3,
                        int64_t stride, int64_t groups, bool causal) {
  const int64_t pad = (k3 && !causal) ? 1 : 0;
  if (x.dim() == 4) {
    const auto in = (k3 && causal) ? torch::constant_pad_nd(x, {1, 1, 2, 0}) : x;
    return torch::conv2d(in, w, b, torch::IntArrayRef{stride, stride}, torch::IntArrayRef{pad, pad},
                         torch::IntArrayRef{1, 1}, groups);
  }
  const auto in = (k3 && causal) ? torch::constant_pad_nd(x, {2, 0}) : x;
  return torch::conv1d(in, w.select(2, k3 ? 1 : 0), b, torch::IntArrayRef{stride}, torch::IntArrayRef{pad},
                       torch::IntArrayRef{1}, groups);
}

}  // namespace

torch::Tensor ConvUnitImpl::forward(const torch::Tensor& x) {
  check_input(x, parts.front().spec.in_channels, "ConvUnit");
  const bool causal = options.causal_time();
  torch::Tensor h = x;
  for (auto& p : parts) {
    const auto& u = p.spec;
    if (u.kind == UnitKind::dw_conv3x3) {
      h = unit_conv(h, p.dw->weight, {}, true, u.stride, u.out_channels, causal);
      h = unit_conv(h, p.conv->weight, p.conv->bias, false, 1, 1, causal);
    } else {
      h = unit_conv(h, p.conv->weight, p.conv->bias, u.kind == UnitKind::conv3x3, u.stride, 1, causal);
    }
    h = p.norm(h);
    // The fused (inference) path rectifies in place: the conv output is a fresh temporary.
    h = fused ? torch::relu_(h) : torch::relu(h);
  }
  return h;
}

void ConvUnitImpl::fuse_() {
  if (fused) return;
  using torch::nn::Conv2d;
  using torch::nn::Conv2dOptions;
  torch::NoGradGuard ng;
  fused = true;
  if (options.norm() == NormKind::group_norm) return;  // per-sample statistics: nothing to fold
  for (auto& p : parts) {
    const auto& u = p.spec;
    auto [scale, shift] = p.norm->affine_equivalent();
    auto w = p.conv->weight.to(torch::kDouble);
    auto folded_w = (w * scale.view({-1, 1, 1, 1})).to(p.conv->weight.dtype());
    auto folded_b = shift.to(p.conv->weight.dtype());
    const bool dw = u.kind == UnitKind::dw_conv3x3;
    const bool k3 = u.kind == UnitKind::conv3x3;
    const std::string conv_name = u.name + (dw ? "/pw_conv1x1" : "/conv");
    const std::string norm_name = u.name + (dw ? "/pw_norm" : "/norm");
    Conv2d c(Conv2dOptions(u.in_channels, u.out_channels, k3 ? 3 : 1)
                 .stride(dw ? 1 : u.stride)
                 .padding(k3 ? 1 : 0)
                 .bias(true));
    // Plain (OIHW) weights: with NHWC activations oneDNN is fastest with these (measured: a 3x3
    // 64->64 conv on 256x64 NHWC takes 4.4 ms with OIHW weights, 5.8 ms with channels-last ones).
    c->weight.set_data(folded_w.contiguous());
    c->bias.set_data(folded_b.contiguous());
    p.conv = replace_module(conv_name, c);
    p.norm = replace_module(norm_name, Norm2d(Norm2dOptions(NormKind::identity, u.out_channels)));
    // The depthwise kernel is the opposite case: channels-last weights make oneDNN's NHWC
    // depthwise kernel ~6x faster than OIHW ones (0.55 vs 3.3 ms on 64 x 256 x 64).
    if (dw) p.dw->weight.set_data(p.dw->weight.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

void ConvUnitImpl::pretty_print(std::ostream& s) const {
  s << "sepmech::ConvUnit(";
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& u = parts[i].spec;
    if (i) s << ", ";
    s << u.name << ":" << (u.kind == UnitKind::conv3x3 ? "3x3" : u.kind == UnitKind::conv1x1 ? "1x1" : "dw3x3") << " "
      << u.in_channels << "->" << u.out_channels;
    if (u.stride != 1) s << "/s" << u.stride;
  }
  s << ", norm=" << to_string(options.norm()) << (fused ? ", fused" : "") << (options.causal_time() ? ", causal" : "")
    << ")";
}

// ---------------------------------------------------------------------------------------------
// OSABlock
// ---------------------------------------------------------------------------------------------

OSABlockImpl::OSABlockImpl(OSABlockOptions options_) : options(std::move(options_)) { reset(); }

void OSABlockImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.in_ch() > 0, "sepmech::OSABlock: in_ch must be > 0, got ", o.in_ch());
  TORCH_CHECK(o.stage_ch() > 0, "sepmech::OSABlock: stage_ch must be > 0, got ", o.stage_ch());
  TORCH_CHECK(o.concat_ch() > 0, "sepmech::OSABlock: concat_ch must be > 0, got ", o.concat_ch());
  TORCH_CHECK(o.layer_per_block() >= 1, "sepmech::OSABlock: layer_per_block must be >= 1, got ",
              o.layer_per_block());
  TORCH_CHECK(!o.module_name().empty() && o.module_name().find('.') == std::string::npos,
              "sepmech::OSABlock: module_name must be non-empty without '.', got \"", o.module_name(), "\"");
  // The reference adds the input without checking; in_ch = 1 would silently broadcast.
  TORCH_CHECK(!o.identity() || o.in_ch() == o.concat_ch(),
              "sepmech::OSABlock: identity=true needs in_ch == concat_ch (the input is added to the output), got in_ch=",
              o.in_ch(), ", concat_ch=", o.concat_ch());
  TORCH_CHECK(!o.causal_time() || o.norm() != NormKind::group_norm,
              "sepmech::OSABlock: causal_time needs BatchNorm or FrozenBatchNorm (GroupNorm statistics span all ",
              "frames), got GN");
  const std::string& n = o.module_name();
  const bool reduced = o.depthwise() && o.in_ch() != o.stage_ch();
  auto unit = [&](std::vector<UnitSpec> specs) {
    ConvUnit u(ConvUnitOptions(std::move(specs)).norm(o.norm()).causal_time(o.causal_time()));
    u->fused = fused_;
    if (fused_) {  // rebuild the fused structure (clone() calls reset() on a copy)
      u->fused = false;
      u->fuse_();
    }
    return u;
  };
  layers = register_module("layers", torch::nn::ModuleList());
  int64_t in = o.depthwise() ? o.stage_ch() : o.in_ch();
  for (int64_t i = 0; i < o.layer_per_block(); ++i) {
    const UnitKind k = o.depthwise() ? UnitKind::dw_conv3x3 : UnitKind::conv3x3;
    layers->push_back(unit({UnitSpec{in, o.stage_ch(), n + "_" + std::to_string(i), k, 1}}));
    in = o.stage_ch();
  }
  conv_reduction = nullptr;
  if (reduced)
    conv_reduction = register_module(
        "conv_reduction", unit({UnitSpec{o.in_ch(), o.stage_ch(), n + "_reduction_0", UnitKind::conv1x1, 1}}));
  const int64_t cat_ch = o.in_ch() + o.layer_per_block() * o.stage_ch();
  concat = register_module("concat", unit({UnitSpec{cat_ch, o.concat_ch(), n + "_concat", UnitKind::conv1x1, 1}}));
  ese = nullptr;
  if (o.ese()) ese = register_module("ese", ESE(ESEOptions(o.concat_ch()).frequency_only(o.causal_time())));
}

torch::Tensor OSABlockImpl::forward(const torch::Tensor& x) { return forward_with_intermediates(x, nullptr); }

torch::Tensor OSABlockImpl::forward_with_intermediates(const torch::Tensor& x_in,
                                                       std::map<std::string, torch::Tensor>* mid) {
  check_input(x_in, options.in_ch(), "OSABlock");
  // out= kernels are not differentiable: under autograd a fused block takes the module path.
  const bool needs_grad =
      torch::GradMode::is_enabled() && (x_in.requires_grad() || concat->parts.front().conv->weight.requires_grad());
  if (fused_ && x_in.dim() == 4 && !needs_grad) return forward_inference(x_in, mid);
  const torch::Tensor& x = x_in;
  std::vector<torch::Tensor> outs;
  outs.reserve(options.layer_per_block() + 1);
  outs.push_back(x);
  torch::Tensor h = x;
  if (conv_reduction) {
    h = conv_reduction(h);
    if (mid) (*mid)["reduction"] = h;
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    h = layers->ptr<ConvUnitImpl>(i)->forward(h);
    if (mid) (*mid)["layer" + std::to_string(i)] = h;
    outs.push_back(h);
  }
  auto a = concat(torch::cat(outs, 1));
  if (mid) (*mid)["concat"] = a;
  torch::Tensor e = a;
  if (ese) {
    auto g = ese->gate(a);
    if (mid) (*mid)["gate"] = g;
    e = a * g;
    if (mid) (*mid)["ese"] = e;
  }
  // The residual comes after eSE and is not rectified: the output may be negative.
  return options.identity() ? e + x : e;
}

torch::Tensor OSABlockImpl::forward_inference(const torch::Tensor& x, std::map<std::string, torch::Tensor>* mid) {
  // Fused inference path. The 3x3 layers run on NHWC activations (oneDNN's native layout: with
  // NCHW it reorders in and out of every convolution). The concatenation lives in a workspace
  // kept between calls, so the 4-16 MB buffers are not freshly allocated (page-faulted) on every
  // call; the 1x1 aggregation is one GEMM per example (oneDNN sgemm, gemm.h) reading it transposed, writing NCHW.
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3), ci = options.in_ch(), cs = options.stage_ch();
  const int64_t cat_ch = ci + options.layer_per_block() * cs, co = options.concat_ch();
  std::unique_lock<std::mutex> lock(workspace_->mutex, std::try_to_lock);  // busy: use fresh buffers
  torch::Tensor z, a;
  const auto opts = x.options();
  if (lock.owns_lock()) {
    auto& ws = *workspace_;
    if (!ws.z.defined() || ws.z.sizes() != torch::IntArrayRef{n, cat_ch, h, w} || ws.z.dtype() != x.dtype()) {
      ws.z = torch::empty({n, cat_ch, h, w}, opts.memory_format(at::MemoryFormat::ChannelsLast));
      ws.a = torch::empty({n, co, h, w}, opts);
    }
    z = ws.z, a = ws.a;
  } else {
    z = torch::empty({n, cat_ch, h, w}, opts.memory_format(at::MemoryFormat::ChannelsLast));
    a = torch::empty({n, co, h, w}, opts);
  }
  auto xc = to_channels_last(x);
  z.narrow(1, 0, ci).copy_(xc);
  torch::Tensor hid = xc;
  if (conv_reduction) {
    hid = conv_reduction(hid);
    if (mid) (*mid)["reduction"] = hid;
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    hid = layers->ptr<ConvUnitImpl>(i)->forward(hid);
    if (mid) (*mid)["layer" + std::to_string(i)] = hid;
    z.narrow(1, ci + static_cast<int64_t>(i) * cs, cs).copy_(hid);
  }
  auto& part = concat->parts.front();
  auto wm = part.conv->weight.reshape({co, cat_ch});
  const bool has_bias = part.conv->bias.defined();
  auto bias = has_bias ? part.conv->bias.view({co, 1}) : torch::Tensor();
  for (int64_t b = 0; b < n; ++b) {
    auto zb = z[b].permute({1, 2, 0}).reshape({h * w, cat_ch});  // a view: z is NHWC
    auto ab = a[b].view({co, h * w});
    detail::gemm_into(ab, wm, zb, /*b_transposed=*/true, has_bias ? bias : torch::Tensor());
  }
  if (!part.norm->foldable()) a = part.norm(a);  // GroupNorm stays after fusion
  torch::relu_(a);
  if (mid) (*mid)["concat"] = a.clone();
  if (!ese) return options.identity() ? a + x : a.clone();  // never hand out the workspace
  auto g = ese->gate(a);
  if (mid) (*mid)["gate"] = g;
  if (options.identity()) return torch::addcmul(x, a, g);  // x + a*g in one pass
  return a * g;
}

OSABlockImpl::State OSABlockImpl::init_state(int64_t batch, int64_t freq) const {
  TORCH_CHECK(options.causal_time(), "sepmech::OSABlock::init_state: streaming needs causal_time(true)");
  TORCH_CHECK(batch >= 1 && freq >= 1, "sepmech::OSABlock::init_state: batch and freq must be >= 1, got ", batch,
              " and ", freq);
  State st;
  auto opts = concat->parts.front().conv->weight.options().requires_grad(false);
  for (size_t i = 0; i < layers->size(); ++i)
    st.history.push_back(torch::zeros({batch, layers->ptr<ConvUnitImpl>(i)->parts.front().spec.in_channels, 2, freq}, opts));
  return st;
}

torch::Tensor OSABlockImpl::step(const torch::Tensor& x, State& state) {
  TORCH_CHECK(options.causal_time(), "sepmech::OSABlock::step: streaming needs causal_time(true)");
  check_input(x, options.in_ch(), "OSABlock::step");
  TORCH_CHECK(x.dim() == 4, "sepmech::OSABlock::step: x must be (B, C, T_chunk, F), got shape ", kernels::shape_str(x));
  TORCH_CHECK(!is_training() || options.norm() == NormKind::frozen_batch_norm,
              "sepmech::OSABlock::step: needs eval mode (BatchNorm batch statistics span the chunk)");
  TORCH_CHECK(state.history.size() == layers->size(), "sepmech::OSABlock::step: state must hold ", layers->size(),
              " histories (use init_state), got ", state.history.size());
  // Validate every history before touching any, so a bad call leaves the state as it was.
  const int64_t B = x.size(0), F = x.size(3);
  for (size_t i = 0; i < layers->size(); ++i) {
    const auto& hist = state.history[i];
    const int64_t C = layers->ptr<ConvUnitImpl>(i)->parts.front().spec.in_channels;
    TORCH_CHECK(hist.defined() && hist.dim() == 4 && hist.size(0) == B && hist.size(1) == C && hist.size(2) == 2 &&
                    hist.size(3) == F,
                "sepmech::OSABlock::step: state history ", i, " must be (", B, ", ", C, ", 2, ", F, "), got ",
                kernels::shape_str(hist));
  }
  std::vector<torch::Tensor> next(layers->size());
  std::vector<torch::Tensor> outs{x};
  torch::Tensor h = conv_reduction ? conv_reduction(x) : x;
  for (size_t i = 0; i < layers->size(); ++i) {
    auto& unit = *layers->ptr<ConvUnitImpl>(i);
    auto& p = unit.parts.front();
    auto full = torch::cat({state.history[i], h}, 2);  // two past frames + this chunk: no time padding
    next[i] = full.narrow(2, full.size(2) - 2, 2).contiguous();
    const std::vector<int64_t> one{1, 1}, pad{0, 1}, none{0, 0};
    if (p.spec.kind == UnitKind::dw_conv3x3) {
      h = torch::conv2d(full, p.dw->weight, {}, one, pad, one, p.spec.out_channels);
      h = torch::conv2d(h, p.conv->weight, p.conv->bias, one, none, one, 1);
    } else {
      h = torch::conv2d(full, p.conv->weight, p.conv->bias, one, pad, one, 1);
    }
    h = torch::relu(p.norm(h));
    outs.push_back(h);
  }
  auto a = concat(torch::cat(outs, 1));
  auto e = ese ? a * ese->gate(a) : a;  // frequency-only gate: per frame
  auto y = options.identity() ? e + x : e;
  state.history = std::move(next);
  return y;
}

std::shared_ptr<OSABlockImpl> OSABlockImpl::fuse() const {
  auto copy = std::make_shared<OSABlockImpl>(options);
  copy_state(*this, *copy);
  copy->fuse_();
  return copy;
}

void OSABlockImpl::fuse_() {
  eval();
  if (fused_) return;
  if (conv_reduction) conv_reduction->fuse_();
  for (size_t i = 0; i < layers->size(); ++i) layers->ptr<ConvUnitImpl>(i)->fuse_();
  concat->fuse_();
  fused_ = true;
  // An inference artifact: without trainable parameters the fast path is taken by default.
  for (auto& p : parameters()) p.requires_grad_(false);
}

void OSABlockImpl::pretty_print(std::ostream& s) const {
  const auto& o = options;
  s << "sepmech::OSABlock(" << o.module_name() << ", in=" << o.in_ch() << ", stage=" << o.stage_ch()
    << ", concat=" << o.concat_ch() << ", L=" << o.layer_per_block() << ", norm=" << to_string(o.norm())
    << (o.identity() ? ", identity" : "") << (o.depthwise() ? ", depthwise" : "") << (o.ese() ? ", eSE" : ", no eSE")
    << (o.causal_time() ? ", causal_time" : "") << (fused_ ? ", fused" : "") << ")";
}

// ---------------------------------------------------------------------------------------------
// OSAStage
// ---------------------------------------------------------------------------------------------

OSAStageImpl::OSAStageImpl(OSAStageOptions options_) : options(std::move(options_)) { reset(); }

void OSAStageImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.block_per_stage() >= 1, "sepmech::OSAStage: block_per_stage must be >= 1, got ", o.block_per_stage());
  TORCH_CHECK(o.stage_num() >= 0, "sepmech::OSAStage: stage_num must be >= 0, got ", o.stage_num());
  blocks.clear();
  for (int64_t j = 1; j <= o.block_per_stage(); ++j) {
    const std::string name = "OSA" + std::to_string(o.stage_num()) + "_" + std::to_string(j);
    OSABlock b(OSABlockOptions(j == 1 ? o.in_ch() : o.concat_ch(), o.stage_ch(), o.concat_ch(), o.layer_per_block())
                   .module_name(name)
                   .identity(j > 1)
                   .depthwise(o.depthwise())
                   .ese(o.ese())
                   .norm(o.norm())
                   .causal_time(o.causal_time()));
    blocks.push_back(register_module(name, b));
  }
}

torch::Tensor OSAStageImpl::forward(const torch::Tensor& x_in) {
  check_input(x_in, options.in_ch(), "OSAStage");
  torch::Tensor x = x_in;
  if (has_pooling()) {
    if (x.dim() == 4 && options.causal_time()) {
      TORCH_CHECK(x.size(3) >= 2, "sepmech::OSAStage: the frequency max-pool needs F >= 2, got shape ", kernels::shape_str(x));
      x = torch::max_pool2d(x, {1, 3}, {1, 2}, {0, 0}, {1, 1}, true);
    } else if (x.dim() == 4) {
      TORCH_CHECK(x.size(2) >= 2 && x.size(3) >= 2, "sepmech::OSAStage: MaxPool2d(3, stride 2, ceil_mode) of stage ",
                  options.stage_num(), " needs H >= 2 and W >= 2, got shape ", kernels::shape_str(x),
                  " (use stage_num 2 for a stage without pooling)");
      x = torch::max_pool2d(x, {3, 3}, {2, 2}, {0, 0}, {1, 1}, true);
    } else {
      TORCH_CHECK(!options.causal_time(), "sepmech::OSAStage: a causal stage with pooling needs (B, C, T, F) input, ",
                  "got shape ", kernels::shape_str(x));
      TORCH_CHECK(x.size(2) >= 2, "sepmech::OSAStage: MaxPool1d(3, stride 2, ceil_mode) of stage ",
                  options.stage_num(), " needs T >= 2, got shape ", kernels::shape_str(x));
      x = torch::max_pool1d(x, {3}, {2}, {0}, {1}, true);
    }
  }
  for (auto& b : blocks) x = b->forward(x);
  return x;
}

std::shared_ptr<OSAStageImpl> OSAStageImpl::fuse() const {
  auto copy = std::make_shared<OSAStageImpl>(options);
  copy_state(*this, *copy);
  copy->fuse_();
  return copy;
}

void OSAStageImpl::fuse_() {
  eval();
  for (auto& b : blocks) b->fuse_();
}

void OSAStageImpl::pretty_print(std::ostream& s) const {
  s << "sepmech::OSAStage(stage " << options.stage_num() << (has_pooling() ? ", max-pool" : ", no pool") << ", "
    << options.block_per_stage() << " block(s))";
}

// ---------------------------------------------------------------------------------------------
// VoVNet
// ---------------------------------------------------------------------------------------------

namespace {

struct NamedSpec {
  const char* name;
  VoVNetSpec spec;
};

const std::vector<NamedSpec>& spec_table() {
  static const std::vector<NamedSpec> t = {
      {"V-19-slim-dw-eSE", {{64, 64, 64}, {64, 80, 96, 112}, {112, 256, 384, 512}, 3, {1, 1, 1, 1}, true, true}},
      {"V-19-dw-eSE", {{64, 64, 64}, {128, 160, 192, 224}, {256, 512, 768, 1024}, 3, {1, 1, 1, 1}, true, true}},
      {"V-19-slim-eSE", {{64, 64, 128}, {64, 80, 96, 112}, {112, 256, 384, 512}, 3, {1, 1, 1, 1}, true, false}},
      {"V-19-eSE", {{64, 64, 128}, {128, 160, 192, 224}, {256, 512, 768, 1024}, 3, {1, 1, 1, 1}, true, false}},
      {"V-39-eSE", {{64, 64, 128}, {128, 160, 192, 224}, {256, 512, 768, 1024}, 5, {1, 1, 2, 2}, true, false}},
      {"V-57-eSE", {{64, 64, 128}, {128, 160, 192, 224}, {256, 512, 768, 1024}, 5, {1, 1, 4, 3}, true, false}},
      {"V-99-eSE", {{64, 64, 128}, {128, 160, 192, 224}, {256, 512, 768, 1024}, 5, {1, 3, 9, 3}, true, false}},
  };
  return t;
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

VoVNetSpec VoVNetSpec::named(const std::string& name) {
  const std::string want = lower(name);
  for (const auto& e : spec_table()) {
    const std::string have = lower(e.name);
    if (want == have || want + "-ese" == have) return e.spec;
  }
  std::string all;
  for (const auto& n : names()) all += (all.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "sepmech::VoVNetSpec::named: name must be one of ", all, ", got \"", name, "\"");
  return {};
}

std::vector<std::string> VoVNetSpec::names() {
  std::vector<std::string> n;
  for (const auto& e : spec_table()) n.push_back(e.name);
  return n;
}

void VoVNetSpec::validate() const {
  TORCH_CHECK(stem.size() == 3, "sepmech::VoVNetSpec: stem must have 3 widths, got ", stem.size());
  TORCH_CHECK(stage_conv_ch.size() == 4, "sepmech::VoVNetSpec: stage_conv_ch must have 4 widths, got ",
              stage_conv_ch.size());
  TORCH_CHECK(stage_out_ch.size() == 4, "sepmech::VoVNetSpec: stage_out_ch must have 4 widths, got ",
              stage_out_ch.size());
  TORCH_CHECK(block_per_stage.size() == 4, "sepmech::VoVNetSpec: block_per_stage must have 4 counts, got ",
              block_per_stage.size());
  TORCH_CHECK(layer_per_block >= 1, "sepmech::VoVNetSpec: layer_per_block must be >= 1, got ", layer_per_block);
  if (dw)
    TORCH_CHECK(stem[0] == stem[1] && stem[1] == stem[2],
                "sepmech::VoVNetSpec: a depthwise stem needs equal widths (stem_2/stem_3 are depthwise), got ",
                c10::str(stem));
}

VoVNetImpl::VoVNetImpl(VoVNetOptions options_) : options(std::move(options_)) { reset(); }

void VoVNetImpl::reset() {
  const auto& sp = options.spec();
  sp.validate();
  TORCH_CHECK(options.input_ch() > 0, "sepmech::VoVNet: input_ch must be > 0, got ", options.input_ch());
  for (const auto& f : options.out_features())
    TORCH_CHECK(f == "stem" || f == "stage2" || f == "stage3" || f == "stage4" || f == "stage5",
                "sepmech::VoVNet: out_features must be among stem, stage2..stage5, got \"", f, "\"");
  const UnitKind k = sp.dw ? UnitKind::dw_conv3x3 : UnitKind::conv3x3;
  stem = register_module("stem", ConvUnit(ConvUnitOptions({UnitSpec{options.input_ch(), sp.stem[0], "stem_1",
                                                                     UnitKind::conv3x3, 2},
                                                            UnitSpec{sp.stem[0], sp.stem[1], "stem_2", k, 1},
                                                            UnitSpec{sp.stem[1], sp.stem[2], "stem_3", k, 2}})
                                              .norm(options.norm())));
  stages.clear();
  int64_t in = sp.stem[2];
  for (int i = 0; i < 4; ++i) {
    OSAStage s(OSAStageOptions(in, sp.stage_conv_ch[i], sp.stage_out_ch[i], sp.block_per_stage[i], sp.layer_per_block,
                               i + 2)
                   .depthwise(sp.dw)
                   .ese(sp.ese)
                   .norm(options.norm()));
    stages.push_back(register_module("stage" + std::to_string(i + 2), s));
    in = sp.stage_out_ch[i];
  }
  // The reference's init: kaiming_normal_ (fan_in, gain sqrt 2) on every convolution weight.
  torch::NoGradGuard ng;
  for (auto& m : modules(/*include_self=*/false))
    if (auto* c = m->as<torch::nn::Conv2d>()) torch::nn::init::kaiming_normal_(c->weight);
}

std::map<std::string, torch::Tensor> VoVNetImpl::forward(const torch::Tensor& x) {
  check_input(x, options.input_ch(), "VoVNet");
  TORCH_CHECK(x.dim() == 4, "sepmech::VoVNet: input must be (B, C, H, W), got shape ", kernels::shape_str(x));
  const auto& want = options.out_features();
  auto wanted = [&](const std::string& n) { return std::find(want.begin(), want.end(), n) != want.end(); };
  std::map<std::string, torch::Tensor> out;
  auto h = stem(x);
  if (wanted("stem")) out["stem"] = h;
  for (size_t i = 0; i < stages.size(); ++i) {
    h = stages[i]->forward(h);
    const std::string n = "stage" + std::to_string(i + 2);
    if (wanted(n)) out[n] = h;
  }
  return out;
}

std::shared_ptr<VoVNetImpl> VoVNetImpl::fuse() const {
  auto copy = std::make_shared<VoVNetImpl>(options);
  copy_state(*this, *copy);
  copy->fuse_();
  return copy;
}

void VoVNetImpl::fuse_() {
  eval();
  stem->fuse_();
  for (auto& s : stages) s->fuse_();
  for (auto& p : parameters()) p.requires_grad_(false);
}

int64_t VoVNetImpl::feature_stride(const std::string& name) {
  if (name == "stem" || name == "stage2") return 4;
  if (name == "stage3") return 8;
  if (name == "stage4") return 16;
  if (name == "stage5") return 32;
  TORCH_CHECK(false, "sepmech::VoVNet::feature_stride: name must be stem or stage2..stage5, got \"", name, "\"");
  return 0;
}

int64_t VoVNetImpl::feature_channels(const std::string& name) const {
  if (name == "stem") return options.spec().stem[2];
  for (int i = 0; i < 4; ++i)
    if (name == "stage" + std::to_string(i + 2)) return options.spec().stage_out_ch[i];
  TORCH_CHECK(false, "sepmech::VoVNet::feature_channels: name must be stem or stage2..stage5, got \"", name, "\"");
  return 0;
}

void VoVNetImpl::pretty_print(std::ostream& s) const {
  s << "sepmech::VoVNet(input_ch=" << options.input_ch() << ", L=" << options.spec().layer_per_block
    << (options.spec().dw ? ", depthwise" : "") << ", norm=" << to_string(options.norm()) << ")";
}

}  // namespace sepmech
