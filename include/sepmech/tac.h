#pragma once
// TAC — Transform-Average-Concatenate (Luo et al., ICASSP 2020, FaSNet-TAC): lets the
// microphone channels of an ad-hoc array exchange information through a mean over channels,
// so the block is invariant to the order of the microphones and to how many there are.
// See docs/tac.md for the equations and the data flow.
//
// Usage:
//   sepmech::TAC tac(sepmech::TACOptions(64).hidden_dim(384));        // gLN + PReLU
//   torch::Tensor y = tac(x);                       // x [B, M, N, K, S], all M mics valid
//   torch::Tensor y2 = tac(x, torch::tensor({6, 4}));  // example 0: 6 mics, example 1: first 4
//
// Loading reference checkpoints (both key layouts; strict: every key must fit):
//   // asteroid `TAC` (keys input_tf.0.weight, ..., norm.gamma); inside asteroid's FasNetTAC
//   // layer i lives under "DPRNN_TAC.<i>.1.":
//   sepmech::io::load_state_dict(*tac, sd, sepmech::TACImpl::asteroid_load_options("DPRNN_TAC.2.1."));
//   // FaSNet-TAC's inline TAC of layer i (ch_transform.<i>.*, ch_average.<i>.*, ch_concat.<i>.*,
//   // ch_norm.<i>.*); in a whole FaSNet_TAC checkpoint they sit under "all_BF.DPRNN.", and every
//   // other key (RNNs, encoder, ...) is ignored:
//   sepmech::TAC layer2(sepmech::TACOptions::fasnet(/*input_size=*/64, /*hidden_size=*/128));
//   sepmech::io::load_state_dict(*layer2, sd, sepmech::TACImpl::fasnet_load_options(2, "all_BF.DPRNN."));
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sepmech/io/state_dict.h"

namespace sepmech {

/// Activation after each of TAC's three linear maps (each its own instance).
enum class TacActivation {
  prelu,       ///< one learnable slope, init 0.25 (the references' default)
  relu,
  linear,      ///< identity
  leaky_relu,  ///< slope 0.01
  sigmoid,
  tanh,
  gelu,        ///< erf form
  swish,       ///< v * sigmoid(v)
  softmax,     ///< over the feature axis
};
/// The reference's name ("prelu", "leaky_relu", ...).
std::string to_string(TacActivation activation);
/// Parses a reference name; throws c10::Error listing the valid names for anything else.
TacActivation tac_activation_from_string(const std::string& name);

/// Normalisation of each mic's TAC output over its (N, K, S) positions.
enum class TacNorm {
  gln,   ///< "gLN": per example-mic, over N*K*S
  cln,   ///< "cLN": per position, over N
  fgln,  ///< "fgLN": per feature, over K*S
  bn,    ///< "bN": BatchNorm over all examples, mics and positions (running statistics in eval)
};
/// The reference's name ("gLN", "cLN", "fgLN", "bN").
std::string to_string(TacNorm norm);
/// Parses a reference name; throws c10::Error listing the valid names for anything else.
TacNorm tac_norm_from_string(const std::string& name);

struct TACOptions {
  /* implicit */ TACOptions(int64_t input_dim) : input_dim_(input_dim) {}

  /// FaSNet-TAC's fixed configuration: PReLU, GroupNorm(1, N, eps 1e-8), H = 3 * RNN hidden size.
  static TACOptions fasnet(int64_t input_size, int64_t rnn_hidden_size) {
    return TACOptions(input_size).hidden_dim(3 * rnn_hidden_size);
  }

  /// N: features per microphone (asteroid `input_dim`, FaSNet `input_size`).
  TORCH_ARG(int64_t, input_dim);
  /// H: size of the transform and average hidden layers (FaSNet: 3 * RNN hidden size).
  TORCH_ARG(int64_t, hidden_dim) = 384;
  /// activation after each of the three linear maps
  TORCH_ARG(TacActivation, activation) = TacActivation::prelu;
  /// normalisation of each mic's output
  TORCH_ARG(TacNorm, norm_type) = TacNorm::gln;
  /// Added to the variance inside the square root of the layer norms (gLN, cLN, fgLN).
  TORCH_ARG(double, eps) = 1e-8;
  /// BatchNorm ("bN") epsilon and running-statistics momentum (PyTorch defaults).
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(double, bn_momentum) = 0.1;
  /// Without autograd, the transform / average / output-transform steps run over blocks of about
  /// this many (b, m, position) rows at a time, so the [rows, H] hidden activations stay in cache
  /// instead of making several passes over a tensor of B*M*K*S*H floats. 0 = one block.
  /// Affects speed only (results equal to float rounding).
  TORCH_ARG(int64_t, inference_block_rows) = 1536;
};

/// The affine layer norms used by TAC on z viewed as [B*M, N, P] (P = K*S positions).
/// Parameters `gamma`, `beta` (N), init 1 / 0, as in asteroid's norms.
class TACLayerNormImpl : public torch::nn::Cloneable<TACLayerNormImpl> {
 public:
  /// `kind` is gln, cln or fgln (bn is TAC's BatchNorm2d, not a layer norm).
  TACLayerNormImpl(TacNorm kind, int64_t channels, double eps);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  /// z: [R, N, P] -> normalised [R, N, P].
  torch::Tensor forward(const torch::Tensor& z);

  TacNorm kind;
  int64_t channels;
  double eps;
  torch::Tensor gamma, beta;
};
TORCH_MODULE(TACLayerNorm);

class TACImpl : public torch::nn::Cloneable<TACImpl> {
 public:
  explicit TACImpl(TACOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// x: [B, M, N, K, S] floating (batch, mic slots, features, chunk, chunks), same dtype as the
  /// parameters. valid_mics: optional 1-D integer tensor of B per-example microphone counts V_b;
  /// example b averages only its first V_b slots (padding sits at the end of the mic axis).
  /// Undefined, all zeros ("fixed geometry"; a single 0 is accepted for any B), or all M → every
  /// slot is averaged. Padded slots still get outputs (computed with their example's valid-mic
  /// average, as in the references). Rejected with an error naming the example: counts < 0,
  /// counts > M, a 0 next to non-zero counts. Returns y [B, M, N, K, S] (a new tensor).
  /// The counts are read on the host once (for validation); the averaging itself is a masked
  /// batched product without a loop over the batch.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& valid_mics = {});

  /// Key mapping for asteroid's `TAC` state dict; `prefix` is stripped first (keys without it are
  /// dropped), e.g. "DPRNN_TAC.<i>.1." for layer i inside asteroid's FasNetTAC.
  static io::LoadOptions asteroid_load_options(const std::string& prefix = "");
  /// Key mapping for layer `layer` of FaSNet-TAC's `DPRNN_TAC` (ch_transform.<layer>.* ->
  /// input_tf.*, ch_average -> avg_tf, ch_concat -> concat_tf, ch_norm.<layer>.weight/bias ->
  /// norm.gamma/beta). `prefix` ("all_BF.DPRNN." in a whole FaSNet_TAC) is stripped; every key
  /// that is not this layer's TAC is ignored. Only for gLN modules (FaSNet's GroupNorm).
  static io::LoadOptions fasnet_load_options(int64_t layer, const std::string& prefix = "");

  TACOptions options;
  /// The three transforms, named as in the references: [0] Linear, [1] activation module (so each
  /// also works when called on its own on [rows, features]). input_tf: N -> H, avg_tf: H -> H,
  /// concat_tf: 2H -> N (weight columns 0..H-1 act on h_m, H..2H-1 on the average).
  torch::nn::Sequential input_tf{nullptr}, avg_tf{nullptr}, concat_tf{nullptr};
  /// Exactly one of these is registered as "norm".
  TACLayerNorm layer_norm{nullptr};
  torch::nn::BatchNorm2d batch_norm{nullptr};

 private:
  /// act(t) along `feature_dim`; `inplace` (no autograd) may overwrite t.
  torch::Tensor activate(torch::Tensor t, const torch::nn::Sequential& transform, int64_t feature_dim,
                         bool inplace) const;
  torch::Tensor normalise(const torch::Tensor& z, int64_t K, int64_t S);
  /// Steps 1-4 without autograd, blocked over positions: z [B, M, N, P].
  torch::Tensor mix_blocked(const torch::Tensor& x, const torch::Tensor& mic_weight);
};
TORCH_MODULE(TAC);

}  // namespace sepmech
