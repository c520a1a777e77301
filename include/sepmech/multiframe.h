#pragma once
// The multi-frame filter family of DeepFilterNet (df/multiframe.py): the deep filter `DF` used by
// DeepFilterNet2/3, its real-arithmetic twin `DFreal`, the complex ratio mask `CRM`, the
// multi-frame Wiener filter `MfWf` and MVDR filter `MfMvdr`, the 2022 variants `MfWfDf`,
// `MfWfPsd`, `MfWfC`, and the helpers `psd`, `df`, `df_real`, `tik_reg`, `solve`.
// Specification: ../shared/spec/deepfilter.md §3; page: docs/multiframe.md.
//
// Conventions (spec §1): spectrograms are real views [B,C,T,F,2] (last dim = re, im); the
// window of output frame t is the N input frames t-(N-1-L) ... t+L (n = 0 oldest), frames
// outside [0,T) are zero; only bins f < num_freqs are filtered, the others are copied.
//
// Differences from the reference, all deliberate and documented in docs/multiframe.md:
//  * No module writes into its arguments (the reference overwrites `spec` in eval mode and the
//    upper triangle / diagonal of `R` in MfWf/MfMvdr); every forward returns a new tensor.
//  * CRM has a working forward (the 2022 complex-mask behaviour) next to forward_impl.
//  * MfWf/MfMvdr guard against non-finite input: a bin whose R or IFC holds NaN/Inf, or whose
//    filter comes out non-finite, passes the input through unchanged (w = unit vector at the
//    current frame) instead of spreading NaN; near-zero pivots are clamped to half the diagonal
//    loading. Finite, well-posed bins are not affected.
//  * MfWfPsd works for any batch size (the reference's broadcast only works for B = 1).
#include <array>
#include <string>

#include <torch/torch.h>

namespace sepmech {

namespace mf {

/// psd(x, n): x complex [B,C,T,F] -> R complex [B,C,T,F,n,n] over the causal window
/// (n-1 zero frames in front, no lookahead): R[...,m,k] = x_k * conj(x_m) (the transpose of x x^H).
torch::Tensor psd(const torch::Tensor& x, int64_t n);

/// df(spec_u [...,T,F,N], coefs [...,N,T,F]) = sum_n spec_u[...,n] * coefs[...,n,:,:] -> [...,T,F].
torch::Tensor df(const torch::Tensor& spec_u, const torch::Tensor& coefs);

/// df_real(spec [B,C,N,T,F,2], coefs [B,C,N,T,F,2]) -> [B,C,T,F,2] with real arithmetic.
torch::Tensor df_real(const torch::Tensor& spec, const torch::Tensor& coefs);

/// Trace over two dims (the reference's _compute_mat_trace).
torch::Tensor compute_mat_trace(const torch::Tensor& x, int64_t dim1 = -2, int64_t dim2 = -1);

/// Tikhonov regularisation (the reference's _tik_reg): mat + (reg * Re tr(mat) + eps) * I.
torch::Tensor tik_reg(const torch::Tensor& mat, double reg = 1e-7, double eps = 1e-8);

/// MultiFrameModule.solve: tik_reg(Rxx, diag_eps, eps)^-1 rss, Rxx complex [...,N,N], rss
/// complex [...,N]. Solved with the hand-written batched solver (no explicit inverse).
torch::Tensor solve(const torch::Tensor& Rxx, const torch::Tensor& rss, double diag_eps = 1e-8,
                    double eps = 1e-7);

/// Batched small complex solve A x = b, A complex [...,N,N], b complex [...,N] (N <= 8, larger N
/// falls back to torch::linalg_solve). Hand-written on raw memory: LDL^H when `hermitian`
/// (only the lower triangle of A is read), else LU with partial pivoting. Pivots smaller than
/// `pivot_floor` in magnitude are replaced by pivot_floor. Differentiable (custom backward:
/// grad_b = A^-H grad_x, grad_A = -grad_b x^H).
torch::Tensor small_solve(const torch::Tensor& A, const torch::Tensor& b, bool hermitian,
                          double pivot_floor = 0.0);

/// Window of §1: complex [B,C,T,F] -> [B,C,T,F,N]. For N == 1 the reference neither pads nor
/// shifts, so the lookahead is ignored (as in MultiFrameModule.spec_unfold).
torch::Tensor spec_unfold(const torch::Tensor& spec, int64_t frame_size, int64_t lookahead);

/// Window of §1 on the real view: [B,C,T,F,2] -> [B,C,N,T,F,2].
torch::Tensor spec_unfold_real(const torch::Tensor& spec, int64_t frame_size, int64_t lookahead);

/// MultiFrameModule.apply_coefs: sum_n spec_u[...,n] * w[...,n] (no conjugation).
torch::Tensor apply_coefs(const torch::Tensor& spec_u, const torch::Tensor& w);

/// Layout of complex filter coefficients given to deep_filter (real views, last dim 2).
enum class CoefLayout {
  channel_time,  ///< [B, C*N, T, num_freqs, 2], channel index c*N + n (DF, DFreal, MfWfC)
  bin_tap,       ///< [B, T, num_freqs, N, 2], shared by every channel (MfWf, MfMvdr)
};

/// The deep filter on raw memory with a hand-written backward: spec real [B,C,T,F,2] ->
/// new [B,C,T,F,2] with Y[t,f] = sum_n X[t-(N-1-L)+n, f] * H[t,n,f] (H conjugated if `conj`)
/// for f < num_freqs, X elsewhere. Differentiable w.r.t. spec and coefs.
torch::Tensor deep_filter(const torch::Tensor& spec, const torch::Tensor& coefs, CoefLayout layout,
                          int64_t num_freqs, int64_t frame_size, int64_t lookahead, bool conj);

}  // namespace mf

/// Which implementation a multi-frame module runs.
enum class MfImpl {
  fused,      ///< hand-written kernels on raw memory (default)
  reference,  ///< the reference's own LibTorch ops (unfold, einsum, linalg_solve): the speed baseline
};

// ---------------------------------------------------------------------------------------------
// Shared base: window geometry of MultiFrameModule(num_freqs, frame_size, lookahead).
// ---------------------------------------------------------------------------------------------
class MultiFrameModule {
 public:
  virtual ~MultiFrameModule() = default;
  int64_t num_freqs() const { return num_freqs_; }
  int64_t frame_size() const { return frame_size_; }
  int64_t lookahead() const { return lookahead_; }
  /// Lookahead the window actually uses (0 when frame_size == 1, as in the reference).
  int64_t effective_lookahead() const { return frame_size_ == 1 ? 0 : lookahead_; }
  /// need_unfold of the reference.
  bool need_unfold() const { return frame_size_ > 1; }
  torch::Tensor spec_unfold(const torch::Tensor& spec_c) const {
    return mf::spec_unfold(spec_c, frame_size_, lookahead_);
  }
  torch::Tensor spec_unfold_real(const torch::Tensor& spec) const {
    return mf::spec_unfold_real(spec, frame_size_, lookahead_);
  }
  static torch::Tensor apply_coefs(const torch::Tensor& spec_u, const torch::Tensor& w) {
    return mf::apply_coefs(spec_u, w);
  }
  static torch::Tensor solve(const torch::Tensor& Rxx, const torch::Tensor& rss, double diag_eps = 1e-8,
                             double eps = 1e-7) {
    return mf::solve(Rxx, rss, diag_eps, eps);
  }

 protected:
  void set_geometry(const char* who, int64_t num_freqs, int64_t frame_size, int64_t lookahead);
  int64_t num_freqs_ = 0, frame_size_ = 1, lookahead_ = 0;
};

// ---------------------------------------------------------------------------------------------
// DF / DFreal
// ---------------------------------------------------------------------------------------------
struct DFOptions {
  DFOptions(int64_t num_freqs, int64_t frame_size) : num_freqs_(num_freqs), frame_size_(frame_size) {}
  /// Number of filtered bins (F_df); bins >= num_freqs are copied.
  TORCH_ARG(int64_t, num_freqs);
  /// Filter order N (frames in the window).
  TORCH_ARG(int64_t, frame_size);
  /// Future frames in the window (L); ignored when frame_size == 1.
  TORCH_ARG(int64_t, lookahead) = 0;
  /// Conjugate the coefficients (DF only; DFreal ignores it like the reference).
  TORCH_ARG(bool, conj) = false;
  /// Fused raw-memory kernel or the reference transcription (unfold + complex multiply-sum).
  TORCH_ARG(MfImpl, impl) = MfImpl::fused;
};

/// DeepFilterNet2/3 deep filter: forward(spec [B,C,T,F,2], coefs [B,C*N,T,num_freqs,2]).
class DFImpl : public torch::nn::Cloneable<DFImpl>, public MultiFrameModule {
 public:
  explicit DFImpl(DFOptions options);
  DFImpl(int64_t num_freqs, int64_t frame_size) : DFImpl(DFOptions(num_freqs, frame_size)) {}
  void reset() override;
  /// Returns a new tensor (the reference writes into `spec` in eval mode).
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& coefs);
  void pretty_print(std::ostream& stream) const override;
  DFOptions options;
};
TORCH_MODULE(DF);

/// DFreal: same contract and result as DF with real arithmetic; `conj` is a no-op as in the
/// reference (it conjugates a real tensor there).
class DFrealImpl : public torch::nn::Cloneable<DFrealImpl>, public MultiFrameModule {
 public:
  explicit DFrealImpl(DFOptions options);
  DFrealImpl(int64_t num_freqs, int64_t frame_size) : DFrealImpl(DFOptions(num_freqs, frame_size)) {}
  void reset() override;
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& coefs);
  void pretty_print(std::ostream& stream) const override;
  DFOptions options;
};
TORCH_MODULE(DFreal);

// ---------------------------------------------------------------------------------------------
// CRM
// ---------------------------------------------------------------------------------------------
struct CRMOptions {
  explicit CRMOptions(int64_t num_freqs) : num_freqs_(num_freqs) {}
  /// Number of masked bins; bins >= num_freqs are copied.
  TORCH_ARG(int64_t, num_freqs);
  /// Must be 1 (a mask is a one-tap filter).
  TORCH_ARG(int64_t, frame_size) = 1;
  /// Must be 0.
  TORCH_ARG(int64_t, lookahead) = 0;
};

/// Complex ratio mask on bins < num_freqs.
class CRMImpl : public torch::nn::Cloneable<CRMImpl>, public MultiFrameModule {
 public:
  explicit CRMImpl(CRMOptions options);
  explicit CRMImpl(int64_t num_freqs) : CRMImpl(CRMOptions(num_freqs)) {}
  void reset() override;
  /// spec [B,C,T,F,2], coefs [B,C,T,num_freqs,2] -> spec with bins < num_freqs multiplied by the
  /// mask (the 2022 reference forward; HEAD has none).
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& coefs);
  /// HEAD's forward_impl: spec_u complex [...,1] squeezed times coefs complex (elementwise).
  torch::Tensor forward_impl(const torch::Tensor& spec_u, const torch::Tensor& coefs) const;
  void pretty_print(std::ostream& stream) const override;
  CRMOptions options;
};
TORCH_MODULE(CRM);

// ---------------------------------------------------------------------------------------------
// MfWf / MfMvdr
// ---------------------------------------------------------------------------------------------
struct MfFilterOptions {
  MfFilterOptions(int64_t num_freqs, int64_t frame_size) : num_freqs_(num_freqs), frame_size_(frame_size) {}
  /// Number of filtered bins; bins >= num_freqs are copied.
  TORCH_ARG(int64_t, num_freqs);
  /// Filter order N.
  TORCH_ARG(int64_t, frame_size);
  /// Future frames in the window (L).
  TORCH_ARG(int64_t, lookahead) = 0;
  /// R holds a Cholesky factor L of the matrix (the module forms L L^H).
  TORCH_ARG(bool, cholesky_decomp) = false;
  /// R holds the inverse of the correlation matrix (w = R gamma, no solve, no regularisation).
  TORCH_ARG(bool, inverse) = true;
  /// Zero the upper triangle of a Cholesky factor / make R Hermitian from its lower triangle.
  TORCH_ARG(bool, enforce_constraints) = true;
  /// Absolute diagonal loading (and MVDR denominator offset).
  TORCH_ARG(double, eps) = 1e-8;
  /// Diagonal loading relative to Re tr(R).
  TORCH_ARG(double, dload) = 1e-7;
  /// Fused raw-memory kernel or the reference transcription (matmul + torch::linalg_solve).
  TORCH_ARG(MfImpl, impl) = MfImpl::fused;
};
using MfWfOptions = MfFilterOptions;
using MfMvdrOptions = MfFilterOptions;

/// Common code of MfWf and MfMvdr (per-bin filter from an IFC vector and a correlation matrix).
class MfFilterBase : public MultiFrameModule {
 public:
  /// spec [B,C,T,F,2]; ifc [B,T,num_freqs,2N]; R [B,T,num_freqs,2N^2] (row-major, re/im
  /// interleaved) -> new [B,C,T,F,2]. The arguments are never modified.
  torch::Tensor filter(const torch::Tensor& spec, const torch::Tensor& ifc, const torch::Tensor& R) const;
  /// The per-bin filter w, complex [B,T,num_freqs,N] (differentiable).
  torch::Tensor weights(const torch::Tensor& ifc, const torch::Tensor& R) const;
  /// The reference's get_r_factor() for this module's (inverse, cholesky_decomp).
  double get_r_factor() const;
  /// Constant table of the reference, indexed (inverse, cholesky) = (T,T),(T,F),(F,T),(F,F).
  static std::array<double, 4> r_factor_table(bool mvdr);

 protected:
  MfFilterBase(bool mvdr) : mvdr_(mvdr) {}
  void check_inputs(const torch::Tensor& spec, const torch::Tensor& ifc, const torch::Tensor& R) const;
  virtual const MfFilterOptions& opts() const = 0;
  bool mvdr_;
};

/// Multi-frame Wiener filter: w = (R + (dload Re tr R + eps) I)^-1 gamma (or R gamma if inverse).
class MfWfImpl : public torch::nn::Cloneable<MfWfImpl>, public MfFilterBase {
 public:
  explicit MfWfImpl(MfWfOptions options);
  MfWfImpl(int64_t num_freqs, int64_t frame_size) : MfWfImpl(MfWfOptions(num_freqs, frame_size)) {}
  void reset() override;
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& ifc, const torch::Tensor& R) {
    return filter(spec, ifc, R);
  }
  void pretty_print(std::ostream& stream) const override;
  MfWfOptions options;

 protected:
  const MfFilterOptions& opts() const override { return options; }
};
TORCH_MODULE(MfWf);

/// Multi-frame MVDR filter: w = v conj(gamma[N-1]) / (Re(gamma^H v) + eps), v as in MfWf with Rnn.
class MfMvdrImpl : public torch::nn::Cloneable<MfMvdrImpl>, public MfFilterBase {
 public:
  explicit MfMvdrImpl(MfMvdrOptions options);
  MfMvdrImpl(int64_t num_freqs, int64_t frame_size) : MfMvdrImpl(MfMvdrOptions(num_freqs, frame_size)) {}
  void reset() override;
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& ifc, const torch::Tensor& R) {
    return filter(spec, ifc, R);
  }
  void pretty_print(std::ostream& stream) const override;
  MfMvdrOptions options;

 protected:
  const MfFilterOptions& opts() const override { return options; }
};
TORCH_MODULE(MfMvdr);

// ---------------------------------------------------------------------------------------------
// The 2022 variants (DeepFilterNet@679494d). All are causal: the reference MfWf of that time
// forces lookahead = 0, so `lookahead` is accepted and ignored.
// forward(spec [B,C,T,F,2], coefs [B, channels, T, num_freqs, 2]).
// ---------------------------------------------------------------------------------------------
struct MfWfOldOptions {
  MfWfOldOptions(int64_t num_freqs, int64_t frame_size) : num_freqs_(num_freqs), frame_size_(frame_size) {}
  /// Number of filtered bins.
  TORCH_ARG(int64_t, num_freqs);
  /// Filter order N.
  TORCH_ARG(int64_t, frame_size);
  /// Ignored (the 2022 MfWf forces a causal window).
  TORCH_ARG(int64_t, lookahead) = 0;
  /// Relative diagonal loading of the solve (MfWfDf only; MfWfPsd uses 1e-8 like the reference).
  TORCH_ARG(double, eps_diag) = 1e-7;
  /// Absolute diagonal loading of the solve (MfWfDf only; MfWfPsd uses 1e-7).
  TORCH_ARG(double, eps) = 1e-7;
};

/// MfWfDf: coefs [B,2*C*N,T,num_freqs,2]; channels [0,C*N) deep-filter a speech estimate S of
/// each channel (index c*N+n), [C*N,2*C*N) a noisy estimate X'; w = solve(psd(X',N), psd(S,N)[...,-1]).
class MfWfDfImpl : public torch::nn::Cloneable<MfWfDfImpl>, public MultiFrameModule {
 public:
  explicit MfWfDfImpl(MfWfOldOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& coefs);
  int64_t num_channels() const { return 4 * frame_size_; }
  void pretty_print(std::ostream& stream) const override;
  MfWfOldOptions options;
};
TORCH_MODULE(MfWfDf);

/// MfWfPsd: coefs channels [0,N^2) = Rxx row-major, [N^2, N^2+N) = rss; w = solve(Rxx, rss),
/// shared by the C channels of spec (any B; the reference only works for B = 1).
class MfWfPsdImpl : public torch::nn::Cloneable<MfWfPsdImpl>, public MultiFrameModule {
 public:
  explicit MfWfPsdImpl(MfWfOldOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& coefs);
  int64_t num_channels() const { return 2 * (frame_size_ * frame_size_ + frame_size_); }
  void pretty_print(std::ostream& stream) const override;
  MfWfOldOptions options;
};
TORCH_MODULE(MfWfPsd);

/// MfWfC: coefs [B,C*N,T,num_freqs,2] are the filter itself (DF with lookahead 0).
class MfWfCImpl : public torch::nn::Cloneable<MfWfCImpl>, public MultiFrameModule {
 public:
  explicit MfWfCImpl(MfWfOldOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& spec, const torch::Tensor& coefs);
  int64_t num_channels() const { return 2 * frame_size_; }
  void pretty_print(std::ostream& stream) const override;
  MfWfOldOptions options;
};
TORCH_MODULE(MfWfC);

}  // namespace sepmech
