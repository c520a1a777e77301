#pragma once
// Audio files through libsndfile: WAV, FLAC, OGG-Vorbis; any rate and channel count.
//
//   #include <sepmech/audio/audio_file.h>
//   sepmech::audio::Audio a = sepmech::audio::read_audio("in.flac");   // float32 [C, frames]
//   sepmech::audio::write_audio("out.wav", a, {sepmech::audio::AudioFormat::wav,
//                                              sepmech::audio::SampleFormat::pcm_24});
//   sepmech::audio::AudioReader r("long.wav");                        // bounded memory
//   while (!r.eof()) { torch::Tensor chunk = r.read(4096); ... }        // [C, <= 4096]
//
// Missing, unreadable, empty (0 frames), truncated or non-audio files throw AudioError, whose
// what() starts with the file name and says why.
#include <cstdint>
#include <memory>
#include <string>

#include <torch/types.h>

#include "sepmech/io/errors.h"

namespace sepmech::audio {

/// An audio file cannot be opened, read or written; what() = "<file>: <reason>".
class AudioError : public io::FormatError {
 public:
  using io::FormatError::FormatError;
};

/// Container.
enum class AudioFormat { wav, flac, ogg };
/// Sample encoding when writing (OGG-Vorbis is lossy and ignores it; FLAC takes pcm_16/pcm_24).
enum class SampleFormat { pcm_16, pcm_24, pcm_32, float32 };

std::string to_string(AudioFormat f);
std::string to_string(SampleFormat f);
/// "wav" / "flac" / "ogg"; c10::Error listing the choices otherwise.
AudioFormat audio_format_from_string(const std::string& s);
/// "pcm_16" / "pcm_24" / "pcm_32" / "float32"; c10::Error listing the choices otherwise.
SampleFormat sample_format_from_string(const std::string& s);

struct Audio {
  torch::Tensor samples;  ///< float32 [channels, frames], full scale = +-1
  int sample_rate = 0;    ///< Hz
};

struct AudioInfo {
  int64_t frames = 0;
  int channels = 0;
  int sample_rate = 0;
};

struct WriteOptions {
  AudioFormat format = AudioFormat::wav;        ///< container
  SampleFormat sample_format = SampleFormat::pcm_16;  ///< encoding (WAV/FLAC)
};

/// Reads the whole file.
Audio read_audio(const std::string& path);
/// Writes `audio` (float32-convertible [C, n], C >= 1, values clipped to +-1 for integer formats).
void write_audio(const std::string& path, const Audio& audio, const WriteOptions& options = {});

/// Chunked reading in bounded memory.
class AudioReader {
 public:
  explicit AudioReader(const std::string& path);
  ~AudioReader();
  AudioReader(const AudioReader&) = delete;
  AudioReader& operator=(const AudioReader&) = delete;
  const AudioInfo& info() const { return info_; }
  /// Up to max_frames (> 0) frames as float32 [C, n]; n == 0 only at the end of the file.
  torch::Tensor read(int64_t max_frames);
  bool eof() const { return position_ >= info_.frames; }

 private:
  std::string path_;
  void* file_ = nullptr;  // SNDFILE*
  AudioInfo info_;
  int64_t position_ = 0;
};

/// Chunked writing; the file is complete after close() (or destruction).
class AudioWriter {
 public:
  AudioWriter(const std::string& path, int sample_rate, int channels, const WriteOptions& options = {});
  ~AudioWriter();
  AudioWriter(const AudioWriter&) = delete;
  AudioWriter& operator=(const AudioWriter&) = delete;
  /// Appends [channels, n] samples.
  void write(const torch::Tensor& samples);
  void close();

 private:
  std::string path_;
  void* file_ = nullptr;  // SNDFILE*
  int channels_ = 0;
};

}  // namespace sepmech::audio
