#pragma once
// DeepFilterNet3 (Schröter et al., 2023): 48 kHz speech enhancement with ERB gains and a deep
// filter, offline and frame by frame. Spec: docs/spec/deepfilternet3.md (section numbers below
// refer to it). Module and parameter names follow the reference (Rikorose/DeepFilterNet
// deepfilternet3.py), so its state_dict loads by name: `enc.erb_conv0.1.weight`,
// `erb_dec.convt2.0.weight`, `df_dec.df_gru.gru.weight_ih_l0`, `mask.erb_inv_fb`, ...
//
// Basic usage (offline, the reference's `enhance`):
//   sepmech::DeepFilterNet3 net(sepmech::DfNetOptions{});         // DFN3 configuration
//   sepmech::io::load_state_dict(*net, weights);                  // the 133 reference entries
//   net->eval();
//   torch::Tensor clean = sepmech::dfn3_enhance(*net, noisy);      // noisy [C, n] at 48 kHz
//
// Frame by frame (hop 480 in, 480 out, 1440 samples = 30 ms latency, §7):
//   sepmech::DeepFilterNet3Stream stream(net);
//   auto state = stream->init_state(B);
//   for each hop x [B, 480]:  y = stream->step(x, state);        // y: input hop t-3, enhanced
//
// Alignments (§7.4). forward() is the reference's offline DfNet.forward: the features are
// advanced by conv_lookahead frames, so its output frame t is formed from network frame t (whose
// input is feature frame t+2). The stream runs the network on unshifted features and applies its
// outputs of step t to spectral frame t-2; forward_output_aligned() is the offline form of that
// computation, and the stream with every stage forced on equals it frame for frame.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace sepmech {

/// What is added to a squeezed GRU's output (the reference's `*_gru_skip` settings).
enum class GruSkip {
  none,            ///< "none": nothing
  identity,        ///< "identity": the GRU block's input
  grouped_linear,  ///< "groupedlinear": a grouped linear projection of the input
};
/// The reference's spelling ("none", "identity", "groupedlinear").
std::string to_string(GruSkip skip);
/// Parses "none" / "identity" / "groupedlinear" (case-insensitive, as the reference lowers it);
/// throws c10::Error listing the valid names otherwise.
GruSkip gru_skip_from_string(const std::string& name);

/// The model configuration (§1). A default-constructed object holds the published DFN3 values;
/// code_defaults() the values the reference code uses for keys a config.ini leaves out.
struct DfNetOptions {
  /// sample rate in Hz ([df] sr)
  TORCH_ARG(int64_t, sr) = 48000;
  /// FFT size = window length N ([df] fft_size)
  TORCH_ARG(int64_t, fft_size) = 960;
  /// hop H ([df] hop_size); the streaming front end needs fft_size == 2 hop_size
  TORCH_ARG(int64_t, hop_size) = 480;
  /// number of ERB bands ([df] nb_erb); must be a multiple of 4
  TORCH_ARG(int64_t, nb_erb) = 32;
  /// number of low bins filtered by the deep filter ([df] nb_df); must be even
  TORCH_ARG(int64_t, nb_df) = 96;
  /// smallest ERB band width in bins ([df] min_nb_erb_freqs)
  TORCH_ARG(int64_t, min_nb_erb_freqs) = 2;
  /// time constant of the feature normalisations in seconds ([df] norm_tau)
  TORCH_ARG(double, norm_tau) = 1.0;
  /// explicit normalisation alpha ([df] norm_alpha, libDF only); 0 derives it from norm_tau
  TORCH_ARG(double, norm_alpha) = 0.0;
  /// local-SNR range of the encoder's estimate in dB ([df] lsnr_max / lsnr_min)
  TORCH_ARG(double, lsnr_max) = 35.0;
  TORCH_ARG(double, lsnr_min) = -15.0;
  /// deep-filter order N ([df] df_order)
  TORCH_ARG(int64_t, df_order) = 5;
  /// deep-filter lookahead in frames ([df] df_lookahead)
  TORCH_ARG(int64_t, df_lookahead) = 2;
  /// feature lookahead of the convolutions in frames ([deepfilternet] conv_lookahead)
  TORCH_ARG(int64_t, conv_lookahead) = 2;
  /// convolution channels ([deepfilternet] conv_ch)
  TORCH_ARG(int64_t, conv_ch) = 64;
  /// (time, frequency) kernel of the inner convolutions ([deepfilternet] conv_kernel)
  TORCH_ARG(std::vector<int64_t>, conv_kernel) = std::vector<int64_t>{1, 3};
  /// kernel of the transposed convolutions ([deepfilternet] convt_kernel); time size 1 only
  TORCH_ARG(std::vector<int64_t>, convt_kernel) = std::vector<int64_t>{1, 3};
  /// kernel of the two input convolutions ([deepfilternet] conv_kernel_inp)
  TORCH_ARG(std::vector<int64_t>, conv_kernel_inp) = std::vector<int64_t>{3, 3};
  /// GRU width of the encoder and the ERB decoder ([deepfilternet] emb_hidden_dim)
  TORCH_ARG(int64_t, emb_hidden_dim) = 256;
  /// encoder GRU layers are 1, ERB-decoder GRU layers this - 1 ([deepfilternet] emb_num_layers)
  TORCH_ARG(int64_t, emb_num_layers) = 3;
  /// skip of the ERB decoder's GRU ([deepfilternet] emb_gru_skip); none only
  TORCH_ARG(GruSkip, emb_gru_skip) = GruSkip::none;
  /// skip of the encoder's GRU ([deepfilternet] emb_gru_skip_enc); none only
  TORCH_ARG(GruSkip, emb_gru_skip_enc) = GruSkip::none;
  /// GRU width of the DF decoder ([deepfilternet] df_hidden_dim)
  TORCH_ARG(int64_t, df_hidden_dim) = 256;
  /// DF decoder GRU layers ([deepfilternet] df_num_layers)
  TORCH_ARG(int64_t, df_num_layers) = 2;
  /// skip around the DF decoder's GRU ([deepfilternet] df_gru_skip)
  TORCH_ARG(GruSkip, df_gru_skip) = GruSkip::grouped_linear;
  /// time kernel of the DF pathway convolution ([deepfilternet] df_pathway_kernel_size_t)
  TORCH_ARG(int64_t, df_pathway_kernel_size_t) = 5;
  /// groups of the GRU-block linear layers ([deepfilternet] linear_groups)
  TORCH_ARG(int64_t, linear_groups) = 16;
  /// groups of the encoder's df_fc_emb ([deepfilternet] enc_linear_groups)
  TORCH_ARG(int64_t, enc_linear_groups) = 32;
  /// concatenate instead of add the two encoder paths ([deepfilternet] enc_concat); false only
  TORCH_ARG(bool, enc_concat) = false;
  /// deep-filter iterations ([deepfilternet] df_n_iter); 1 only
  TORCH_ARG(int64_t, df_n_iter) = 1;
  /// lsnr dropout (training only, [deepfilternet] lsnr_dropout); false only
  TORCH_ARG(bool, lsnr_dropout) = false;
  /// post filter on the enhanced spectrum ([deepfilternet] mask_pf)
  TORCH_ARG(bool, mask_pf) = false;
  /// post-filter strength ([deepfilternet] pf_beta)
  TORCH_ARG(double, pf_beta) = 0.02;

 public:
  /// The published DFN3 values (= DfNetOptions{}).
  static DfNetOptions dfn3() { return DfNetOptions{}; }
  /// The reference code's defaults (config.py / deepfilternet3.py at the pinned commit): what a
  /// config.ini that omits a key gets. Differs from DFN3 in df_lookahead 0, conv_lookahead 0,
  /// conv_ch 16, emb_num_layers 2, df_num_layers 3, linear_groups 1, enc_linear_groups 16,
  /// df_gru_skip none, df_pathway_kernel_size_t 1.
  static DfNetOptions code_defaults();
  /// Parses the text of a DeepFilterNet config.ini: keys of [df] and [deepfilternet] are read
  /// (section and key names case-insensitive), keys they leave out take code_defaults(), other
  /// sections and keys the model does not read are ignored. Throws c10::Error naming the
  /// section, key and value on a malformed line or value, or when the result fails Validate().
  static DfNetOptions from_config_ini(const std::string& text);

  /// Throws c10::Error unless the values describe a model this implementation builds.
  void Validate() const;
  std::string ToString() const;

  /// F = fft_size / 2 + 1.
  int64_t freq_bins() const { return fft_size() / 2 + 1; }
  /// Embedding width conv_ch * nb_erb / 4 (512 for DFN3).
  int64_t emb_dim() const { return conv_ch() * nb_erb() / 4; }
  /// The normalisation alpha (§3.4): norm_alpha if set, else exp(-(hop/sr)/tau) rounded to 3
  /// decimals (more if that rounds to 1) = 0.99 for DFN3.
  double alpha() const;
};

namespace dfn3 {

// ----------------------------------------------------------------------------------------------
// Front end (§3): libDF's STFT, ERB bands and the two feature normalisations
// ----------------------------------------------------------------------------------------------

/// ERB band widths in bins (§3.2); they sum to fft_size/2 + 1. DFN3: 2 x13, 5 5 7 7 8 10 12 13 15
/// 18 20 24 28 31 37 42 50 56 67.
std::vector<int64_t> erb_widths(int64_t sr, int64_t fft_size, int64_t nb_bands, int64_t min_nb_freqs);
std::vector<int64_t> erb_widths(const DfNetOptions& options);
/// The forward bank [F, bands]: entry 1/width where the bin belongs to the band (the model's
/// `erb_fb` buffer; column sums 1, so spec_power @ fb is the band mean power).
torch::Tensor erb_filter_bank(const std::vector<int64_t>& widths);
/// The inverse bank [bands, F]: the 0/1 band indicator (the model's `mask.erb_inv_fb` buffer).
torch::Tensor erb_inverse_filter_bank(const std::vector<int64_t>& widths);

/// Initial ERB mean-normalisation state: linspace(-60, -90, bands), float32.
torch::Tensor erb_norm_init(int64_t bands);
/// Initial unit-normalisation state: linspace(0.001, 0.0001, bins), float32.
torch::Tensor unit_norm_init(int64_t bins);

/// Band log power 10 log10(mean_{k in b} |X_k|^2 + 1e-10). spec complex [..., F], fb [F, bands].
torch::Tensor erb_db(const torch::Tensor& spec, const torch::Tensor& fb);
/// Mean normalisation over time (§3.3): for each frame s <- e (1-alpha) + s alpha; out (e - s)/40.
/// db [B, T, bands] float; state [B, bands], advanced in place (pass a clone to keep it).
torch::Tensor erb_norm(const torch::Tensor& db, torch::Tensor& state, double alpha);
/// Unit normalisation over time (§3.4): u <- |X| (1-alpha) + u alpha; out X / sqrt(u).
/// spec complex [B, T, bins]; state [B, bins] float, advanced in place.
torch::Tensor unit_norm(const torch::Tensor& spec, torch::Tensor& state, double alpha);

/// libDF analysis of whole signals (pyDF `DF.analysis`): audio [C, n] float32 -> complex64
/// [C, floor(n / hop), F] with fresh (zero) memories; frame t covers samples [tH - (N-H), tH + H).
torch::Tensor analysis(const torch::Tensor& audio, const DfNetOptions& options);
/// libDF synthesis (pyDF `DF.synthesis`): complex [C, T, F] -> [C, T hop], the signal delayed by
/// fft_size - hop samples, fresh memories.
torch::Tensor synthesis(const torch::Tensor& spec, const DfNetOptions& options);

/// The model inputs of a signal (the reference's `df_features`), fresh normalisation states.
struct Features {
  torch::Tensor spec;       ///< [C, 1, T, F, 2] noisy spectrum (real view)
  torch::Tensor feat_erb;   ///< [C, 1, T, nb_erb]
  torch::Tensor feat_spec;  ///< [C, 1, T, nb_df, 2]
  torch::Tensor erb_db;     ///< [C, T, nb_erb] band log power before the normalisation
};
/// audio [C, n] or [n] float32 at options.sr().
Features features(const torch::Tensor& audio, const DfNetOptions& options);

// ----------------------------------------------------------------------------------------------
// Building blocks (§4.1)
// ----------------------------------------------------------------------------------------------

/// GroupedLinearEinsum: the last dim is split into `groups` contiguous groups, each mapped by its
/// own [in/groups, out/groups] matrix (weight [groups, in/groups, out/groups], no bias).
struct GroupedLinearOptions {
  GroupedLinearOptions(int64_t in, int64_t out, int64_t groups) : in_(in), out_(out), groups_(groups) {}
  /// input width (divisible by groups)
  TORCH_ARG(int64_t, in);
  /// output width (divisible by groups)
  TORCH_ARG(int64_t, out);
  /// number of groups
  TORCH_ARG(int64_t, groups);
};

class GroupedLinearImpl : public torch::nn::Cloneable<GroupedLinearImpl> {
 public:
  explicit GroupedLinearImpl(GroupedLinearOptions options);
  void reset() override;
  /// x [..., in] -> [..., out]
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;

  GroupedLinearOptions options;
  torch::Tensor weight;
};
TORCH_MODULE(GroupedLinear);

/// Activation after a block.
enum class Activation {
  none,     ///< identity
  relu,     ///< ReLU
  sigmoid,  ///< logistic sigmoid
  tanh,     ///< hyperbolic tangent
};
std::string to_string(Activation a);
/// Parses none / relu / sigmoid / tanh.
Activation activation_from_string(const std::string& name);
torch::Tensor apply_activation(Activation a, const torch::Tensor& x);

/// A GroupedLinear under child name "0" followed by an activation (the reference's
/// nn.Sequential(GroupedLinearEinsum(...), act)), so its weight is `<name>.0.weight`.
class GroupedLinearActImpl : public torch::nn::Cloneable<GroupedLinearActImpl> {
 public:
  GroupedLinearActImpl(GroupedLinearOptions options, Activation act);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;

  GroupedLinearOptions options;
  Activation act;
  GroupedLinear linear{nullptr};
};
TORCH_MODULE(GroupedLinearAct);

/// Conv2dNormAct / ConvTranspose2dNormAct (§4.1) on [B, C, T, F]: causal time padding kt-1,
/// frequency padding kf/2, stride (1, fstride), groups gcd(in, out) when separable, a 1x1
/// pointwise conv after a grouped conv with a kernel > 1x1, BatchNorm, activation. Children are
/// numbered as the reference's nn.Sequential, the padding counting as index 0 when present.
struct ConvNormActOptions {
  ConvNormActOptions(int64_t in, int64_t out, std::vector<int64_t> kernel)
      : in_(in), out_(out), kernel_(std::move(kernel)) {}
  /// input channels
  TORCH_ARG(int64_t, in);
  /// output channels
  TORCH_ARG(int64_t, out);
  /// (time, frequency) kernel
  TORCH_ARG(std::vector<int64_t>, kernel);
  /// frequency stride (transposed: upsampling factor)
  TORCH_ARG(int64_t, fstride) = 1;
  /// ConvTranspose2d instead of Conv2d (time kernel 1 only)
  TORCH_ARG(bool, transposed) = false;
  /// grouped (gcd(in, out)) + pointwise instead of a dense conv
  TORCH_ARG(bool, separable) = true;
  /// activation after the BatchNorm
  TORCH_ARG(Activation, activation) = Activation::relu;
};

class ConvNormActImpl : public torch::nn::Cloneable<ConvNormActImpl> {
 public:
  explicit ConvNormActImpl(ConvNormActOptions options);
  void reset() override;
  /// x [B, in, T, F] -> [B, out, T, F'] (causal over time).
  torch::Tensor forward(const torch::Tensor& x);
  /// Without the time padding: x holds kt frames (history + current) -> one output frame
  /// (x [B, in, T, F] -> [B, out, T - kt + 1, F']).
  torch::Tensor forward_unpadded(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  int64_t time_kernel() const { return options.kernel()[0]; }

  ConvNormActOptions options;
  torch::nn::Conv2d conv{nullptr};             ///< the main conv (plain case)
  torch::nn::ConvTranspose2d convt{nullptr};   ///< the main conv (transposed case)
  torch::nn::Conv2d pointwise{nullptr};        ///< 1x1 after a grouped conv, if any
  torch::nn::BatchNorm2d norm{nullptr};
};
TORCH_MODULE(ConvNormAct);

/// SqueezedGRU_S: GroupedLinear(in -> hidden) + ReLU, GRU(hidden, layers), optional
/// GroupedLinear(hidden -> out) + ReLU (children linear_in.0, gru, linear_out.0).
struct SqueezedGruOptions {
  SqueezedGruOptions(int64_t in, int64_t hidden) : in_(in), hidden_(hidden) {}
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, hidden);
  /// output width; 0 = no output projection (the GRU output is returned)
  TORCH_ARG(int64_t, out) = 0;
  TORCH_ARG(int64_t, num_layers) = 1;
  /// groups of both linear layers (the reference constructor's default is 8)
  TORCH_ARG(int64_t, linear_groups) = 8;
};

class SqueezedGruImpl : public torch::nn::Cloneable<SqueezedGruImpl> {
 public:
  explicit SqueezedGruImpl(SqueezedGruOptions options);
  void reset() override;
  /// x [B, T, in], h [layers, B, hidden] (undefined = zeros) -> (y [B, T, out or hidden], h_T)
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& h = {});
  void pretty_print(std::ostream& stream) const override;

  SqueezedGruOptions options;
  GroupedLinearAct linear_in{nullptr};
  torch::nn::GRU gru{nullptr};
  GroupedLinearAct linear_out{nullptr};  ///< null when options.out() == 0
};
TORCH_MODULE(SqueezedGru);

// ----------------------------------------------------------------------------------------------
// The three sub-networks (§4.2-§4.4)
// ----------------------------------------------------------------------------------------------

struct EncoderOutput {
  torch::Tensor e0, e1, e2, e3;  ///< [B, C, T, nb_erb / {1, 2, 4, 4}]
  torch::Tensor emb;             ///< [B, T, emb_dim]
  torch::Tensor c0;              ///< [B, C, T, nb_df]
  torch::Tensor lsnr;            ///< [B, T, 1] dB
  torch::Tensor h;               ///< GRU hidden after the last frame [1, B, emb_hidden_dim]
};

class EncoderImpl : public torch::nn::Cloneable<EncoderImpl> {
 public:
  explicit EncoderImpl(DfNetOptions options);
  void reset() override;
  /// feat_erb [B, 1, T, nb_erb], feat_spec [B, 2, T, nb_df] (real, imaginary as channels).
  EncoderOutput forward(const torch::Tensor& feat_erb, const torch::Tensor& feat_spec);
  /// Streaming form: the inputs hold the last kt input-conv frames (history + current), h is the
  /// GRU hidden (undefined = zeros); returns the outputs of the newest frame (T = 1).
  EncoderOutput step(const torch::Tensor& erb_window, const torch::Tensor& spec_window, const torch::Tensor& h);
  void pretty_print(std::ostream& stream) const override;

  DfNetOptions options;
  ConvNormAct erb_conv0{nullptr}, erb_conv1{nullptr}, erb_conv2{nullptr}, erb_conv3{nullptr};
  ConvNormAct df_conv0{nullptr}, df_conv1{nullptr};
  GroupedLinearAct df_fc_emb{nullptr};
  SqueezedGru emb_gru{nullptr};
  torch::nn::Sequential lsnr_fc{nullptr};  ///< Linear(emb_dim, 1) as child "0"

 private:
  EncoderOutput run(const torch::Tensor& e0, const torch::Tensor& c0, const torch::Tensor& h);
};
TORCH_MODULE(Encoder);

class ErbDecoderImpl : public torch::nn::Cloneable<ErbDecoderImpl> {
 public:
  explicit ErbDecoderImpl(DfNetOptions options);
  void reset() override;
  /// emb [B, T, emb_dim], e3..e0 as the encoder returns them -> (gains m [B, 1, T, nb_erb], GRU h).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& emb, const torch::Tensor& e3,
                                                  const torch::Tensor& e2, const torch::Tensor& e1,
                                                  const torch::Tensor& e0, const torch::Tensor& h = {});
  void pretty_print(std::ostream& stream) const override;

  DfNetOptions options;
  SqueezedGru emb_gru{nullptr};
  ConvNormAct conv3p{nullptr}, convt3{nullptr}, conv2p{nullptr}, convt2{nullptr};
  ConvNormAct conv1p{nullptr}, convt1{nullptr}, conv0p{nullptr}, conv0_out{nullptr};
};
TORCH_MODULE(ErbDecoder);

class DfDecoderImpl : public torch::nn::Cloneable<DfDecoderImpl> {
 public:
  explicit DfDecoderImpl(DfNetOptions options);
  void reset() override;
  /// emb [B, T, emb_dim], c0 [B, C, T, nb_df] -> (coefs [B, T, nb_df, 2 df_order], GRU h);
  /// channel 2n + k of the last dim = order n, real (k = 0) / imaginary (k = 1).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& emb, const torch::Tensor& c0,
                                                  const torch::Tensor& h = {});
  /// Streaming form: c0_window holds the last df_pathway_kernel_size_t c0 frames; T = 1.
  std::pair<torch::Tensor, torch::Tensor> step(const torch::Tensor& emb, const torch::Tensor& c0_window,
                                               const torch::Tensor& h);
  void pretty_print(std::ostream& stream) const override;

  DfNetOptions options;
  ConvNormAct df_convp{nullptr};
  SqueezedGru df_gru{nullptr};
  GroupedLinear df_skip{nullptr};    ///< grouped_linear skip (null otherwise)
  GroupedLinearAct df_out{nullptr};  ///< GroupedLinear + tanh
  torch::nn::Sequential df_fc_a{nullptr};  ///< Linear(df_hidden_dim, 1): in the checkpoint, never used

 private:
  std::pair<torch::Tensor, torch::Tensor> run(const torch::Tensor& emb, const torch::Tensor& p, const torch::Tensor& h);
};
TORCH_MODULE(DfDecoder);

/// coefs [B, T, F, 2N] -> [B, N, T, F, 2] (the reference's DfOutputReshapeMF).
torch::Tensor df_output_reshape(const torch::Tensor& coefs, int64_t df_order);

/// Holds the inverse ERB bank as buffer `erb_inv_fb` (the reference's Mask module).
class MaskImpl : public torch::nn::Cloneable<MaskImpl> {
 public:
  explicit MaskImpl(std::vector<int64_t> widths);
  void reset() override;
  /// spec [B, 1, T, F, 2] x gains m [B, 1, T, bands] expanded over the bands' bins.
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& m);
  void pretty_print(std::ostream& stream) const override;

  std::vector<int64_t> widths;
  torch::Tensor erb_inv_fb;
};
TORCH_MODULE(Mask);

/// The post filter (§5.6) of spectrum y against the noisy x, both [..., 2] real views (any
/// leading shape): g = clamp(|y|/(|x| + 1e-12), 1e-12, 1), y (1+beta) / (1 + beta (g / (g max(sin(pi g/2), 1e-12)))^2).
torch::Tensor post_filter(const torch::Tensor& y, const torch::Tensor& x, double beta);

}  // namespace dfn3

/// Everything DeepFilterNet3::forward returns.
struct DfNetOutput {
  torch::Tensor spec;      ///< enhanced spectrum [B, 1, T, F, 2]
  torch::Tensor m;         ///< ERB gains [B, 1, T, nb_erb]
  torch::Tensor lsnr;      ///< local SNR estimate [B, T, 1] in dB
  torch::Tensor df_coefs;  ///< deep-filter coefficients [B, df_order, T, nb_df, 2]
  torch::Tensor spec_m;    ///< the gain-masked spectrum [B, 1, T, F, 2] (before DF / post filter)
};

/// The DfNet of deepfilternet3.py: children enc, erb_dec, mask, df_dec and the buffer erb_fb.
class DeepFilterNet3Impl : public torch::nn::Cloneable<DeepFilterNet3Impl> {
 public:
  explicit DeepFilterNet3Impl(DfNetOptions options = {});
  void reset() override;
  /// The reference's DfNet.forward (HEAD alignment, §5): spec [B, 1, T, F, 2],
  /// feat_erb [B, 1, T, nb_erb], feat_spec [B, 1, T, nb_df, 2]. Post filter if options.mask_pf().
  /// Differentiable (training mode uses batch statistics, as the reference).
  DfNetOutput forward(const torch::Tensor& spec, const torch::Tensor& feat_erb, const torch::Tensor& feat_spec);
  /// The streaming alignment offline (§7.4): the network runs on the unshifted features; output
  /// frame j (j < T - conv_lookahead) applies the gains and coefficients of network frame
  /// j + conv_lookahead. Returns spec with T - conv_lookahead frames; m, lsnr, df_coefs are the
  /// raw network outputs of all T frames. Requires conv_lookahead == df_lookahead.
  DfNetOutput forward_output_aligned(const torch::Tensor& spec, const torch::Tensor& feat_erb,
                                     const torch::Tensor& feat_spec);
  void pretty_print(std::ostream& stream) const override;

  DfNetOptions options;
  std::vector<int64_t> erb_widths;
  torch::Tensor erb_fb;  ///< [F, nb_erb] forward bank (buffer; features are computed with it)
  dfn3::Encoder enc{nullptr};
  dfn3::ErbDecoder erb_dec{nullptr};
  dfn3::Mask mask{nullptr};
  dfn3::DfDecoder df_dec{nullptr};

 private:
  void check_inputs(const torch::Tensor& spec, const torch::Tensor& feat_erb, const torch::Tensor& feat_spec) const;
};
TORCH_MODULE(DeepFilterNet3);

/// Options of the offline wrapper (the reference's `enhance`).
struct Dfn3EnhanceOptions {
  /// append fft_size zeros and crop so that the output is aligned with the input, same length
  TORCH_ARG(bool, pad) = true;
  /// attenuation limit in dB: the noisy spectrum is mixed back in with 10^(-|A|/20); 0 = off
  TORCH_ARG(double, atten_lim_db) = 0.0;
};

/// Enhances audio [C, n] or [n] (float32, 48 kHz): features with fresh states, forward (HEAD
/// alignment), optional attenuation limit, synthesis. pad: output [C, n] aligned with the input;
/// no pad: [C, floor(n/hop) hop], delayed by fft_size - hop samples. No autograd needed: runs under
/// the caller's grad mode.
torch::Tensor dfn3_enhance(DeepFilterNet3Impl& net, const torch::Tensor& audio, const Dfn3EnhanceOptions& options = {});

// ----------------------------------------------------------------------------------------------
// Streaming (§7)
// ----------------------------------------------------------------------------------------------

struct DeepFilterNet3StreamOptions {
  /// below this local SNR (dB) the frame gets zero gains and no DF
  TORCH_ARG(double, min_db_thresh) = -10.0;
  /// above this local SNR (dB) the frame is passed through untouched
  TORCH_ARG(double, max_db_erb_thresh) = 30.0;
  /// above this local SNR (dB) only the ERB gains are applied (no DF)
  TORCH_ARG(double, max_db_df_thresh) = 20.0;
  /// apply gains and DF to every frame whatever the local SNR (torchDF's always_apply_all_stages)
  TORCH_ARG(bool, always_apply_all_stages) = false;
  /// attenuation limit in dB (libDF): >= 100 off; < 0.01 passes the input hop through undelayed
  /// without running anything; else Y (1 - lim) + lim X, lim = 10^(-|A|/20)
  TORCH_ARG(double, atten_lim_db) = 100.0;
  /// post filter on frames that got gains (libDF leaves the Nyquist bin unfiltered)
  TORCH_ARG(bool, post_filter) = false;
  TORCH_ARG(double, post_filter_beta) = 0.02;
  /// libDF's silence gate: after more than 5 hops with mean(x^2) < 1e-7 a hop is answered with
  /// zeros and nothing else happens
  TORCH_ARG(bool, silence_gate) = true;
};

/// The state of B independent streams (§7.2). A value: copying deep-copies every buffer (a copy
/// branches the streams), moving is cheap.
struct DeepFilterNet3StreamState {
  torch::Tensor analysis_mem;   ///< [B, N - H] last input samples
  torch::Tensor synthesis_mem;  ///< [B, N - H] overlap-add tail
  torch::Tensor erb_norm;       ///< [B, nb_erb]
  torch::Tensor unit_norm;      ///< [B, nb_df]
  torch::Tensor erb_window;     ///< [B, 1, kt, nb_erb] encoder input frames of the last step
  torch::Tensor spec_window;    ///< [B, 2, kt, nb_df]
  torch::Tensor enc_h;          ///< [1, B, emb_hidden_dim]
  torch::Tensor erb_dec_h;      ///< [emb_num_layers - 1, B, emb_hidden_dim]
  torch::Tensor df_dec_h;       ///< [df_num_layers, B, df_hidden_dim]
  torch::Tensor c0_window;      ///< [B, C, df_pathway_kernel_size_t, nb_df] c0 of the last DF runs
  torch::Tensor noisy;          ///< complex [B, df_order, F]: X_{t-N+1..t}, oldest first
  std::vector<int64_t> silent_hops;  ///< per stream, libDF's silence counter
  int64_t frames = 0;                ///< hops consumed

  DeepFilterNet3StreamState() = default;
  DeepFilterNet3StreamState(const DeepFilterNet3StreamState& other);
  DeepFilterNet3StreamState& operator=(const DeepFilterNet3StreamState& other);
  DeepFilterNet3StreamState(DeepFilterNet3StreamState&&) = default;
  DeepFilterNet3StreamState& operator=(DeepFilterNet3StreamState&&) = default;
  int64_t batch() const { return analysis_mem.defined() ? analysis_mem.size(0) : 0; }
  /// Back to the initial state of new streams (buffers kept).
  void reset();
};

/// Per-step details (optional output of step()).
struct DeepFilterNet3StepInfo {
  torch::Tensor lsnr;        ///< [B] the encoder's estimate for the newest frame (lsnr_min if gated)
  torch::Tensor zero_gains;  ///< [B] bool: the output frame was zeroed
  torch::Tensor gains;       ///< [B] bool: ERB gains applied
  torch::Tensor df;          ///< [B] bool: deep filter applied
  torch::Tensor gated;       ///< [B] bool: the silence gate answered zeros
};

/// Frame-by-frame DFN3 (libDF's DfTract::process, §7.1) for B independent streams sharing one
/// network. Hop t of the output is the enhanced spectral frame t - conv_lookahead, synthesised:
/// output hop t ~ input hop t - 3 (1440 samples). To flush, feed 3 more hops of zeros.
/// Stream == offline: with always_apply_all_stages (and no silence), the concatenated outputs are
/// synthesis(forward_output_aligned(features(x)).spec) delayed by conv_lookahead hops.
class DeepFilterNet3StreamImpl : public torch::nn::Cloneable<DeepFilterNet3StreamImpl> {
 public:
  explicit DeepFilterNet3StreamImpl(DeepFilterNet3 net, DeepFilterNet3StreamOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  using State = DeepFilterNet3StreamState;
  /// Initial state of `batch` streams.
  State init_state(int64_t batch = 1) const;
  /// x [B, hop] float32 -> [B, hop]; advances `state` (left unchanged when the call throws). No
  /// autograd (runs in inference mode); the network should be in eval mode.
  torch::Tensor step(const torch::Tensor& x, State& state, DeepFilterNet3StepInfo* info = nullptr) const;
  /// Latency in samples: fft_size - hop + conv_lookahead hop.
  int64_t delay() const;

  DeepFilterNet3StreamOptions options;
  DeepFilterNet3 net{nullptr};
  torch::Tensor window;  ///< [N] Vorbis window

 private:
  void check_state(const State& state) const;
};
TORCH_MODULE(DeepFilterNet3Stream);

}  // namespace sepmech
