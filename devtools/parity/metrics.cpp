// Parity adapter for the `metrics` golden family (spec: ../shared/spec/metrics.md): pystoi's STOI
// and ESTOI plus numpy SI-SDR / SNR on in.clean, in.estimate at in.fs.
#include "parity/parity.h"
#include "sepmech/audio/metrics.h"

namespace {

using sepmech::parity::Case;
using sepmech::parity::Outputs;
using sepmech::parity::Unsupported;

Outputs run(const Case& c) {
  const torch::Tensor& fs_t = c.at("in.fs");
  if (fs_t.numel() != 1) throw Unsupported("metrics in.fs must hold one value, got shape " + c10::str(fs_t.sizes()));
  const int64_t fs = fs_t.to(torch::kInt64).item<int64_t>();
  if (c.config.is_object() && c.config.contains("fs") && c.config.at("fs").get<int64_t>() != fs)
    throw Unsupported("metrics config fs disagrees with in.fs");
  const torch::Tensor x = c.at("in.clean").to(torch::kFloat64);
  const torch::Tensor y = c.at("in.estimate").to(torch::kFloat64);
  auto scalar = [](double v) { return torch::full({1}, v, torch::kFloat64); };
  Outputs out;
  out["out.stoi"] = scalar(sepmech::audio::stoi(x, y, fs));
  out["out.estoi"] = scalar(sepmech::audio::estoi(x, y, fs));
  out["out.si_sdr"] = scalar(sepmech::audio::si_sdr(x, y));
  out["out.snr"] = scalar(sepmech::audio::snr(x, y));
  return out;
}

sepmech::parity::RegisterAdapter reg("metrics", run);

}  // namespace
