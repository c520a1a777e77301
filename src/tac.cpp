// TAC (Transform-Average-Concatenate), see include/sepmech/tac.h and docs/tac.md.
#include "sepmech/tac.h"

#include "kernels/gemm.h"

#include <regex>

namespace sepmech {
namespace {

constexpr TacActivation kActivations[] = {TacActivation::prelu,   TacActivation::relu, TacActivation::linear,
                                          TacActivation::leaky_relu, TacActivation::sigmoid, TacActivation::tanh,
                                          TacActivation::gelu,    TacActivation::swish, TacActivation::softmax};
constexpr TacNorm kNorms[] = {TacNorm::gln, TacNorm::cln, TacNorm::fgln, TacNorm::bn};

template <typename E, size_t K>
std::string names_of(const E (&values)[K]) {
  std::string s;
  for (E v : values) s += (s.empty() ? "" : ", ") + to_string(v);
  return s;
}

// The activation as a module, so that the reference-named Sequential containers also compute
// the right thing when called on their own ([rows, features] operands, as in the references).
torch::nn::AnyModule activation_module(TacActivation a) {
  switch (a) {
    case TacActivation::prelu: return torch::nn::AnyModule(torch::nn::PReLU(torch::nn::PReLUOptions()));
    case TacActivation::relu: return torch::nn::AnyModule(torch::nn::ReLU());
    case TacActivation::linear: return torch::nn::AnyModule(torch::nn::Identity());
    case TacActivation::leaky_relu:
      return torch::nn::AnyModule(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.01)));
    case TacActivation::sigmoid: return torch::nn::AnyModule(torch::nn::Sigmoid());
    case TacActivation::tanh: return torch::nn::AnyModule(torch::nn::Tanh());
    case TacActivation::gelu: return torch::nn::AnyModule(torch::nn::GELU());
    case TacActivation::swish:
      return torch::nn::AnyModule(torch::nn::Functional([](torch::Tensor t) { return t * torch::sigmoid(t); }));
    case TacActivation::softmax: return torch::nn::AnyModule(torch::nn::Softmax(torch::nn::SoftmaxOptions(-1)));
  }
  TORCH_CHECK(false, "sepmech::TAC: activation must be one of ", names_of(kActivations), "; got value ",
              static_cast<int>(a));
}

// Exact (erf) GELU whose backward first makes the incoming gradient contiguous. LibTorch 1.13's
// CPU gelu_backward takes a oneDNN path whenever its saved input is a contiguous float tensor and
// then reads the gradient as if it were contiguous too: with a permuted gradient (here: the one
// coming back from the norm through the [B, M, P, N] -> [B*M, N, P] transpose) it returns
// silently wrong values. Forward values are those of torch::gelu (bit-identical).
struct GeluContiguousGrad : public torch::autograd::Function<GeluContiguousGrad> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& t) {
    ctx->save_for_backward({t});
    return torch::gelu(t);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const torch::Tensor t = ctx->get_saved_variables()[0];
    return {torch::gelu_backward(grad[0].contiguous(), t)};
  }
};

std::string regex_escape(const std::string& s) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(s, special, R"(\$&)");
}

}  // namespace

std::string to_string(TacActivation a) {
  switch (a) {
    case TacActivation::prelu: return "prelu";
    case TacActivation::relu: return "relu";
    case TacActivation::linear: return "linear";
    case TacActivation::leaky_relu: return "leaky_relu";
    case TacActivation::sigmoid: return "sigmoid";
    case TacActivation::tanh: return "tanh";
    case TacActivation::gelu: return "gelu";
    case TacActivation::swish: return "swish";
    case TacActivation::softmax: return "softmax";
  }
  return "<invalid TacActivation " + std::to_string(static_cast<int>(a)) + ">";
}

TacActivation tac_activation_from_string(const std::string& name) {
  for (TacActivation a : kActivations)
    if (to_string(a) == name) return a;
  TORCH_CHECK(false, "sepmech::TAC: activation must be one of ", names_of(kActivations), "; got '", name, "'");
}

std::string to_string(TacNorm n) {
  switch (n) {
    case TacNorm::gln: return "gLN";
    case TacNorm::cln: return "cLN";
    case TacNorm::fgln: return "fgLN";
    case TacNorm::bn: return "bN";
  }
  return "<invalid TacNorm " + std::to_string(static_cast<int>(n)) + ">";
}

TacNorm tac_norm_from_string(const std::string& name) {
  for (TacNorm n : kNorms)
    if (to_string(n) == name) return n;
  TORCH_CHECK(false, "sepmech::TAC: norm_type must be one of ", names_of(kNorms), "; got '", name, "'",
              name == "cgLN" ? " (asteroid's cumulative LN expects 3-D input and cannot run inside TAC)" : "");
}

// ---------------------------------------------------------------------------------------------
// TACLayerNorm
// ---------------------------------------------------------------------------------------------
TACLayerNormImpl::TACLayerNormImpl(TacNorm kind_, int64_t channels_, double eps_)
    : kind(kind_), channels(channels_), eps(eps_) {
  reset();
}

void TACLayerNormImpl::reset() {
  TORCH_CHECK(kind == TacNorm::gln || kind == TacNorm::cln || kind == TacNorm::fgln,
              "sepmech::TACLayerNorm: kind must be gLN, cLN or fgLN; got '", to_string(kind), "'");
  TORCH_CHECK(channels > 0, "sepmech::TACLayerNorm: channels must be > 0, got ", channels);
  TORCH_CHECK(eps >= 0, "sepmech::TACLayerNorm: eps must be >= 0, got ", eps);
  gamma = register_parameter("gamma", torch::ones({channels}));
  beta = register_parameter("beta", torch::zeros({channels}));
}

void TACLayerNormImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::TACLayerNorm(" << to_string(kind) << ", " << channels << ", eps=" << eps << ")";
}

torch::Tensor TACLayerNormImpl::forward(const torch::Tensor& z) {
  TORCH_CHECK(z.dim() == 3 && z.size(1) == channels, "sepmech::TACLayerNorm: z must be [R, ", channels,
              ", P], got ", z.sizes());
  if (kind == TacNorm::gln) return torch::group_norm(z, 1, gamma, beta, eps);  // stats over (N, P)
  if (kind == TacNorm::fgln) {  // per channel, over P
    const bool grad = torch::GradMode::is_enabled() &&
                      (z.requires_grad() || gamma.requires_grad() || beta.requires_grad());
    if (!grad) return torch::group_norm(z, channels, gamma, beta, eps);
    // Under autograd: explicit centring, as asteroid's FeatsGlobLN. group_norm's backward
    // works from sums of dy*x and dy; with one channel per group, and the K*S positions of a
    // feature spread little around a large mean (e.g. sigmoid outputs), that cancels badly in
    // float32: parameter gradients came out ~60x less accurate than the reference's own.
    const torch::Tensor d = z - z.mean(-1, true);
    const torch::Tensor normed = d / torch::sqrt(d.pow(2).mean(-1, true) + eps);
    return normed * gamma.view({1, -1, 1}) + beta.view({1, -1, 1});
  }
  // cLN: per position over the N features.
  return torch::layer_norm(z.transpose(1, 2), {channels}, gamma, beta, eps).transpose(1, 2);
}

// ---------------------------------------------------------------------------------------------
// TAC
// ---------------------------------------------------------------------------------------------
TACImpl::TACImpl(TACOptions options_) : options(std::move(options_)) { reset(); }

void TACImpl::reset() {
  const int64_t N = options.input_dim(), H = options.hidden_dim();
  TORCH_CHECK(N > 0, "sepmech::TAC: input_dim must be > 0, got ", N);
  TORCH_CHECK(H > 0, "sepmech::TAC: hidden_dim must be > 0, got ", H);
  TORCH_CHECK(options.inference_block_rows() >= 0, "sepmech::TAC: inference_block_rows must be >= 0, got ",
              options.inference_block_rows());
  const TacActivation act = options.activation();
  const TacNorm norm = options.norm_type();

  // No handles into the Sequentials are kept: clone() replaces their contents.
  auto make = [&](int64_t in, int64_t out) {
    torch::nn::Sequential seq;
    seq->push_back(torch::nn::Linear(in, out));
    seq->push_back(activation_module(act));
    return seq;
  };
  input_tf = register_module("input_tf", make(N, H));
  avg_tf = register_module("avg_tf", make(H, H));
  concat_tf = register_module("concat_tf", make(2 * H, N));
  if (norm == TacNorm::bn) {
    layer_norm = nullptr;
    batch_norm = register_module(
        "norm", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(N).eps(options.bn_eps()).momentum(options.bn_momentum())));
  } else {
    batch_norm = nullptr;
    layer_norm = register_module("norm", TACLayerNorm(norm, N, options.eps()));
  }
}

void TACImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::TAC(input_dim=" << options.input_dim() << ", hidden_dim=" << options.hidden_dim()
         << ", activation=" << to_string(options.activation()) << ", norm_type=" << to_string(options.norm_type())
         << ")";
}

io::LoadOptions TACImpl::asteroid_load_options(const std::string& prefix) {
  io::LoadOptions opt;
  opt.strip_prefix = prefix;
  return opt;
}

io::LoadOptions TACImpl::fasnet_load_options(int64_t layer, const std::string& prefix) {
  TORCH_CHECK(layer >= 0, "sepmech::TAC::fasnet_load_options: layer must be >= 0, got ", layer);
  const std::string i = std::to_string(layer);
  io::LoadOptions opt;
  // Everything but this layer's four TAC parts (RNNs, other layers, encoder...) is ignored.
  opt.ignore = {"^(?!" + regex_escape(prefix) + "ch_(transform|average|concat|norm)\\." + i + "\\.)"};
  opt.strip_prefix = prefix;
  opt.renames = {{"^ch_transform\\." + i + "\\.", "input_tf."},
                 {"^ch_average\\." + i + "\\.", "avg_tf."},
                 {"^ch_concat\\." + i + "\\.", "concat_tf."},
                 {"^ch_norm\\." + i + "\\.weight$", "norm.gamma"},
                 {"^ch_norm\\." + i + "\\.bias$", "norm.beta"}};
  return opt;
}

namespace {

/// Validated per-example counts: empty = average every slot (fixed geometry or all M valid).
/// Throws c10::Error naming the offending example index.
std::vector<int64_t> resolve_valid_mics(const torch::Tensor& valid_mics, int64_t batch, int64_t mics) {
  if (!valid_mics.defined()) return {};
  TORCH_CHECK(c10::isIntegralType(valid_mics.scalar_type(), /*includeBool=*/false),
              "sepmech::TAC: valid_mics must be an integer tensor of per-example microphone counts, got dtype ",
              valid_mics.scalar_type());
  TORCH_CHECK(valid_mics.dim() == 1, "sepmech::TAC: valid_mics must be 1-D [B] = [", batch, "], got shape ",
              valid_mics.sizes());
  const torch::Tensor v = valid_mics.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = v.numel();
  const int64_t* p = v.data_ptr<int64_t>();
  // A single 0 means "fixed geometry" for any batch size (FaSNet's training code passes zeros(1)).
  if (n == 1 && p[0] == 0) return {};
  TORCH_CHECK(n == batch, "sepmech::TAC: valid_mics must have one count per example (B = ", batch, "), got ", n,
              " entries");
  int64_t first_zero = -1, first_nonzero = -1;
  bool all_full = true;
  for (int64_t b = 0; b < n; ++b) {
    TORCH_CHECK(p[b] >= 0, "sepmech::TAC: valid_mics[", b, "] must be >= 0, got ", p[b]);
    TORCH_CHECK(p[b] <= mics, "sepmech::TAC: valid_mics[", b, "] must be <= the number of mic slots M = ", mics,
                ", got ", p[b]);
    if (p[b] == 0 && first_zero < 0) first_zero = b;
    if (p[b] != 0 && first_nonzero < 0) first_nonzero = b;
    all_full = all_full && p[b] == mics;
  }
  if (first_nonzero < 0 || all_full) return {};  // all zero (fixed geometry) or every slot valid
  TORCH_CHECK(first_zero < 0, "sepmech::TAC: valid_mics[", first_zero,
              "] must be > 0 when other examples have microphones (valid_mics[", first_nonzero, "] = ",
              p[first_nonzero], "); all zeros means fixed geometry, a single 0 would be a mean over no microphones");
  return std::vector<int64_t>(p, p + n);
}

}  // namespace

torch::Tensor TACImpl::activate(torch::Tensor t, const torch::nn::Sequential& transform, int64_t feature_dim,
                                bool inplace) const {
  switch (options.activation()) {
    case TacActivation::prelu: {
    const torch::Tensor& w = transform->ptr<torch::nn::PReLUImpl>(1)->weight;
    // Without autograd, a one-slope PReLU is an in-place leaky ReLU: one pass less over t.
    if (inplace && w.numel() == 1 && w.is_cpu()) return torch::leaky_relu_(t, w.item<double>());
    return torch::prelu(t, w);
    }
    case TacActivation::relu: return inplace ? torch::relu_(t) : torch::relu(t);
    case TacActivation::linear: return t;
    case TacActivation::leaky_relu: return inplace ? torch::leaky_relu_(t, 0.01) : torch::leaky_relu(t, 0.01);
    case TacActivation::sigmoid: return inplace ? torch::sigmoid_(t) : torch::sigmoid(t);
    case TacActivation::tanh: return inplace ? torch::tanh_(t) : torch::tanh(t);
    case TacActivation::gelu: return inplace ? torch::gelu(t) : GeluContiguousGrad::apply(t);
    case TacActivation::swish: return t * torch::sigmoid(t);
    case TacActivation::softmax: break;
  }
  return torch::softmax(t, feature_dim);
}

torch::Tensor TACImpl::normalise(const torch::Tensor& z, int64_t K, int64_t S) {
  if (layer_norm) return layer_norm->forward(z);
  const int64_t R = z.size(0), N = z.size(1);
  return batch_norm->forward(z.reshape({R, N, K, S})).view({R, N, K * S});
}

torch::Tensor TACImpl::forward(const torch::Tensor& x, const torch::Tensor& valid_mics) {
  TORCH_CHECK(x.defined(), "sepmech::TAC: x must be a defined tensor [B, M, N, K, S]");
  TORCH_CHECK(x.dim() == 5, "sepmech::TAC: x must be 5-D [B, M, N, K, S], got shape ", x.sizes());
  TORCH_CHECK(x.is_floating_point(), "sepmech::TAC: x must be floating point, got dtype ", x.scalar_type());
  const int64_t B = x.size(0), M = x.size(1), N = x.size(2), K = x.size(3), S = x.size(4);
  const int64_t H = options.hidden_dim();
  TORCH_CHECK(N == options.input_dim(), "sepmech::TAC: x.size(2) (features) must be input_dim = ",
              options.input_dim(), ", got ", N, " (shape ", x.sizes(), ")");
  TORCH_CHECK(M > 0, "sepmech::TAC: x must have at least one microphone slot (M > 0): the mean over no "
              "microphones is undefined; got shape ", x.sizes());
  const torch::nn::LinearImpl& input_linear = *input_tf->ptr<torch::nn::LinearImpl>(0);
  const torch::Tensor& W1 = input_linear.weight;
  TORCH_CHECK(x.scalar_type() == W1.scalar_type() && x.device() == W1.device(),
              "sepmech::TAC: x must have the parameters' dtype and device (", W1.scalar_type(), ", ", W1.device(),
              "), got ", x.scalar_type(), ", ", x.device());
  const std::vector<int64_t> counts = resolve_valid_mics(valid_mics, B, M);
  if (B == 0 || K == 0 || S == 0) return x.clone();  // no positions: nothing to mix

  bool need_grad = false;
  if (torch::GradMode::is_enabled()) {
    need_grad = x.requires_grad();
    for (const auto& p : parameters()) need_grad = need_grad || p.requires_grad();
  }
  const int64_t P = K * S, BM = B * M;

  // weight[b, m] = (m < V_b) / V_b: the masked mean is one batched product, no loop over b.
  torch::Tensor mic_weight;
  if (!counts.empty()) {
    const auto cnt = torch::tensor(counts, torch::kLong).to(x.device()).unsqueeze(1);
    const auto slot = torch::arange(M, torch::TensorOptions().dtype(torch::kLong).device(x.device())).unsqueeze(0);
    mic_weight = (slot < cnt).to(x.scalar_type()) / cnt.to(x.scalar_type());
  }

  torch::Tensor zn;
  if (!need_grad) {
    zn = normalise(mix_blocked(x, mic_weight).view({BM, N, P}), K, S);
    return zn.reshape({B, M, N, K, S}).add_(x);
  }

  const torch::nn::LinearImpl& avg_linear = *avg_tf->ptr<torch::nn::LinearImpl>(0);
  const torch::nn::LinearImpl& concat_linear = *concat_tf->ptr<torch::nn::LinearImpl>(0);
  // Rows of N features, one per (b, m, k, s): the feature axis last, so every linear map is one GEMM.
  const torch::Tensor rows = x.permute({0, 1, 3, 4, 2}).reshape({BM * P, N});

  // 1. Transform every mic: h = act1(W1 x_m + b1)                     [B*M*P, H]
  torch::Tensor h = activate(detail::linear(rows, W1, input_linear.bias), input_tf, 1, false);

  // 2. Average over the valid mics of each example                      [B, P*H]
  const torch::Tensor hb = h.view({B, M, P * H});
  const torch::Tensor mu = mic_weight.defined() ? torch::bmm(mic_weight.unsqueeze(1), hb).squeeze(1) : hb.mean(1);

  // 3. Average transform: g = act2(W2 mu + b2), one per (b, k, s)      [B*P, H]
  const torch::Tensor g =
      activate(detail::linear(mu.view({B * P, H}), avg_linear.weight, avg_linear.bias), avg_tf, 1, false);

  // 4. Concatenate + output transform. W3 [h; g] = W3h h + W3g g: the g half is computed once per
  //    frame instead of once per mic, and the concatenation is never materialised.
  const torch::Tensor& W3 = concat_linear.weight;
  const torch::Tensor W3h = W3.narrow(1, 0, H), W3g = W3.narrow(1, H, H);
  const torch::Tensor gz = detail::linear(g, W3g, concat_linear.bias).view({B, 1, P, N});
  const torch::Tensor z = activate(detail::linear(h, W3h, {}).view({B, M, P, N}) + gz, concat_tf, 3, false);

  // 5. Normalise each mic's [N, P] block; 6. residual.
  zn = normalise(z.view({BM, P, N}).transpose(1, 2), K, S);
  return zn.reshape({B, M, N, K, S}) + x;
}

torch::Tensor TACImpl::mix_blocked(const torch::Tensor& x, const torch::Tensor& mic_weight) {
  const int64_t B = x.size(0), M = x.size(1), N = x.size(2), P = x.size(3) * x.size(4);
  const int64_t H = options.hidden_dim();
  const torch::nn::LinearImpl& l1 = *input_tf->ptr<torch::nn::LinearImpl>(0);
  const torch::nn::LinearImpl& l2 = *avg_tf->ptr<torch::nn::LinearImpl>(0);
  const torch::nn::LinearImpl& l3 = *concat_tf->ptr<torch::nn::LinearImpl>(0);
  // Linear weights [out, in] are the transposed right-hand sides of row-major GEMMs (gemm.h).
  const torch::Tensor& W1 = l1.weight;
  const torch::Tensor& W2 = l2.weight;
  const torch::Tensor W3h = l3.weight.narrow(1, 0, H), W3g = l3.weight.narrow(1, H, H);

  const int64_t rows_per_block = options.inference_block_rows();
  const int64_t T = rows_per_block > 0 ? std::max<int64_t>(1, rows_per_block / (B * M)) : P;
  const torch::Tensor xr = x.reshape({B, M, N, P}).transpose(2, 3);  // [B, M, P, N] view
  torch::Tensor z = torch::empty({B, M, N, P}, x.options());
  // Block buffers, allocated once per call and narrowed for the last (shorter) block.
  const int64_t T0 = std::min(T, P);
  torch::Tensor h_buf = torch::empty({B * M * T0, H}, x.options()), g_buf = torch::empty({B * T0, H}, x.options());
  torch::Tensor gz_buf = torch::empty({B * T0, N}, x.options()), zt_buf = torch::empty({B * M * T0, N}, x.options());
  for (int64_t p0 = 0; p0 < P; p0 += T) {
    const int64_t t = std::min(T, P - p0);
    const torch::Tensor rows = xr.narrow(2, p0, t).reshape({B * M * t, N});
    torch::Tensor h = h_buf.narrow(0, 0, B * M * t);
    detail::gemm_into(h, rows, W1, /*b_transposed=*/true, l1.bias);
    h = activate(h, input_tf, 1, true);  // [B*M*t, H]
    const torch::Tensor hb = h.view({B, M, t * H});
    const torch::Tensor mu = mic_weight.defined() ? torch::bmm(mic_weight.unsqueeze(1), hb) : hb.mean(1);
    torch::Tensor g = g_buf.narrow(0, 0, B * t);
    detail::gemm_into(g, mu.view({B * t, H}), W2, true, l2.bias);
    g = activate(g, avg_tf, 1, true);
    torch::Tensor gz = gz_buf.narrow(0, 0, B * t);
    detail::gemm_into(gz, g, W3g, true, l3.bias);
    torch::Tensor zt = zt_buf.narrow(0, 0, B * M * t);
    detail::gemm_into(zt, h, W3h, true);
    zt = zt.view({B, M, t, N}).add_(gz.view({B, 1, t, N}));
    zt = activate(zt, concat_tf, 3, true);
    z.narrow(3, p0, t).copy_(zt.transpose(2, 3));
  }
  return z;
}

}  // namespace sepmech
