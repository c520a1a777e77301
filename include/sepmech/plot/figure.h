#pragma once
// Figures as PNG files, drawn with cairo: stacked log-magnitude spectrograms sharing one dB scale
// and one colour bar, and line plots with several series.
//
//   #include <sepmech/plot/figure.h>
//   using namespace sepmech::plot;
//   std::vector<SpectrogramPanel> panels{
//       spectrogram_panel(noisy, 16000, "noisy"), spectrogram_panel(clean, 16000, "clean")};
//   write_spectrogram_png("spec.png", panels);                       // one PNG, panels stacked
//
//   LinePlotOptions o;  o.title = "loss";  o.x_label = "step";  o.y_label = "MSE";  o.log_y = true;
//   write_line_plot_png("loss.png", {{"train", steps, train}, {"valid", steps, valid}}, o);
//
// Bad arguments (no panel or series, empty or mismatched data, NaN, a non-positive value on a log
// axis, a size out of range) throw std::invalid_argument naming the argument; a file that cannot be
// written throws PlotError naming the file. Text uses cairo's toy text API ("sans-serif").
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "sepmech/io/errors.h"

namespace sepmech::plot {

/// A PNG cannot be written or read; what() = "<file>: <reason>".
class PlotError : public io::FormatError {
 public:
  using io::FormatError::FormatError;
};

/// Perceptually uniform colour maps (the 256-entry tables of matplotlib, CC0).
enum class Colormap { magma, viridis };
std::string to_string(Colormap c);
/// "magma" / "viridis"; c10::Error listing the choices otherwise.
Colormap colormap_from_string(const std::string& s);
/// Colour of v in [0, 1] (clamped) as 0xRRGGBB, nearest of the 256 entries.
uint32_t colormap_rgb(Colormap c, double v);

/// One spectrogram: a dB image with its axes.
struct SpectrogramPanel {
  /// [F, T] level in dB; row 0 = 0 Hz, row F-1 = max_frequency; every value finite
  torch::Tensor db;
  /// seconds covered by the T columns (x axis from 0 to duration), > 0
  double duration = 0.0;
  /// frequency of the top row in Hz (sample_rate / 2 for an STFT), > 0
  double max_frequency = 0.0;
  /// panel title, drawn above it
  std::string title;
};

/// Analysis for spectrogram_panel().
struct SpectrogramAnalysis {
  /// window length in seconds (rounded to samples, >= 16 samples); 32 ms resolves speech harmonics
  double window_seconds = 0.032;
  /// frame advance as a fraction of the window, in (0, 1]
  double hop_fraction = 0.25;
  /// level floor in dB re full scale (a digital-silence bin shows this, not -inf)
  double floor_db = -150.0;
  void Validate() const;
};

/// Log-magnitude spectrogram of a 1-D signal (float, finite, >= 1 sample): periodic Hann STFT, centred
/// frames; dB = 20 log10 |X| / (sum of the window / 2), so a full-scale sine reads about 0 dB.
SpectrogramPanel spectrogram_panel(const torch::Tensor& wave, int sample_rate, std::string title,
                                   const SpectrogramAnalysis& analysis = {});

struct SpectrogramFigureOptions {
  /// PNG width in pixels, in [200, 8000]
  int width = 900;
  /// height of each panel's image area in pixels, in [40, 4000]
  int panel_height = 180;
  /// colour map of the dB scale
  Colormap colormap = Colormap::magma;
  /// top of the colour scale in dB; unset: the highest value over all panels (rounded up to 5 dB)
  std::optional<double> db_max;
  /// span of the colour scale in dB (> 0); values below db_max - db_range show the lowest colour
  double db_range = 80.0;
  /// upper end of the frequency axis in Hz (> 0); unset: the highest max_frequency of the panels
  std::optional<double> max_frequency;
  /// figure title above all panels; empty: none
  std::string title;
  void Validate() const;
};

/// Writes the panels stacked top to bottom into one PNG with one shared dB scale, a colour bar with
/// dB ticks, time (s) and frequency (kHz) axes with ticks, and each panel's title. The PNG is
/// options.width wide and 36 + (title empty ? 0 : 30) + panels * (panel_height + 46) pixels high.
void write_spectrogram_png(const std::string& path, const std::vector<SpectrogramPanel>& panels,
                           const SpectrogramFigureOptions& options = {});

/// One line of a line plot.
struct Series {
  /// legend entry; empty: not in the legend
  std::string label;
  /// abscissae, finite, as many as y
  std::vector<double> x;
  /// ordinates, finite (> 0 on a log-y plot)
  std::vector<double> y;
};

struct LinePlotOptions {
  /// PNG width in pixels, in [200, 8000]
  int width = 800;
  /// PNG height in pixels, in [150, 8000]
  int height = 480;
  /// title above the plot; empty: none
  std::string title;
  /// label under the x axis
  std::string x_label;
  /// label left of the y axis
  std::string y_label;
  /// logarithmic y axis (decade ticks); every y must then be > 0
  bool log_y = false;
  /// draw a marker at every point as well as the line
  bool markers = false;
  void Validate() const;
};

/// Writes a line plot (one colour per series, legend, ticks, labels) into a PNG.
void write_line_plot_png(const std::string& path, const std::vector<Series>& series,
                         const LinePlotOptions& options = {});

/// A decoded PNG: width x height pixels, row-major 0xAARRGGBB.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint32_t> pixels;
  uint32_t at(int x, int y) const { return pixels[static_cast<size_t>(y) * width + x]; }
};

/// Reads a PNG (through cairo); PlotError naming the file if it is missing or not a PNG.
Image read_png(const std::string& path);

/// "Nice" tick positions (1, 2 or 5 times a power of ten) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace sepmech::plot
