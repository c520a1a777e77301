// PNG figures drawn with cairo (include/sepmech/plot/figure.h).
#include "sepmech/plot/figure.h"

#include <cairo.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>

#include <torch/torch.h>

#include "plot/colormaps.h"
#include "sepmech/audio/stft.h"

namespace sepmech::plot {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

void check_size(const char* what, int v, int lo, int hi) {
  if (v < lo || v > hi)
    bad(std::string(what) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
        std::to_string(v));
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// cairo helpers
// ---------------------------------------------------------------------------------------------

struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* c) const { cairo_destroy(c); }
};
using Surface = std::unique_ptr<cairo_surface_t, SurfaceDeleter>;
using Context = std::unique_ptr<cairo_t, ContextDeleter>;

Surface make_surface(int w, int h) {
  Surface s(cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h));
  if (cairo_surface_status(s.get()) != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cairo: cannot create a ") + std::to_string(w) + "x" + std::to_string(h) +
                             " image: " + cairo_status_to_string(cairo_surface_status(s.get())));
  return s;
}

struct PngSink {
  std::FILE* f = nullptr;
  int error = 0;
};

cairo_status_t png_write(void* closure, const unsigned char* data, unsigned int length) {
  auto* sink = static_cast<PngSink*>(closure);
  if (std::fwrite(data, 1, length, sink->f) != length) {
    sink->error = errno ? errno : EIO;
    return CAIRO_STATUS_WRITE_ERROR;
  }
  return CAIRO_STATUS_SUCCESS;
}

// cairo_surface_write_to_png through our own stream, so an unwritable path says why (errno).
void write_png(cairo_surface_t* surface, const std::string& path) {
  cairo_surface_flush(surface);
  errno = 0;
  PngSink sink;
  sink.f = std::fopen(path.c_str(), "wb");
  if (!sink.f) throw PlotError(path, std::string("cannot write the PNG: ") + std::strerror(errno));
  cairo_status_t st = cairo_surface_write_to_png_stream(surface, png_write, &sink);
  const bool closed = std::fclose(sink.f) == 0;
  if (st != CAIRO_STATUS_SUCCESS || !closed) {
    std::remove(path.c_str());
    std::string why = sink.error ? std::strerror(sink.error) : cairo_status_to_string(st);
    throw PlotError(path, "cannot write the PNG: " + why);
  }
}

void set_rgb(cairo_t* cr, uint32_t rgb) {
  cairo_set_source_rgb(cr, ((rgb >> 16) & 255) / 255.0, ((rgb >> 8) & 255) / 255.0, (rgb & 255) / 255.0);
}

void font(cairo_t* cr, double size, bool bold = false) {
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

// Text anchored at (x, y): ax = 0 left, 0.5 centre, 1 right; ay = 0 top, 0.5 middle, 1 baseline.
void text(cairo_t* cr, const std::string& s, double x, double y, double ax, double ay) {
  if (s.empty()) return;
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  const double h = fe.ascent;  // cap height-ish, independent of the string's own glyphs
  cairo_move_to(cr, x - ax * e.x_advance, y + (1.0 - ay) * h);
  cairo_show_text(cr, s.c_str());
}

void text_rotated(cairo_t* cr, const std::string& s, double x, double y) {
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, -M_PI / 2);
  text(cr, s, 0, 0, 0.5, 0.5);
  cairo_restore(cr);
}

double text_width(cairo_t* cr, const std::string& s) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  return e.x_advance;
}

// Decimals enough to tell ticks `step` apart.
std::string tick_label(double v, double step) {
  int decimals = 0;  // the fewest that write `step` exactly (0.25 needs 2, 0.5 one)
  while (decimals < 9) {
    const double scaled = step * std::pow(10.0, decimals);
    if (std::abs(scaled - std::round(scaled)) < 1e-6 * std::max(1.0, scaled)) break;
    ++decimals;
  }
  if (std::abs(v) < step * 1e-6) v = 0.0;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

double tick_step(const std::vector<double>& t) { return t.size() > 1 ? t[1] - t[0] : 1.0; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Colour maps, ticks
// ---------------------------------------------------------------------------------------------

std::string to_string(Colormap c) { return c == Colormap::magma ? "magma" : "viridis"; }

Colormap colormap_from_string(const std::string& s) {
  if (s == "magma") return Colormap::magma;
  if (s == "viridis") return Colormap::viridis;
  TORCH_CHECK(false, "sepmech::plot::Colormap: name must be one of magma, viridis, got '", s, "'");
}

uint32_t colormap_rgb(Colormap c, double v) {
  const uint8_t* t = c == Colormap::magma ? detail::kMagma : detail::kViridis;
  if (!(v >= 0.0)) v = 0.0;  // also NaN
  if (v > 1.0) v = 1.0;
  const int i = static_cast<int>(std::lround(v * 255.0));
  return (uint32_t{t[3 * i]} << 16) | (uint32_t{t[3 * i + 1]} << 8) | t[3 * i + 2];
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) bad("nice_ticks: lo and hi must be finite, got " + num(lo) + ", " + num(hi));
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) return {lo};
  target = std::max(2, target);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (raw <= step * 1.0000001) break;
  }
  auto make = [&](double st) {
    std::vector<double> t;
    const double first = std::ceil(lo / st - 1e-9) * st;
    for (int i = 0; i <= 1000; ++i) {
      const double v = first + i * st;
      if (v > hi + st * 1e-9) break;
      t.push_back(std::abs(v) < st * 1e-9 ? 0.0 : v);
    }
    return t;
  };
  std::vector<double> t = make(step);
  // A range that happens to hold a single multiple of the step: the next finer nice step.
  for (double finer : {step / 2.0, step / 2.5, step / 5.0})
    if (t.size() < 2) t = make(finer);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Spectrograms
// ---------------------------------------------------------------------------------------------

void SpectrogramAnalysis::Validate() const {
  if (!(window_seconds > 0.0) || !std::isfinite(window_seconds))
    bad("SpectrogramAnalysis: window_seconds must be > 0, got " + num(window_seconds));
  if (!(hop_fraction > 0.0 && hop_fraction <= 1.0))
    bad("SpectrogramAnalysis: hop_fraction must be in (0, 1], got " + num(hop_fraction));
  if (!std::isfinite(floor_db)) bad("SpectrogramAnalysis: floor_db must be finite, got " + num(floor_db));
}

SpectrogramPanel spectrogram_panel(const torch::Tensor& wave, int sample_rate, std::string title,
                                   const SpectrogramAnalysis& analysis) {
  analysis.Validate();
  if (sample_rate <= 0) bad("spectrogram_panel: sample_rate must be > 0, got " + std::to_string(sample_rate));
  if (!wave.defined() || wave.dim() != 1)
    bad("spectrogram_panel: wave must be a 1-D tensor, got " +
        (wave.defined() ? c10::str(wave.sizes()) : std::string("an undefined tensor")));
  if (!wave.is_floating_point()) bad("spectrogram_panel: wave must be floating point");
  if (wave.numel() == 0) bad("spectrogram_panel: wave must have at least 1 sample, got 0");
  torch::Tensor x = wave.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  if (!torch::isfinite(x).all().item<bool>()) bad("spectrogram_panel: wave must be finite (it holds NaN or inf)");
  const int64_t n_fft = std::max<int64_t>(16, std::llround(analysis.window_seconds * sample_rate));
  const int64_t hop = std::max<int64_t>(1, std::llround(static_cast<double>(n_fft) * analysis.hop_fraction));
  auto opt = StftOptions().n_fft(n_fft).hop(hop).window(WindowKind::hann).framing(StftFraming::center_zero);
  torch::Tensor mag = stft(x, opt).abs();  // [F, T]
  const double ref = static_cast<double>(n_fft) / 4.0;  // sum of a periodic Hann window / 2
  const double floor_amp = std::pow(10.0, analysis.floor_db / 20.0);
  SpectrogramPanel p;
  p.db = 20.0 * torch::log10(torch::clamp_min(mag / ref, floor_amp));
  p.duration = static_cast<double>(x.numel()) / sample_rate;
  p.max_frequency = sample_rate / 2.0;
  p.title = std::move(title);
  return p;
}

void SpectrogramFigureOptions::Validate() const {
  check_size("SpectrogramFigureOptions: width", width, 200, 8000);
  check_size("SpectrogramFigureOptions: panel_height", panel_height, 40, 4000);
  if (!(db_range > 0.0) || !std::isfinite(db_range))
    bad("SpectrogramFigureOptions: db_range must be > 0, got " + num(db_range));
  if (db_max && !std::isfinite(*db_max)) bad("SpectrogramFigureOptions: db_max must be finite, got " + num(*db_max));
  if (max_frequency && !(*max_frequency > 0.0 && std::isfinite(*max_frequency)))
    bad("SpectrogramFigureOptions: max_frequency must be > 0, got " + num(*max_frequency));
}

void write_spectrogram_png(const std::string& path, const std::vector<SpectrogramPanel>& panels,
                           const SpectrogramFigureOptions& options) {
  options.Validate();
  if (panels.empty()) bad("write_spectrogram_png: panels must not be empty (" + path + ")");
  if (panels.size() > 64) bad("write_spectrogram_png: at most 64 panels, got " + std::to_string(panels.size()));
  std::vector<torch::Tensor> dbs;
  double top = -std::numeric_limits<double>::infinity(), duration = 0.0, fmax = 0.0;
  for (size_t i = 0; i < panels.size(); ++i) {
    const auto& p = panels[i];
    const std::string who = "write_spectrogram_png: panel " + std::to_string(i) + " ('" + p.title + "')";
    if (!p.db.defined() || p.db.dim() != 2 || p.db.size(0) < 1 || p.db.size(1) < 1)
      bad(who + ": db must be a non-empty [F, T] tensor, got " +
          (p.db.defined() ? c10::str(p.db.sizes()) : std::string("an undefined tensor")));
    if (!p.db.is_floating_point()) bad(who + ": db must be floating point");
    torch::Tensor d = p.db.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    if (!torch::isfinite(d).all().item<bool>()) bad(who + ": db must be finite (it holds NaN or inf)");
    if (!(p.duration > 0.0 && std::isfinite(p.duration))) bad(who + ": duration must be > 0, got " + num(p.duration));
    if (!(p.max_frequency > 0.0 && std::isfinite(p.max_frequency)))
      bad(who + ": max_frequency must be > 0, got " + num(p.max_frequency));
    top = std::max(top, d.max().item<double>());
    duration = std::max(duration, p.duration);
    fmax = std::max(fmax, p.max_frequency);
    dbs.push_back(d);
  }
  const double db_hi = options.db_max ? *options.db_max : std::ceil(top / 5.0) * 5.0;
  const double db_lo = db_hi - options.db_range;
  if (options.max_frequency) fmax = *options.max_frequency;

  // Layout (pixels).
  const int W = options.width;
  const int H_img = options.panel_height;
  const int left = 62, right = 96;
  const int fig_title = options.title.empty() ? 0 : 30;
  const int panel_title = 24, ticks = 22, x_label = 24, bottom_pad = 6, top_pad = 6;
  const int block = panel_title + H_img + ticks;
  const int n = static_cast<int>(panels.size());
  const int H = top_pad + fig_title + n * block + x_label + bottom_pad;
  const int plot_w = W - left - right;
  if (H > 32000) bad("write_spectrogram_png: the figure would be " + std::to_string(H) + " pixels high (at most 32000)");

  Surface surface = make_surface(W, H);
  Context ctx(cairo_create(surface.get()));
  cairo_t* cr = ctx.get();
  set_rgb(cr, 0xffffff);
  cairo_paint(cr);
  if (fig_title) {
    set_rgb(cr, 0x000000);
    font(cr, 16, true);
    text(cr, options.title, W / 2.0, top_pad + 6, 0.5, 0.0);
  }

  const std::vector<double> tticks = nice_ticks(0.0, duration, std::max(2, plot_w / 90));
  const std::vector<double> fticks_hz = [&] {
    std::vector<double> t;
    for (double k : nice_ticks(0.0, fmax / 1000.0, std::max(3, H_img / 30))) t.push_back(k * 1000.0);
    return t;
  }();
  const double fstep_khz = fticks_hz.size() > 1 ? (fticks_hz[1] - fticks_hz[0]) / 1000.0 : 1.0;

  int img_top_first = 0, img_bottom_last = 0;
  for (int i = 0; i < n; ++i) {
    const int y0 = top_pad + fig_title + i * block;
    const int img_y = y0 + panel_title;
    if (i == 0) img_top_first = img_y;
    img_bottom_last = img_y + H_img;
    const torch::Tensor& d = dbs[i];
    const int F = static_cast<int>(d.size(0)), T = static_cast<int>(d.size(1));

    // The dB image as an F x T surface (row 0 on top = the highest frequency), then scaled in.
    Surface img = make_surface(T, F);
    cairo_surface_flush(img.get());
    unsigned char* data = cairo_image_surface_get_data(img.get());
    const int stride = cairo_image_surface_get_stride(img.get());
    const double* v = d.data_ptr<double>();
    for (int r = 0; r < F; ++r) {
      auto* row = reinterpret_cast<uint32_t*>(data + static_cast<size_t>(F - 1 - r) * stride);
      for (int c = 0; c < T; ++c)
        row[c] = colormap_rgb(options.colormap, (v[static_cast<size_t>(r) * T + c] - db_lo) / options.db_range);
    }
    cairo_surface_mark_dirty(img.get());

    // Panel background = lowest colour (where the panel's own axes end before the shared ones).
    set_rgb(cr, colormap_rgb(options.colormap, 0.0));
    cairo_rectangle(cr, left, img_y, plot_w, H_img);
    cairo_fill(cr);
    cairo_save(cr);
    cairo_rectangle(cr, left, img_y, plot_w, H_img);
    cairo_clip(cr);
    const double draw_w = plot_w * panels[i].duration / duration;
    const double draw_h = H_img * panels[i].max_frequency / fmax;
    cairo_translate(cr, left, img_y + H_img - draw_h);
    cairo_scale(cr, draw_w / T, draw_h / F);
    cairo_set_source_surface(cr, img.get(), 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
    cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
    cairo_rectangle(cr, 0, 0, T, F);
    cairo_fill(cr);
    cairo_restore(cr);

    // Frame, ticks, labels.
    set_rgb(cr, 0x000000);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, left + 0.5, img_y + 0.5, plot_w - 1, H_img - 1);
    cairo_stroke(cr);
    font(cr, 13, true);
    text(cr, panels[i].title, left, y0 + 5, 0.0, 0.0);
    font(cr, 11);
    for (double t : tticks) {
      const double x = std::round(left + plot_w * t / duration) + 0.5;
      cairo_move_to(cr, x, img_bottom_last);
      cairo_line_to(cr, x, img_bottom_last + 4);
      text(cr, tick_label(t, tick_step(tticks)), x, img_bottom_last + 6, 0.5, 0.0);
    }
    for (double f : fticks_hz) {
      const double y = std::round(img_y + H_img - H_img * f / fmax) + 0.5;
      cairo_move_to(cr, left - 4, y);
      cairo_line_to(cr, left, y);
      text(cr, tick_label(f / 1000.0, fstep_khz), left - 6, y, 1.0, 0.5);
    }
    cairo_stroke(cr);
    text_rotated(cr, "frequency (kHz)", 14, img_y + H_img / 2.0);
  }
  font(cr, 12);
  set_rgb(cr, 0x000000);
  text(cr, "time (s)", left + plot_w / 2.0, img_bottom_last + ticks + 4, 0.5, 0.0);

  // Colour bar over the height of all images.
  const int cb_x = left + plot_w + 16, cb_w = 16;
  const int cb_y = img_top_first, cb_h = img_bottom_last - img_top_first;
  for (int y = 0; y < cb_h; ++y) {
    set_rgb(cr, colormap_rgb(options.colormap, 1.0 - (y + 0.5) / cb_h));
    cairo_rectangle(cr, cb_x, cb_y + y, cb_w, 1);
    cairo_fill(cr);
  }
  set_rgb(cr, 0x000000);
  cairo_rectangle(cr, cb_x + 0.5, cb_y + 0.5, cb_w - 1, cb_h - 1);
  cairo_stroke(cr);
  font(cr, 11);
  const std::vector<double> dbt = nice_ticks(db_lo, db_hi, std::max(4, cb_h / 40));
  for (double t : dbt) {
    const double y = std::round(cb_y + cb_h * (db_hi - t) / options.db_range) + 0.5;
    cairo_move_to(cr, cb_x + cb_w, y);
    cairo_line_to(cr, cb_x + cb_w + 4, y);
    text(cr, tick_label(t, tick_step(dbt)), cb_x + cb_w + 6, y, 0.0, 0.5);
  }
  cairo_stroke(cr);
  font(cr, 12);
  text_rotated(cr, "level (dB)", W - 12, cb_y + cb_h / 2.0);
  write_png(surface.get(), path);
}

// ---------------------------------------------------------------------------------------------
// Line plots
// ---------------------------------------------------------------------------------------------

void LinePlotOptions::Validate() const {
  check_size("LinePlotOptions: width", width, 200, 8000);
  check_size("LinePlotOptions: height", height, 150, 8000);
}

void write_line_plot_png(const std::string& path, const std::vector<Series>& series, const LinePlotOptions& options) {
  options.Validate();
  if (series.empty()) bad("write_line_plot_png: series must not be empty (" + path + ")");
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    const std::string who = "write_line_plot_png: series " + std::to_string(i) + " ('" + s.label + "')";
    if (s.x.empty()) bad(who + ": x and y must not be empty");
    if (s.x.size() != s.y.size())
      bad(who + ": x and y must have the same length, got " + std::to_string(s.x.size()) + " and " +
          std::to_string(s.y.size()));
    for (size_t k = 0; k < s.x.size(); ++k) {
      if (!std::isfinite(s.x[k])) bad(who + ": x[" + std::to_string(k) + "] must be finite, got " + num(s.x[k]));
      if (!std::isfinite(s.y[k])) bad(who + ": y[" + std::to_string(k) + "] must be finite, got " + num(s.y[k]));
      if (options.log_y && !(s.y[k] > 0.0))
        bad(who + ": y[" + std::to_string(k) + "] must be > 0 on a log-y plot, got " + num(s.y[k]));
      xlo = std::min(xlo, s.x[k]);
      xhi = std::max(xhi, s.x[k]);
      ylo = std::min(ylo, s.y[k]);
      yhi = std::max(yhi, s.y[k]);
    }
  }
  auto widen = [](double& lo, double& hi) {
    if (hi == lo) {
      const double d = lo == 0.0 ? 1.0 : std::abs(lo) * 0.1;
      lo -= d;
      hi += d;
    }
  };
  widen(xlo, xhi);
  // y axis in plotted units (log10 y on a log axis), padded 5 %.
  double ulo = options.log_y ? std::log10(ylo) : ylo, uhi = options.log_y ? std::log10(yhi) : yhi;
  if (options.log_y && uhi == ulo) {
    ulo -= 0.5;
    uhi += 0.5;
  }
  widen(ulo, uhi);
  const double pad = (uhi - ulo) * 0.05;
  ulo -= pad;
  uhi += pad;

  const int W = options.width, H = options.height;
  const int top = options.title.empty() ? 16 : 40, bottom = 56, right = 20;
  Surface surface = make_surface(W, H);
  Context ctx(cairo_create(surface.get()));
  cairo_t* cr = ctx.get();
  set_rgb(cr, 0xffffff);
  cairo_paint(cr);

  // y ticks (values in data units) and their labels decide the left margin.
  std::vector<double> yt;  // plotted units
  std::vector<std::string> yl;
  if (options.log_y) {
    const int d0 = static_cast<int>(std::ceil(ulo - 1e-9)), d1 = static_cast<int>(std::floor(uhi + 1e-9));
    const int span = d1 - d0;
    const int every = std::max(1, span / 8 + 1);
    for (int d = d0; d <= d1; d += every) {
      yt.push_back(d);
      yl.push_back(num(std::pow(10.0, d)));
    }
    if (span < 2) {  // a decade or less: 2x and 5x as well
      for (int d = d0 - 1; d <= d1; ++d)
        for (double m : {2.0, 5.0}) {
          const double u = d + std::log10(m);
          if (u >= ulo && u <= uhi) {
            yt.push_back(u);
            yl.push_back(num(m * std::pow(10.0, d)));
          }
        }
    }
  } else {
    const auto t = nice_ticks(ulo, uhi, std::max(2, (H - top - bottom) / 50));
    for (double v : t) {
      yt.push_back(v);
      yl.push_back(tick_label(v, tick_step(t)));
    }
  }
  font(cr, 11);
  double label_w = 0;
  for (const auto& s : yl) label_w = std::max(label_w, text_width(cr, s));
  const int left = static_cast<int>(std::ceil(label_w)) + 40;
  const int pw = W - left - right, ph = H - top - bottom;
  if (pw < 40 || ph < 40) bad("write_line_plot_png: the plot area is too small for " + std::to_string(W) + "x" + std::to_string(H));
  auto X = [&](double x) { return left + pw * (x - xlo) / (xhi - xlo); };
  auto Y = [&](double u) { return top + ph * (uhi - u) / (uhi - ulo); };

  // Grid, ticks, labels.
  cairo_set_line_width(cr, 1.0);
  const auto xt = nice_ticks(xlo, xhi, std::max(2, pw / 90));
  set_rgb(cr, 0xe6e6e6);
  for (double x : xt) {
    const double px = std::round(X(x)) + 0.5;
    cairo_move_to(cr, px, top);
    cairo_line_to(cr, px, top + ph);
  }
  for (double u : yt) {
    const double py = std::round(Y(u)) + 0.5;
    cairo_move_to(cr, left, py);
    cairo_line_to(cr, left + pw, py);
  }
  cairo_stroke(cr);
  set_rgb(cr, 0x000000);
  for (double x : xt) {
    const double px = std::round(X(x)) + 0.5;
    cairo_move_to(cr, px, top + ph);
    cairo_line_to(cr, px, top + ph + 4);
    text(cr, tick_label(x, tick_step(xt)), px, top + ph + 6, 0.5, 0.0);
  }
  for (size_t k = 0; k < yt.size(); ++k) {
    const double py = std::round(Y(yt[k])) + 0.5;
    cairo_move_to(cr, left - 4, py);
    cairo_line_to(cr, left, py);
    text(cr, yl[k], left - 6, py, 1.0, 0.5);
  }
  cairo_stroke(cr);

  // Series (tab10 colours), clipped to the plot area.
  static const uint32_t kColours[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                      0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
  cairo_save(cr);
  cairo_rectangle(cr, left, top, pw, ph);
  cairo_clip(cr);
  cairo_set_line_width(cr, 1.8);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    set_rgb(cr, kColours[i % 10]);
    for (size_t k = 0; k < s.x.size(); ++k) {
      const double u = options.log_y ? std::log10(s.y[k]) : s.y[k];
      if (k == 0)
        cairo_move_to(cr, X(s.x[k]), Y(u));
      else
        cairo_line_to(cr, X(s.x[k]), Y(u));
    }
    if (s.x.size() == 1) {  // a single point: a dot
      cairo_stroke(cr);
      const double u = options.log_y ? std::log10(s.y[0]) : s.y[0];
      cairo_arc(cr, X(s.x[0]), Y(u), 3.0, 0, 2 * M_PI);
      cairo_fill(cr);
    }
    cairo_stroke(cr);
    if (options.markers)
      for (size_t k = 0; k < s.x.size(); ++k) {
        const double u = options.log_y ? std::log10(s.y[k]) : s.y[k];
        cairo_arc(cr, X(s.x[k]), Y(u), 2.8, 0, 2 * M_PI);
        cairo_fill(cr);
      }
  }
  cairo_restore(cr);

  set_rgb(cr, 0x000000);
  cairo_set_line_width(cr, 1.0);
  cairo_rectangle(cr, left + 0.5, top + 0.5, pw - 1, ph - 1);
  cairo_stroke(cr);
  font(cr, 12);
  text(cr, options.x_label, left + pw / 2.0, H - 22, 0.5, 0.0);
  text_rotated(cr, options.y_label, 14, top + ph / 2.0);
  if (!options.title.empty()) {
    font(cr, 15, true);
    text(cr, options.title, left + pw / 2.0, 12, 0.5, 0.0);
  }

  // Legend, top right inside the plot.
  std::vector<size_t> labelled;
  for (size_t i = 0; i < series.size(); ++i)
    if (!series[i].label.empty()) labelled.push_back(i);
  if (!labelled.empty()) {
    font(cr, 11);
    double lw = 0;
    for (size_t i : labelled) lw = std::max(lw, text_width(cr, series[i].label));
    const double row = 17, bw = lw + 42, bh = row * labelled.size() + 8;
    // The corner whose box covers the fewest points of the lines (sampled along each segment).
    double bx = left + pw - bw - 8, by = top + 8;
    size_t fewest = std::numeric_limits<size_t>::max();
    for (int corner : {1, 0, 3, 2}) {  // top right, top left, bottom right, bottom left
      const double cx = corner % 2 ? left + pw - bw - 8 : left + 8;
      const double cy = corner < 2 ? top + 8 : top + ph - bh - 8;
      size_t hits = 0;
      for (const auto& s : series)
        for (size_t k = 0; k < s.x.size(); ++k) {
          const double u1 = options.log_y ? std::log10(s.y[k]) : s.y[k];
          const double u0 = k ? (options.log_y ? std::log10(s.y[k - 1]) : s.y[k - 1]) : u1;
          const double x0 = k ? s.x[k - 1] : s.x[k];
          for (int j = 0; j < 16; ++j) {
            const double t = j / 16.0, px = X(x0 + t * (s.x[k] - x0)), py = Y(u0 + t * (u1 - u0));
            hits += px >= cx - 4 && px <= cx + bw + 4 && py >= cy - 4 && py <= cy + bh + 4;
          }
        }
      if (hits < fewest) {
        fewest = hits;
        bx = cx;
        by = cy;
      }
    }
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill(cr);
    set_rgb(cr, 0xb0b0b0);
    cairo_rectangle(cr, bx + 0.5, by + 0.5, bw, bh);
    cairo_stroke(cr);
    for (size_t k = 0; k < labelled.size(); ++k) {
      const double cy = by + 4 + row * (k + 0.5);
      set_rgb(cr, kColours[labelled[k] % 10]);
      cairo_set_line_width(cr, 2.2);
      cairo_move_to(cr, bx + 8, cy);
      cairo_line_to(cr, bx + 30, cy);
      cairo_stroke(cr);
      set_rgb(cr, 0x000000);
      text(cr, series[labelled[k]].label, bx + 36, cy, 0.0, 0.5);
    }
  }
  write_png(surface.get(), path);
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

Image read_png(const std::string& path) {
  Surface s(cairo_image_surface_create_from_png(path.c_str()));
  const cairo_status_t st = cairo_surface_status(s.get());
  if (st == CAIRO_STATUS_FILE_NOT_FOUND) throw PlotError(path, "cannot open the PNG: no such file");
  if (st != CAIRO_STATUS_SUCCESS) throw PlotError(path, std::string("not a readable PNG: ") + cairo_status_to_string(st));
  Image im;
  im.width = cairo_image_surface_get_width(s.get());
  im.height = cairo_image_surface_get_height(s.get());
  const cairo_format_t fmt = cairo_image_surface_get_format(s.get());
  if (fmt != CAIRO_FORMAT_ARGB32 && fmt != CAIRO_FORMAT_RGB24) {
    // Grey or other formats: paint onto an RGB24 surface.
    Surface rgb = make_surface(im.width, im.height);
    Context c(cairo_create(rgb.get()));
    cairo_set_source_surface(c.get(), s.get(), 0, 0);
    cairo_paint(c.get());
    s = std::move(rgb);
  }
  cairo_surface_flush(s.get());
  const unsigned char* data = cairo_image_surface_get_data(s.get());
  const int stride = cairo_image_surface_get_stride(s.get());
  const bool opaque = cairo_image_surface_get_format(s.get()) == CAIRO_FORMAT_RGB24;
  im.pixels.resize(static_cast<size_t>(im.width) * im.height);
  for (int y = 0; y < im.height; ++y) {
    const auto* row = reinterpret_cast<const uint32_t*>(data + static_cast<size_t>(y) * stride);
    for (int x = 0; x < im.width; ++x) im.pixels[static_cast<size_t>(y) * im.width + x] = opaque ? (row[x] | 0xff000000u) : row[x];
  }
  return im;
}

}  // namespace sepmech::plot
