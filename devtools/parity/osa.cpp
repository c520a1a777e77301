// Parity adapter for the `osa` golden family (../shared/spec/osa.md §11): runs
// vovnet.py's _OSA_module / _OSA_stage / VoVNet and VoVNet-V1's _OSA_module cases.
#include "parity/parity.h"

#include "sepmech/io/state_dict.h"
#include "sepmech/osa.h"

namespace {

using nlohmann::json;
using sepmech::parity::Case;
using sepmech::parity::Outputs;
using sepmech::parity::Unsupported;

/// First present key among `names` (config objects use the reference's names; cfg-style
/// upper-case variants are accepted too).
const json* find_key(const json& j, std::initializer_list<const char*> names) {
  if (!j.is_object()) return nullptr;
  for (const char* n : names) {
    auto it = j.find(n);
    if (it != j.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

/// Like find_key, but also searches nested objects (e.g. {"MODEL": {"VOVNET": {...}}}).
const json* find_deep(const json& j, std::initializer_list<const char*> names) {
  if (const json* v = find_key(j, names)) return v;
  if (j.is_object())
    for (auto& [k, v] : j.items())
      if (v.is_object())
        if (const json* r = find_deep(v, names)) return r;
  return nullptr;
}

int64_t get_int(const json& cfg, std::initializer_list<const char*> names, const char* what) {
  const json* v = find_deep(cfg, names);
  if (!v || !v->is_number_integer()) throw Unsupported(std::string("osa: config lacks integer '") + what + "'");
  return v->get<int64_t>();
}

bool get_bool(const json& cfg, std::initializer_list<const char*> names, bool def) {
  const json* v = find_deep(cfg, names);
  if (!v) return def;
  if (v->is_boolean()) return v->get<bool>();
  if (v->is_number_integer()) return v->get<int64_t>() != 0;
  throw Unsupported("osa: config flag is not a boolean: " + v->dump());
}

/// The backbone's cfg.MODEL.VOVNET node when the config holds a (dumped) detectron2 cfg: its
/// entries win over same-named ones elsewhere in the cfg (e.g. MODEL.FPN.NORM = "").
const json* vovnet_node(const json& cfg) {
  const json* v = find_deep(cfg, {"VOVNET"});
  return v && v->is_object() ? v : nullptr;
}

sepmech::NormKind get_norm(const json& cfg, sepmech::NormKind def) {
  const json* v = find_key(cfg, {"_NORM", "NORM", "norm"});
  if (!v)
    if (const json* vov = vovnet_node(cfg)) v = find_key(*vov, {"NORM"});
  if (!v) v = find_deep(cfg, {"_NORM", "NORM", "norm"});
  if (!v) return def;
  if (!v->is_string()) throw Unsupported("osa: config norm is not a string: " + v->dump());
  try {
    return sepmech::norm_kind_from_string(v->get<std::string>());
  } catch (const c10::Error& e) {
    throw Unsupported(std::string("osa: ") + e.what_without_backtrace());
  }
}

std::vector<int64_t> get_ints(const json& cfg, std::initializer_list<const char*> names) {
  const json* v = find_deep(cfg, names);
  if (!v || !v->is_array()) return {};
  return v->get<std::vector<int64_t>>();
}

/// VoVNet spec: a named CONV_BODY, an explicit spec in the config, or inferred from the params.
sepmech::VoVNetSpec backbone_spec(const Case& c, const std::map<std::string, torch::Tensor>& params) {
  const json& cfg = c.config;
  sepmech::VoVNetSpec s;
  bool have = false;
  const json* n = vovnet_node(cfg) ? find_key(*vovnet_node(cfg), {"CONV_BODY"}) : nullptr;
  if (!n) n = find_deep(cfg, {"CONV_BODY", "conv_body", "spec_name"});
  if (n && n->is_string()) {
    try {  // a custom (e.g. tiny) spec name is not in the table: its widths come from below
      s = sepmech::VoVNetSpec::named(n->get<std::string>());
      have = true;
    } catch (const c10::Error&) {
    }
  }
  if (auto v = get_ints(cfg, {"stem"}); !v.empty()) s.stem = v, have = true;
  if (auto v = get_ints(cfg, {"stage_conv_ch"}); !v.empty()) s.stage_conv_ch = v;
  if (auto v = get_ints(cfg, {"stage_out_ch"}); !v.empty()) s.stage_out_ch = v;
  if (auto v = get_ints(cfg, {"block_per_stage"}); !v.empty()) s.block_per_stage = v;
  if (const json* v = find_deep(cfg, {"layer_per_block"}); v && v->is_number_integer()) s.layer_per_block = v->get<int64_t>();
  if (const json* v = find_deep(cfg, {"dw", "depthwise"}); v && v->is_boolean()) s.dw = v->get<bool>();
  if (have && s.stage_conv_ch.size() == 4 && s.stage_out_ch.size() == 4 && s.block_per_stage.size() == 4) return s;
  // Inference from the state_dict shapes (every width is visible in some weight).
  auto shape = [&](const std::string& k) -> std::vector<int64_t> {
    auto it = params.find(k);
    if (it == params.end()) throw Unsupported("osa: backbone config incomplete and param '" + k + "' missing");
    return it->second.sizes().vec();
  };
  s.dw = params.count("stem.stem_2/dw_conv3x3.weight") != 0;
  s.stem = {shape("stem.stem_1/conv.weight")[0],
            shape(s.dw ? "stem.stem_2/pw_conv1x1.weight" : "stem.stem_2/conv.weight")[0],
            shape(s.dw ? "stem.stem_3/pw_conv1x1.weight" : "stem.stem_3/conv.weight")[0]};
  s.stage_conv_ch.clear(), s.stage_out_ch.clear(), s.block_per_stage.clear();
  int64_t L = 0;
  while (params.count("stage2.OSA2_1.layers." + std::to_string(L) + ".OSA2_1_" + std::to_string(L) +
                      (s.dw ? "/pw_conv1x1.weight" : "/conv.weight")))
    ++L;
  s.layer_per_block = L;
  for (int st = 2; st <= 5; ++st) {
    const std::string b1 = "stage" + std::to_string(st) + ".OSA" + std::to_string(st) + "_1.";
    const std::string l0 = b1 + "layers.0.OSA" + std::to_string(st) + "_1_0" + (s.dw ? "/pw_conv1x1.weight" : "/conv.weight");
    s.stage_conv_ch.push_back(shape(l0)[0]);
    s.stage_out_ch.push_back(shape(b1 + "concat.OSA" + std::to_string(st) + "_1_concat/conv.weight")[0]);
    int64_t nb = 1;
    while (params.count("stage" + std::to_string(st) + ".OSA" + std::to_string(st) + "_" + std::to_string(nb + 1) +
                        ".concat.OSA" + std::to_string(st) + "_" + std::to_string(nb + 1) + "_concat/conv.weight"))
      ++nb;
    s.block_per_stage.push_back(nb);
  }
  return s;
}

/// Module::to(dtype) would also turn num_batches_tracked into a floating tensor.
void to_float_dtype(torch::nn::Module& m, torch::ScalarType dtype) {
  torch::NoGradGuard ng;
  for (auto& p : m.parameters())
    if (p.is_floating_point() && p.scalar_type() != dtype) p.set_data(p.to(dtype));
  for (auto& b : m.buffers())
    if (b.is_floating_point() && b.scalar_type() != dtype) b.set_data(b.to(dtype));
}

void load(torch::nn::Module& m, const Case& c) {
  sepmech::io::load_state_dict(m, c.with_prefix("param."));
}

/// The norm actually stored: a BN config whose checkpoint has running statistics but no
/// num_batches_tracked was converted to FrozenBN (the reference's _freeze_backbone does that).
sepmech::NormKind effective_norm(sepmech::NormKind n, const std::map<std::string, torch::Tensor>& params) {
  if (n != sepmech::NormKind::batch_norm) return n;
  bool stats = false, counter = false;
  for (const auto& [k, v] : params) {
    if (k.size() >= 12 && k.compare(k.size() - 12, 12, "running_mean") == 0) stats = true;
    if (k.find("num_batches_tracked") != std::string::npos) counter = true;
  }
  return (stats && !counter) ? sepmech::NormKind::frozen_batch_norm : n;
}

Outputs run(const Case& c) {
  const std::string ref = c.meta.count("reference") ? c.meta.at("reference") : "";
  const json& cfg = c.config;
  const json& call = c.call;
  std::string mode = "eval";
  bool backward = false;
  if (call.is_object()) {
    if (call.contains("mode") && call["mode"].is_string()) mode = call["mode"].get<std::string>();
    if (call.contains("backward") && call["backward"].is_boolean()) backward = call["backward"].get<bool>();
    if (call.contains("method") && call["method"] != "forward")
      throw Unsupported("osa: unsupported call method " + call["method"].dump());
  }
  if (mode != "eval" && mode != "train") throw Unsupported("osa: unsupported mode '" + mode + "'");
  backward = backward || !c.with_prefix("in.grad_out.").empty();

  const bool is_v1 = ref.find("stigma0617/VoVNet.pytorch") != std::string::npos;
  // "owner/repo@commit path::Class.method": the class decides what to build.
  const auto sep = ref.find("::");
  const std::string cls = sep == std::string::npos ? "" : ref.substr(sep + 2);
  const bool is_stage = cls.rfind("_OSA_stage", 0) == 0 || (cls.empty() && find_key(cfg, {"stage_num"}));
  const bool is_backbone =
      !is_stage && (cls.rfind("VoVNet", 0) == 0 || (cls.rfind("_OSA_module", 0) != 0 && find_deep(cfg, {"stem", "CONV_BODY"})));
  const auto params = c.with_prefix("param.");

  // The module runs in the case's dtype (float32 goldens; float64 ones too).
  const torch::Tensor& x_file = c.at("in.x");
  if (!x_file.is_floating_point()) throw Unsupported("osa: in.x must be floating point");
  const auto dtype = x_file.scalar_type();
  torch::Tensor x = x_file.clone();
  if (backward) x.requires_grad_(true);

  std::shared_ptr<torch::nn::Module> module;
  std::map<std::string, torch::Tensor> outputs;  // name (without "out.") -> tensor
  auto set_mode = [&](torch::nn::Module& m) { mode == "train" ? m.train() : m.eval(); };

  if (is_backbone) {
    auto spec = backbone_spec(c, params);
    int64_t input_ch = x.size(1);
    if (const json* v = find_deep(cfg, {"input_ch", "in_ch", "in_channels"}); v && v->is_number_integer())
      input_ch = v->get<int64_t>();
    std::vector<std::string> feats;
    const json* of = find_key(cfg, {"out_features", "OUT_FEATURES"});
    if (!of && vovnet_node(cfg)) of = find_key(*vovnet_node(cfg), {"OUT_FEATURES"});
    if (!of) of = find_deep(cfg, {"out_features", "OUT_FEATURES"});
    if (of && of->is_array()) feats = of->get<std::vector<std::string>>();
    if (feats.empty())
      for (const auto& [k, t] : c.with_prefix("out."))
        if (k.rfind("state.", 0) != 0) feats.push_back(k);
    auto net = std::make_shared<sepmech::VoVNetImpl>(sepmech::VoVNetOptions(spec)
                                                         .input_ch(input_ch)
                                                         .out_features(feats)
                                                         .norm(effective_norm(get_norm(cfg, sepmech::NormKind::frozen_batch_norm), params)));
    to_float_dtype(*net, dtype);
    load(*net, c);
    set_mode(*net);
    outputs = net->forward(x);
    module = net;
  } else if (is_stage) {
    auto st = std::make_shared<sepmech::OSAStageImpl>(
        sepmech::OSAStageOptions(get_int(cfg, {"in_ch"}, "in_ch"), get_int(cfg, {"stage_ch"}, "stage_ch"),
                                 get_int(cfg, {"concat_ch"}, "concat_ch"),
                                 get_int(cfg, {"block_per_stage"}, "block_per_stage"),
                                 get_int(cfg, {"layer_per_block"}, "layer_per_block"),
                                 get_int(cfg, {"stage_num"}, "stage_num"))
            .depthwise(get_bool(cfg, {"depthwise", "dw"}, false))
            .ese(!is_v1)
            .norm(effective_norm(get_norm(cfg, sepmech::NormKind::batch_norm), params)));
    to_float_dtype(*st, dtype);
    load(*st, c);
    set_mode(*st);
    outputs["y"] = st->forward(x);
    module = st;
  } else {
    sepmech::OSABlockOptions o(get_int(cfg, {"in_ch"}, "in_ch"), get_int(cfg, {"stage_ch"}, "stage_ch"),
                               get_int(cfg, {"concat_ch"}, "concat_ch"), get_int(cfg, {"layer_per_block"}, "layer_per_block"));
    std::string name;
    if (const json* mn = find_key(cfg, {"module_name"}); mn && mn->is_string()) name = mn->get<std::string>();
    for (const auto& [k, v] : params)  // fallback: the name inside "concat.{N}_concat/conv.weight"
      if (name.empty() && k.rfind("concat.", 0) == 0 && k.find("_concat/conv.weight") != std::string::npos)
        name = k.substr(7, k.find("_concat/conv.weight") - 7);
    if (name.empty()) throw Unsupported("osa: config lacks string 'module_name'");
    o.module_name(name)
        .identity(get_bool(cfg, {"identity"}, false))
        .depthwise(get_bool(cfg, {"depthwise"}, false))
        .ese(!is_v1)  // SE is ignored by the V2 reference: eSE is always applied
        .norm(effective_norm(get_norm(cfg, sepmech::NormKind::batch_norm), params));
    auto blk = std::make_shared<sepmech::OSABlockImpl>(o);
    to_float_dtype(*blk, dtype);
    load(*blk, c);
    set_mode(*blk);
    // A (B, C, 1, T) case runs through the 1-D form: it must equal the 2-D block on H = 1.
    if (x.size(2) == 1)
      outputs["y"] = blk->forward(x.squeeze(2)).unsqueeze(2);
    else
      outputs["y"] = blk->forward(x);
    module = blk;
  }

  Outputs out;
  for (const auto& [k, v] : outputs) out["out." + k] = v;
  for (const auto& item : module->named_buffers()) out["out.state." + item.key()] = item.value();
  if (backward) {
    sepmech::parity::backward_with_cotangents(c, outputs);
    if (x.grad().defined()) out["grad.in.x"] = x.grad();
    for (const auto& item : module->named_parameters())
      if (item.value().grad().defined()) out["grad.param." + item.key()] = item.value().grad();
  }
  return out;
}

const sepmech::parity::RegisterAdapter reg_osa("osa", [](const Case& c) { return run(c); });

}  // namespace
