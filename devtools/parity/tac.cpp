// Parity adapter for the `tac` golden family (spec: ../shared/spec/tac.md).
//
// Two references produce these files:
//  - asteroid `TAC` (config: input_dim, hidden_dim, activation, norm_type; inputs in.x,
//    in.valid_mics (absent = None); param.* in asteroid's own key names);
//  - FaSNet-TAC `DPRNN_TAC` with its RNN parts stubbed to zero (config: input_size,
//    hidden_size, num_layers, ...; inputs in.input, in.num_mic; param.ch_*.<i>.*): the forward
//    is a stack of num_layers TACs, x <- TAC_i(x), each with its own weights.
#include <set>

#include "parity/parity.h"
#include "sepmech/io/state_dict.h"
#include "sepmech/tac.h"

namespace {

using sepmech::parity::Case;
using sepmech::parity::Outputs;
using sepmech::parity::Unsupported;

void check_keys(const nlohmann::json& cfg, const std::set<std::string>& known, const char* what) {
  for (const auto& [k, v] : cfg.items())
    if (!known.count(k)) throw Unsupported(std::string(what) + " config key '" + k + "' is not supported");
}

Outputs run(const Case& c) {
  const nlohmann::json& cfg = c.config;
  if (!cfg.is_object()) throw Unsupported("tac case has no config object");
  if (c.call.is_object() && c.call.value("method", "forward") != "forward")
    throw Unsupported("tac call method '" + c.call.value("method", "") + "' is not supported");
  const std::string mode = c.call.is_object() ? c.call.value("mode", "eval") : "eval";
  if (mode != "eval" && mode != "train") throw Unsupported("tac call mode '" + mode + "' is not supported");

  std::vector<sepmech::TAC> layers;
  std::vector<sepmech::io::LoadOptions> key_maps;
  std::string input_name, count_name;
  if (cfg.contains("input_dim")) {  // asteroid TAC
    check_keys(cfg, {"input_dim", "hidden_dim", "activation", "norm_type"}, "asteroid TAC");
    sepmech::TACOptions opt(cfg.at("input_dim").get<int64_t>());
    opt.hidden_dim(cfg.value("hidden_dim", int64_t{384}));
    opt.activation(sepmech::tac_activation_from_string(cfg.value("activation", std::string("prelu"))));
    opt.norm_type(sepmech::tac_norm_from_string(cfg.value("norm_type", std::string("gLN"))));
    layers.emplace_back(opt);
    key_maps.push_back(sepmech::TACImpl::asteroid_load_options());
    input_name = "x";
    count_name = "valid_mics";
  } else if (cfg.contains("input_size")) {  // FaSNet-TAC DPRNN_TAC (only its TAC parts run)
    check_keys(cfg, {"rnn_type", "input_size", "hidden_size", "output_size", "dropout", "num_layers", "bidirectional"},
               "FaSNet DPRNN_TAC");
    const int64_t num_layers = cfg.value("num_layers", int64_t{1});
    for (int64_t i = 0; i < num_layers; ++i) {
      layers.emplace_back(sepmech::TACOptions::fasnet(cfg.at("input_size").get<int64_t>(),
                                                      cfg.at("hidden_size").get<int64_t>()));
      key_maps.push_back(sepmech::TACImpl::fasnet_load_options(i));
    }
    input_name = "input";
    count_name = "num_mic";
  } else {
    throw Unsupported("tac config has neither input_dim (asteroid TAC) nor input_size (FaSNet DPRNN_TAC)");
  }

  const torch::Tensor& x0 = c.at("in." + input_name);
  const auto params = c.with_prefix("param.");
  for (size_t i = 0; i < layers.size(); ++i) {
    {  // the case's float dtype; integer buffers (bN's num_batches_tracked) stay int64
      torch::NoGradGuard ng;
      for (auto& p : layers[i]->parameters()) p.set_data(p.to(x0.scalar_type()));
      for (auto& b : layers[i]->buffers())
        if (b.is_floating_point()) b.set_data(b.to(x0.scalar_type()));
    }
    if (params.empty()) throw Unsupported("tac case has no param.* tensors");
    sepmech::io::load_state_dict(*layers[i], params, key_maps[i]);
    if (mode == "train")
      layers[i]->train();
    else
      layers[i]->eval();
  }

  bool wants_grad = false;
  for (const auto& k : c.expected_keys()) wants_grad = wants_grad || k.rfind("grad.", 0) == 0;
  torch::Tensor x = x0.clone();
  if (wants_grad) x.requires_grad_(true);
  torch::Tensor counts = c.has("in." + count_name) ? c.at("in." + count_name) : torch::Tensor();
  if (!counts.defined() && c.call.is_object() && c.call.contains("kwargs") && c.call["kwargs"].is_object()) {
    // counts given as a plain list in the call's kwargs instead of an in.* tensor
    const auto& kw = c.call["kwargs"];
    if (kw.contains(count_name) && kw[count_name].is_array())
      counts = torch::tensor(kw[count_name].get<std::vector<int64_t>>(), torch::kLong);
  }

  torch::Tensor y = x;
  for (auto& layer : layers) y = layer->forward(y, counts);

  Outputs out;
  out["out.output"] = y;

  // A file key (param.*, grad.param.*, out.state.*) -> the tensor of the layer that owns it.
  auto find_in_layers = [&](const std::string& file_key, bool buffer) -> torch::Tensor {
    for (size_t i = 0; i < layers.size(); ++i) {
      auto mapped = sepmech::io::map_keys({{file_key, torch::Tensor()}}, key_maps[i]);
      if (mapped.empty()) continue;
      const std::string& name = mapped.begin()->first;
      // named_*() return the dict by value: keep it alive while its entry is read (find() on the
      // temporary handed back a pointer into freed memory; found by ASan).
      const auto dict = buffer ? layers[i]->named_buffers() : layers[i]->named_parameters();
      if (const torch::Tensor* t = dict.find(name)) return *t;
    }
    throw Unsupported("tac: no " + std::string(buffer ? "buffer" : "parameter") + " for key '" + file_key + "'");
  };
  for (const auto& key : c.expected_keys()) {
    if (key.rfind("out.state.", 0) == 0) out[key] = find_in_layers(key.substr(10), true).clone();
  }
  if (wants_grad) {
    if (!sepmech::parity::backward_with_cotangents(c, {{"output", y}}))
      throw Unsupported("tac case expects gradients but holds no in.grad_out.output");
    for (const auto& key : c.expected_keys()) {
      if (key == "grad.in." + input_name) {
        out[key] = x.grad();
      } else if (key.rfind("grad.param.", 0) == 0) {
        torch::Tensor p = find_in_layers(key.substr(11), false);
        out[key] = p.grad().defined() ? p.grad() : torch::zeros_like(p);
      }
    }
  }
  return out;
}

sepmech::parity::RegisterAdapter reg("tac", run);

}  // namespace
