// sepmech spectrogram [FILE...] [-o out.png] [--title ...]: one PNG with the log-magnitude
// spectrograms of the files stacked (one shared dB scale). No file: the built-in speech.
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "audio_common.h"
#include "command.h"
#include "sepmech/plot/figure.h"

namespace {

using namespace sepmech;
namespace fs = std::filesystem;

struct SpecArgs {
  std::vector<std::string> files;
  std::string out = "spectrogram.png";
  std::string title;
  std::string colormap = "magma";
  double db_range = 80.0;
  double max_khz = 0.0;
  int width = 900;
  int panel_height = 180;
  bool json = false;
};

int run_spectrogram(const SpecArgs& a) {
  plot::SpectrogramFigureOptions fo;
  fo.colormap = plot::colormap_from_string(a.colormap);
  fo.db_range = a.db_range;
  if (a.max_khz > 0) fo.max_frequency = a.max_khz * 1000.0;
  fo.title = a.title;
  fo.width = a.width;
  fo.panel_height = a.panel_height;
  fo.Validate();
  std::string out = a.out;
  std::error_code ec;
  if (fs::is_directory(out, ec)) out = cli::join(out, "spectrogram.png");

  std::vector<std::string> files = a.files.empty() ? std::vector<std::string>{""} : a.files;
  std::vector<plot::SpectrogramPanel> panels;
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& f : files) {
    cli::MonoAudio m = cli::load_mono(f);
    const double seconds = static_cast<double>(m.wave.size(0)) / m.sample_rate;
    const double peak = m.wave.abs().max().item<double>();
    const double rms = std::sqrt(m.wave.square().mean().item<double>());
    std::string title = m.name + "  (" + std::to_string(m.sample_rate) + " Hz" +
                        (m.channels > 1 ? ", mean of " + std::to_string(m.channels) + " channels" : "") + ")";
    panels.push_back(plot::spectrogram_panel(m.wave, m.sample_rate, title));
    rows.push_back({{"file", m.name},
                    {"sample_rate", m.sample_rate},
                    {"channels", m.channels},
                    {"seconds", seconds},
                    {"peak_dbfs", cli::json_number(20 * std::log10(peak))},
                    {"rms_dbfs", cli::json_number(20 * std::log10(rms))}});
  }
  plot::write_spectrogram_png(out, panels, fo);
  if (a.json) {
    std::cout << nlohmann::json{{"figure", out}, {"panels", rows}}.dump() << "\n";
    return 0;
  }
  std::size_t width = 4;
  for (const auto& r : rows) width = std::max(width, r["file"].get<std::string>().size() + 2);
  std::cout << std::left << std::setw(static_cast<int>(width)) << "file" << std::right << std::setw(8) << "Hz"
            << std::setw(4) << "ch" << std::setw(9) << "seconds" << std::setw(11) << "peak dBFS" << std::setw(10)
            << "RMS dBFS" << "\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& m = rows[i];
    auto db = [](const nlohmann::json& v) { return v.is_null() ? std::string("-inf") : cli::fixed(v.get<double>(), 1); };
    std::cout << std::left << std::setw(static_cast<int>(width)) << m["file"].get<std::string>() << std::right
              << std::setw(8) << m["sample_rate"].get<int>() << std::setw(4) << m["channels"].get<int>()
              << std::setw(9) << cli::fixed(m["seconds"].get<double>()) << std::setw(11) << db(m["peak_dbfs"])
              << std::setw(10) << db(m["rms_dbfs"]) << "\n";
  }
  std::cout << "wrote " << out << "\n";
  return 0;
}

sepmech::cli::RegisterCommand reg(52, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("spectrogram", "stacked log-magnitude spectrograms of audio files in one PNG");
  auto a = std::make_shared<SpecArgs>();
  cmd->add_option("files", a->files, "audio files, one panel each (none: the built-in speech)");
  cmd->add_option("-o,--out", a->out, "PNG to write (a folder: FOLDER/spectrogram.png)")->capture_default_str();
  cmd->add_option("--title", a->title, "figure title");
  cmd->add_option("--colormap", a->colormap, "magma or viridis")->capture_default_str();
  cmd->add_option("--db-range", a->db_range, "span of the colour scale in dB below the loudest bin")
      ->check(CLI::Range(1.0, 300.0))
      ->capture_default_str();
  cmd->add_option("--max-khz", a->max_khz, "top of the frequency axis in kHz (0: the highest Nyquist frequency)")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
  cmd->add_option("--width", a->width, "PNG width in pixels")->check(CLI::Range(200, 8000))->capture_default_str();
  cmd->add_option("--panel-height", a->panel_height, "pixels per spectrogram")
      ->check(CLI::Range(40, 4000))
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "one JSON object instead of the table");
  cmd->callback([a, &exit_code] { exit_code = run_spectrogram(*a); });
});

}  // namespace
