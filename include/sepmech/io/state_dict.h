#pragma once
// Loading name -> tensor maps (from safetensors or PyTorch checkpoints) into LibTorch modules.
//
// Reference code names parameters its own way; mechanisms accept those layouts through
// prefix stripping/adding and regex renaming rules applied in that order to every key of the
// incoming map before it is matched against module->named_parameters()/named_buffers().
//
// Basic usage:
//   auto f = sepmech::io::load_safetensors("tac.safetensors");
//   sepmech::io::LoadOptions opt;
//   opt.strip_prefix = "all_BF.DPRNN.";
//   opt.renames = {{R"(^ch_transform\.0\.)", "input_tf."}};
//   sepmech::io::load_state_dict(*module, f.tensors, opt);   // throws StateDictError listing
//                                                            // every missing/unexpected/mismatch
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace sepmech::io {

struct LoadOptions {
  /// Report missing/unexpected keys as errors (shape mismatches are always errors).
  bool strict = true;
  /// Keys not starting with strip_prefix are dropped (they belong to other parts of a model).
  std::string strip_prefix;
  /// Prepended after stripping.
  std::string add_prefix;
  /// (ECMAScript regex, replacement) applied in order, after the prefixes, with std::regex_replace.
  std::vector<std::pair<std::string, std::string>> renames;
  /// Source keys matching any of these regexes are ignored (e.g. "num_batches_tracked$").
  std::vector<std::string> ignore;
};

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     ///< module entries with no source key
  std::vector<std::string> unexpected;  ///< source keys (after mapping) the module lacks
  std::vector<std::string> mismatched;  ///< "name: module [..] vs file [..]"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string to_string() const;
};

class StateDictError : public std::runtime_error {
 public:
  explicit StateDictError(LoadReport r) : std::runtime_error(r.to_string()), report_(std::move(r)) {}
  const LoadReport& report() const { return report_; }

 private:
  LoadReport report_;
};

/// Applies LoadOptions' prefix and rename rules to the keys of a map.
std::map<std::string, torch::Tensor> map_keys(const std::map<std::string, torch::Tensor>& src,
                                              const LoadOptions& opt);

/// Copies tensors into the module's parameters and buffers (no autograd recording; dtype
/// converted to the module's). Strict: throws StateDictError naming all problems at once.
/// Non-strict: loads what matches and returns the report (shape mismatches still throw).
LoadReport load_state_dict(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& src,
                           const LoadOptions& opt = {});

/// The module's parameters and buffers as a name -> tensor map (detached).
std::map<std::string, torch::Tensor> state_dict(const torch::nn::Module& module);

}  // namespace sepmech::io
