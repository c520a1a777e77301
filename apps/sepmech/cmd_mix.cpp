// sepmech mix [CLEAN] [--noise FILE|white|pink|brown|babble|hum] [--snr DB] [--seed N] [-o DIR]:
// clean speech (default: the built-in recording) plus noise scaled to an exact SNR. Writes
// clean.wav, noise.wav, noisy.wav and mix.png (clean / noise / noisy spectrograms) into DIR and
// prints the SNR measured on the written files.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>

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

struct MixArgs {
  std::string clean;
  std::string noise = "pink";
  double snr = 5.0;
  uint64_t seed = 0;
  std::string out_dir = ".";
  int rate = 0;
  bool json = false;
  std::string colormap = "magma";
  int width = 900;
  int panel_height = 180;
};

int run_mix(const MixArgs& a) {
  if (!std::isfinite(a.snr)) throw std::invalid_argument("--snr must be a finite number of dB, got " + std::to_string(a.snr));
  const plot::Colormap cmap = plot::colormap_from_string(a.colormap);
  cli::MonoAudio clean = cli::load_mono(a.clean);
  if (a.rate > 0 && a.rate != clean.sample_rate) {
    clean.wave = audio::resample(clean.wave.unsqueeze(0), clean.sample_rate, a.rate)[0];
    clean.sample_rate = a.rate;
  }
  const int64_t n = clean.wave.size(0);
  if (n < 1) throw audio::AudioError(clean.name, "has no samples after resampling");
  if (audio::mean_power(clean.wave) == 0.0)
    throw audio::AudioError(clean.name, "is silent (all samples 0): no SNR can be set");

  torch::Tensor noise;
  std::string noise_name;
  if (audio::is_noise_kind(a.noise)) {
    const auto kind = audio::noise_kind_from_string(a.noise);
    noise = audio::make_noise(kind, n, audio::NoiseOptions().sample_rate(clean.sample_rate).seed(a.seed));
    noise_name = a.noise + (kind == audio::NoiseKind::hum ? " (50 Hz)" : " (seed " + std::to_string(a.seed) + ")");
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(a.noise, ec))
      throw std::invalid_argument("--noise must be an audio file or one of white, pink, brown, babble, hum, got '" +
                                  a.noise + "' (no such file)");
    cli::MonoAudio nf = cli::load_mono(a.noise);
    noise = nf.wave;
    if (nf.sample_rate != clean.sample_rate) {
      noise = audio::resample(noise.unsqueeze(0), nf.sample_rate, clean.sample_rate)[0];
      if (noise.size(0) == 0) throw audio::AudioError(a.noise, "has no samples at the clean rate");
    }
    if (audio::mean_power(noise) == 0.0) throw audio::AudioError(a.noise, "is silent (all samples 0): no SNR can be set");
    if (noise.size(0) < n)
      cli::warn(a.noise + ": shorter than the clean signal (" + std::to_string(noise.size(0)) + " < " +
                std::to_string(n) + " samples), looped");
    noise_name = a.noise;
  }

  audio::Mixture m = audio::mix_at_snr(clean.wave, noise, a.snr);
  cli::ensure_dir(a.out_dir);
  const std::string clean_wav = cli::join(a.out_dir, "clean.wav"), noise_wav = cli::join(a.out_dir, "noise.wav"),
                    noisy_wav = cli::join(a.out_dir, "noisy.wav"), png = cli::join(a.out_dir, "mix.png");
  cli::write_wav(clean_wav, m.clean, clean.sample_rate);
  cli::write_wav(noise_wav, m.noise, clean.sample_rate);
  cli::write_wav(noisy_wav, m.noisy, clean.sample_rate);
  // Measured on what was written (16-bit PCM), as a user reading the files would.
  const torch::Tensor c = audio::read_audio(clean_wav).samples[0], y = audio::read_audio(noisy_wav).samples[0];
  const double measured = audio::snr(c, y);
  const double exact = audio::snr(m.clean, m.clean + m.noise);

  std::vector<plot::SpectrogramPanel> panels{
      plot::spectrogram_panel(m.clean, clean.sample_rate, "clean: " + clean.name),
      plot::spectrogram_panel(m.noise, clean.sample_rate, "noise: " + noise_name),
      plot::spectrogram_panel(m.noisy, clean.sample_rate, "noisy: SNR " + cli::fixed(measured) + " dB")};
  plot::SpectrogramFigureOptions fo;
  fo.colormap = cmap;
  fo.width = a.width;
  fo.panel_height = a.panel_height;
  fo.title = "mix at " + cli::fixed(a.snr) + " dB SNR";
  plot::write_spectrogram_png(png, panels, fo);

  const double seconds = static_cast<double>(n) / clean.sample_rate;
  if (a.json) {
    nlohmann::json j{{"clean", clean.name},
                     {"noise", noise_name},
                     {"sample_rate", clean.sample_rate},
                     {"frames", n},
                     {"seconds", seconds},
                     {"snr_target", a.snr},
                     {"snr_measured", cli::json_number(measured)},
                     {"snr_float", cli::json_number(exact)},
                     {"noise_gain", m.noise_gain},
                     {"headroom", m.headroom},
                     {"files", {{"clean", clean_wav}, {"noise", noise_wav}, {"noisy", noisy_wav}, {"figure", png}}}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "clean         " << clean.name << " (" << clean.sample_rate << " Hz, " << cli::fixed(seconds)
              << " s)\n"
              << "noise         " << noise_name << "\n"
              << "target SNR    " << cli::fixed(a.snr) << " dB\n"
              << "measured SNR  " << cli::fixed(measured, 3) << " dB (written 16-bit files)\n";
    if (m.headroom < 1.0)
      std::cout << "headroom      all three scaled by " << cli::fixed(m.headroom, 3) << " so noisy does not clip\n";
    std::cout << "wrote         " << clean_wav << ", " << noise_wav << ", " << noisy_wav << ", " << png << "\n";
  }
  return 0;
}

sepmech::cli::RegisterCommand reg(50, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("mix", "add noise to clean speech at an exact SNR (writes WAVs and a spectrogram PNG)");
  auto a = std::make_shared<MixArgs>();
  cmd->add_option("clean", a->clean, "clean speech file (default: the built-in recording, alsa-utils' Front_Center.wav)");
  cmd->add_option("--noise", a->noise, "noise file, or a generated type: white, pink, brown, babble, hum")
      ->capture_default_str();
  cmd->add_option("--snr", a->snr, "signal-to-noise ratio in dB")->check(CLI::Range(-100.0, 100.0))->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the generated noise")->capture_default_str();
  cmd->add_option("-o,--out", a->out_dir, "output folder (created if needed)")->capture_default_str();
  cmd->add_option("--rate", a->rate, "resample the clean speech to this rate in Hz first (0 = keep)")
      ->check(CLI::Range(0, 768000))
      ->capture_default_str();
  cmd->add_option("--colormap", a->colormap, "magma or viridis")->capture_default_str();
  cmd->add_option("--width", a->width, "figure width in pixels")->check(CLI::Range(200, 8000))->capture_default_str();
  cmd->add_option("--panel-height", a->panel_height, "pixels per spectrogram")
      ->check(CLI::Range(40, 4000))
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "one JSON object instead of the table");
  cmd->callback([a, &exit_code] { exit_code = run_mix(*a); });
});

}  // namespace
