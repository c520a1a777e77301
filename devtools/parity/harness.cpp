#include "parity/parity.h"

#include <filesystem>
#include <iomanip>
#include <limits>
#include <memory>
#include <mutex>

#include "kernels/shape.h"
#include "sepmech/io/safetensors.h"

namespace sepmech::parity {
namespace {

std::map<std::string, Adapter>& registry() {
  static std::map<std::string, Adapter> r;
  return r;
}

double parse_double(const Case& c, const std::string& key, double fallback) {
  auto it = c.meta.find(key);
  if (it == c.meta.end()) return fallback;
  // The whole text must be one finite, non-negative number ("1e-5x" or "-1" is a broken file,
  // not a tolerance of 1e-5 or one that fails every element).
  double v = 0;
  std::size_t used = 0;
  try {
    v = std::stod(it->second, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || used != it->second.size() || !std::isfinite(v) || v < 0)
    throw std::runtime_error("metadata '" + key + "' must be a finite non-negative number, got '" + it->second + "'");
  return v;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

const torch::Tensor& Case::at(const std::string& key) const {
  auto it = tensors.find(key);
  if (it == tensors.end()) throw Unsupported("case has no tensor '" + key + "'");
  return it->second;
}

std::map<std::string, torch::Tensor> Case::with_prefix(const std::string& prefix) const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, v] : tensors)
    if (starts_with(k, prefix)) out.emplace(k.substr(prefix.size()), v);
  return out;
}

nlohmann::json Case::meta_json(const std::string& key) const {
  auto it = meta.find(key);
  if (it == meta.end()) return nullptr;
  try {
    return nlohmann::json::parse(it->second);
  } catch (...) {
    return it->second;
  }
}

std::vector<std::string> Case::expected_keys() const {
  std::vector<std::string> keys;
  for (const auto& [k, v] : tensors)
    if (starts_with(k, "out.") || starts_with(k, "grad.")) keys.push_back(k);
  return keys;
}

namespace {

// Shared parameter files (docs/spec/deepfilternet3.md §10): read once per process.
std::shared_ptr<const io::TensorMap> load_params_file(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const io::TensorMap>> cache;
  std::error_code ec;
  const std::string key = std::filesystem::weakly_canonical(path, ec).string();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto file = io::load_safetensors(path);
  auto params = std::make_shared<io::TensorMap>();
  for (auto& [k, v] : file.tensors) {
    if (!starts_with(k, "param."))
      throw std::runtime_error("params_file '" + path + "' holds '" + k + "'; a parameters file holds param.* only");
    // F16/BF16 entries hold float32 values rounded to half precision: widen them exactly.
    if (v.scalar_type() == torch::kFloat16 || v.scalar_type() == torch::kBFloat16) v = v.to(torch::kFloat32);
    params->emplace(k, v);
  }
  cache.emplace(key, params);
  return params;
}

// Merges the parameters named by metadata params_file / param_prefix into the case's tensors.
void merge_params_file(Case& c) {
  auto f = c.meta.find("params_file");
  if (f == c.meta.end() || f->second.empty()) return;
  const std::string& name = f->second;
  if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos || name == "." || name == "..")
    throw std::runtime_error("metadata 'params_file' must name a file next to the case, got '" + name + "'");
  const auto path = std::filesystem::path(c.path).parent_path() / name;
  auto params = load_params_file(path.string());
  auto p = c.meta.find("param_prefix");
  const std::string prefix = "param." + (p == c.meta.end() ? std::string() : p->second);
  size_t merged = 0;
  for (const auto& [k, v] : *params) {
    if (!starts_with(k, prefix)) continue;
    const std::string key = "param." + k.substr(prefix.size());
    if (!c.tensors.emplace(key, v).second)
      throw std::runtime_error("'" + key + "' is both in the case and in params_file '" + name + "'");
    ++merged;
  }
  if (merged == 0)
    throw std::runtime_error("params_file '" + name + "' holds no tensor under '" + prefix + "'");
}

}  // namespace

bool Case::is_params_file() const {
  if (tensors.empty()) return false;
  for (const auto& [k, v] : tensors)
    if (!starts_with(k, "param.")) return false;
  return true;
}

Case load_case(const std::string& path) {
  auto file = io::load_safetensors(path);
  Case c;
  c.path = path;
  c.tensors = std::move(file.tensors);
  c.meta = std::move(file.metadata);
  auto m = c.meta.find("module");
  if (m == c.meta.end()) throw std::runtime_error("metadata has no 'module' entry");
  c.module = m->second;
  c.config = c.meta_json("config");
  c.call = c.meta_json("call");
  c.tol = {parse_double(c, "atol", 0.0), parse_double(c, "rtol", 0.0)};
  c.grad_tol = {parse_double(c, "grad_atol", c.tol.atol), parse_double(c, "grad_rtol", c.tol.rtol)};
  merge_params_file(c);
  return c;
}

bool backward_with_cotangents(const Case& c, const std::map<std::string, torch::Tensor>& outputs) {
  torch::Tensor total;
  for (const auto& [name, cot] : c.with_prefix("in.grad_out.")) {
    auto it = outputs.find(name);
    if (it == outputs.end()) throw Unsupported("case has a cotangent for output '" + name + "' the adapter did not produce");
    torch::Tensor y = it->second, g = cot.to(y.device());
    if (y.is_complex()) y = torch::view_as_real(y);
    if (g.is_complex()) g = torch::view_as_real(g);
    if (y.sizes() != g.sizes())
      throw Unsupported("output '" + name + "' has shape " + kernels::shape_str(y.sizes()) + " but its cotangent has " +
                        kernels::shape_str(g.sizes()));
    torch::Tensor term = (y * g.to(y.scalar_type())).sum();
    total = total.defined() ? total + term : term;
  }
  if (!total.defined()) return false;
  total.backward();
  return true;
}

void register_adapter(const std::string& module, Adapter adapter) {
  auto& r = registry();
  if (r.count(module)) throw std::logic_error("parity adapter for module '" + module + "' registered twice");
  r.emplace(module, std::move(adapter));
}

std::vector<std::string> registered_modules() {
  std::vector<std::string> names;
  for (const auto& [k, v] : registry()) names.push_back(k);
  return names;
}

TensorReport compare_tensor(const std::string& key, const torch::Tensor& got0, const torch::Tensor& want0,
                            Tolerance tol) {
  TensorReport r;
  r.key = key;
  const double inf = std::numeric_limits<double>::infinity();
  if (!got0.defined()) {
    r.worst_ratio = inf;
    r.message = "adapter returned an undefined tensor";
    return r;
  }
  torch::Tensor got = got0.detach().to(torch::kCPU), want = want0.detach().to(torch::kCPU);
  if (got.is_complex()) got = torch::view_as_real(got.resolve_conj());
  if (want.is_complex()) want = torch::view_as_real(want.resolve_conj());
  if (got.sizes() != want.sizes()) {
    r.worst_ratio = inf;
    r.message = "shape " + kernels::shape_str(got.sizes()) + ", expected " + kernels::shape_str(want.sizes());
    return r;
  }
  if (want.numel() == 0) {
    r.pass = true;
    return r;
  }
  got = got.to(torch::kFloat64);
  want = want.to(torch::kFloat64);
  torch::Tensor both_nan = torch::isnan(got) & torch::isnan(want);
  torch::Tensor same_inf = torch::isinf(want) & (got == want);
  torch::Tensor err = (got - want).abs();
  torch::Tensor bound = tol.atol + tol.rtol * want.abs();
  // ratio = err / bound; a zero bound with zero error counts as 0.
  torch::Tensor ratio = torch::where(bound > 0, err / bound, torch::where(err == 0, torch::zeros_like(err), torch::full_like(err, inf)));
  ratio = torch::where(both_nan | same_inf, torch::zeros_like(ratio), ratio);
  ratio = torch::where(torch::isnan(ratio), torch::full_like(ratio, inf), ratio);
  auto flat = ratio.reshape({-1});
  int64_t idx = flat.argmax().item<int64_t>();
  r.worst_ratio = flat[idx].item<double>();
  r.pass = r.worst_ratio <= 1.0;
  if (!r.pass) {
    std::ostringstream os;
    os << std::setprecision(6) << "at flat index " << idx << ": got " << got.reshape({-1})[idx].item<double>()
       << ", want " << want.reshape({-1})[idx].item<double>() << " (atol " << tol.atol << ", rtol " << tol.rtol
       << "); " << (ratio > 1.0).sum().item<int64_t>() << " of " << ratio.numel() << " elements out of tolerance";
    r.message = os.str();
  }
  return r;
}

CaseReport check_case(const Case& c, const Outputs& got) {
  CaseReport rep;
  rep.path = c.path;
  rep.module = c.module;
  rep.pass = true;
  auto keys = c.expected_keys();
  if (keys.empty()) {
    rep.pass = false;
    rep.error = "case holds no out.* or grad.* tensor to compare";
    return rep;
  }
  for (const auto& key : keys) {
    Tolerance tol = starts_with(key, "grad.") ? c.grad_tol : c.tol;
    TensorReport tr;
    auto it = got.find(key);
    if (it == got.end()) {
      tr.key = key;
      tr.worst_ratio = std::numeric_limits<double>::infinity();
      tr.message = "the adapter did not produce this tensor";
    } else {
      tr = compare_tensor(key, it->second, c.tensors.at(key), tol);
    }
    if (!tr.pass) rep.pass = false;
    if (rep.worst_key.empty() || tr.worst_ratio > rep.worst_ratio) {
      rep.worst_ratio = tr.worst_ratio;
      rep.worst_key = key;
    }
    rep.tensors.push_back(std::move(tr));
  }
  return rep;
}

CaseReport run_case(const std::string& path) {
  CaseReport rep;
  rep.path = path;
  Case c;
  try {
    c = load_case(path);
  } catch (const std::exception& e) {
    rep.error = std::string("cannot load case: ") + e.what();
    return rep;
  }
  rep.module = c.module;
  if (c.is_params_file()) {
    // Shared parameters of other cases: nothing to run; its tensors were checked by the loader.
    rep.pass = true;
    rep.params_only = true;
    rep.error.clear();
    rep.worst_key.clear();
    rep.note = "shared parameters (" + std::to_string(c.tensors.size()) + " tensors), used through params_file";
    return rep;
  }
  auto it = registry().find(c.module);
  if (it == registry().end()) {
    std::string known;
    for (const auto& m : registered_modules()) known += (known.empty() ? "" : ", ") + m;
    rep.error = "module '" + c.module + "' is not supported by this build (adapters: " +
                (known.empty() ? "none" : known) + ")";
    return rep;
  }
  Outputs out;
  try {
    torch::manual_seed(0);
    out = it->second(c);
  } catch (const Unsupported& e) {
    rep.error = std::string("not supported: ") + e.what();
    return rep;
  } catch (const c10::Error& e) {
    rep.error = std::string("adapter error: ") + e.what_without_backtrace();
    return rep;
  } catch (const std::exception& e) {
    rep.error = std::string("adapter error: ") + e.what();
    return rep;
  }
  return check_case(c, out);
}

std::vector<std::string> collect_case_files(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto& p : paths) {
    if (fs::is_directory(p)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file() && e.path().extension() == ".safetensors") found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(p);  // a missing file becomes a failed case with a clear load error
    }
  }
  return files;
}

nlohmann::json to_json(const CaseReport& r) {
  nlohmann::json j = {{"case", r.path}, {"module", r.module}, {"pass", r.pass}};
  if (r.params_only) j["params_only"] = true;
  if (!r.note.empty()) j["note"] = r.note;
  if (!r.error.empty()) j["error"] = r.error;
  if (!r.worst_key.empty()) {
    j["worst_key"] = r.worst_key;
    j["worst_ratio"] = std::isfinite(r.worst_ratio) ? nlohmann::json(r.worst_ratio) : nlohmann::json("inf");
  }
  nlohmann::json fails = nlohmann::json::array();
  for (const auto& t : r.tensors)
    if (!t.pass) fails.push_back({{"key", t.key}, {"message", t.message}});
  if (!fails.empty()) j["failures"] = fails;
  return j;
}

std::string to_line(const CaseReport& r) {
  std::ostringstream os;
  if (r.params_only) {
    os << "PARAMS " << r.path << "  " << r.note;
    return os.str();
  }
  os << (r.pass ? "PASS " : "FAIL ") << r.path;
  if (!r.error.empty()) {
    os << "  " << r.error;
    return os.str();
  }
  os << "  worst " << std::setprecision(3) << r.worst_ratio << " (" << r.worst_key << ")";
  for (const auto& t : r.tensors)
    if (!t.pass) os << "\n    " << t.key << ": " << t.message;
  return os.str();
}

}  // namespace sepmech::parity
