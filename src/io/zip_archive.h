#pragma once
// Private: the zip layer of torch.save checkpoints (libzip over bytes in memory).
//
// Every failure is a FormatError naming the file and, where there is one, the archive entry.
// libzip stays out of this header (its zip_t is `struct zip`), so including it needs no libzip
// include path.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sepmech/io/errors.h"

struct zip;  // libzip's zip_t

namespace sepmech::io::detail {

class ZipArchive {
 public:
  /// Opens the archive over `data` (not copied: it must outlive the ZipArchive); `file` names
  /// the file in error messages.
  ZipArchive(const std::uint8_t* data, std::size_t size, const std::string& file);
  ~ZipArchive();
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;

  std::int64_t num_entries() const;
  std::string entry_name(std::int64_t idx) const;

  /// Index of the entry, or -1.
  std::int64_t locate(const std::string& name) const;

  /// Uncompressed size, after checking that the claim is plausible for the compressed bytes.
  std::uint64_t entry_size(std::int64_t idx, const std::string& name) const;

  /// Reads exactly `size` bytes (the whole entry) into dst; libzip checks the CRC at the end.
  void read(std::int64_t idx, const std::string& name, void* dst, std::uint64_t size) const;

  /// The whole entry.
  std::vector<std::uint8_t> read_all(std::int64_t idx, const std::string& name) const;

  /// FormatError "<file>: entry '<entry>': <msg>".
  FormatError error(const std::string& entry, const std::string& msg) const;

 private:
  std::string file_;
  ::zip* za_ = nullptr;
};

}  // namespace sepmech::io::detail
