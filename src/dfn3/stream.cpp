// DFN3 frame by frame (spec §7, libDF's DfTract::process): B independent streams, explicit state.
#include <cmath>
#include <ostream>

#include "sepmech/audio/stft.h"
#include "sepmech/dfn3.h"

namespace sepmech {

using torch::Tensor;

namespace {

Tensor clone_or_empty(const Tensor& t) { return t.defined() ? t.clone() : t; }

/// `mask` [B] bool selects `a` (true) or `b` (false) per stream; the batch sits at `bdim`.
Tensor pick(const Tensor& mask, const Tensor& a, const Tensor& b, int64_t bdim) {
  std::vector<int64_t> shape(static_cast<size_t>(a.dim()), 1);
  shape[static_cast<size_t>(bdim)] = mask.size(0);
  if (a.is_complex())
    return torch::view_as_complex(pick(mask, torch::view_as_real(a), torch::view_as_real(b), bdim).contiguous());
  return torch::where(mask.view(shape), a, b);
}

/// Drops the oldest frame along `dim` and appends `frame` (size 1 along dim).
Tensor push(const Tensor& window, const Tensor& frame, int64_t dim) {
  return torch::cat({window.narrow(dim, 1, window.size(dim) - 1), frame}, dim);
}

}  // namespace

DeepFilterNet3StreamState::DeepFilterNet3StreamState(const DeepFilterNet3StreamState& o)
    : analysis_mem(clone_or_empty(o.analysis_mem)),
      synthesis_mem(clone_or_empty(o.synthesis_mem)),
      erb_norm(clone_or_empty(o.erb_norm)),
      unit_norm(clone_or_empty(o.unit_norm)),
      erb_window(clone_or_empty(o.erb_window)),
      spec_window(clone_or_empty(o.spec_window)),
      enc_h(clone_or_empty(o.enc_h)),
      erb_dec_h(clone_or_empty(o.erb_dec_h)),
      df_dec_h(clone_or_empty(o.df_dec_h)),
      c0_window(clone_or_empty(o.c0_window)),
      noisy(clone_or_empty(o.noisy)),
      silent_hops(o.silent_hops),
      frames(o.frames) {}

DeepFilterNet3StreamState& DeepFilterNet3StreamState::operator=(const DeepFilterNet3StreamState& other) {
  if (this != &other) *this = DeepFilterNet3StreamState(other);
  return *this;
}

void DeepFilterNet3StreamState::reset() {
  torch::NoGradGuard guard;
  for (Tensor* t : {&analysis_mem, &synthesis_mem, &erb_window, &spec_window, &enc_h, &erb_dec_h, &df_dec_h,
                    &c0_window, &noisy})
    if (t->defined()) t->zero_();
  if (erb_norm.defined()) erb_norm.copy_(dfn3::erb_norm_init(erb_norm.size(1)).unsqueeze(0).expand_as(erb_norm));
  if (unit_norm.defined()) unit_norm.copy_(dfn3::unit_norm_init(unit_norm.size(1)).unsqueeze(0).expand_as(unit_norm));
  std::fill(silent_hops.begin(), silent_hops.end(), 0);
  frames = 0;
}

DeepFilterNet3StreamImpl::DeepFilterNet3StreamImpl(DeepFilterNet3 net_, DeepFilterNet3StreamOptions options_)
    : options(std::move(options_)), net(std::move(net_)) {
  reset();
}

void DeepFilterNet3StreamImpl::reset() {
  TORCH_CHECK(!net.is_empty(), "sepmech::DeepFilterNet3Stream: net must be a constructed DeepFilterNet3");
  const DfNetOptions& o = net->options;
  TORCH_CHECK(o.conv_lookahead() == o.df_lookahead(),
              "sepmech::DeepFilterNet3Stream: needs conv_lookahead == df_lookahead (spec §7.3), got ",
              o.conv_lookahead(), " and ", o.df_lookahead());
  TORCH_CHECK(options.min_db_thresh() <= options.max_db_df_thresh() &&
                  options.max_db_df_thresh() <= options.max_db_erb_thresh(),
              "sepmech::DeepFilterNet3Stream: thresholds must satisfy min_db_thresh <= max_db_df_thresh <= "
              "max_db_erb_thresh, got ",
              options.min_db_thresh(), ", ", options.max_db_df_thresh(), ", ", options.max_db_erb_thresh());
  TORCH_CHECK(std::isfinite(options.atten_lim_db()) && options.post_filter_beta() >= 0,
              "sepmech::DeepFilterNet3Stream: atten_lim_db must be finite and post_filter_beta >= 0");
  net = register_module("net", net);
  window = register_buffer("window", make_window(WindowKind::vorbis, o.fft_size(), torch::kFloat32));
}

void DeepFilterNet3StreamImpl::pretty_print(std::ostream& stream) const {
  stream << "sepmech::DeepFilterNet3Stream(thresholds " << options.min_db_thresh() << "/" << options.max_db_df_thresh()
         << "/" << options.max_db_erb_thresh() << " dB" << (options.always_apply_all_stages() ? ", all stages" : "")
         << ", delay=" << delay() << ")";
}

int64_t DeepFilterNet3StreamImpl::delay() const {
  const DfNetOptions& o = net->options;
  return o.fft_size() - o.hop_size() + o.conv_lookahead() * o.hop_size();
}

DeepFilterNet3StreamState DeepFilterNet3StreamImpl::init_state(int64_t batch) const {
  TORCH_CHECK(batch >= 1, "sepmech::DeepFilterNet3Stream::init_state: batch must be >= 1, got ", batch);
  const DfNetOptions& o = net->options;
  const int64_t mem = o.fft_size() - o.hop_size(), kt = o.conv_kernel_inp()[0];
  State s;
  s.analysis_mem = torch::zeros({batch, mem});
  s.synthesis_mem = torch::zeros({batch, mem});
  s.erb_norm = dfn3::erb_norm_init(o.nb_erb()).unsqueeze(0).repeat({batch, 1});
  s.unit_norm = dfn3::unit_norm_init(o.nb_df()).unsqueeze(0).repeat({batch, 1});
  s.erb_window = torch::zeros({batch, 1, kt, o.nb_erb()});
  s.spec_window = torch::zeros({batch, 2, kt, o.nb_df()});
  s.enc_h = torch::zeros({1, batch, o.emb_hidden_dim()});
  s.erb_dec_h = torch::zeros({o.emb_num_layers() - 1, batch, o.emb_hidden_dim()});
  s.df_dec_h = torch::zeros({o.df_num_layers(), batch, o.df_hidden_dim()});
  s.c0_window = torch::zeros({batch, o.conv_ch(), o.df_pathway_kernel_size_t(), o.nb_df()});
  s.noisy = torch::zeros({batch, o.df_order(), o.freq_bins()}, torch::kComplexFloat);
  s.silent_hops.assign(static_cast<size_t>(batch), 0);
  s.frames = 0;
  return s;
}

void DeepFilterNet3StreamImpl::check_state(const State& s) const {
  const DfNetOptions& o = net->options;
  const int64_t B = s.batch();
  TORCH_CHECK(B >= 1, "sepmech::DeepFilterNet3Stream::step: state is not initialised (use init_state)");
  auto check = [&](const Tensor& t, std::vector<int64_t> want, const char* name) {
    TORCH_CHECK(t.defined() && t.sizes() == c10::IntArrayRef(want), "sepmech::DeepFilterNet3Stream::step: state.", name,
                " must be ", c10::IntArrayRef(want), ", got ", t.defined() ? c10::str(t.sizes()) : std::string("undefined"));
  };
  const int64_t mem = o.fft_size() - o.hop_size(), kt = o.conv_kernel_inp()[0];
  check(s.synthesis_mem, {B, mem}, "synthesis_mem");
  check(s.analysis_mem, {B, mem}, "analysis_mem");
  check(s.erb_norm, {B, o.nb_erb()}, "erb_norm");
  check(s.unit_norm, {B, o.nb_df()}, "unit_norm");
  check(s.erb_window, {B, 1, kt, o.nb_erb()}, "erb_window");
  check(s.spec_window, {B, 2, kt, o.nb_df()}, "spec_window");
  check(s.enc_h, {1, B, o.emb_hidden_dim()}, "enc_h");
  check(s.erb_dec_h, {o.emb_num_layers() - 1, B, o.emb_hidden_dim()}, "erb_dec_h");
  check(s.df_dec_h, {o.df_num_layers(), B, o.df_hidden_dim()}, "df_dec_h");
  check(s.c0_window, {B, o.conv_ch(), o.df_pathway_kernel_size_t(), o.nb_df()}, "c0_window");
  check(s.noisy, {B, o.df_order(), o.freq_bins()}, "noisy");
  TORCH_CHECK(s.noisy.scalar_type() == torch::kComplexFloat, "sepmech::DeepFilterNet3Stream::step: state.noisy must be complex64");
  TORCH_CHECK(static_cast<int64_t>(s.silent_hops.size()) == B,
              "sepmech::DeepFilterNet3Stream::step: state.silent_hops must hold one counter per stream");
}

Tensor DeepFilterNet3StreamImpl::step(const Tensor& x_in, State& state, DeepFilterNet3StepInfo* info) const {
  const DfNetOptions& o = net->options;
  const int64_t N = o.fft_size(), H = o.hop_size(), Fq = o.freq_bins(), nb_df = o.nb_df();
  TORCH_CHECK(x_in.defined() && x_in.dim() == 2 && x_in.size(1) == H && x_in.scalar_type() == torch::kFloat32,
              "sepmech::DeepFilterNet3Stream::step: x must be float32 [B, ", H, "], got ",
              x_in.defined() ? c10::str(x_in.sizes()) + " " + c10::toString(x_in.scalar_type()) : std::string("undefined"));
  check_state(state);
  const int64_t B = state.batch();
  TORCH_CHECK(x_in.size(0) == B, "sepmech::DeepFilterNet3Stream::step: x has ", x_in.size(0),
              " streams but the state holds ", B);
  torch::NoGradGuard no_grad;
  // The shared network is used, not modified: its forward methods are simply not const.
  const std::shared_ptr<DeepFilterNet3Impl> model = net.ptr();
  const Tensor x = x_in.contiguous();
  const double A = std::abs(options.atten_lim_db());

  if (A < 0.01) {
    // libDF: an attenuation limit of (almost) 0 dB returns the input hop untouched.
    if (info) {
      info->lsnr = torch::full({B}, o.lsnr_min());
      info->zero_gains = info->gains = info->df = info->gated = torch::zeros({B}, torch::kBool);
    }
    return x.clone();
  }

  // Silence gate (per stream, on the CPU counters).
  const Tensor ms = x.square().mean(1);
  std::vector<int64_t> counters = state.silent_hops;
  Tensor gated = torch::zeros({B}, torch::kBool);
  {
    auto msa = ms.accessor<float, 1>();
    auto ga = gated.accessor<bool, 1>();
    for (int64_t b = 0; b < B; ++b) {
      counters[b] = msa[b] < 1e-7f ? counters[b] + 1 : 0;
      ga[b] = options.silence_gate() && counters[b] > 5;
    }
  }

  // Analysis (§3.1).
  const Tensor buf = torch::cat({state.analysis_mem, x}, 1);  // [B, N]
  const Tensor X = torch::fft::rfft(buf * window, N, 1) * (2.0 * static_cast<double>(H) / (static_cast<double>(N) * N));
  const Tensor analysis_mem = buf.narrow(1, H, N - H);
  const Tensor noisy = push(state.noisy, X.unsqueeze(1), 1);  // X_{t-N+1..t}

  // Features (§3.3, §3.4).
  const double alpha = o.alpha();
  const Tensor db = dfn3::erb_db(X, net->erb_fb);  // [B, nb_erb]
  const Tensor erb_norm = db * (1.0 - alpha) + state.erb_norm * alpha;
  const Tensor feat_erb = (db - erb_norm) / 40.0;
  const Tensor Xlow = X.narrow(1, 0, nb_df);
  const Tensor unit_norm = Xlow.abs() * (1.0 - alpha) + state.unit_norm * alpha;
  const Tensor feat_spec = torch::view_as_real(Xlow / unit_norm.sqrt());  // [B, nb_df, 2]
  const Tensor erb_window = push(state.erb_window, feat_erb.view({B, 1, 1, o.nb_erb()}), 2);
  const Tensor spec_window = push(state.spec_window, feat_spec.permute({0, 2, 1}).unsqueeze(2), 2);

  // Encoder on the newest frame.
  const dfn3::EncoderOutput e = model->enc->step(erb_window, spec_window, state.enc_h);
  const Tensor lsnr = e.lsnr.reshape({B});

  // Stage decisions (§7.1.5).
  Tensor zero_gains, gains, df;
  if (options.always_apply_all_stages()) {
    zero_gains = torch::zeros({B}, torch::kBool);
    gains = torch::ones({B}, torch::kBool);
    df = torch::ones({B}, torch::kBool);
  } else {
    zero_gains = lsnr < options.min_db_thresh();
    gains = (lsnr >= options.min_db_thresh()) & (lsnr <= options.max_db_erb_thresh());
    df = (lsnr >= options.min_db_thresh()) & (lsnr <= options.max_db_df_thresh());
  }

  // ERB gains on frame t - L (all bins).
  const int64_t target = o.df_order() - 1 - o.df_lookahead();
  const Tensor Xd = noisy.select(1, target);  // [B, F]
  auto [m, erb_dec_h] = model->erb_dec->forward(e.emb, e.e3, e.e2, e.e1, e.e0, state.erb_dec_h);
  const Tensor G = torch::matmul(m.reshape({B, o.nb_erb()}), net->mask->erb_inv_fb);  // [B, F]
  Tensor Y = pick(gains, Xd * G, Xd, 0);
  Y = pick(zero_gains, torch::zeros_like(Y), Y, 0);

  // Deep filter of the low bins over X_{t-N+1..t}.
  const Tensor c0_window = push(state.c0_window, e.c0, 2);
  auto [coefs, df_dec_h] = model->df_dec->step(e.emb, c0_window, state.df_dec_h);  // [B, 1, nb_df, 2N]
  const Tensor Hc = torch::view_as_complex(coefs.reshape({B, nb_df, o.df_order(), 2}).contiguous()).permute({0, 2, 1});
  const Tensor Ydf = (noisy.narrow(2, 0, nb_df) * Hc).sum(1);  // [B, nb_df]
  Y = torch::cat({pick(df, Ydf, Y.narrow(1, 0, nb_df), 0), Y.narrow(1, nb_df, Fq - nb_df)}, 1);

  // Post filter (bins below Nyquist, as libDF's chunks of 4 leave the last bin out).
  if (options.post_filter()) {
    const Tensor yr = torch::view_as_real(Y.narrow(1, 0, Fq - 1).contiguous());
    const Tensor xr = torch::view_as_real(Xd.narrow(1, 0, Fq - 1).contiguous());
    const Tensor pf = torch::view_as_complex(dfn3::post_filter(yr, xr, options.post_filter_beta()).contiguous());
    const Tensor Ypf = torch::cat({pf, Y.narrow(1, Fq - 1, 1)}, 1);
    Y = pick(gains, Ypf, Y, 0);
  }
  // Attenuation limit.
  if (A < 100.0) {
    const double lim = std::pow(10.0, -A / 20.0);
    Y = Y * (1.0 - lim) + Xd * lim;
  }

  // Synthesis (§3.1).
  const Tensor y = torch::fft::irfft(Y, N, 1) * (window * static_cast<double>(N));  // [B, N]
  Tensor out = y.narrow(1, 0, H) + state.synthesis_mem;
  const Tensor synthesis_mem = y.narrow(1, H, N - H);

  // Commit: decoders advance only where they ran; gated streams keep everything.
  State next;
  const Tensor keep = gated;
  next.analysis_mem = pick(keep, state.analysis_mem, analysis_mem, 0);
  next.synthesis_mem = pick(keep, state.synthesis_mem, synthesis_mem, 0);
  next.erb_norm = pick(keep, state.erb_norm, erb_norm, 0);
  next.unit_norm = pick(keep, state.unit_norm, unit_norm, 0);
  next.erb_window = pick(keep, state.erb_window, erb_window, 0);
  next.spec_window = pick(keep, state.spec_window, spec_window, 0);
  next.enc_h = pick(keep, state.enc_h, e.h, 1);
  next.erb_dec_h = pick(keep | ~gains, state.erb_dec_h, erb_dec_h, 1);
  next.df_dec_h = pick(keep | ~df, state.df_dec_h, df_dec_h, 1);
  next.c0_window = pick(keep | ~df, state.c0_window, c0_window, 0);
  next.noisy = pick(keep, state.noisy, noisy, 0);
  out = pick(keep, torch::zeros_like(out), out, 0);
  Tensor lsnr_out = pick(keep, torch::full_like(lsnr, o.lsnr_min()), lsnr, 0);
  {
    auto ga = gated.accessor<bool, 1>();
    auto za = zero_gains.accessor<bool, 1>();
    auto gn = gains.accessor<bool, 1>();
    auto la = lsnr.accessor<float, 1>();
    for (int64_t b = 0; b < B; ++b) {
      if (ga[b]) continue;
      if (za[b] || gn[b]) counters[b] = 0;
      if (la[b] > options.max_db_erb_thresh()) counters[b] += 1;
    }
  }
  next.silent_hops = std::move(counters);
  next.frames = state.frames + 1;
  if (info) {
    info->lsnr = lsnr_out;
    info->zero_gains = zero_gains & ~keep;
    info->gains = gains & ~keep;
    info->df = df & ~keep;
    info->gated = gated;
  }
  state = std::move(next);
  return out;
}

}  // namespace sepmech
