// DfNetOptions: the DFN3 configuration, the reference code's defaults and config.ini parsing.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>

#include "sepmech/dfn3.h"

namespace sepmech {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

}  // namespace

std::string to_string(GruSkip skip) {
  switch (skip) {
    case GruSkip::none: return "none";
    case GruSkip::identity: return "identity";
    case GruSkip::grouped_linear: return "groupedlinear";
  }
  return "?";
}

GruSkip gru_skip_from_string(const std::string& name) {
  const std::string n = lower(name);
  for (GruSkip s : {GruSkip::none, GruSkip::identity, GruSkip::grouped_linear})
    if (n == to_string(s)) return s;
  TORCH_CHECK(false, "sepmech::GruSkip: name must be one of none, identity, groupedlinear, got '", name, "'");
}

DfNetOptions DfNetOptions::code_defaults() {
  return DfNetOptions{}
      .df_lookahead(0)
      .conv_lookahead(0)
      .conv_ch(16)
      .emb_num_layers(2)
      .df_num_layers(3)
      .linear_groups(1)
      .enc_linear_groups(16)
      .df_gru_skip(GruSkip::none)
      .df_pathway_kernel_size_t(1);
}

double DfNetOptions::alpha() const {
  if (norm_alpha() != 0.0) return norm_alpha();
  const double dt = static_cast<double>(hop_size()) / static_cast<double>(sr());
  const double a = std::exp(-dt / norm_tau());
  // Python's round(a, precision), increasing the precision while the result is 1.0.
  for (int precision = 3; precision < 17; ++precision) {
    const double scale = std::pow(10.0, precision);
    const double r = std::round(a * scale) / scale;
    if (r < 1.0) return r;
  }
  return a;
}

void DfNetOptions::Validate() const {
  auto check_kernel = [](const std::vector<int64_t>& k, const char* name) {
    TORCH_CHECK(k.size() == 2 && k[0] >= 1 && k[1] >= 1, "sepmech::DfNetOptions: ", name,
                " must be two positive sizes (time, frequency), got ", c10::IntArrayRef(k));
  };
  TORCH_CHECK(sr() > 0, "sepmech::DfNetOptions: sr must be positive, got ", sr());
  TORCH_CHECK(fft_size() > 0 && fft_size() % 2 == 0, "sepmech::DfNetOptions: fft_size must be positive and even, got ",
              fft_size());
  TORCH_CHECK(hop_size() > 0 && 2 * hop_size() == fft_size(),
              "sepmech::DfNetOptions: hop_size must be fft_size / 2 (libDF's overlap-add), got ", hop_size(),
              " for fft_size ", fft_size());
  TORCH_CHECK(nb_erb() >= 4 && nb_erb() % 4 == 0, "sepmech::DfNetOptions: nb_erb must be a positive multiple of 4, got ",
              nb_erb());
  TORCH_CHECK(nb_df() >= 2 && nb_df() % 2 == 0 && nb_df() < freq_bins(),
              "sepmech::DfNetOptions: nb_df must be even, >= 2 and < fft_size/2 + 1, got ", nb_df());
  TORCH_CHECK(min_nb_erb_freqs() >= 1, "sepmech::DfNetOptions: min_nb_erb_freqs must be >= 1, got ",
              min_nb_erb_freqs());
  TORCH_CHECK(nb_erb() * min_nb_erb_freqs() <= freq_bins(), "sepmech::DfNetOptions: nb_erb * min_nb_erb_freqs must be <= ",
              freq_bins(), ", got ", nb_erb() * min_nb_erb_freqs());
  TORCH_CHECK(norm_tau() > 0 && std::isfinite(norm_tau()), "sepmech::DfNetOptions: norm_tau must be positive, got ",
              norm_tau());
  TORCH_CHECK(norm_alpha() == 0.0 || (norm_alpha() > 0.0 && norm_alpha() < 1.0),
              "sepmech::DfNetOptions: norm_alpha must be 0 (derived) or in (0, 1), got ", norm_alpha());
  TORCH_CHECK(lsnr_max() > lsnr_min(), "sepmech::DfNetOptions: lsnr_max must exceed lsnr_min, got ", lsnr_max(), " and ",
              lsnr_min());
  TORCH_CHECK(df_order() >= 1, "sepmech::DfNetOptions: df_order must be >= 1, got ", df_order());
  TORCH_CHECK(df_lookahead() >= 0 && df_lookahead() < df_order(),
              "sepmech::DfNetOptions: df_lookahead must be in [0, df_order), got ", df_lookahead());
  TORCH_CHECK(conv_lookahead() >= 0, "sepmech::DfNetOptions: conv_lookahead must be >= 0, got ", conv_lookahead());
  TORCH_CHECK(conv_ch() >= 1, "sepmech::DfNetOptions: conv_ch must be >= 1, got ", conv_ch());
  check_kernel(conv_kernel(), "conv_kernel");
  check_kernel(convt_kernel(), "convt_kernel");
  check_kernel(conv_kernel_inp(), "conv_kernel_inp");
  TORCH_CHECK(conv_kernel()[0] == 1 && convt_kernel()[0] == 1,
              "sepmech::DfNetOptions: conv_kernel and convt_kernel must have time size 1 (only the input convolutions "
              "and the DF pathway look back), got ",
              c10::IntArrayRef(conv_kernel()), " and ", c10::IntArrayRef(convt_kernel()));
  TORCH_CHECK(emb_hidden_dim() >= 1 && df_hidden_dim() >= 1, "sepmech::DfNetOptions: hidden dims must be >= 1");
  TORCH_CHECK(emb_num_layers() >= 2, "sepmech::DfNetOptions: emb_num_layers must be >= 2 (the ERB decoder's GRU has ",
              "emb_num_layers - 1 layers), got ", emb_num_layers());
  TORCH_CHECK(df_num_layers() >= 1, "sepmech::DfNetOptions: df_num_layers must be >= 1, got ", df_num_layers());
  TORCH_CHECK(emb_gru_skip() == GruSkip::none && emb_gru_skip_enc() == GruSkip::none,
              "sepmech::DfNetOptions: emb_gru_skip and emb_gru_skip_enc must be none, got ", to_string(emb_gru_skip()),
              " and ", to_string(emb_gru_skip_enc()));
  TORCH_CHECK(df_gru_skip() != GruSkip::identity || emb_dim() == df_hidden_dim(),
              "sepmech::DfNetOptions: df_gru_skip identity needs conv_ch * nb_erb / 4 == df_hidden_dim");
  TORCH_CHECK(df_pathway_kernel_size_t() >= 1, "sepmech::DfNetOptions: df_pathway_kernel_size_t must be >= 1, got ",
              df_pathway_kernel_size_t());
  auto divides = [](int64_t g, int64_t n) { return g >= 1 && n % g == 0; };
  TORCH_CHECK(divides(linear_groups(), emb_dim()) && divides(linear_groups(), emb_hidden_dim()) &&
                  divides(linear_groups(), df_hidden_dim()) && divides(linear_groups(), nb_df() * 2 * df_order()),
              "sepmech::DfNetOptions: linear_groups must divide the GRU-block widths, got ", linear_groups());
  TORCH_CHECK(emb_dim() % 8 == 0 && df_hidden_dim() % 8 == 0,
              "sepmech::DfNetOptions: the DF decoder's GRU input projection uses 8 groups; conv_ch * nb_erb / 4 and "
              "df_hidden_dim must be multiples of 8");
  TORCH_CHECK(divides(enc_linear_groups(), conv_ch() * nb_df() / 2) && divides(enc_linear_groups(), emb_dim()),
              "sepmech::DfNetOptions: enc_linear_groups must divide conv_ch * nb_df / 2 and conv_ch * nb_erb / 4, got ",
              enc_linear_groups());
  TORCH_CHECK(!enc_concat(), "sepmech::DfNetOptions: enc_concat must be false");
  TORCH_CHECK(df_n_iter() == 1, "sepmech::DfNetOptions: df_n_iter must be 1, got ", df_n_iter());
  TORCH_CHECK(!lsnr_dropout(), "sepmech::DfNetOptions: lsnr_dropout must be false");
  TORCH_CHECK(pf_beta() >= 0 && std::isfinite(pf_beta()), "sepmech::DfNetOptions: pf_beta must be >= 0, got ", pf_beta());
}

std::string DfNetOptions::ToString() const {
  std::ostringstream os;
  os << "sr=" << sr() << ", fft_size=" << fft_size() << ", hop_size=" << hop_size() << ", nb_erb=" << nb_erb()
     << ", nb_df=" << nb_df() << ", df_order=" << df_order() << ", df_lookahead=" << df_lookahead()
     << ", conv_lookahead=" << conv_lookahead() << ", conv_ch=" << conv_ch() << ", emb_hidden_dim=" << emb_hidden_dim()
     << ", emb_num_layers=" << emb_num_layers() << ", df_hidden_dim=" << df_hidden_dim()
     << ", df_num_layers=" << df_num_layers() << ", linear_groups=" << linear_groups()
     << ", enc_linear_groups=" << enc_linear_groups() << ", df_gru_skip=" << to_string(df_gru_skip())
     << ", mask_pf=" << (mask_pf() ? "true" : "false");
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// config.ini
// ---------------------------------------------------------------------------------------------

namespace {

struct IniValue {
  std::string text;
  int line = 0;
};
using IniSection = std::map<std::string, IniValue>;

[[noreturn]] void bad_value(const std::string& section, const std::string& key, const IniValue& v,
                            const std::string& expected) {
  TORCH_CHECK(false, "sepmech::DfNetOptions::from_config_ini: [", section, "] ", key, " (line ", v.line, ") must be ",
              expected, ", got '", v.text, "'");
}

int64_t parse_int(const std::string& section, const std::string& key, const IniValue& v) {
  const std::string& s = v.text;
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || errno != 0 || end != s.c_str() + s.size()) bad_value(section, key, v, "an integer");
  return static_cast<int64_t>(x);
}

double parse_double(const std::string& section, const std::string& key, const IniValue& v) {
  const std::string& s = v.text;
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (s.empty() || errno != 0 || end != s.c_str() + s.size() || !std::isfinite(x))
    bad_value(section, key, v, "a finite number");
  return x;
}

bool parse_bool(const std::string& section, const std::string& key, const IniValue& v) {
  // configparser's getboolean spellings (the reference casts with a strtobool-like rule).
  const std::string s = lower(v.text);
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  bad_value(section, key, v, "a boolean (true/false, 1/0, yes/no, on/off)");
}

std::vector<int64_t> parse_int_list(const std::string& section, const std::string& key, const IniValue& v) {
  std::vector<int64_t> out;
  std::string item;
  std::istringstream is(v.text);
  while (std::getline(is, item, ',')) {
    IniValue part{trim(item), v.line};
    if (part.text.empty()) bad_value(section, key, v, "a comma-separated list of integers");
    out.push_back(parse_int(section, key, part));
  }
  if (out.empty()) bad_value(section, key, v, "a comma-separated list of integers");
  return out;
}

std::map<std::string, IniSection> parse_ini(const std::string& text) {
  std::map<std::string, IniSection> sections;
  std::string current;
  std::istringstream is(text);
  std::string raw;
  int line_no = 0;
  std::string last_key;
  while (std::getline(is, raw)) {
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    const std::string line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      TORCH_CHECK(line.back() == ']' && line.size() > 2, "sepmech::DfNetOptions::from_config_ini: line ", line_no,
                  ": malformed section header '", line, "'");
      current = lower(trim(line.substr(1, line.size() - 2)));
      sections[current];
      last_key.clear();
      continue;
    }
    const size_t eq = line.find_first_of("=:");
    TORCH_CHECK(eq != std::string::npos, "sepmech::DfNetOptions::from_config_ini: line ", line_no,
                ": expected 'key = value', got '", line, "'");
    TORCH_CHECK(!current.empty(), "sepmech::DfNetOptions::from_config_ini: line ", line_no, ": key '",
                trim(line.substr(0, eq)), "' before any [section]");
    const std::string key = lower(trim(line.substr(0, eq)));
    TORCH_CHECK(!key.empty(), "sepmech::DfNetOptions::from_config_ini: line ", line_no, ": empty key in '", line, "'");
    auto& sec = sections[current];
    TORCH_CHECK(!sec.count(key), "sepmech::DfNetOptions::from_config_ini: line ", line_no, ": [", current, "] ", key,
                " is set twice");
    sec[key] = IniValue{trim(line.substr(eq + 1)), line_no};
    last_key = key;
  }
  return sections;
}

}  // namespace

DfNetOptions DfNetOptions::from_config_ini(const std::string& text) {
  const auto sections = parse_ini(text);
  DfNetOptions o = code_defaults();
  using Setter = std::function<void(const std::string&, const std::string&, const IniValue&)>;
  const std::map<std::string, std::map<std::string, Setter>> readers = {
      {"df",
       {
           {"sr", [&](auto& s, auto& k, auto& v) { o.sr(parse_int(s, k, v)); }},
           {"fft_size", [&](auto& s, auto& k, auto& v) { o.fft_size(parse_int(s, k, v)); }},
           {"hop_size", [&](auto& s, auto& k, auto& v) { o.hop_size(parse_int(s, k, v)); }},
           {"nb_erb", [&](auto& s, auto& k, auto& v) { o.nb_erb(parse_int(s, k, v)); }},
           {"nb_df", [&](auto& s, auto& k, auto& v) { o.nb_df(parse_int(s, k, v)); }},
           {"min_nb_erb_freqs", [&](auto& s, auto& k, auto& v) { o.min_nb_erb_freqs(parse_int(s, k, v)); }},
           {"norm_tau", [&](auto& s, auto& k, auto& v) { o.norm_tau(parse_double(s, k, v)); }},
           {"norm_alpha", [&](auto& s, auto& k, auto& v) { o.norm_alpha(parse_double(s, k, v)); }},
           {"lsnr_max", [&](auto& s, auto& k, auto& v) { o.lsnr_max(parse_double(s, k, v)); }},
           {"lsnr_min", [&](auto& s, auto& k, auto& v) { o.lsnr_min(parse_double(s, k, v)); }},
           {"df_order", [&](auto& s, auto& k, auto& v) { o.df_order(parse_int(s, k, v)); }},
           {"df_lookahead", [&](auto& s, auto& k, auto& v) { o.df_lookahead(parse_int(s, k, v)); }},
       }},
      {"deepfilternet",
       {
           {"conv_lookahead", [&](auto& s, auto& k, auto& v) { o.conv_lookahead(parse_int(s, k, v)); }},
           {"conv_ch", [&](auto& s, auto& k, auto& v) { o.conv_ch(parse_int(s, k, v)); }},
           {"conv_kernel", [&](auto& s, auto& k, auto& v) { o.conv_kernel(parse_int_list(s, k, v)); }},
           {"convt_kernel", [&](auto& s, auto& k, auto& v) { o.convt_kernel(parse_int_list(s, k, v)); }},
           {"conv_kernel_inp", [&](auto& s, auto& k, auto& v) { o.conv_kernel_inp(parse_int_list(s, k, v)); }},
           {"emb_hidden_dim", [&](auto& s, auto& k, auto& v) { o.emb_hidden_dim(parse_int(s, k, v)); }},
           {"emb_num_layers", [&](auto& s, auto& k, auto& v) { o.emb_num_layers(parse_int(s, k, v)); }},
           {"emb_gru_skip",
            [&](auto& s, auto& k, auto& v) {
              try {
                o.emb_gru_skip(gru_skip_from_string(v.text));
              } catch (const c10::Error&) {
                bad_value(s, k, v, "none, identity or groupedlinear");
              }
            }},
           {"emb_gru_skip_enc",
            [&](auto& s, auto& k, auto& v) {
              try {
                o.emb_gru_skip_enc(gru_skip_from_string(v.text));
              } catch (const c10::Error&) {
                bad_value(s, k, v, "none, identity or groupedlinear");
              }
            }},
           {"df_hidden_dim", [&](auto& s, auto& k, auto& v) { o.df_hidden_dim(parse_int(s, k, v)); }},
           {"df_num_layers", [&](auto& s, auto& k, auto& v) { o.df_num_layers(parse_int(s, k, v)); }},
           {"df_gru_skip",
            [&](auto& s, auto& k, auto& v) {
              try {
                o.df_gru_skip(gru_skip_from_string(v.text));
              } catch (const c10::Error&) {
                bad_value(s, k, v, "none, identity or groupedlinear");
              }
            }},
           {"df_pathway_kernel_size_t",
            [&](auto& s, auto& k, auto& v) { o.df_pathway_kernel_size_t(parse_int(s, k, v)); }},
           {"linear_groups", [&](auto& s, auto& k, auto& v) { o.linear_groups(parse_int(s, k, v)); }},
           {"enc_linear_groups", [&](auto& s, auto& k, auto& v) { o.enc_linear_groups(parse_int(s, k, v)); }},
           {"enc_concat", [&](auto& s, auto& k, auto& v) { o.enc_concat(parse_bool(s, k, v)); }},
           {"df_n_iter", [&](auto& s, auto& k, auto& v) { o.df_n_iter(parse_int(s, k, v)); }},
           {"lsnr_dropout", [&](auto& s, auto& k, auto& v) { o.lsnr_dropout(parse_bool(s, k, v)); }},
           {"mask_pf", [&](auto& s, auto& k, auto& v) { o.mask_pf(parse_bool(s, k, v)); }},
           {"pf_beta", [&](auto& s, auto& k, auto& v) { o.pf_beta(parse_double(s, k, v)); }},
       }},
  };
  for (const auto& [section, keys] : readers) {
    auto sec = sections.find(section);
    if (sec == sections.end()) continue;
    for (const auto& [key, value] : sec->second) {
      auto r = keys.find(key);
      if (r != keys.end()) r->second(section, key, value);
      // Other keys (conv_depthwise, dfop_method, pad_mode, ...) are in the published file but not
      // read by the DFN3 model.
    }
  }
  o.Validate();
  return o;
}

}  // namespace sepmech
