// Audio file I/O on libsndfile (interleaved float frames <-> [C, n] tensors).
#include "sepmech/audio/audio_file.h"

#include <sndfile.h>

#include <sys/stat.h>

#include <vector>

#include <torch/torch.h>

namespace sepmech::audio {
namespace {

SNDFILE* sf(void* p) { return static_cast<SNDFILE*>(p); }

int sf_format_of(const std::string& path, const WriteOptions& o) {
  switch (o.format) {
    case AudioFormat::ogg:
      return SF_FORMAT_OGG | SF_FORMAT_VORBIS;
    case AudioFormat::flac:
      if (o.sample_format == SampleFormat::pcm_16) return SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
      if (o.sample_format == SampleFormat::pcm_24) return SF_FORMAT_FLAC | SF_FORMAT_PCM_24;
      throw AudioError(path, "FLAC supports sample formats pcm_16 and pcm_24, got " + to_string(o.sample_format));
    case AudioFormat::wav:
      switch (o.sample_format) {
        case SampleFormat::pcm_16: return SF_FORMAT_WAV | SF_FORMAT_PCM_16;
        case SampleFormat::pcm_24: return SF_FORMAT_WAV | SF_FORMAT_PCM_24;
        case SampleFormat::pcm_32: return SF_FORMAT_WAV | SF_FORMAT_PCM_32;
        case SampleFormat::float32: return SF_FORMAT_WAV | SF_FORMAT_FLOAT;
      }
  }
  throw AudioError(path, "unknown audio format");
}

}  // namespace

std::string to_string(AudioFormat f) {
  switch (f) {
    case AudioFormat::wav: return "wav";
    case AudioFormat::flac: return "flac";
    case AudioFormat::ogg: return "ogg";
  }
  return "?";
}

std::string to_string(SampleFormat f) {
  switch (f) {
    case SampleFormat::pcm_16: return "pcm_16";
    case SampleFormat::pcm_24: return "pcm_24";
    case SampleFormat::pcm_32: return "pcm_32";
    case SampleFormat::float32: return "float32";
  }
  return "?";
}

AudioFormat audio_format_from_string(const std::string& s) {
  for (auto f : {AudioFormat::wav, AudioFormat::flac, AudioFormat::ogg})
    if (to_string(f) == s) return f;
  TORCH_CHECK(false, "sepmech::AudioFormat: name must be one of wav, flac, ogg, got '", s, "'");
}

SampleFormat sample_format_from_string(const std::string& s) {
  for (auto f : {SampleFormat::pcm_16, SampleFormat::pcm_24, SampleFormat::pcm_32, SampleFormat::float32})
    if (to_string(f) == s) return f;
  TORCH_CHECK(false, "sepmech::SampleFormat: name must be one of pcm_16, pcm_24, pcm_32, float32, got '", s, "'");
}

AudioReader::AudioReader(const std::string& path) : path_(path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw AudioError(path, "cannot open: no such file");
  if (S_ISDIR(st.st_mode)) throw AudioError(path, "cannot open: is a directory");
  if (st.st_size == 0) throw AudioError(path, "empty file (0 bytes)");
  SF_INFO si{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &si);
  if (!f) throw AudioError(path, std::string("not a readable audio file: ") + sf_strerror(nullptr));
  file_ = f;
  info_.frames = si.frames;
  info_.channels = si.channels;
  info_.sample_rate = si.samplerate;
  if (si.channels <= 0 || si.samplerate <= 0) {
    sf_close(f);
    file_ = nullptr;
    throw AudioError(path, "invalid header (channels " + std::to_string(si.channels) + ", rate " +
                               std::to_string(si.samplerate) + ")");
  }
  if (si.frames <= 0) {
    sf_close(f);
    file_ = nullptr;
    throw AudioError(path, "no audio frames (empty or truncated file)");
  }
  // libsndfile shortens a WAV whose data chunk runs past the end of the file and only logs it
  // ("data : 8000 (should be 3956)"); a truncated file must not read as a shorter one. Only
  // that correction counts: the log also carries harmless remarks such as
  // "'data' chunk should be an even number of bytes" for a valid odd-length 24-bit mono file.
  char log[4096] = {0};
  sf_command(f, SFC_GET_LOG_INFO, log, sizeof(log) - 1);
  bool size_corrected = false;
  {
    const std::string l(log);
    size_t start = 0;
    while (start < l.size() && !size_corrected) {
      size_t end = l.find('\n', start);
      if (end == std::string::npos) end = l.size();
      const std::string line = l.substr(start, end - start);
      if (line.rfind("data : ", 0) == 0 && line.find("(should be ") != std::string::npos)
        size_corrected = true;
      start = end + 1;
    }
  }
  if (size_corrected) {
    sf_close(f);
    file_ = nullptr;
    throw AudioError(path, "truncated file (data chunk runs past the end of the file)");
  }
}

AudioReader::~AudioReader() {
  if (file_) sf_close(sf(file_));
}

torch::Tensor AudioReader::read(int64_t max_frames) {
  if (max_frames <= 0) throw AudioError(path_, "read: max_frames must be > 0, got " + std::to_string(max_frames));
  const int64_t want = std::min(max_frames, info_.frames - position_);
  if (want <= 0) return torch::zeros({info_.channels, 0}, torch::kFloat32);
  torch::Tensor inter = torch::empty({want, info_.channels}, torch::kFloat32);
  const sf_count_t got = sf_readf_float(sf(file_), inter.data_ptr<float>(), want);
  if (got != want)
    throw AudioError(path_, "truncated or corrupt audio: read " + std::to_string(position_ + std::max<sf_count_t>(got, 0)) +
                                " of " + std::to_string(info_.frames) + " frames (" + sf_strerror(sf(file_)) + ")");
  position_ += got;
  return inter.t().contiguous();
}

Audio read_audio(const std::string& path) {
  AudioReader r(path);
  Audio a;
  a.sample_rate = r.info().sample_rate;
  a.samples = r.read(r.info().frames);
  return a;
}

AudioWriter::AudioWriter(const std::string& path, int sample_rate, int channels, const WriteOptions& options)
    : path_(path), channels_(channels) {
  if (sample_rate <= 0) throw AudioError(path, "sample rate must be > 0, got " + std::to_string(sample_rate));
  if (channels <= 0) throw AudioError(path, "channel count must be > 0, got " + std::to_string(channels));
  SF_INFO si{};
  si.samplerate = sample_rate;
  si.channels = channels;
  si.format = sf_format_of(path, options);
  if (!sf_format_check(&si))
    throw AudioError(path, "libsndfile cannot write " + to_string(options.format) + "/" +
                               to_string(options.sample_format) + " with " + std::to_string(channels) +
                               " channels at " + std::to_string(sample_rate) + " Hz");
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &si);
  if (!f) throw AudioError(path, std::string("cannot open for writing: ") + sf_strerror(nullptr));
  file_ = f;
  // Integer formats: clip instead of wrapping around.
  sf_command(f, SFC_SET_CLIPPING, nullptr, SF_TRUE);
}

AudioWriter::~AudioWriter() {
  if (file_) sf_close(sf(file_));
}

void AudioWriter::write(const torch::Tensor& samples) {
  if (!file_) throw AudioError(path_, "write after close");
  if (!samples.defined() || samples.dim() != 2 || samples.size(0) != channels_)
    throw AudioError(path_, "samples must be [" + std::to_string(channels_) + ", frames], got " +
                                (samples.defined() ? c10::str(samples.sizes()) : std::string("undefined")));
  torch::Tensor inter = samples.detach().to(torch::kCPU, torch::kFloat32).t().contiguous();
  const int64_t n = inter.size(0);
  if (n == 0) return;
  if (!torch::isfinite(inter).all().item<bool>()) throw AudioError(path_, "samples must be finite");
  const sf_count_t put = sf_writef_float(sf(file_), inter.data_ptr<float>(), n);
  if (put != n) throw AudioError(path_, std::string("write failed: ") + sf_strerror(sf(file_)));
}

void AudioWriter::close() {
  if (!file_) return;
  const int rc = sf_close(sf(file_));
  file_ = nullptr;
  if (rc != 0) throw AudioError(path_, std::string("close failed: ") + sf_error_number(rc));
}

void write_audio(const std::string& path, const Audio& audio, const WriteOptions& options) {
  if (!audio.samples.defined() || audio.samples.dim() != 2)
    throw AudioError(path, "samples must be [channels, frames]");
  AudioWriter w(path, audio.sample_rate, static_cast<int>(audio.samples.size(0)), options);
  w.write(audio.samples);
  w.close();
}

}  // namespace sepmech::audio
