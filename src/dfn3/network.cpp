// DFN3 network (spec §4, §5, §8): building blocks, encoder, ERB decoder, DF decoder, DfNet and
// the offline enhance wrapper.
#include <cmath>
#include <numeric>
#include <ostream>

#include "sepmech/dfn3.h"
#include "sepmech/dfop.h"
#include "kernels/shape.h"

namespace sepmech {

namespace F = torch::nn::functional;
using torch::Tensor;

namespace {
// Shapes in messages: the library's one helper ("[2, 3]", "undefined").
std::string shape(const Tensor& t) { return kernels::shape_str(t); }
constexpr double kPi = 3.14159265358979323846;
}  // namespace

namespace dfn3 {

// ---------------------------------------------------------------------------------------------
// GroupedLinear
// ---------------------------------------------------------------------------------------------

GroupedLinearImpl::GroupedLinearImpl(GroupedLinearOptions options_) : options(std::move(options_)) { reset(); }

void GroupedLinearImpl::reset() {
  const int64_t G = options.groups();
  TORCH_CHECK(G >= 1 && options.in() % G == 0 && options.out() % G == 0,
              "sepmech::dfn3::GroupedLinear: groups must divide in and out, got in ", options.in(), ", out ",
              options.out(), ", groups ", G);
  weight = register_parameter("weight", torch::empty({G, options.in() / G, options.out() / G}));
  torch::NoGradGuard guard;
  // The reference's kaiming_uniform_(a = sqrt(5)) on the 3-D weight (fan_in = dim 1 x dim 2).
  const double fan_in = static_cast<double>(weight.size(1) * weight.size(2));
  const double bound = std::sqrt(6.0 / ((1.0 + 5.0) * fan_in));
  weight.uniform_(-bound, bound);
}

Tensor GroupedLinearImpl::forward(const Tensor& x) {
  TORCH_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == options.in(),
              "sepmech::dfn3::GroupedLinear: x must be [..., ", options.in(), "], got ", shape(x));
  const int64_t G = options.groups();
  std::vector<int64_t> grouped(x.sizes().begin(), x.sizes().end() - 1);
  grouped.push_back(G);
  grouped.push_back(options.in() / G);
  const Tensor y = torch::einsum("...gi,gih->...gh", {x.reshape(grouped), weight});
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end() - 1);
  out_shape.push_back(options.out());
  return y.reshape(out_shape);
}

void GroupedLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::dfn3::GroupedLinear(in=" << options.in() << ", out=" << options.out()
         << ", groups=" << options.groups() << ")";
}

std::string to_string(Activation a) {
  switch (a) {
    case Activation::none: return "none";
    case Activation::relu: return "relu";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
  }
  return "?";
}

Activation activation_from_string(const std::string& name) {
  for (Activation a : {Activation::none, Activation::relu, Activation::sigmoid, Activation::tanh})
    if (name == to_string(a)) return a;
  TORCH_CHECK(false, "sepmech::dfn3::Activation: name must be one of none, relu, sigmoid, tanh, got '", name, "'");
}

Tensor apply_activation(Activation a, const Tensor& x) {
  switch (a) {
    case Activation::none: return x;
    case Activation::relu: return torch::relu(x);
    case Activation::sigmoid: return torch::sigmoid(x);
    case Activation::tanh: return torch::tanh(x);
  }
  return x;
}

GroupedLinearActImpl::GroupedLinearActImpl(GroupedLinearOptions options_, Activation act_)
    : options(std::move(options_)), act(act_) {
  reset();
}

void GroupedLinearActImpl::reset() { linear = register_module("0", GroupedLinear(options)); }

Tensor GroupedLinearActImpl::forward(const Tensor& x) { return apply_activation(act, linear->forward(x)); }

void GroupedLinearActImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::dfn3::GroupedLinearAct(in=" << options.in() << ", out=" << options.out()
         << ", groups=" << options.groups() << ", act=" << to_string(act) << ")";
}

// ---------------------------------------------------------------------------------------------
// ConvNormAct
// ---------------------------------------------------------------------------------------------

ConvNormActImpl::ConvNormActImpl(ConvNormActOptions options_) : options(std::move(options_)) { reset(); }

void ConvNormActImpl::reset() {
  const auto& k = options.kernel();
  TORCH_CHECK(k.size() == 2 && k[0] >= 1 && k[1] >= 1, "sepmech::dfn3::ConvNormAct: kernel must be (time, freq), got ",
              c10::IntArrayRef(k));
  TORCH_CHECK(options.in() >= 1 && options.out() >= 1 && options.fstride() >= 1,
              "sepmech::dfn3::ConvNormAct: in, out and fstride must be positive");
  const int64_t kt = k[0], kf = k[1];
  TORCH_CHECK(!options.transposed() || kt == 1, "sepmech::dfn3::ConvNormAct: transposed needs time kernel 1, got ", kt);
  TORCH_CHECK(!options.transposed() || options.fstride() > kf / 2,
              "sepmech::dfn3::ConvNormAct: transposed needs fstride > kernel_f / 2 (output padding), got fstride ",
              options.fstride(), " for kernel_f ", kf);
  int64_t idx = 0;
  if (kt > 1) ++idx;  // nn.ConstantPad2d (no parameters) takes index 0
  const int64_t groups = options.separable() ? std::gcd(options.in(), options.out()) : 1;
  const bool pw = groups > 1 && std::max(kt, kf) > 1;
  conv = nullptr;
  convt = nullptr;
  pointwise = nullptr;
  if (options.transposed()) {
    convt = register_module(std::to_string(idx++),
                            torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(options.in(), options.out(), {kt, kf})
                                                           .stride({1, options.fstride()})
                                                           .padding({0, kf / 2})
                                                           .output_padding({0, kf / 2})
                                                           .groups(groups)
                                                           .bias(false)));
  } else {
    conv = register_module(std::to_string(idx++), torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in(), options.out(), {kt, kf})
                                                                        .stride({1, options.fstride()})
                                                                        .padding({0, kf / 2})
                                                                        .groups(groups)
                                                                        .bias(false)));
  }
  if (pw)
    pointwise = register_module(std::to_string(idx++),
                                torch::nn::Conv2d(torch::nn::Conv2dOptions(options.out(), options.out(), 1).bias(false)));
  norm = register_module(std::to_string(idx++), torch::nn::BatchNorm2d(options.out()));
}

Tensor ConvNormActImpl::forward_unpadded(const Tensor& x) {
  TORCH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == options.in() && x.size(2) >= time_kernel(),
              "sepmech::dfn3::ConvNormAct: x must be [B, ", options.in(), ", T >= ", time_kernel(), ", F], got ",
              shape(x));
  Tensor y = options.transposed() ? convt->forward(x) : conv->forward(x);
  if (pointwise) y = pointwise->forward(y);
  y = norm->forward(y);
  return apply_activation(options.activation(), y);
}

Tensor ConvNormActImpl::forward(const Tensor& x) {
  TORCH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == options.in(),
              "sepmech::dfn3::ConvNormAct: x must be [B, ", options.in(), ", T, F], got ", shape(x));
  const int64_t kt = time_kernel();
  return forward_unpadded(kt > 1 ? F::pad(x, F::PadFuncOptions({0, 0, kt - 1, 0})) : x);
}

void ConvNormActImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::dfn3::ConvNormAct(" << options.in() << ", " << options.out() << ", kernel="
         << c10::IntArrayRef(options.kernel()) << ", fstride=" << options.fstride()
         << (options.transposed() ? ", transposed" : "") << ", act=" << to_string(options.activation()) << ")";
}

// ---------------------------------------------------------------------------------------------
// SqueezedGru
// ---------------------------------------------------------------------------------------------

SqueezedGruImpl::SqueezedGruImpl(SqueezedGruOptions options_) : options(std::move(options_)) { reset(); }

void SqueezedGruImpl::reset() {
  linear_in = register_module(
      "linear_in", GroupedLinearAct(GroupedLinearOptions(options.in(), options.hidden(), options.linear_groups()),
                                    Activation::relu));
  gru = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(options.hidden(), options.hidden())
                                                   .num_layers(options.num_layers())
                                                   .batch_first(true)));
  linear_out = nullptr;
  if (options.out() > 0)
    linear_out = register_module(
        "linear_out", GroupedLinearAct(GroupedLinearOptions(options.hidden(), options.out(), options.linear_groups()),
                                       Activation::relu));
}

std::pair<Tensor, Tensor> SqueezedGruImpl::forward(const Tensor& x, const Tensor& h) {
  TORCH_CHECK(x.defined() && x.dim() == 3 && x.size(2) == options.in(),
              "sepmech::dfn3::SqueezedGru: x must be [B, T, ", options.in(), "], got ", shape(x));
  TORCH_CHECK(!h.defined() || (h.dim() == 3 && h.size(0) == options.num_layers() && h.size(1) == x.size(0) &&
                               h.size(2) == options.hidden()),
              "sepmech::dfn3::SqueezedGru: h must be [", options.num_layers(), ", ", x.size(0), ", ", options.hidden(),
              "], got ", shape(h));
  Tensor y = linear_in->forward(x);
  auto [out, hn] = h.defined() ? gru->forward(y, h) : gru->forward(y);
  if (linear_out) out = linear_out->forward(out);
  return {out, hn};
}

void SqueezedGruImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::dfn3::SqueezedGru(in=" << options.in() << ", hidden=" << options.hidden()
         << ", out=" << options.out() << ", layers=" << options.num_layers()
         << ", linear_groups=" << options.linear_groups() << ")";
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

EncoderImpl::EncoderImpl(DfNetOptions options_) : options(std::move(options_)) { reset(); }

void EncoderImpl::reset() {
  options.Validate();
  const int64_t C = options.conv_ch();
  auto inner = [&](int64_t fstride) {
    return ConvNormAct(ConvNormActOptions(C, C, options.conv_kernel()).fstride(fstride));
  };
  erb_conv0 = register_module("erb_conv0", ConvNormAct(ConvNormActOptions(1, C, options.conv_kernel_inp())));
  erb_conv1 = register_module("erb_conv1", inner(2));
  erb_conv2 = register_module("erb_conv2", inner(2));
  erb_conv3 = register_module("erb_conv3", inner(1));
  df_conv0 = register_module("df_conv0", ConvNormAct(ConvNormActOptions(2, C, options.conv_kernel_inp())));
  df_conv1 = register_module("df_conv1", inner(2));
  const int64_t emb = options.emb_dim();
  df_fc_emb = register_module(
      "df_fc_emb",
      GroupedLinearAct(GroupedLinearOptions(C * options.nb_df() / 2, emb, options.enc_linear_groups()), Activation::relu));
  emb_gru = register_module("emb_gru", SqueezedGru(SqueezedGruOptions(emb, options.emb_hidden_dim())
                                                       .out(emb)
                                                       .num_layers(1)
                                                       .linear_groups(options.linear_groups())));
  lsnr_fc = register_module("lsnr_fc", torch::nn::Sequential(torch::nn::Linear(emb, 1), torch::nn::Sigmoid()));
}

EncoderOutput EncoderImpl::run(const Tensor& e0, const Tensor& c0, const Tensor& h) {
  EncoderOutput o;
  o.e0 = e0;
  o.e1 = erb_conv1->forward(e0);
  o.e2 = erb_conv2->forward(o.e1);
  o.e3 = erb_conv3->forward(o.e2);
  o.c0 = c0;
  const Tensor c1 = df_conv1->forward(c0);
  const Tensor cemb = df_fc_emb->forward(c1.permute({0, 2, 3, 1}).flatten(2));  // [B, T, F*C], index f*C + c
  const Tensor emb_in = o.e3.permute({0, 2, 3, 1}).flatten(2) + cemb;
  std::tie(o.emb, o.h) = emb_gru->forward(emb_in, h);
  o.lsnr = lsnr_fc->forward(o.emb) * (options.lsnr_max() - options.lsnr_min()) + options.lsnr_min();
  return o;
}

EncoderOutput EncoderImpl::forward(const Tensor& feat_erb, const Tensor& feat_spec) {
  TORCH_CHECK(feat_erb.defined() && feat_erb.dim() == 4 && feat_erb.size(1) == 1 && feat_erb.size(3) == options.nb_erb(),
              "sepmech::dfn3::Encoder: feat_erb must be [B, 1, T, ", options.nb_erb(), "], got ", shape(feat_erb));
  TORCH_CHECK(feat_spec.defined() && feat_spec.dim() == 4 && feat_spec.size(0) == feat_erb.size(0) &&
                  feat_spec.size(1) == 2 && feat_spec.size(2) == feat_erb.size(2) && feat_spec.size(3) == options.nb_df(),
              "sepmech::dfn3::Encoder: feat_spec must be [B, 2, T, ", options.nb_df(), "] = [", feat_erb.size(0), ", 2, ",
              feat_erb.size(2), ", ", options.nb_df(), "], got ", shape(feat_spec));
  return run(erb_conv0->forward(feat_erb), df_conv0->forward(feat_spec), {});
}

EncoderOutput EncoderImpl::step(const Tensor& erb_window, const Tensor& spec_window, const Tensor& h) {
  const int64_t kt = options.conv_kernel_inp()[0];
  TORCH_CHECK(erb_window.defined() && erb_window.dim() == 4 && erb_window.size(2) == kt,
              "sepmech::dfn3::Encoder::step: erb_window must hold ", kt, " frames, got ", shape(erb_window));
  TORCH_CHECK(spec_window.defined() && spec_window.dim() == 4 && spec_window.size(2) == kt,
              "sepmech::dfn3::Encoder::step: spec_window must hold ", kt, " frames, got ", shape(spec_window));
  return run(erb_conv0->forward_unpadded(erb_window), df_conv0->forward_unpadded(spec_window), h);
}

void EncoderImpl::pretty_print(std::ostream& stream) const { stream << "sepmech::dfn3::Encoder"; }

// ---------------------------------------------------------------------------------------------
// ERB decoder
// ---------------------------------------------------------------------------------------------

ErbDecoderImpl::ErbDecoderImpl(DfNetOptions options_) : options(std::move(options_)) { reset(); }

void ErbDecoderImpl::reset() {
  options.Validate();
  const int64_t C = options.conv_ch(), emb = options.emb_dim();
  emb_gru = register_module("emb_gru", SqueezedGru(SqueezedGruOptions(emb, options.emb_hidden_dim())
                                                       .out(emb)
                                                       .num_layers(options.emb_num_layers() - 1)
                                                       .linear_groups(options.linear_groups())));
  auto p1x1 = [&]() { return ConvNormAct(ConvNormActOptions(C, C, {1, 1})); };
  auto tconv = [&]() { return ConvNormAct(ConvNormActOptions(C, C, options.convt_kernel()).fstride(2).transposed(true)); };
  conv3p = register_module("conv3p", p1x1());
  convt3 = register_module("convt3", ConvNormAct(ConvNormActOptions(C, C, options.conv_kernel())));
  conv2p = register_module("conv2p", p1x1());
  convt2 = register_module("convt2", tconv());
  conv1p = register_module("conv1p", p1x1());
  convt1 = register_module("convt1", tconv());
  conv0p = register_module("conv0p", p1x1());
  conv0_out = register_module(
      "conv0_out", ConvNormAct(ConvNormActOptions(C, 1, options.conv_kernel()).activation(Activation::sigmoid)));
}

std::pair<Tensor, Tensor> ErbDecoderImpl::forward(const Tensor& emb, const Tensor& e3, const Tensor& e2,
                                                  const Tensor& e1, const Tensor& e0, const Tensor& h) {
  const int64_t C = options.conv_ch(), nb = options.nb_erb();
  TORCH_CHECK(e3.defined() && e3.dim() == 4 && e3.size(1) == C && e3.size(3) == nb / 4,
              "sepmech::dfn3::ErbDecoder: e3 must be [B, ", C, ", T, ", nb / 4, "], got ", shape(e3));
  const int64_t B = e3.size(0), T = e3.size(2);
  TORCH_CHECK(emb.defined() && emb.dim() == 3 && emb.size(0) == B && emb.size(1) == T && emb.size(2) == options.emb_dim(),
              "sepmech::dfn3::ErbDecoder: emb must be [", B, ", ", T, ", ", options.emb_dim(), "], got ", shape(emb));
  auto check = [&](const Tensor& e, int64_t f, const char* name) {
    TORCH_CHECK(e.defined() && e.dim() == 4 && e.size(0) == B && e.size(1) == C && e.size(2) == T && e.size(3) == f,
                "sepmech::dfn3::ErbDecoder: ", name, " must be [", B, ", ", C, ", ", T, ", ", f, "], got ", shape(e));
  };
  check(e2, nb / 4, "e2");
  check(e1, nb / 2, "e1");
  check(e0, nb, "e0");
  auto [x, hn] = emb_gru->forward(emb, h);
  x = x.view({B, T, nb / 4, -1}).permute({0, 3, 1, 2});
  const Tensor a3 = convt3->forward(conv3p->forward(e3) + x);
  const Tensor a2 = convt2->forward(conv2p->forward(e2) + a3);
  const Tensor a1 = convt1->forward(conv1p->forward(e1) + a2);
  return {conv0_out->forward(conv0p->forward(e0) + a1), hn};
}

void ErbDecoderImpl::pretty_print(std::ostream& stream) const { stream << "sepmech::dfn3::ErbDecoder"; }

// ---------------------------------------------------------------------------------------------
// DF decoder
// ---------------------------------------------------------------------------------------------

DfDecoderImpl::DfDecoderImpl(DfNetOptions options_) : options(std::move(options_)) { reset(); }

void DfDecoderImpl::reset() {
  options.Validate();
  const int64_t C = options.conv_ch(), emb = options.emb_dim(), hid = options.df_hidden_dim();
  const int64_t out_ch = 2 * options.df_order();
  df_convp = register_module(
      "df_convp", ConvNormAct(ConvNormActOptions(C, out_ch, {options.df_pathway_kernel_size_t(), 1})));
  // DfDecoder does not pass linear_groups: SqueezedGRU_S's default of 8 groups.
  df_gru = register_module(
      "df_gru", SqueezedGru(SqueezedGruOptions(emb, hid).num_layers(options.df_num_layers()).linear_groups(8)));
  df_skip = nullptr;
  if (options.df_gru_skip() == GruSkip::grouped_linear)
    df_skip = register_module("df_skip", GroupedLinear(GroupedLinearOptions(emb, hid, options.linear_groups())));
  df_out = register_module(
      "df_out", GroupedLinearAct(GroupedLinearOptions(hid, options.nb_df() * out_ch, options.linear_groups()),
                                 Activation::tanh));
  df_fc_a = register_module("df_fc_a", torch::nn::Sequential(torch::nn::Linear(hid, 1), torch::nn::Sigmoid()));
}

std::pair<Tensor, Tensor> DfDecoderImpl::run(const Tensor& emb, const Tensor& p, const Tensor& h) {
  const int64_t B = emb.size(0), T = emb.size(1);
  auto [c, hn] = df_gru->forward(emb, h);
  if (options.df_gru_skip() == GruSkip::grouped_linear) c = c + df_skip->forward(emb);
  if (options.df_gru_skip() == GruSkip::identity) c = c + emb;
  const Tensor pp = p.permute({0, 2, 3, 1});  // [B, T, nb_df, 2N]
  const Tensor coefs = df_out->forward(c).view({B, T, options.nb_df(), 2 * options.df_order()}) + pp;
  return {coefs, hn};
}

std::pair<Tensor, Tensor> DfDecoderImpl::forward(const Tensor& emb, const Tensor& c0, const Tensor& h) {
  TORCH_CHECK(emb.defined() && emb.dim() == 3 && emb.size(2) == options.emb_dim(),
              "sepmech::dfn3::DfDecoder: emb must be [B, T, ", options.emb_dim(), "], got ", shape(emb));
  TORCH_CHECK(c0.defined() && c0.dim() == 4 && c0.size(0) == emb.size(0) && c0.size(1) == options.conv_ch() &&
                  c0.size(2) == emb.size(1) && c0.size(3) == options.nb_df(),
              "sepmech::dfn3::DfDecoder: c0 must be [", emb.size(0), ", ", options.conv_ch(), ", ", emb.size(1), ", ",
              options.nb_df(), "], got ", shape(c0));
  return run(emb, df_convp->forward(c0), h);
}

std::pair<Tensor, Tensor> DfDecoderImpl::step(const Tensor& emb, const Tensor& c0_window, const Tensor& h) {
  const int64_t kt = options.df_pathway_kernel_size_t();
  TORCH_CHECK(c0_window.defined() && c0_window.dim() == 4 && c0_window.size(2) == kt,
              "sepmech::dfn3::DfDecoder::step: c0_window must hold ", kt, " frames, got ", shape(c0_window));
  TORCH_CHECK(emb.defined() && emb.dim() == 3 && emb.size(1) == 1,
              "sepmech::dfn3::DfDecoder::step: emb must be [B, 1, ", options.emb_dim(), "], got ", shape(emb));
  return run(emb, df_convp->forward_unpadded(c0_window), h);
}

void DfDecoderImpl::pretty_print(std::ostream& stream) const { stream << "sepmech::dfn3::DfDecoder"; }

Tensor df_output_reshape(const Tensor& coefs, int64_t df_order) {
  TORCH_CHECK(coefs.defined() && coefs.dim() == 4 && coefs.size(3) == 2 * df_order,
              "sepmech::dfn3::df_output_reshape: coefs must be [B, T, F, ", 2 * df_order, "], got ", shape(coefs));
  return coefs.view({coefs.size(0), coefs.size(1), coefs.size(2), df_order, 2}).permute({0, 3, 1, 2, 4});
}

// ---------------------------------------------------------------------------------------------
// Mask, post filter
// ---------------------------------------------------------------------------------------------

MaskImpl::MaskImpl(std::vector<int64_t> widths_) : widths(std::move(widths_)) { reset(); }

void MaskImpl::reset() { erb_inv_fb = register_buffer("erb_inv_fb", erb_inverse_filter_bank(widths)); }

Tensor MaskImpl::forward(const Tensor& spec, const Tensor& m) {
  const Tensor gains = torch::matmul(m, erb_inv_fb);  // [B, 1, T, F]
  return spec * gains.unsqueeze(-1);
}

void MaskImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::dfn3::Mask(bands=" << widths.size() << ")";
}

Tensor post_filter(const Tensor& y, const Tensor& x, double beta) {
  TORCH_CHECK(y.defined() && x.defined() && y.sizes() == x.sizes() && y.dim() >= 1 && y.size(-1) == 2,
              "sepmech::dfn3::post_filter: y and x must be real views [..., 2] of one shape, got ", shape(y), " and ",
              shape(x));
  const double eps = 1e-12;
  const Tensor mag_y = torch::view_as_complex(y.contiguous()).abs();
  const Tensor mag_x = torch::view_as_complex(x.contiguous()).abs();
  const Tensor g = (mag_y / (mag_x + eps)).clamp(eps, 1.0);
  const Tensor g_sin = g * torch::sin(g * (kPi / 2.0)).clamp_min(eps);
  const Tensor pf = (1.0 + beta) / (1.0 + beta * (g / g_sin).pow(2));
  return y * pf.unsqueeze(-1);
}

}  // namespace dfn3

// ---------------------------------------------------------------------------------------------
// DeepFilterNet3
// ---------------------------------------------------------------------------------------------

DeepFilterNet3Impl::DeepFilterNet3Impl(DfNetOptions options_) : options(std::move(options_)) { reset(); }

void DeepFilterNet3Impl::reset() {
  options.Validate();
  erb_widths = dfn3::erb_widths(options);
  erb_fb = register_buffer("erb_fb", dfn3::erb_filter_bank(erb_widths));
  enc = register_module("enc", dfn3::Encoder(options));
  erb_dec = register_module("erb_dec", dfn3::ErbDecoder(options));
  mask = register_module("mask", dfn3::Mask(erb_widths));
  df_dec = register_module("df_dec", dfn3::DfDecoder(options));
}

void DeepFilterNet3Impl::check_inputs(const Tensor& spec, const Tensor& feat_erb, const Tensor& feat_spec) const {
  const int64_t Fq = options.freq_bins();
  TORCH_CHECK(spec.defined() && spec.dim() == 5 && spec.size(1) == 1 && spec.size(2) >= 1 && spec.size(3) == Fq &&
                  spec.size(4) == 2 && spec.is_floating_point(),
              "sepmech::DeepFilterNet3: spec must be real [B, 1, T, ", Fq, ", 2] (T >= 1), got ", shape(spec));
  const int64_t B = spec.size(0), T = spec.size(2);
  TORCH_CHECK(feat_erb.defined() && feat_erb.dim() == 4 && feat_erb.size(0) == B && feat_erb.size(1) == 1 &&
                  feat_erb.size(2) == T && feat_erb.size(3) == options.nb_erb(),
              "sepmech::DeepFilterNet3: feat_erb must be [", B, ", 1, ", T, ", ", options.nb_erb(), "], got ",
              shape(feat_erb));
  TORCH_CHECK(feat_spec.defined() && feat_spec.dim() == 5 && feat_spec.size(0) == B && feat_spec.size(1) == 1 &&
                  feat_spec.size(2) == T && feat_spec.size(3) == options.nb_df() && feat_spec.size(4) == 2,
              "sepmech::DeepFilterNet3: feat_spec must be [", B, ", 1, ", T, ", ", options.nb_df(), ", 2], got ",
              shape(feat_spec));
}

DfNetOutput DeepFilterNet3Impl::forward(const Tensor& spec, const Tensor& feat_erb, const Tensor& feat_spec) {
  check_inputs(spec, feat_erb, feat_spec);
  const int64_t L = options.conv_lookahead(), N = options.df_order(), nb_df = options.nb_df();
  Tensor fs = feat_spec.squeeze(1).permute({0, 3, 1, 2});  // [B, 2, T, nb_df]
  Tensor fe = feat_erb;
  if (L > 0) {
    // pad_feat: ConstantPad2d((0, 0, -L, L)) advances the features by L frames.
    fe = torch::constant_pad_nd(fe, {0, 0, -L, L});
    fs = torch::constant_pad_nd(fs, {0, 0, -L, L});
  }
  const dfn3::EncoderOutput e = enc->forward(fe, fs);
  DfNetOutput out;
  out.lsnr = e.lsnr;
  out.m = erb_dec->forward(e.emb, e.e3, e.e2, e.e1, e.e0).first;
  out.spec_m = mask->forward(spec, out.m);
  out.df_coefs = dfn3::df_output_reshape(df_dec->forward(e.emb, e.c0).first, N);
  const Tensor filtered =
      deep_filter(spec.contiguous(), out.df_coefs.permute({0, 2, 1, 3, 4}).contiguous(), {}, N, options.df_lookahead());
  Tensor y = torch::cat({filtered.narrow(3, 0, nb_df), out.spec_m.narrow(3, nb_df, spec.size(3) - nb_df)}, 3);
  if (options.mask_pf()) y = dfn3::post_filter(y, spec, options.pf_beta());
  out.spec = y;
  return out;
}

DfNetOutput DeepFilterNet3Impl::forward_output_aligned(const Tensor& spec, const Tensor& feat_erb,
                                                       const Tensor& feat_spec) {
  check_inputs(spec, feat_erb, feat_spec);
  const int64_t L = options.conv_lookahead(), N = options.df_order(), nb_df = options.nb_df();
  TORCH_CHECK(L == options.df_lookahead(),
              "sepmech::DeepFilterNet3::forward_output_aligned: needs conv_lookahead == df_lookahead, got ", L, " and ",
              options.df_lookahead());
  const int64_t T = spec.size(2);
  TORCH_CHECK(T > L, "sepmech::DeepFilterNet3::forward_output_aligned: spec must have more than conv_lookahead = ", L,
              " frames, got ", T);
  const Tensor fs = feat_spec.squeeze(1).permute({0, 3, 1, 2});
  const dfn3::EncoderOutput e = enc->forward(feat_erb, fs);
  DfNetOutput out;
  out.lsnr = e.lsnr;
  out.m = erb_dec->forward(e.emb, e.e3, e.e2, e.e1, e.e0).first;
  out.df_coefs = dfn3::df_output_reshape(df_dec->forward(e.emb, e.c0).first, N);
  // Output frame j takes the network outputs of frame j + L.
  const int64_t Tout = T - L;
  out.spec_m = mask->forward(spec.narrow(2, 0, Tout), out.m.narrow(2, L, Tout));
  const Tensor coefs = torch::constant_pad_nd(out.df_coefs.narrow(2, L, Tout), {0, 0, 0, 0, 0, L})
                           .permute({0, 2, 1, 3, 4})
                           .contiguous();  // [B, T, N, nb_df, 2], zeros for the last L frames
  const Tensor filtered = deep_filter(spec.contiguous(), coefs, {}, N, options.df_lookahead()).narrow(2, 0, Tout);
  Tensor y = torch::cat({filtered.narrow(3, 0, nb_df), out.spec_m.narrow(3, nb_df, spec.size(3) - nb_df)}, 3);
  if (options.mask_pf()) y = dfn3::post_filter(y, spec.narrow(2, 0, Tout), options.pf_beta());
  out.spec = y;
  return out;
}

void DeepFilterNet3Impl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::DeepFilterNet3(" << options.ToString() << ")";
}

Tensor dfn3_enhance(DeepFilterNet3Impl& net, const Tensor& audio_in, const Dfn3EnhanceOptions& options) {
  TORCH_CHECK(audio_in.defined() && (audio_in.dim() == 1 || audio_in.dim() == 2) &&
                  audio_in.scalar_type() == torch::kFloat32,
              "sepmech::dfn3_enhance: audio must be float32 [C, n] or [n], got ", shape(audio_in));
  TORCH_CHECK(std::isfinite(options.atten_lim_db()), "sepmech::dfn3_enhance: atten_lim_db must be finite, got ",
              options.atten_lim_db());
  const DfNetOptions& o = net.options;
  const Tensor audio = audio_in.dim() == 1 ? audio_in.unsqueeze(0) : audio_in;
  const int64_t n = audio.size(1), N = o.fft_size(), H = o.hop_size();
  const Tensor x = options.pad() ? torch::constant_pad_nd(audio, {0, N}) : audio;
  TORCH_CHECK(x.size(1) >= H, "sepmech::dfn3_enhance: audio must hold at least one hop (", H, " samples) without pad, got ",
              n);
  const dfn3::Features f = dfn3::features(x, o);
  const DfNetOutput r = net.forward(f.spec, f.feat_erb, f.feat_spec);
  Tensor Y = torch::view_as_complex(r.spec.squeeze(1).contiguous());
  if (options.atten_lim_db() != 0.0) {
    const double lim = std::pow(10.0, -std::abs(options.atten_lim_db()) / 20.0);
    const Tensor X = torch::view_as_complex(f.spec.squeeze(1).contiguous());
    Y = X * lim + Y * (1.0 - lim);
  }
  Tensor y = dfn3::synthesis(Y, o);
  if (options.pad()) y = y.narrow(1, N - H, n);
  return audio_in.dim() == 1 ? y.squeeze(0) : y;
}

}  // namespace sepmech
