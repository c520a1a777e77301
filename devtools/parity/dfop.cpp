// Parity adapter for metadata module "dfop": DfOp with each reference method (offline, per-step
// and stateful calls), forward and backward.
#include "parity/parity.h"
#include "sepmech/dfop.h"

namespace sepmech::parity {
namespace {

using torch::Tensor;

DfOp make_dfop(const Case& c) {
  const auto& cfg = c.config;
  if (!cfg.is_object()) throw Unsupported("dfop: metadata config missing");
  for (const auto& [k, v] : cfg.items())
    if (k != "df_bins" && k != "df_order" && k != "df_lookahead" && k != "method" && k != "freq_bins")
      throw Unsupported("dfop: unknown config key '" + k + "'");
  DfOpOptions o(cfg.at("df_bins").get<int64_t>());
  o.df_order(cfg.value("df_order", int64_t{5}));
  o.df_lookahead(cfg.value("df_lookahead", int64_t{0}));
  o.freq_bins(cfg.value("freq_bins", int64_t{0}));
  const std::string method = cfg.value("method", std::string("complex_strided"));
  try {
    o.method(df_method_from_string(method));
  } catch (const c10::Error&) {
    throw Unsupported("dfop: unknown method '" + method + "'");
  }
  return DfOp(o);
}

Tensor input(const Case& c, const std::string& key, bool grad) {
  Tensor t = c.at(key).clone();
  if (grad) t.requires_grad_(true);
  return t;
}

RegisterAdapter reg("dfop", [](const Case& c) {
  Outputs out;
  DfOp op = make_dfop(c);
  const DfMethod method = op->options.method();
  const std::string call_method = c.call.is_object() ? c.call.value("method", std::string("forward")) : "forward";
  const bool has_alpha = c.has("in.alpha");
  const bool backward = c.has("in.grad_out.spec");

  if (method == DfMethod::real_one_step) {
    // The reference's per-step loop over the padded spectrum: out[:, :, t] = op(window t).
    const int64_t N = op->options.df_order(), L = op->options.df_lookahead();
    Tensor spec = input(c, "in.spec", backward), coefs = input(c, "in.coefs", backward);
    Tensor alpha = has_alpha ? input(c, "in.alpha", backward) : Tensor();
    Tensor padded = spec_pad(spec, N, L, 2);
    std::vector<Tensor> frames;
    for (int64_t t = 0; t < spec.size(2); ++t)
      frames.push_back(op->forward(padded.narrow(2, t, N), coefs.narrow(1, t, 1),
                                   alpha.defined() ? alpha.narrow(1, t, 1) : Tensor()));
    Tensor y = torch::stack(frames, 2);
    out["out.spec"] = y;
    out["mid.spec_padded"] = padded;
    if (backward && backward_with_cotangents(c, {{"spec", y}})) {
      out["grad.in.spec"] = spec.grad();
      out["grad.in.coefs"] = coefs.grad();
      if (alpha.defined()) out["grad.in.alpha"] = alpha.grad();
    }
    return out;
  }

  if (method == DfMethod::real_hidden_state_loop) {
    // Consecutive calls on chunks of frames; the module's state carries over.
    std::vector<int64_t> chunks;
    if (c.call.is_object() && c.call.contains("chunks")) chunks = c.call.at("chunks").get<std::vector<int64_t>>();
    Tensor spec = c.at("in.spec"), coefs = c.at("in.coefs"), alpha = c.at("in.alpha");
    if (chunks.empty()) chunks.push_back(spec.size(2));
    int64_t t0 = 0;
    for (size_t i = 0; i < chunks.size(); ++i) {
      const int64_t n = chunks[i];
      out["out.spec_chunk" + std::to_string(i)] =
          op->forward(spec.narrow(2, t0, n), coefs.narrow(1, t0, n), alpha.narrow(1, t0, n));
      t0 += n;
    }
    out["mid.spec_buf_final"] = op->hidden_state();
    return out;
  }

  if (call_method != "forward") throw Unsupported("dfop: unsupported call method '" + call_method + "'");
  Tensor spec = input(c, "in.spec", backward), coefs = input(c, "in.coefs", backward);
  Tensor alpha = has_alpha ? input(c, "in.alpha", backward) : Tensor();
  Tensor y = op->forward(spec, coefs, alpha);
  out["out.spec"] = y;
  if (backward && backward_with_cotangents(c, {{"spec", y}})) {
    out["grad.in.spec"] = spec.grad();
    out["grad.in.coefs"] = coefs.grad();
    if (alpha.defined()) out["grad.in.alpha"] = alpha.grad();
  }
  return out;
});

}  // namespace
}  // namespace sepmech::parity
