#pragma once
// OSA_RES_eSE: one-shot aggregation with identity residual and effective squeeze-excitation
// (VoVNetV2, Lee & Park, CVPR 2020), its stage and the VoVNet backbone. Spec: docs/osa.md and
// ../shared/spec/osa.md. Module and parameter names follow the reference
// (youngwanLEE/vovnet-detectron2 vovnet.py) so its checkpoints load by name, including the `/`
// inside names: `layers.0.OSA2_1_0/conv.weight`, `concat.OSA2_1_concat/norm.running_mean`, ...
//
// Basic usage:
//   sepmech::OSABlock block(sepmech::OSABlockOptions(64, 64, 64, 3).module_name("OSA2_2")
//                               .identity(true).norm(sepmech::NormKind::batch_norm));
//   auto y = block(x);                      // x: (B, C, H, W) or (B, C, T) for time signals
//   block->eval();
//   auto fast = block->fuse();              // norms folded into convolutions, channels-last
//   sepmech::VoVNet net(sepmech::VoVNetOptions(sepmech::VoVNetSpec::named("V-19-slim-eSE")));
//   auto feats = net(img);                  // {"stage2": ..., ..., "stage5": ...}
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace sepmech {

/// Normalisation after every convolution (the reference's module-global `_NORM`).
enum class NormKind {
  batch_norm,         ///< "BN" / "SyncBN": torch BatchNorm2d (eps 1e-5, momentum 0.1)
  frozen_batch_norm,  ///< "FrozenBN": eval formula always; weight/bias/running stats are buffers
  group_norm,         ///< "GN": GroupNorm(32, C); C must be a multiple of 32
  identity,           ///< no normalisation (what fuse() leaves after folding a norm into its conv)
};

/// "BN", "SyncBN", "FrozenBN", "GN" (the reference's names) -> NormKind; throws on anything else.
NormKind norm_kind_from_string(const std::string& name);
std::string to_string(NormKind kind);

struct Norm2dOptions {
  Norm2dOptions(NormKind kind, int64_t channels) : kind_(kind), channels_(channels) {}
  /// which normalisation
  TORCH_ARG(NormKind, kind);
  /// number of channels C
  TORCH_ARG(int64_t, channels);
  /// added to the variance
  TORCH_ARG(double, eps) = 1e-5;
  /// BatchNorm running-statistics momentum
  TORCH_ARG(double, momentum) = 0.1;
  /// GroupNorm group count
  TORCH_ARG(int64_t, groups) = 32;
};

/// One normalisation layer with the reference's state_dict entries for its kind.
class Norm2dImpl : public torch::nn::Cloneable<Norm2dImpl> {
 public:
  explicit Norm2dImpl(Norm2dOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  /// Per-channel (scale, shift) with norm(u) = u * scale + shift in eval mode (BN, FrozenBN,
  /// Identity). Throws for GroupNorm, whose statistics depend on the input.
  std::pair<torch::Tensor, torch::Tensor> affine_equivalent() const;
  bool foldable() const { return options.kind() != NormKind::group_norm; }

  Norm2dOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};
TORCH_MODULE(Norm2d);

/// Effective squeeze-excitation: out = a * hsig(W mean(a) + b), one C x C 1x1 conv with bias.
struct ESEOptions {
  explicit ESEOptions(int64_t channels) : channels_(channels) {}
  /// channels C
  TORCH_ARG(int64_t, channels);
  /// Pool over the last axis only (frequency of a (B, C, T, F) spectrogram), giving one gate
  /// per frame: causal over time. false = the reference's global mean over H x W.
  TORCH_ARG(bool, frequency_only) = false;
};

class ESEImpl : public torch::nn::Cloneable<ESEImpl> {
 public:
  explicit ESEImpl(ESEOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& a);
  /// The gate hsig(W s + b): (B, C, 1, 1), or (B, C, T, 1) with frequency_only; (B, C, 1) for
  /// 3-D input.
  torch::Tensor gate(const torch::Tensor& a);
  void pretty_print(std::ostream& stream) const override;

  ESEOptions options;
  torch::nn::Conv2d fc{nullptr};
};
TORCH_MODULE(ESE);

/// hsig(u) = relu6(u + 3) / 6, computed exactly as the reference (divide, not multiply by 1/6).
torch::Tensor hard_sigmoid(const torch::Tensor& u);

/// Which convolution a unit holds.
enum class UnitKind {
  conv3x3,     ///< {name}/conv (3x3, pad 1), {name}/norm, ReLU
  conv1x1,     ///< {name}/conv (1x1), {name}/norm, ReLU
  dw_conv3x3,  ///< {name}/dw_conv3x3 (depthwise 3x3), {name}/pw_conv1x1, {name}/pw_norm, ReLU
};

/// One conv-norm-ReLU unit of a ConvUnit (the reference's helper arguments).
struct UnitSpec {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  std::string name;  ///< prefix of the child names, e.g. "OSA2_1_0" -> "OSA2_1_0/conv"
  UnitKind kind = UnitKind::conv3x3;
  int64_t stride = 1;  ///< stride of the (depthwise) 3x3 convolution
};

struct ConvUnitOptions {
  explicit ConvUnitOptions(std::vector<UnitSpec> units) : units_(std::move(units)) {}
  /// the units, applied in order (the stem holds three, every other place one)
  TORCH_ARG(std::vector<UnitSpec>, units);
  TORCH_ARG(NormKind, norm) = NormKind::batch_norm;
  /// 3x3 kernels see only the current and two past frames along H (time), zero left padding.
  TORCH_ARG(bool, causal_time) = false;
};

/// A sequence of conv -> norm -> ReLU units (the reference's conv3x3 / conv1x1 / dw_conv3x3
/// helpers wrapped in one nn.Sequential), children named "{name}/conv", "{name}/norm", ...
class ConvUnitImpl : public torch::nn::Cloneable<ConvUnitImpl> {
 public:
  explicit ConvUnitImpl(ConvUnitOptions options);
  void reset() override;
  /// (B, C, H, W) -> (B, C', H', W'); (B, C, T) runs the 1-D form (middle kernel row).
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  /// Folds every BN/FrozenBN (eval formula) into its convolution, which gains a bias; GN stays.
  void fuse_();

  struct Part {
    UnitSpec spec;
    torch::nn::Conv2d conv{nullptr};  ///< conv (plain) or pw_conv1x1 (depthwise)
    torch::nn::Conv2d dw{nullptr};    ///< dw_conv3x3 (depthwise only)
    Norm2d norm{nullptr};
  };
  ConvUnitOptions options;
  std::vector<Part> parts;
  bool fused = false;
};
TORCH_MODULE(ConvUnit);

struct OSABlockOptions {
  OSABlockOptions(int64_t in_ch, int64_t stage_ch, int64_t concat_ch, int64_t layer_per_block)
      : in_ch_(in_ch), stage_ch_(stage_ch), concat_ch_(concat_ch), layer_per_block_(layer_per_block) {}
  /// input channels C_in
  TORCH_ARG(int64_t, in_ch);
  /// width C_s of every 3x3 layer
  TORCH_ARG(int64_t, stage_ch);
  /// output channels C_out of the 1x1 aggregation conv and of eSE
  TORCH_ARG(int64_t, concat_ch);
  /// number L of 3x3 layers
  TORCH_ARG(int64_t, layer_per_block);
  /// prefix of the submodule names ("OSA{stage}_{block}")
  TORCH_ARG(std::string, module_name) = "OSA2_1";
  /// add the block input after eSE (requires in_ch == concat_ch)
  TORCH_ARG(bool, identity) = false;
  /// depthwise-separable 3x3 layers (+ 1x1 reduction when in_ch != stage_ch)
  TORCH_ARG(bool, depthwise) = false;
  /// eSE after the aggregation (V2); false gives the VoVNet-V1 block
  TORCH_ARG(bool, ese) = true;
  TORCH_ARG(NormKind, norm) = NormKind::batch_norm;
  /// Spectrogram (B, C, T, F) streaming form (beyond the reference): 3x3 convs see frames
  /// t-2..t only and eSE pools over F only, so future frames never change past outputs.
  TORCH_ARG(bool, causal_time) = false;
};

class OSABlockImpl : public torch::nn::Cloneable<OSABlockImpl> {
 public:
  explicit OSABlockImpl(OSABlockOptions options);
  void reset() override;
  /// (B, C_in, H, W) -> (B, C_out, H, W); (B, C_in, T) -> (B, C_out, T), the 2-D block on H = 1.
  torch::Tensor forward(const torch::Tensor& x);
  /// forward that also records intermediates (layer{i}, reduction, concat, gate, ese) in `mid`.
  torch::Tensor forward_with_intermediates(const torch::Tensor& x, std::map<std::string, torch::Tensor>* mid);
  void pretty_print(std::ostream& stream) const override;
  /// Streaming (causal_time blocks only): the last two input frames of every 3x3 layer. A value:
  /// copying it copies the histories (a copy branches the stream), moving it is cheap.
  struct State {
    std::vector<torch::Tensor> history;  ///< per layer, (B, C, 2, F); zeros = causal padding

    State() = default;
    State(const State& other) {
      for (const auto& h : other.history) history.push_back(h.defined() ? h.clone() : h);
    }
    State& operator=(const State& other) {
      if (this != &other) *this = State(other);
      return *this;
    }
    State(State&&) = default;
    State& operator=(State&&) = default;
    /// Back to the zero state of a new stream.
    void reset() {
      for (auto& h : history)
        if (h.defined()) h.zero_();
    }
  };
  /// Zero state for a stream of `batch` examples with `freq` frequency bins.
  State init_state(int64_t batch, int64_t freq) const;
  /// Runs frames x (B, C_in, T_chunk, F), T_chunk >= 1, continuing and advancing `state` (the
  /// library's streaming contract, docs/design.md); concatenating the outputs of consecutive
  /// chunks equals forward() on the whole (B, C_in, T, F) input. Eval-mode norms only (BN batch
  /// statistics would mix frames). `state` is left as it was when the call throws.
  torch::Tensor step(const torch::Tensor& x, State& state);
  /// An eval-mode copy with every BN/FrozenBN folded into its convolution and the fast
  /// (channels-last) path enabled; outputs match the unfused eval module to float32 rounding.
  std::shared_ptr<OSABlockImpl> fuse() const;
  /// in-place version of fuse() (the module is put in eval mode)
  void fuse_();
  bool is_fused() const { return fused_; }

  OSABlockOptions options;
  torch::nn::ModuleList layers{nullptr};
  ConvUnit conv_reduction{nullptr};  ///< only when depthwise and in_ch != stage_ch
  ConvUnit concat{nullptr};
  ESE ese{nullptr};

 private:
  torch::Tensor forward_inference(const torch::Tensor& x, std::map<std::string, torch::Tensor>* mid);
  bool fused_ = false;
  /// Buffers reused by the fused inference path (guarded: a concurrent call allocates its own).
  struct Workspace {
    std::mutex mutex;
    torch::Tensor z, a;
  };
  std::shared_ptr<Workspace> workspace_ = std::make_shared<Workspace>();
};
TORCH_MODULE(OSABlock);

struct OSAStageOptions {
  OSAStageOptions(int64_t in_ch, int64_t stage_ch, int64_t concat_ch, int64_t block_per_stage,
                  int64_t layer_per_block, int64_t stage_num)
      : in_ch_(in_ch), stage_ch_(stage_ch), concat_ch_(concat_ch), block_per_stage_(block_per_stage),
        layer_per_block_(layer_per_block), stage_num_(stage_num) {}
  TORCH_ARG(int64_t, in_ch);
  TORCH_ARG(int64_t, stage_ch);
  TORCH_ARG(int64_t, concat_ch);
  /// blocks OSA{n}_1 (in_ch -> concat_ch) and OSA{n}_2.. (identity)
  TORCH_ARG(int64_t, block_per_stage);
  TORCH_ARG(int64_t, layer_per_block);
  /// stage number n; n == 2 has no max-pool (the reference's rule)
  TORCH_ARG(int64_t, stage_num);
  TORCH_ARG(bool, depthwise) = false;
  TORCH_ARG(bool, ese) = true;
  TORCH_ARG(NormKind, norm) = NormKind::batch_norm;
  /// causal spectrogram form; the pool then only acts on frequency (kernel (1,3), stride (1,2))
  TORCH_ARG(bool, causal_time) = false;
};

/// MaxPool2d(3, 2, ceil_mode) (unless stage 2), then the OSA blocks.
class OSAStageImpl : public torch::nn::Cloneable<OSAStageImpl> {
 public:
  explicit OSAStageImpl(OSAStageOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  std::shared_ptr<OSAStageImpl> fuse() const;
  void fuse_();
  bool has_pooling() const { return options.stage_num() != 2; }

  OSAStageOptions options;
  std::vector<OSABlock> blocks;
};
TORCH_MODULE(OSAStage);

/// A row of the reference's _STAGE_SPECS.
struct VoVNetSpec {
  std::vector<int64_t> stem;           ///< 3 widths
  std::vector<int64_t> stage_conv_ch;  ///< 4 widths
  std::vector<int64_t> stage_out_ch;   ///< 4 widths
  int64_t layer_per_block = 3;
  std::vector<int64_t> block_per_stage;  ///< 4 counts
  bool ese = true;
  bool dw = false;
  /// "V-19-slim-dw-eSE", "V-19-dw-eSE", "V-19-slim-eSE", "V-19-eSE", "V-39-eSE", "V-57-eSE",
  /// "V-99-eSE" (the "-eSE" suffix may be omitted; case-insensitive)
  static VoVNetSpec named(const std::string& name);
  static std::vector<std::string> names();
  void validate() const;
};

struct VoVNetOptions {
  explicit VoVNetOptions(VoVNetSpec spec) : spec_(std::move(spec)) {}
  TORCH_ARG(VoVNetSpec, spec);
  TORCH_ARG(int64_t, input_ch) = 3;
  /// returned features among "stem", "stage2" .. "stage5"
  TORCH_ARG(std::vector<std::string>, out_features) =
      std::vector<std::string>{"stage2", "stage3", "stage4", "stage5"};
  /// the reference config default is FrozenBN
  TORCH_ARG(NormKind, norm) = NormKind::frozen_batch_norm;
};

/// Stem (three 3x3 units, strides 2,1,2) and stages 2..5.
class VoVNetImpl : public torch::nn::Cloneable<VoVNetImpl> {
 public:
  explicit VoVNetImpl(VoVNetOptions options);
  void reset() override;
  std::map<std::string, torch::Tensor> forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  std::shared_ptr<VoVNetImpl> fuse() const;
  void fuse_();
  /// stride of a feature ("stem" 4, "stage2" 4, "stage3" 8, "stage4" 16, "stage5" 32)
  static int64_t feature_stride(const std::string& name);
  int64_t feature_channels(const std::string& name) const;

  VoVNetOptions options;
  ConvUnit stem{nullptr};      ///< stem_1 .. stem_3
  std::vector<OSAStage> stages;              ///< "stage2" .. "stage5"
};
TORCH_MODULE(VoVNet);

}  // namespace sepmech
