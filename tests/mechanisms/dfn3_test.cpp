// DeepFilterNet3: configuration and config.ini, front end, network, offline forward, the stream.
// The reference values themselves are checked by the golden cases (tests/data/golden/dfn3, run
// by the parity suite); these tests cover the contracts around them.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "parity/parity.h"
#include "sepmech/dfn3.h"

namespace {

using sepmech::DeepFilterNet3;
using sepmech::DeepFilterNet3Stream;
using sepmech::DeepFilterNet3StreamOptions;
using sepmech::DfNetOptions;
using torch::Tensor;

const std::string kGolden = std::string(SEPMECH_TEST_DATA) + "/golden/dfn3/";

double max_abs(const Tensor& a, const Tensor& b) { return (a - b).abs().max().item<double>(); }

// A voiced signal plus noise, [C, n].
Tensor test_signal(int64_t channels, int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const Tensor t = torch::arange(n, torch::kFloat64).unsqueeze(0) / 48000.0;
  Tensor f0 = torch::rand({channels, 1}, gen, torch::kFloat64) * 100.0 + 120.0;
  Tensor x = torch::zeros({channels, n}, torch::kFloat64);
  for (int h = 1; h <= 12; ++h) x = x + torch::sin(2 * M_PI * h * f0 * t) / h;
  x = 0.1 * x + 0.02 * torch::randn({channels, n}, gen, torch::kFloat64);
  return x.to(torch::kFloat32);
}

// The golden model (random weights of the shared params file) when available, else default init.
DeepFilterNet3 golden_net() {
  auto c = sepmech::parity::load_case(kGolden + "dfn3_full_b1_t24.safetensors");
  DeepFilterNet3 net(DfNetOptions{});
  auto params = c.with_prefix("param.");
  torch::NoGradGuard guard;
  for (auto& p : net->named_parameters()) p.value().copy_(params.at(p.key()));
  for (auto& b : net->named_buffers()) b.value().copy_(params.at(b.key()));
  net->eval();
  return net;
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

// The published DFN3 config.ini (layout and values of §1's source T).
const char* kDfn3Ini = R"([train]
seed = 42
device =
model = deepfilternet3

[df]
sr = 48000
fft_size = 960
hop_size = 480
nb_erb = 32
nb_df = 96
norm_tau = 1
lsnr_max = 35
lsnr_min = -15
min_nb_erb_freqs = 2
df_order = 5
df_lookahead = 2
pad_mode = output

[deepfilternet]
conv_lookahead = 2
conv_ch = 64
conv_depthwise = True
convt_depthwise = True
conv_kernel = 1,3
convt_kernel = 1,3
conv_kernel_inp = 3,3
emb_hidden_dim = 256
emb_num_layers = 3
emb_gru_skip = none
df_hidden_dim = 256
df_gru_skip = groupedlinear
df_pathway_kernel_size_t = 5
enc_concat = False
df_num_layers = 2
df_n_iter = 1
lsnr_dropout = False
group_shuffle = False
linear_groups = 16
enc_linear_groups = 32
mask_pf = False
conv_dec_mode = transposed
dfop_method = df

[distortion]
p_reverb = 0.0
)";

void expect_same(const DfNetOptions& a, const DfNetOptions& b) {
  EXPECT_EQ(a.ToString(), b.ToString());
  EXPECT_EQ(a.min_nb_erb_freqs(), b.min_nb_erb_freqs());
  EXPECT_EQ(a.norm_tau(), b.norm_tau());
  EXPECT_EQ(a.lsnr_max(), b.lsnr_max());
  EXPECT_EQ(a.lsnr_min(), b.lsnr_min());
  EXPECT_EQ(a.conv_kernel(), b.conv_kernel());
  EXPECT_EQ(a.convt_kernel(), b.convt_kernel());
  EXPECT_EQ(a.conv_kernel_inp(), b.conv_kernel_inp());
  EXPECT_EQ(a.df_pathway_kernel_size_t(), b.df_pathway_kernel_size_t());
  EXPECT_EQ(a.pf_beta(), b.pf_beta());
}

TEST(Dfn3Config, PublishedIniGivesTheDfn3Values) {
  expect_same(DfNetOptions::from_config_ini(kDfn3Ini), DfNetOptions::dfn3());
  EXPECT_DOUBLE_EQ(DfNetOptions{}.alpha(), 0.99);
  EXPECT_EQ(DfNetOptions{}.emb_dim(), 512);
  EXPECT_EQ(DfNetOptions{}.freq_bins(), 481);
}

TEST(Dfn3Config, MissingKeysTakeTheCodeDefaults) {
  const DfNetOptions o = DfNetOptions::from_config_ini("[df]\nsr = 48000\n");
  expect_same(o, DfNetOptions::code_defaults());
  EXPECT_EQ(o.conv_ch(), 16);
  EXPECT_EQ(o.df_lookahead(), 0);
  EXPECT_EQ(o.emb_num_layers(), 2);
  EXPECT_EQ(o.df_num_layers(), 3);
  EXPECT_EQ(o.linear_groups(), 1);
  EXPECT_EQ(o.df_gru_skip(), sepmech::GruSkip::none);
  // Case-insensitive names, CRLF, comments, ':' separators; norm_alpha overrides the derived alpha.
  const DfNetOptions p =
      DfNetOptions::from_config_ini("; c\r\n[DF]\r\nNORM_ALPHA: 0.95\r\n# x\r\n[DeepFilterNet]\r\nMASK_PF = yes\r\n");
  EXPECT_DOUBLE_EQ(p.alpha(), 0.95);
  EXPECT_TRUE(p.mask_pf());
}

TEST(Dfn3Config, BadValuesAreRefusedNamingTheKey) {
  auto expect_refused = [](const std::string& ini, const std::string& needle) {
    try {
      DfNetOptions::from_config_ini(ini);
      ADD_FAILURE() << "accepted: " << ini;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find(needle), std::string::npos)
          << e.what_without_backtrace();
    }
  };
  expect_refused("[deepfilternet]\nconv_ch = abc\n", "[deepfilternet] conv_ch (line 2) must be an integer, got 'abc'");
  expect_refused("[deepfilternet]\nconv_ch = 64x\n", "conv_ch");
  expect_refused("[deepfilternet]\nmask_pf = maybe\n", "mask_pf (line 2) must be a boolean");
  expect_refused("[deepfilternet]\nconv_kernel = 1,x\n", "conv_kernel");
  expect_refused("[deepfilternet]\nconv_kernel = 1,\n", "conv_kernel");
  expect_refused("[deepfilternet]\ndf_gru_skip = sometimes\n", "df_gru_skip");
  expect_refused("[df]\nnorm_tau = nan\n", "norm_tau");
  expect_refused("[df]\nnb_erb = 30\n", "nb_erb must be a positive multiple of 4");
  expect_refused("[df]\nhop_size = 240\n", "hop_size must be fft_size / 2");
  expect_refused("[deepfilternet]\nconv_kernel = 3,3\n", "time size 1");
  expect_refused("[deepfilternet]\nenc_concat = true\n", "enc_concat must be false");
  expect_refused("[df]\nsr = 48000\nsr = 16000\n", "set twice");
  expect_refused("sr = 48000\n", "before any [section]");
  expect_refused("[df\n", "malformed section header");
  expect_refused("[df]\njust words\n", "expected 'key = value'");
}

TEST(Dfn3Config, GruSkipNames) {
  for (auto s : {sepmech::GruSkip::none, sepmech::GruSkip::identity, sepmech::GruSkip::grouped_linear})
    EXPECT_EQ(sepmech::gru_skip_from_string(sepmech::to_string(s)), s);
  EXPECT_EQ(sepmech::gru_skip_from_string("GroupedLinear"), sepmech::GruSkip::grouped_linear);
  EXPECT_THROW(sepmech::gru_skip_from_string("grouped_linear_x"), c10::Error);
}

// ---------------------------------------------------------------------------------------------
// Front end
// ---------------------------------------------------------------------------------------------

TEST(Dfn3Front, ErbWidthsMatchTheReferenceLayout) {
  const std::vector<int64_t> want = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 5, 5, 7,
                                     7, 8, 10, 12, 13, 15, 18, 20, 24, 28, 31, 37, 42, 50, 56, 67};
  EXPECT_EQ(sepmech::dfn3::erb_widths(DfNetOptions{}), want);
  // pyDF's constructor default of 1 bin gives a different (narrower) start.
  const auto one = sepmech::dfn3::erb_widths(48000, 960, 32, 1);
  const std::vector<int64_t> start = {1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4};
  EXPECT_EQ(std::vector<int64_t>(one.begin(), one.begin() + 13), start);
  const Tensor fb = sepmech::dfn3::erb_filter_bank(want), inv = sepmech::dfn3::erb_inverse_filter_bank(want);
  EXPECT_EQ(fb.sizes(), (std::vector<int64_t>{481, 32}));
  EXPECT_LT(max_abs(fb.sum(0), torch::ones({32})), 1e-6);
  EXPECT_EQ(max_abs(inv.sum(0), torch::ones({481})), 0.0);  // every bin in exactly one band
  EXPECT_THROW(sepmech::dfn3::erb_widths(48000, 960, 300, 2), c10::Error);
}

TEST(Dfn3Front, AnalysisSynthesisDelaysByOneHop) {
  const DfNetOptions o;
  const Tensor x = test_signal(2, 480 * 10, 1);
  const Tensor X = sepmech::dfn3::analysis(x, o);
  EXPECT_EQ(X.sizes(), (std::vector<int64_t>{2, 10, 481}));
  const Tensor y = sepmech::dfn3::synthesis(X, o);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 4800}));
  EXPECT_LT(max_abs(y.narrow(1, 480, 4320), x.narrow(1, 0, 4320)), 1e-5);
  // The remainder of an incomplete hop is dropped.
  EXPECT_EQ(sepmech::dfn3::analysis(x.narrow(1, 0, 1000), o).size(1), 2);
  EXPECT_THROW(sepmech::dfn3::analysis(x.narrow(1, 0, 100), o), c10::Error);
  EXPECT_THROW(sepmech::dfn3::analysis(x.to(torch::kFloat64), o), c10::Error);
}

TEST(Dfn3Front, NormalisationsContinueAcrossCalls) {
  const DfNetOptions o;
  const Tensor X = sepmech::dfn3::analysis(test_signal(1, 480 * 8, 2), o);
  const Tensor fb = sepmech::dfn3::erb_filter_bank(sepmech::dfn3::erb_widths(o));
  const Tensor db = sepmech::dfn3::erb_db(X, fb);
  Tensor s_all = sepmech::dfn3::erb_norm_init(32).unsqueeze(0), s_part = s_all.clone();
  const Tensor all = sepmech::dfn3::erb_norm(db, s_all, o.alpha());
  const Tensor a = sepmech::dfn3::erb_norm(db.narrow(1, 0, 3), s_part, o.alpha());
  const Tensor b = sepmech::dfn3::erb_norm(db.narrow(1, 3, 5), s_part, o.alpha());
  EXPECT_LT(max_abs(torch::cat({a, b}, 1), all), 1e-6);
  EXPECT_LT(max_abs(s_part, s_all), 1e-6);
  Tensor u = sepmech::dfn3::unit_norm_init(96).unsqueeze(0);
  const Tensor f = sepmech::dfn3::unit_norm(X.narrow(2, 0, 96), u, o.alpha());
  EXPECT_TRUE(f.is_complex());
  EXPECT_THROW(sepmech::dfn3::erb_norm(db, u, o.alpha()), c10::Error);  // wrong state width
}

// ---------------------------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------------------------

TEST(Dfn3Network, StateDictHasTheReferenceNamesAndSizes) {
  DeepFilterNet3 net;
  auto params = net->named_parameters();
  auto buffers = net->named_buffers();
  EXPECT_EQ(params.size() + buffers.size(), 133u);
  int64_t n = 0;
  for (const auto& p : params) n += p.value().numel();
  EXPECT_EQ(n, 2135484);
  for (const char* key : {"enc.erb_conv0.1.weight", "enc.erb_conv0.2.running_mean", "enc.df_conv0.2.weight",
                          "enc.df_conv0.3.num_batches_tracked", "enc.df_fc_emb.0.weight", "enc.emb_gru.gru.weight_ih_l0",
                          "enc.lsnr_fc.0.bias", "erb_dec.convt2.0.weight", "erb_dec.conv0_out.1.running_var",
                          "mask.erb_inv_fb", "df_dec.df_convp.1.weight", "df_dec.df_gru.linear_in.0.weight",
                          "df_dec.df_skip.weight", "df_dec.df_out.0.weight", "df_dec.df_fc_a.0.weight", "erb_fb"})
    EXPECT_TRUE(params.contains(key) || buffers.contains(key)) << key;
  EXPECT_EQ(params["df_dec.df_gru.linear_in.0.weight"].sizes(), (std::vector<int64_t>{8, 64, 32}));
  EXPECT_EQ(params["erb_dec.convt2.0.weight"].sizes(), (std::vector<int64_t>{64, 1, 1, 3}));
  EXPECT_EQ(params["df_dec.df_convp.1.weight"].sizes(), (std::vector<int64_t>{10, 32, 5, 1}));
}

TEST(Dfn3Network, BadInputsAreRefused) {
  DeepFilterNet3 net;
  net->eval();
  const Tensor spec = torch::zeros({1, 1, 4, 481, 2}), fe = torch::zeros({1, 1, 4, 32}),
               fs = torch::zeros({1, 1, 4, 96, 2});
  EXPECT_NO_THROW(net->forward(spec, fe, fs));
  EXPECT_THROW(net->forward(torch::zeros({1, 1, 4, 480, 2}), fe, fs), c10::Error);
  EXPECT_THROW(net->forward(spec, torch::zeros({1, 1, 5, 32}), fs), c10::Error);
  EXPECT_THROW(net->forward(spec, fe, torch::zeros({1, 1, 4, 96})), c10::Error);
  EXPECT_THROW(net->forward(torch::zeros({2, 1, 4, 481, 2}), fe, fs), c10::Error);
  EXPECT_THROW(net->forward(spec, fe, Tensor()), c10::Error);
  EXPECT_THROW(net->enc->forward(fe, torch::zeros({1, 1, 4, 96})), c10::Error);
  EXPECT_THROW(net->df_dec->forward(torch::zeros({1, 4, 512}), torch::zeros({1, 64, 3, 96})), c10::Error);
  EXPECT_THROW(sepmech::dfn3_enhance(*net, torch::zeros({1, 100}), sepmech::Dfn3EnhanceOptions().pad(false)),
               c10::Error);
  EXPECT_THROW(sepmech::dfn3_enhance(*net, torch::zeros({1, 1, 960})), c10::Error);
}

TEST(Dfn3Network, TrainableEndToEnd) {
  torch::manual_seed(3);
  DeepFilterNet3 net;
  net->train();
  const auto f = sepmech::dfn3::features(test_signal(2, 480 * 6, 3), net->options);
  const auto out = net->forward(f.spec, f.feat_erb, f.feat_spec);
  (out.spec.square().mean() + out.lsnr.mean() * 1e-3).backward();
  int64_t with_grad = 0;
  for (const auto& p : net->named_parameters()) {
    if (p.key().rfind("df_dec.df_fc_a", 0) == 0) continue;  // never used by the reference either
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    ++with_grad;
  }
  EXPECT_EQ(with_grad, static_cast<int64_t>(net->parameters().size()) - 2);
}

TEST(Dfn3Network, EnhanceKeepsLengthAndAlignment) {
  DeepFilterNet3 net = golden_net();
  torch::NoGradGuard guard;
  const Tensor x = test_signal(2, 5000, 4);
  EXPECT_EQ(sepmech::dfn3_enhance(*net, x).sizes(), x.sizes());
  EXPECT_EQ(sepmech::dfn3_enhance(*net, x.select(0, 0)).sizes(), x.select(0, 0).sizes());
  EXPECT_EQ(sepmech::dfn3_enhance(*net, x, sepmech::Dfn3EnhanceOptions().pad(false)).sizes(),
            (std::vector<int64_t>{2, 4800}));
  // Channels are independent batch items.
  const Tensor both = sepmech::dfn3_enhance(*net, x);
  EXPECT_LT(max_abs(both.select(0, 1), sepmech::dfn3_enhance(*net, x.narrow(0, 1, 1)).squeeze(0)), 1e-5);
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

Tensor run_stream(const DeepFilterNet3Stream& s, const Tensor& x, sepmech::DeepFilterNet3StreamState& st) {
  std::vector<Tensor> out;
  for (int64_t t = 0; t < x.size(1) / 480; ++t) out.push_back(s->step(x.narrow(1, t * 480, 480), st));
  return torch::cat(out, 1);
}

TEST(Dfn3Stream, AllStagesEqualsOutputAlignedOffline) {
  DeepFilterNet3 net = golden_net();
  DeepFilterNet3Stream stream(net, DeepFilterNet3StreamOptions().always_apply_all_stages(true));
  const int64_t T = 20, flush = 3;
  // The signal, then the 3 hops of zeros that flush the stream (2 lookahead, 1 STFT overlap).
  const Tensor x = torch::constant_pad_nd(test_signal(1, 480 * T, 5), {0, 480 * flush});
  auto st = stream->init_state(1);
  const Tensor y = run_stream(stream, x, st);
  ASSERT_EQ(y.size(1), 480 * (T + flush));
  torch::NoGradGuard guard;
  const auto f = sepmech::dfn3::features(x, net->options);
  const auto r = net->forward_output_aligned(f.spec, f.feat_erb, f.feat_spec);
  ASSERT_EQ(r.spec.size(2), T + flush - 2);
  const Tensor off = sepmech::dfn3::synthesis(torch::view_as_complex(r.spec.squeeze(1).contiguous()), net->options);
  // Stream hop t = offline hop t - 2. Hop 2 also holds the tail of the stream's pre-roll frame -1
  // (the deep filter of X_{-3..1}), which the offline form does not have; from hop 3 on, every
  // hop is compared, through the flush: the last one is the second half of the last signal frame.
  const double scale = std::max(1.0, off.abs().max().item<double>());
  const double err = max_abs(y.narrow(1, 3 * 480, (T + flush - 3) * 480), off.narrow(1, 480, (T + flush - 3) * 480));
  EXPECT_LT(err, 2e-5 * scale);
  EXPECT_EQ(stream->delay(), 1440);
}

TEST(Dfn3Stream, StateIsAValueAndStreamsAreIndependent) {
  DeepFilterNet3 net = golden_net();
  DeepFilterNet3Stream stream(net);
  const Tensor x = test_signal(2, 480 * 12, 6);
  auto st = stream->init_state(2);
  run_stream(stream, x.narrow(1, 0, 480 * 6), st);
  auto copy = st;  // branches both streams
  const Tensor rest = x.narrow(1, 480 * 6, 480 * 6);
  const Tensor a = run_stream(stream, rest, st);
  const Tensor before = copy.analysis_mem.clone();
  EXPECT_TRUE(torch::equal(copy.analysis_mem, before));  // advancing st did not touch the copy
  const Tensor b = run_stream(stream, rest, copy);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(copy.frames, 12);
  copy.enc_h.fill_(1.0f);
  EXPECT_FALSE(torch::equal(copy.enc_h, st.enc_h));

  // B = 2 equals two B = 1 streams.
  auto s0 = stream->init_state(1), s1 = stream->init_state(1);
  auto s2 = stream->init_state(2);
  const Tensor y2 = run_stream(stream, x, s2);
  EXPECT_LT(max_abs(y2.narrow(0, 0, 1), run_stream(stream, x.narrow(0, 0, 1), s0)), 1e-5);
  EXPECT_LT(max_abs(y2.narrow(0, 1, 1), run_stream(stream, x.narrow(0, 1, 1), s1)), 1e-5);

  // reset() gives the initial state back.
  s2.reset();
  auto fresh = stream->init_state(2);
  const Tensor r1 = run_stream(stream, x, s2), r2 = run_stream(stream, x, fresh);
  EXPECT_TRUE(torch::equal(r1, r2));
}

TEST(Dfn3Stream, SilenceGateAnswersZerosAndKeepsTheState) {
  DeepFilterNet3 net = golden_net();
  // Thresholds far below every estimate: no frame gets gains, so only the silence counts (libDF
  // resets the counter on frames that got gains, zero gains included).
  DeepFilterNet3Stream stream(
      net, DeepFilterNet3StreamOptions().min_db_thresh(-1000).max_db_df_thresh(-999).max_db_erb_thresh(-998));
  auto st = stream->init_state(2);
  const Tensor x = test_signal(2, 480 * 4, 7);
  run_stream(stream, x, st);
  Tensor hop = torch::zeros({2, 480});
  hop[1] = x[1].narrow(0, 0, 480);  // stream 1 is never silent
  sepmech::DeepFilterNet3StepInfo info;
  int silent = 0;
  while (silent < 10) {
    const auto kept = st;
    const Tensor y = stream->step(hop, st, &info);
    ++silent;
    EXPECT_FALSE(info.gated[1].item<bool>());
    if (!info.gated[0].item<bool>()) continue;
    EXPECT_TRUE(torch::equal(y[0], torch::zeros({480})));
    EXPECT_TRUE(torch::equal(st.analysis_mem[0], kept.analysis_mem[0]));
    EXPECT_TRUE(torch::equal(st.enc_h.select(1, 0), kept.enc_h.select(1, 0)));
    EXPECT_TRUE(torch::equal(st.noisy[0], kept.noisy[0]));
    EXPECT_FLOAT_EQ(info.lsnr[0].item<float>(), -15.0f);
    EXPECT_FALSE(torch::equal(st.enc_h.select(1, 1), kept.enc_h.select(1, 1)));
    break;
  }
  // More than 5 silent hops in a row close the gate; a frame with lsnr above max_db_erb_thresh
  // counts once more, so it closes from the 3rd silent hop on here.
  EXPECT_GE(silent, 3);
  EXPECT_LE(silent, 6);
  // A loud hop opens it again.
  stream->step(x.narrow(1, 0, 480), st, &info);
  EXPECT_FALSE(info.gated.any().item<bool>());
}

TEST(Dfn3Stream, BadInputsAreRefusedAndLeaveTheState) {
  DeepFilterNet3 net;
  net->eval();
  DeepFilterNet3Stream stream(net);
  auto st = stream->init_state(1);
  const auto before = st;
  EXPECT_THROW(stream->step(torch::zeros({1, 479}), st), c10::Error);
  EXPECT_THROW(stream->step(torch::zeros({2, 480}), st), c10::Error);
  EXPECT_THROW(stream->step(torch::zeros({1, 480}, torch::kFloat64), st), c10::Error);
  EXPECT_THROW(stream->step(torch::zeros({480}), st), c10::Error);
  sepmech::DeepFilterNet3StreamState empty;
  EXPECT_THROW(stream->step(torch::zeros({1, 480}), empty), c10::Error);
  EXPECT_TRUE(torch::equal(st.analysis_mem, before.analysis_mem));
  EXPECT_EQ(st.frames, 0);
  EXPECT_THROW(stream->init_state(0), c10::Error);
  EXPECT_THROW(DeepFilterNet3Stream(net, DeepFilterNet3StreamOptions().min_db_thresh(40)), c10::Error);
  // conv_lookahead != df_lookahead cannot stream (§7.3).
  DeepFilterNet3 other(DfNetOptions{}.conv_lookahead(1));
  EXPECT_THROW(DeepFilterNet3Stream{other}, c10::Error);
}

TEST(Dfn3Stream, ZeroDbAttenuationLimitPassesTheInputThrough) {
  DeepFilterNet3 net;
  net->eval();
  DeepFilterNet3Stream stream(net, DeepFilterNet3StreamOptions().atten_lim_db(0.0));
  auto st = stream->init_state(1);
  const Tensor x = test_signal(1, 480, 8);
  EXPECT_TRUE(torch::equal(stream->step(x, st), x));
}

}  // namespace
