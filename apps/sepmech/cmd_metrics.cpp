// sepmech metrics [CLEAN ESTIMATE] [--json] [-o DIR]: SI-SDR, SNR, STOI and ESTOI of an estimate
// against its clean reference; two folders: every file name present in both, plus the means.
// Without arguments: a demonstration on the built-in speech with white noise at several SNRs
// (writes the noisy WAVs and metrics.png, the metrics against the input SNR).
//
// Rules (docs/audio.md): the estimate is resampled to the clean rate if the rates differ; different
// lengths are cropped to the shorter with a warning; the channel counts must be equal (metrics are
// the mean over channels); an identical estimate has SI-SDR = SNR = +inf ("inf", JSON null).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "audio_common.h"
#include "command.h"
#include "sepmech/audio/metrics.h"
#include "sepmech/audio/noise.h"
#include "sepmech/audio/resample.h"
#include "sepmech/plot/figure.h"

namespace {

using namespace sepmech;
namespace fs = std::filesystem;

struct MetricsArgs {
  std::vector<std::string> paths;
  bool json = false;
  std::string out_dir;
};

struct Scores {
  double si_sdr = 0, snr = 0, stoi = 0, estoi = 0;
};

// Library errors (c10::Error "sepmech::si_sdr: clean must ...") prefixed with the file.
template <class F>
double checked(const std::string& file, const char* metric, F&& f) {
  double v;
  try {
    v = f();
  } catch (const c10::Error& e) {
    throw std::runtime_error(file + ": " + e.what_without_backtrace());
  }
  if (std::isnan(v)) throw std::runtime_error(file + ": " + metric + " is undefined (NaN) for these signals");
  return v;
}

Scores score_signals(const torch::Tensor& clean, const torch::Tensor& est, int rate, const std::string& who) {
  // clean, est: float32 [C, n], equal shapes.
  Scores s;
  const int64_t C = clean.size(0);
  for (int64_t ch = 0; ch < C; ++ch) {
    const torch::Tensor x = clean[ch], y = est[ch];
    if (audio::mean_power(x) == 0.0)
      throw std::runtime_error(who + ": the clean signal is silent (all samples 0): the metrics are undefined");
    s.si_sdr += checked(who, "SI-SDR", [&] { return audio::si_sdr(x, y); });
    s.snr += checked(who, "SNR", [&] { return audio::snr(x, y); });
    s.stoi += checked(who, "STOI", [&] { return audio::stoi(x, y, rate); });
    s.estoi += checked(who, "ESTOI", [&] { return audio::estoi(x, y, rate); });
  }
  s.si_sdr /= C;
  s.snr /= C;
  s.stoi /= C;
  s.estoi /= C;
  return s;
}

Scores score_files(const std::string& clean_path, const std::string& est_path) {
  audio::Audio c = audio::read_audio(clean_path), e = audio::read_audio(est_path);
  const int64_t cc = c.samples.size(0), ec = e.samples.size(0);
  if (cc != ec)
    throw std::runtime_error(est_path + ": " + std::to_string(ec) + " channel(s), but the clean file " + clean_path +
                             " has " + std::to_string(cc) + " (the channel counts must be equal)");
  torch::Tensor x = c.samples.to(torch::kFloat32), y = e.samples.to(torch::kFloat32);
  if (!torch::isfinite(x).all().item<bool>()) throw audio::AudioError(clean_path, "holds NaN or infinite samples");
  if (!torch::isfinite(y).all().item<bool>()) throw audio::AudioError(est_path, "holds NaN or infinite samples");
  if (e.sample_rate != c.sample_rate) {
    cli::warn(est_path + ": " + std::to_string(e.sample_rate) + " Hz, resampled to the clean rate " +
              std::to_string(c.sample_rate) + " Hz");
    y = audio::resample(y, e.sample_rate, c.sample_rate);
  }
  const int64_t n = std::min(x.size(1), y.size(1));
  if (n < 1) throw std::runtime_error(est_path + ": no samples left after resampling to the clean rate");
  if (x.size(1) != y.size(1)) {
    cli::warn(est_path + ": " + std::to_string(y.size(1)) + " samples, clean " + std::to_string(x.size(1)) +
              "; both cropped to " + std::to_string(n));
    x = x.narrow(1, 0, n);
    y = y.narrow(1, 0, n);
  }
  return score_signals(x, y, c.sample_rate, est_path);
}

nlohmann::json to_json(const Scores& s) {
  return {{"si_sdr", cli::json_number(s.si_sdr)},
          {"snr", cli::json_number(s.snr)},
          {"stoi", cli::json_number(s.stoi)},
          {"estoi", cli::json_number(s.estoi)}};
}

void print_header(std::size_t width) {
  std::cout << std::left << std::setw(static_cast<int>(width)) << "file" << std::right << std::setw(10) << "SI-SDR"
            << std::setw(10) << "SNR" << std::setw(8) << "STOI" << std::setw(8) << "ESTOI" << "\n";
}

void print_row(const std::string& name, std::size_t width, const Scores& s) {
  std::cout << std::left << std::setw(static_cast<int>(width)) << name << std::right << std::setw(10)
            << cli::fixed(s.si_sdr) << std::setw(10) << cli::fixed(s.snr) << std::setw(8) << cli::fixed(s.stoi, 3)
            << std::setw(8) << cli::fixed(s.estoi, 3) << "\n";
}

std::vector<std::string> common_names(const std::string& a, const std::string& b) {
  auto names = [](const std::string& dir) {
    std::set<std::string> s;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file()) s.insert(e.path().filename().string());
    if (ec) throw std::runtime_error(dir + ": cannot list the folder: " + ec.message());
    return s;
  };
  const auto na = names(a), nb = names(b);
  std::vector<std::string> both;
  std::set_intersection(na.begin(), na.end(), nb.begin(), nb.end(), std::back_inserter(both));
  const std::size_t only = na.size() + nb.size() - 2 * both.size();
  if (both.empty()) throw std::runtime_error(a + ", " + b + ": no file name is present in both folders");
  if (only) cli::warn(std::to_string(only) + " file(s) present in only one of the folders, skipped");
  return both;
}

int run_folders(const MetricsArgs& a) {
  const auto names = common_names(a.paths[0], a.paths[1]);
  std::size_t width = 4;
  for (const auto& n : names) width = std::max(width, n.size() + 2);
  if (!a.json) print_header(width);
  Scores mean;
  for (const auto& name : names) {
    Scores s = score_files(cli::join(a.paths[0], name), cli::join(a.paths[1], name));
    mean.si_sdr += s.si_sdr;
    mean.snr += s.snr;
    mean.stoi += s.stoi;
    mean.estoi += s.estoi;
    if (a.json) {
      nlohmann::json j{{"file", name}};
      j.update(to_json(s));
      std::cout << j.dump() << "\n" << std::flush;
    } else {
      print_row(name, width, s);
    }
  }
  const double k = static_cast<double>(names.size());
  mean = {mean.si_sdr / k, mean.snr / k, mean.stoi / k, mean.estoi / k};
  if (a.json) {
    nlohmann::json j{{"summary", "mean"}, {"files", names.size()}};
    j.update(to_json(mean));
    std::cout << j.dump() << "\n";
  } else {
    print_row("mean (" + std::to_string(names.size()) + ")", width, mean);
  }
  return 0;
}

int run_pair(const MetricsArgs& a) {
  const Scores s = score_files(a.paths[0], a.paths[1]);
  if (a.json) {
    nlohmann::json j{{"clean", a.paths[0]}, {"file", a.paths[1]}};
    j.update(to_json(s));
    std::cout << j.dump() << "\n";
  } else {
    std::size_t width = std::max<std::size_t>(4, a.paths[1].size() + 2);
    print_header(width);
    print_row(a.paths[1], width, s);
  }
  if (!a.out_dir.empty()) {
    // clean / estimate / residual spectrograms (mono mixes) at the clean rate.
    cli::MonoAudio c = cli::load_mono(a.paths[0]), e = cli::load_mono(a.paths[1]);
    if (e.sample_rate != c.sample_rate) e.wave = audio::resample(e.wave.unsqueeze(0), e.sample_rate, c.sample_rate)[0];
    const int64_t n = std::min(c.wave.size(0), e.wave.size(0));
    const torch::Tensor x = c.wave.narrow(0, 0, n), y = e.wave.narrow(0, 0, n);
    cli::ensure_dir(a.out_dir);
    const std::string png = cli::join(a.out_dir, "metrics.png");
    plot::SpectrogramFigureOptions fo;
    fo.title = "SI-SDR " + cli::fixed(s.si_sdr) + " dB, STOI " + cli::fixed(s.stoi, 3);
    plot::write_spectrogram_png(png,
                                {plot::spectrogram_panel(x, c.sample_rate, "clean: " + a.paths[0]),
                                 plot::spectrogram_panel(y, c.sample_rate, "estimate: " + a.paths[1]),
                                 plot::spectrogram_panel(y - x, c.sample_rate, "estimate - clean")},
                                fo);
    if (!a.json) std::cout << "wrote " << png << "\n";
  }
  return 0;
}

// No arguments: the built-in speech with white noise at -5 ... 20 dB.
int run_demo(const MetricsArgs& a) {
  cli::MonoAudio clean = cli::load_mono("");
  const std::string dir = a.out_dir.empty() ? "." : a.out_dir;
  cli::ensure_dir(dir);
  const torch::Tensor noise =
      audio::make_noise(audio::NoiseKind::white, clean.wave.size(0), audio::NoiseOptions().sample_rate(clean.sample_rate));
  plot::Series sisdr{"SI-SDR (dB)", {}, {}}, stoi{"STOI (%)", {}, {}}, estoi{"ESTOI (%)", {}, {}};
  std::vector<std::string> written;
  if (!a.json) print_header(24);
  for (double snr : {-5.0, 0.0, 5.0, 10.0, 20.0}) {
    audio::Mixture m = audio::mix_at_snr(clean.wave, noise, snr);
    const std::string name = "noisy_white_" + cli::fixed(snr, 0) + "dB.wav";
    const std::string path = cli::join(dir, name);
    cli::write_wav(path, m.noisy, clean.sample_rate);
    written.push_back(path);
    const Scores s = score_signals(m.clean.unsqueeze(0), m.noisy.unsqueeze(0), clean.sample_rate, name);
    sisdr.x.push_back(snr);
    sisdr.y.push_back(s.si_sdr);
    stoi.x.push_back(snr);
    stoi.y.push_back(100.0 * s.stoi);
    estoi.x.push_back(snr);
    estoi.y.push_back(100.0 * s.estoi);
    if (a.json) {
      nlohmann::json j{{"file", path}, {"input_snr", snr}};
      j.update(to_json(s));
      std::cout << j.dump() << "\n";
    } else {
      print_row(name, 24, s);
    }
  }
  const std::string png = cli::join(dir, "metrics.png");
  plot::LinePlotOptions lo;
  lo.title = "built-in speech + white noise";
  lo.x_label = "input SNR (dB)";
  lo.y_label = "SI-SDR (dB), STOI and ESTOI (%)";
  lo.markers = true;
  plot::write_line_plot_png(png, {sisdr, stoi, estoi}, lo);
  if (!a.json) std::cout << "wrote " << written.size() << " noisy WAVs and " << png << " into " << dir << "\n";
  return 0;
}

int run_metrics(const MetricsArgs& a) {
  if (a.paths.empty()) return run_demo(a);
  if (a.paths.size() != 2)
    throw std::runtime_error("metrics takes CLEAN ESTIMATE (two files or two folders), got " +
                             std::to_string(a.paths.size()) + " argument(s)");
  std::error_code ec;
  const bool d0 = fs::is_directory(a.paths[0], ec), d1 = fs::is_directory(a.paths[1], ec);
  if (d0 && d1) return run_folders(a);
  if (d0 != d1)
    throw std::runtime_error((d0 ? a.paths[0] : a.paths[1]) + ": a folder, but " + (d0 ? a.paths[1] : a.paths[0]) +
                             " is not (give two files or two folders)");
  return run_pair(a);
}

sepmech::cli::RegisterCommand reg(51, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("metrics", "SI-SDR, SNR, STOI and ESTOI of an estimate against the clean signal (files or folders)");
  auto a = std::make_shared<MetricsArgs>();
  cmd->add_option("paths", a->paths, "CLEAN ESTIMATE: two audio files, or two folders (every file name in both); "
                                     "none: a demonstration on the built-in speech");
  cmd->add_flag("--json", a->json, "JSON lines: one object per file, then the means");
  cmd->add_option("-o,--out", a->out_dir, "folder for metrics.png (two files: clean/estimate/residual spectrograms; "
                                          "demonstration: also its WAVs, default .)");
  cmd->callback([a, &exit_code] { exit_code = run_metrics(*a); });
});

}  // namespace
