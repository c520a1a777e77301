#pragma once
// The parity harness: runs golden case files (../shared/golden/CONTRACT.md, copied to
// docs/golden-contract.md) through sepmech's implementations and compares the results.
//
// A family registers one adapter per metadata `module` value:
//
//   static sepmech::parity::RegisterAdapter reg("tac", [](const sepmech::parity::Case& c) {
//     sepmech::parity::Outputs out;
//     ... build the module from c.config, load c.with_prefix("param."), run c.at("in.x") ...
//     out["out.output"] = y;              // every out.* / out.state.* the file holds
//     out["grad.in.x"] = x.grad();        // every grad.* the file holds
//     return out;
//   });
//
// An adapter throws Unsupported (or anything else) when it cannot run a case; the case then
// FAILS with that message. Keys the file holds but the adapter did not produce fail too.
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace sepmech::parity {

using Outputs = std::map<std::string, torch::Tensor>;

struct Tolerance {
  double atol = 0.0;
  double rtol = 0.0;
};

/// An adapter cannot run this case (unknown config key, call method, option value...).
class Unsupported : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One golden file, decoded.
struct Case {
  std::string path;
  std::string module;                        ///< metadata "module"
  std::map<std::string, torch::Tensor> tensors;  ///< all keys; complex keys already complex
  std::map<std::string, std::string> meta;   ///< raw metadata strings
  nlohmann::json config;                     ///< parsed "config" (null if absent)
  nlohmann::json call;                       ///< parsed "call" (null if absent)
  Tolerance tol;                             ///< atol / rtol
  Tolerance grad_tol;                        ///< grad_atol / grad_rtol (falls back to tol)

  bool has(const std::string& key) const { return tensors.count(key) != 0; }
  /// The tensor under `key`; throws Unsupported naming the key if the file lacks it.
  const torch::Tensor& at(const std::string& key) const;
  /// All tensors whose key starts with `prefix`, with the prefix removed ("param." -> weights).
  std::map<std::string, torch::Tensor> with_prefix(const std::string& prefix) const;
  /// Metadata entry parsed as JSON (null if absent; a plain string if it is not JSON).
  nlohmann::json meta_json(const std::string& key) const;
  /// The expected keys: every out.* / grad.* tensor in the file (in.grad_out.* excluded).
  std::vector<std::string> expected_keys() const;
  /// A shared parameters file: it holds param.* tensors only (nothing to run or compare).
  bool is_params_file() const;
};

/// Loads a case file. Extension for large models (docs/spec/deepfilternet3.md §10): metadata
/// `params_file` names a safetensors file in the same folder holding `param.<key>` entries shared
/// by several cases; those under `param.<param_prefix>` are merged into the case as
/// `param.<key without the prefix>` (a case's own key may not also come from the file). F16/BF16
/// parameters are widened to float32. An empty `params_file` means none.
Case load_case(const std::string& path);

/// Backpropagates sum_k <outputs[k], in.grad_out.k> over every in.grad_out.<k> the case
/// holds (complex tensors compared through their real view). Throws Unsupported if the case
/// has a cotangent for an output that is missing from `outputs`. Returns false if the case
/// holds no cotangent at all (forward-only case).
bool backward_with_cotangents(const Case& c, const std::map<std::string, torch::Tensor>& outputs);

using Adapter = std::function<Outputs(const Case&)>;
void register_adapter(const std::string& module, Adapter adapter);
std::vector<std::string> registered_modules();

struct RegisterAdapter {
  RegisterAdapter(const char* module, Adapter adapter) { register_adapter(module, std::move(adapter)); }
};

struct TensorReport {
  std::string key;
  bool pass = false;
  double worst_ratio = 0.0;  ///< max |got-want| / (atol + rtol |want|); >1 fails; inf for NaN/shape errors
  std::string message;       ///< why it failed ("" when it passed)
};

struct CaseReport {
  std::string path;
  std::string module;
  bool pass = false;
  double worst_ratio = 0.0;
  std::string worst_key;
  std::string error;  ///< load / dispatch / adapter error ("" when the adapter ran)
  bool params_only = false;  ///< a shared parameters file (passes; nothing was compared)
  std::string note;          ///< what a params_only report stands for
  std::vector<TensorReport> tensors;
};

/// Compares one tensor: |got - want| <= atol + rtol |want| elementwise (float64 arithmetic).
TensorReport compare_tensor(const std::string& key, const torch::Tensor& got, const torch::Tensor& want,
                            Tolerance tol);
/// Compares every expected key of the case against the adapter's outputs.
CaseReport check_case(const Case& c, const Outputs& got);
/// Loads, dispatches, runs and checks one file. Never throws: errors become a failed report.
CaseReport run_case(const std::string& path);
/// Expands files and folders (recursively, *.safetensors, sorted) into a list of files.
std::vector<std::string> collect_case_files(const std::vector<std::string>& paths);

nlohmann::json to_json(const CaseReport& r);
/// One human-readable line: "PASS tac/x.safetensors  worst 0.31 (out.output)".
std::string to_line(const CaseReport& r);

}  // namespace sepmech::parity
