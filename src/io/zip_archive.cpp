#include "io/zip_archive.h"

#include <limits>

#include <zip.h>

namespace sepmech::io::detail {

ZipArchive::ZipArchive(const std::uint8_t* data, std::size_t size, const std::string& file) : file_(file) {
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(data, size, 0, &err);
  if (!src) {
    std::string msg = zip_error_strerror(&err);
    zip_error_fini(&err);
    throw FormatError(file_, "cannot read the zip archive: " + msg);
  }
  za_ = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err);
  if (!za_) {
    zip_source_free(src);
    std::string msg = zip_error_strerror(&err);
    zip_error_fini(&err);
    throw FormatError(file_, "not a readable zip archive (truncated or corrupt?): " + msg);
  }
  zip_error_fini(&err);
}

ZipArchive::~ZipArchive() {
  if (za_) zip_discard(za_);
}

std::int64_t ZipArchive::num_entries() const { return zip_get_num_entries(za_, 0); }

std::string ZipArchive::entry_name(std::int64_t idx) const {
  const char* n = zip_get_name(za_, static_cast<zip_uint64_t>(idx), ZIP_FL_ENC_RAW);
  return n ? std::string(n) : std::string();
}

std::int64_t ZipArchive::locate(const std::string& name) const {
  return zip_name_locate(za_, name.c_str(), ZIP_FL_ENC_RAW);
}

std::uint64_t ZipArchive::entry_size(std::int64_t idx, const std::string& name) const {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(za_, static_cast<zip_uint64_t>(idx), 0, &st) != 0)
    throw error(name, std::string("cannot stat: ") + zip_strerror(za_));
  if (!(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE)) throw error(name, "size unknown");
  // Deflate expands at most ~1032:1; anything above that is a lie that would make us
  // allocate memory for bytes that do not exist.
  const std::uint64_t limit = st.comp_size > (std::numeric_limits<std::uint64_t>::max() - 4096) / 1100
                                  ? std::numeric_limits<std::uint64_t>::max()
                                  : st.comp_size * 1100 + 4096;
  if (st.comp_method == ZIP_CM_STORE ? st.size != st.comp_size : st.size > limit)
    throw error(name, "claims " + std::to_string(st.size) + " bytes from " + std::to_string(st.comp_size) +
                          " stored bytes");
  return st.size;
}

void ZipArchive::read(std::int64_t idx, const std::string& name, void* dst, std::uint64_t size) const {
  zip_file_t* zf = zip_fopen_index(za_, static_cast<zip_uint64_t>(idx), 0);
  if (!zf) throw error(name, std::string("cannot open: ") + zip_strerror(za_));
  std::uint64_t got = 0;
  std::string problem;
  while (got < size) {
    zip_int64_t r = zip_fread(zf, static_cast<char*>(dst) + got, size - got);
    if (r < 0) {
      problem = std::string("read failed: ") + zip_file_strerror(zf);
      break;
    }
    if (r == 0) break;
    got += static_cast<std::uint64_t>(r);
  }
  if (problem.empty() && got != size)
    problem = "holds " + std::to_string(got) + " bytes, " + std::to_string(size) + " expected";
  if (problem.empty()) {
    char extra;
    zip_int64_t r = zip_fread(zf, &extra, 1);  // reaching the end makes libzip verify the CRC
    if (r < 0) problem = std::string("read failed: ") + zip_file_strerror(zf);
    if (r > 0) problem = "holds more bytes than its size " + std::to_string(size);
  }
  zip_fclose(zf);
  if (!problem.empty()) throw error(name, problem);
}

std::vector<std::uint8_t> ZipArchive::read_all(std::int64_t idx, const std::string& name) const {
  std::uint64_t n = entry_size(idx, name);
  if (n > std::numeric_limits<std::size_t>::max() / 2) throw error(name, "too large");
  std::vector<std::uint8_t> out(static_cast<std::size_t>(n));
  read(idx, name, out.data(), n);
  return out;
}

FormatError ZipArchive::error(const std::string& entry, const std::string& msg) const {
  return FormatError(file_, "entry '" + entry + "': " + msg);
}

}  // namespace sepmech::io::detail
