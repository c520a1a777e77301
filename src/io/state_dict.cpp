#include "sepmech/io/state_dict.h"

#include <regex>
#include <set>
#include <sstream>

#include "kernels/shape.h"

namespace sepmech::io {

std::string LoadReport::to_string() const {
  std::ostringstream os;
  os << "state dict does not fit the module:";
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << "\n  " << what << " (" << v.size() << "):";
    for (const auto& s : v) os << "\n    " << s;
  };
  list("missing keys", missing);
  list("unexpected keys", unexpected);
  list("shape mismatches", mismatched);
  return os.str();
}

std::map<std::string, torch::Tensor> map_keys(const std::map<std::string, torch::Tensor>& src,
                                              const LoadOptions& opt) {
  std::vector<std::regex> ignore;
  for (const auto& r : opt.ignore) ignore.emplace_back(r);
  std::vector<std::pair<std::regex, std::string>> renames;
  for (const auto& [from, to] : opt.renames) renames.emplace_back(std::regex(from), to);
  std::map<std::string, torch::Tensor> out;
  for (const auto& [key0, t] : src) {
    bool skip = false;
    for (const auto& re : ignore) skip = skip || std::regex_search(key0, re);
    if (skip) continue;
    std::string key = key0;
    if (!opt.strip_prefix.empty()) {
      if (key.compare(0, opt.strip_prefix.size(), opt.strip_prefix) != 0) continue;
      key = key.substr(opt.strip_prefix.size());
    }
    key = opt.add_prefix + key;
    for (const auto& [re, to] : renames) key = std::regex_replace(key, re, to);
    if (out.count(key)) throw std::invalid_argument("state dict key mapping sends two keys to '" + key + "'");
    out.emplace(key, t);
  }
  return out;
}

std::map<std::string, torch::Tensor> state_dict(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters(true)) out.emplace(p.key(), p.value().detach());
  for (const auto& b : module.named_buffers(true)) out.emplace(b.key(), b.value().detach());
  return out;
}

LoadReport load_state_dict(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& src,
                           const LoadOptions& opt) {
  auto mapped = map_keys(src, opt);
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : module.named_parameters(true)) targets.emplace(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) targets.emplace(b.key(), b.value());
  LoadReport rep;
  for (const auto& [name, dst] : targets) {
    auto it = mapped.find(name);
    if (it == mapped.end()) {
      rep.missing.push_back(name);
      continue;
    }
    const torch::Tensor& s = it->second;
    torch::Tensor sv = s;
    // Complex parameters may arrive as their real view and vice versa.
    if (dst.is_complex() && !s.is_complex() && s.dim() > 0 && s.size(-1) == 2) sv = torch::view_as_complex(s.contiguous());
    if (!dst.defined() || !sv.defined()) continue;
    if (sv.is_complex() && !dst.is_complex()) {
      // Copying would silently drop the imaginary part.
      rep.mismatched.push_back(name + ": module holds a real " + std::string(c10::toString(dst.scalar_type())) +
                               " tensor but file holds " + c10::toString(sv.scalar_type()));
      continue;
    }
    if (dst.sizes() != sv.sizes()) {
      rep.mismatched.push_back(name + ": module " + kernels::shape_str(dst.sizes()) + " vs file " + kernels::shape_str(s.sizes()));
      continue;
    }
    rep.loaded.push_back(name);
  }
  for (const auto& [name, t] : mapped)
    if (!targets.count(name)) rep.unexpected.push_back(name);
  if (!rep.mismatched.empty() || (opt.strict && !rep.ok())) throw StateDictError(rep);
  torch::NoGradGuard guard;
  for (const auto& name : rep.loaded) {
    torch::Tensor dst = targets.at(name);
    torch::Tensor s = mapped.at(name);
    if (dst.is_complex() && !s.is_complex()) s = torch::view_as_complex(s.contiguous());
    dst.copy_(s.to(dst.dtype()));
  }
  return rep;
}

}  // namespace sepmech::io
