// Parity adapters for DeepFilterNet3 (docs/spec/deepfilternet3.md §10): metadata modules
// dfn3_features, dfn3_encoder, dfn3_erb_decoder, dfn3_df_decoder, dfn3 (DfNet.forward),
// dfn3_enhance and dfn3_stream. The weights come from the shared params_file (merged by the
// harness, param_prefix already removed for the sub-network cases).
#include <cmath>

#include "parity/parity.h"
#include "sepmech/dfn3.h"
#include "sepmech/io/state_dict.h"

namespace sepmech::parity {
namespace {

using torch::Tensor;

/// The metadata config (ModelParams names) -> DfNetOptions; unknown keys are Unsupported.
DfNetOptions options_from(const Case& c) {
  const auto& cfg = c.config;
  if (!cfg.is_object()) throw Unsupported("dfn3: metadata config missing");
  DfNetOptions o;
  auto kernel = [](const nlohmann::json& v) { return v.get<std::vector<int64_t>>(); };
  auto skip = [](const nlohmann::json& v) {
    try {
      return gru_skip_from_string(v.get<std::string>());
    } catch (const c10::Error&) {
      throw Unsupported("dfn3: unknown gru skip '" + v.get<std::string>() + "'");
    }
  };
  for (const auto& [k, v] : cfg.items()) {
    if (k == "sr") o.sr(v.get<int64_t>());
    else if (k == "fft_size") o.fft_size(v.get<int64_t>());
    else if (k == "hop_size") o.hop_size(v.get<int64_t>());
    else if (k == "nb_erb") o.nb_erb(v.get<int64_t>());
    else if (k == "nb_df") o.nb_df(v.get<int64_t>());
    else if (k == "norm_tau") o.norm_tau(v.get<double>());
    else if (k == "lsnr_max") o.lsnr_max(v.get<double>());
    else if (k == "lsnr_min") o.lsnr_min(v.get<double>());
    else if (k == "min_nb_freqs") o.min_nb_erb_freqs(v.get<int64_t>());
    else if (k == "df_order") o.df_order(v.get<int64_t>());
    else if (k == "df_lookahead") o.df_lookahead(v.get<int64_t>());
    else if (k == "conv_lookahead") o.conv_lookahead(v.get<int64_t>());
    else if (k == "conv_ch") o.conv_ch(v.get<int64_t>());
    else if (k == "conv_kernel") o.conv_kernel(kernel(v));
    else if (k == "convt_kernel") o.convt_kernel(kernel(v));
    else if (k == "conv_kernel_inp") o.conv_kernel_inp(kernel(v));
    else if (k == "emb_hidden_dim") o.emb_hidden_dim(v.get<int64_t>());
    else if (k == "emb_num_layers") o.emb_num_layers(v.get<int64_t>());
    else if (k == "emb_gru_skip_enc") o.emb_gru_skip_enc(skip(v));
    else if (k == "emb_gru_skip") o.emb_gru_skip(skip(v));
    else if (k == "df_hidden_dim") o.df_hidden_dim(v.get<int64_t>());
    else if (k == "df_gru_skip") o.df_gru_skip(skip(v));
    else if (k == "df_pathway_kernel_size_t") o.df_pathway_kernel_size_t(v.get<int64_t>());
    else if (k == "enc_concat") o.enc_concat(v.get<bool>());
    else if (k == "df_num_layers") o.df_num_layers(v.get<int64_t>());
    else if (k == "df_n_iter") o.df_n_iter(v.get<int64_t>());
    else if (k == "lin_groups") o.linear_groups(v.get<int64_t>());
    else if (k == "enc_lin_groups") o.enc_linear_groups(v.get<int64_t>());
    else if (k == "mask_pf") o.mask_pf(v.get<bool>());
    else if (k == "pf_beta") o.pf_beta(v.get<double>());
    else if (k == "lsnr_dropout") o.lsnr_dropout(v.get<bool>());
    else throw Unsupported("dfn3: unknown config key '" + k + "'");
  }
  try {
    o.Validate();
  } catch (const c10::Error& e) {
    throw Unsupported(std::string("dfn3: config not supported: ") + e.what_without_backtrace());
  }
  return o;
}

nlohmann::json call_value(const Case& c, const std::string& key, nlohmann::json fallback) {
  return c.call.is_object() && c.call.contains(key) ? c.call.at(key) : fallback;
}

/// The full model with the case's weights; the stored filter banks must equal ours.
DeepFilterNet3 full_model(const Case& c, const DfNetOptions& o) {
  DeepFilterNet3 net(o);
  auto params = c.with_prefix("param.");
  if (params.empty()) throw Unsupported("dfn3: case has no parameters (params_file missing?)");
  for (const char* key : {"erb_fb", "mask.erb_inv_fb"}) {
    auto it = params.find(key);
    if (it == params.end()) continue;
    const Tensor mine = key[0] == 'e' ? net->erb_fb : net->mask->erb_inv_fb;
    if (!mine.sizes().equals(it->second.sizes()) || !torch::equal(mine, it->second.to(mine.scalar_type())))
      throw std::runtime_error(std::string("dfn3: stored ") + key + " differs from the ERB layout of spec §3.2");
  }
  io::load_state_dict(*net, params);
  net->eval();
  return net;
}

template <class M>
M sub_model(const Case& c, const DfNetOptions& o) {
  M m(o);
  io::load_state_dict(*m, c.with_prefix("param."));
  m->eval();
  return m;
}

RegisterAdapter reg_features("dfn3_features", [](const Case& c) {
  const DfNetOptions o = options_from(c);
  const double alpha = call_value(c, "alpha", o.alpha()).get<double>();
  if (std::abs(alpha - o.alpha()) > 1e-12) throw Unsupported("dfn3_features: call alpha differs from the config's");
  const dfn3::Features f = dfn3::features(c.at("in.audio"), o);
  Outputs out;
  out["out.spec"] = f.spec;
  out["out.feat_erb"] = f.feat_erb;
  out["out.feat_spec"] = f.feat_spec;
  out["mid.erb_db"] = f.erb_db.squeeze(0);
  return out;
});

RegisterAdapter reg_encoder("dfn3_encoder", [](const Case& c) {
  const DfNetOptions o = options_from(c);
  auto enc = sub_model<dfn3::Encoder>(c, o);
  torch::NoGradGuard guard;
  const dfn3::EncoderOutput e = enc->forward(c.at("in.feat_erb"), c.at("in.feat_spec"));
  return Outputs{{"out.e0", e.e0}, {"out.e1", e.e1},     {"out.e2", e.e2},    {"out.e3", e.e3},
                 {"out.emb", e.emb}, {"out.c0", e.c0}, {"out.lsnr", e.lsnr}};
});

RegisterAdapter reg_erb_decoder("dfn3_erb_decoder", [](const Case& c) {
  const DfNetOptions o = options_from(c);
  auto dec = sub_model<dfn3::ErbDecoder>(c, o);
  torch::NoGradGuard guard;
  auto [m, h] = dec->forward(c.at("in.emb"), c.at("in.e3"), c.at("in.e2"), c.at("in.e1"), c.at("in.e0"));
  return Outputs{{"out.m", m}};
});

RegisterAdapter reg_df_decoder("dfn3_df_decoder", [](const Case& c) {
  const DfNetOptions o = options_from(c);
  auto dec = sub_model<dfn3::DfDecoder>(c, o);
  torch::NoGradGuard guard;
  auto [coefs, h] = dec->forward(c.at("in.emb"), c.at("in.c0"));
  return Outputs{{"out.coefs", coefs}, {"mid.coefs_mf", dfn3::df_output_reshape(coefs, o.df_order())}};
});

RegisterAdapter reg_full("dfn3", [](const Case& c) {
  DfNetOptions o = options_from(c);
  o.mask_pf(call_value(c, "post_filter", o.mask_pf()).get<bool>());
  o.pf_beta(call_value(c, "pf_beta", o.pf_beta()).get<double>());
  DeepFilterNet3 net = full_model(c, o);
  torch::NoGradGuard guard;
  const DfNetOutput r = net->forward(c.at("in.spec"), c.at("in.feat_erb"), c.at("in.feat_spec"));
  return Outputs{{"out.spec", r.spec},
                 {"out.m", r.m},
                 {"out.lsnr", r.lsnr},
                 {"out.df_coefs", r.df_coefs},
                 {"mid.spec_m", r.spec_m}};
});

RegisterAdapter reg_enhance("dfn3_enhance", [](const Case& c) {
  DfNetOptions o = options_from(c);
  o.mask_pf(call_value(c, "post_filter", o.mask_pf()).get<bool>());
  DeepFilterNet3 net = full_model(c, o);
  Dfn3EnhanceOptions eo;
  eo.pad(call_value(c, "pad", true).get<bool>());
  const auto lim = call_value(c, "atten_lim_db", nullptr);
  eo.atten_lim_db(lim.is_null() ? 0.0 : lim.get<double>());
  torch::NoGradGuard guard;
  return Outputs{{"out.audio", dfn3_enhance(*net, c.at("in.audio"), eo)}};
});

RegisterAdapter reg_stream("dfn3_stream", [](const Case& c) {
  const DfNetOptions o = options_from(c);
  DeepFilterNet3 net = full_model(c, o);
  DeepFilterNet3StreamOptions so;
  so.always_apply_all_stages(call_value(c, "always_apply_all_stages", false).get<bool>());
  const auto th = call_value(c, "thresholds", nlohmann::json::object());
  so.min_db_thresh(th.value("min_db_thresh", so.min_db_thresh()));
  so.max_db_erb_thresh(th.value("max_db_erb_thresh", so.max_db_erb_thresh()));
  so.max_db_df_thresh(th.value("max_db_df_thresh", so.max_db_df_thresh()));
  // torchDF's atten_lim_db = 0 means "no limit" (libDF spells that 100 dB or more).
  const double lim = c.has("in.atten_lim_db") ? c.at("in.atten_lim_db").item<double>() : 0.0;
  so.atten_lim_db(lim == 0.0 ? 100.0 : lim);
  const std::string init = call_value(c, "initial_states", "zeros").get<std::string>();
  if (init.rfind("zeros", 0) != 0) throw Unsupported("dfn3_stream: initial_states '" + init + "'");
  DeepFilterNet3Stream stream(net, so);

  const Tensor frames = c.at("in.frames");
  const int64_t T = frames.size(0);
  auto state = stream->init_state(1);
  std::vector<Tensor> outs, lsnrs, newest;
  for (int64_t t = 0; t < T; ++t) {
    DeepFilterNet3StepInfo info;
    outs.push_back(stream->step(frames.narrow(0, t, 1), state, &info).squeeze(0));
    lsnrs.push_back(info.lsnr.squeeze(0));
    newest.push_back(state.noisy.select(1, o.df_order() - 1).squeeze(0));
  }
  Outputs out;
  out["out.frames"] = torch::stack(outs);
  out["out.lsnr"] = torch::stack(lsnrs);
  out["out.state.analysis_mem"] = state.analysis_mem.squeeze(0);
  out["out.state.synthesis_mem"] = state.synthesis_mem.squeeze(0);
  out["out.state.erb_norm_state"] = state.erb_norm.squeeze(0);
  out["out.state.band_unit_norm_state"] = state.unit_norm.unsqueeze(-1);
  out["out.state.rolling_erb_buf"] = state.erb_window;
  out["out.state.rolling_feat_spec_buf"] = state.spec_window;
  out["out.state.rolling_c0_buf"] = state.c0_window;
  out["out.state.rolling_spec_buf_x"] = torch::view_as_real(state.noisy.squeeze(0));
  // torchDF's second spectrum buffer holds the last df_order + conv_lookahead analysis frames.
  const int64_t ny = o.df_order() + o.conv_lookahead();
  std::vector<Tensor> buf_y;
  for (int64_t i = T - ny; i < T; ++i)
    buf_y.push_back(i < 0 ? torch::zeros({o.freq_bins()}, torch::kComplexFloat) : newest[static_cast<size_t>(i)]);
  out["out.state.rolling_spec_buf_y"] = torch::view_as_real(torch::stack(buf_y));
  out["out.state.enc_hidden"] = state.enc_h;
  out["out.state.erb_dec_hidden"] = state.erb_dec_h;
  out["out.state.df_dec_hidden"] = state.df_dec_h;
  return out;
});

}  // namespace
}  // namespace sepmech::parity
