#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace sepmech::io {

/// A file from outside (weights, checkpoints, audio) is malformed, truncated or unsupported.
/// what() always starts with the file name, so a user knows which file to look at.
class FormatError : public std::runtime_error {
 public:
  FormatError(const std::string& file, const std::string& message)
      : std::runtime_error(file + ": " + message), file_(file) {}
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

/// Reads a whole file into memory; FormatError naming the file if it cannot be opened or read.
std::vector<std::uint8_t> read_file_bytes(const std::string& path);

}  // namespace sepmech::io
