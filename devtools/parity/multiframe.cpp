// Parity adapter for the golden files with metadata module "multiframe"
// (tests/data/golden/deepfilter/mf_*.safetensors and old_*.safetensors).
#include <set>

#include "parity/parity.h"
#include "sepmech/multiframe.h"

namespace sepmech::parity {
namespace {

/// Reads config keys, rejecting any key the adapter does not know.
struct Config {
  explicit Config(const nlohmann::json& j, std::set<std::string> known) : j_(j) {
    if (!j_.is_object()) return;
    for (const auto& [k, v] : j_.items())
      if (!known.count(k)) throw Unsupported("multiframe: unknown config key '" + k + "'");
  }
  template <typename T>
  T get(const std::string& key, T fallback) const {
    return j_.is_object() && j_.contains(key) ? j_.at(key).get<T>() : fallback;
  }
  template <typename T>
  T need(const std::string& key) const {
    if (!j_.is_object() || !j_.contains(key)) throw Unsupported("multiframe: config lacks '" + key + "'");
    return j_.at(key).get<T>();
  }
  nlohmann::json j_;
};

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

/// Inputs as fresh leaves (requiring grad when the case has a backward part).
torch::Tensor input(const Case& c, const std::string& name, bool grad) {
  auto t = c.at("in." + name).clone();
  if (grad) t.requires_grad_(true);
  return t;
}

/// Runs module forward on the named inputs, backpropagates the case's cotangents and collects
/// out.spec plus every grad.in.* the file holds.
template <typename Fn>
Outputs run_module(const Case& c, const std::vector<std::string>& names, Fn&& fn) {
  // A case is a backward case when its call says so or when it carries a cotangent.
  const bool backward = (c.call.is_object() && c.call.value("backward", false)) || c.has("in.grad_out.spec");
  std::map<std::string, torch::Tensor> ins;
  for (const auto& n : names) ins[n] = input(c, n, backward);
  auto y = fn(ins);
  Outputs out;
  out["out.spec"] = y.detach();
  if (backward && backward_with_cotangents(c, {{"spec", y}})) {
    for (const auto& n : names)
      if (c.has("grad.in." + n)) {
        auto g = ins[n].grad();
        out["grad.in." + n] = g.defined() ? g : torch::zeros_like(ins[n]);
      }
  }
  return out;
}

Outputs run(const Case& c) {
  const std::string ref = c.meta.count("reference") ? c.meta.at("reference") : "";
  const auto& call = c.call;
  const bool training = call.is_object() && call.value("training", false);
  Outputs out;

  if (call.is_object() && call.contains("function")) {
    const auto fn = call.at("function").get<std::string>();
    if (fn == "psd") {
      out["out.psd"] = mf::psd(c.at("in.x"), call.at("n").get<int64_t>());
    } else if (fn == "_tik_reg") {
      out["out.mat"] = mf::tik_reg(c.at("in.mat"), call.at("reg").get<double>(), call.at("eps").get<double>());
    } else if (fn == "MultiFrameModule.solve") {
      out["out.w"] = MultiFrameModule::solve(c.at("in.Rxx"), c.at("in.rss"), call.at("diag_eps").get<double>(),
                                             call.at("eps").get<double>());
    } else {
      throw Unsupported("multiframe: unknown function '" + fn + "'");
    }
    return out;
  }
  const std::string method = call.is_object() ? call.value("method", "") : "";
  if (method == "get_r_factor") {
    auto wf = MfFilterBase::r_factor_table(false), mv = MfFilterBase::r_factor_table(true);
    auto opt = torch::TensorOptions().dtype(torch::kDouble);
    out["out.MfWf"] = torch::tensor(std::vector<double>(wf.begin(), wf.end()), opt);
    out["out.MfMvdr"] = torch::tensor(std::vector<double>(mv.begin(), mv.end()), opt);
    return out;
  }

  if (contains(ref, "679494d")) {  // the 2022 family
    if (contains(ref, "->CRM.forward_impl")) {
      Config cfg(c.config, {"num_freqs", "frame_size", "lookahead"});
      CRM m(CRMOptions(cfg.need<int64_t>("num_freqs"))
                .frame_size(cfg.get<int64_t>("frame_size", 1))
                .lookahead(cfg.get<int64_t>("lookahead", 0)));
      m->train(training);
      return run_module(c, {"spec", "coefs"}, [&](auto& in) { return m->forward(in["spec"], in["coefs"]); });
    }
    if (contains(ref, "->DF.forward_impl")) {
      // The 2022 DF: the base class padded causally whatever the lookahead, so it is DF with L = 0.
      Config cfg(c.config, {"num_freqs", "frame_size", "lookahead", "conj"});
      DF m(DFOptions(cfg.need<int64_t>("num_freqs"), cfg.need<int64_t>("frame_size"))
               .lookahead(0)
               .conj(cfg.get<bool>("conj", false)));
      m->train(training);
      return run_module(c, {"spec", "coefs"}, [&](auto& in) { return m->forward(in["spec"], in["coefs"]); });
    }
    Config cfg(c.config, {"num_freqs", "frame_size", "lookahead", "eps_diag", "eps"});
    auto o = MfWfOldOptions(cfg.need<int64_t>("num_freqs"), cfg.need<int64_t>("frame_size"))
                 .lookahead(cfg.get<int64_t>("lookahead", 0))
                 .eps_diag(cfg.get<double>("eps_diag", 1e-7))
                 .eps(cfg.get<double>("eps", 1e-7));
    std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> fwd;
    if (contains(ref, "->MfWfDf.")) {
      MfWfDf m(o);
      m->train(training);
      fwd = [m](const torch::Tensor& s, const torch::Tensor& k) mutable { return m->forward(s, k); };
    } else if (contains(ref, "->MfWfPsd.")) {
      MfWfPsd m(o);
      m->train(training);
      fwd = [m](const torch::Tensor& s, const torch::Tensor& k) mutable { return m->forward(s, k); };
    } else if (contains(ref, "->MfWfC.")) {
      MfWfC m(o);
      m->train(training);
      fwd = [m](const torch::Tensor& s, const torch::Tensor& k) mutable { return m->forward(s, k); };
    } else {
      throw Unsupported("multiframe: unknown 2022 module in reference '" + ref + "'");
    }
    return run_module(c, {"spec", "coefs"}, [&](auto& in) { return fwd(in["spec"], in["coefs"]); });
  }

  if (contains(ref, "::CRM.forward_impl")) {
    Config cfg(c.config, {"num_freqs", "frame_size", "lookahead"});
    CRM m(CRMOptions(cfg.need<int64_t>("num_freqs"))
              .frame_size(cfg.get<int64_t>("frame_size", 1))
              .lookahead(cfg.get<int64_t>("lookahead", 0)));
    out["out.spec"] = m->forward_impl(c.at("in.spec_u"), c.at("in.coefs"));
    return out;
  }
  if (contains(ref, "::DF.forward") || contains(ref, "::DFreal.forward")) {
    Config cfg(c.config, {"num_freqs", "frame_size", "lookahead", "conj"});
    auto o = DFOptions(cfg.need<int64_t>("num_freqs"), cfg.need<int64_t>("frame_size"))
                 .lookahead(cfg.get<int64_t>("lookahead", 0))
                 .conj(cfg.get<bool>("conj", false));
    if (contains(ref, "::DF.forward")) {
      DF m(o);
      m->train(training);
      return run_module(c, {"spec", "coefs"}, [&](auto& in) { return m->forward(in["spec"], in["coefs"]); });
    }
    DFreal m(o);
    m->train(training);
    return run_module(c, {"spec", "coefs"}, [&](auto& in) { return m->forward(in["spec"], in["coefs"]); });
  }
  if (contains(ref, "::MfWf.forward") || contains(ref, "::MfMvdr.forward")) {
    Config cfg(c.config, {"num_freqs", "frame_size", "lookahead", "cholesky_decomp", "inverse",
                          "enforce_constraints", "eps", "dload"});
    auto o = MfFilterOptions(cfg.need<int64_t>("num_freqs"), cfg.need<int64_t>("frame_size"))
                 .lookahead(cfg.get<int64_t>("lookahead", 0))
                 .cholesky_decomp(cfg.get<bool>("cholesky_decomp", false))
                 .inverse(cfg.get<bool>("inverse", true))
                 .enforce_constraints(cfg.get<bool>("enforce_constraints", true))
                 .eps(cfg.get<double>("eps", 1e-8))
                 .dload(cfg.get<double>("dload", 1e-7));
    if (contains(ref, "::MfWf.forward")) {
      MfWf m(o);
      m->train(training);
      return run_module(c, {"spec", "ifc", "R"},
                        [&](auto& in) { return m->forward(in["spec"], in["ifc"], in["R"]); });
    }
    MfMvdr m(o);
    m->train(training);
    return run_module(c, {"spec", "ifc", "R"}, [&](auto& in) { return m->forward(in["spec"], in["ifc"], in["R"]); });
  }
  throw Unsupported("multiframe: no adapter for reference '" + ref + "'");
}

RegisterAdapter reg("multiframe", run);

}  // namespace
}  // namespace sepmech::parity
