// libFuzzer target: sepmech::io::parse_checkpoint.
//
// The first input byte picks the mode:
//   even: the rest is the checkpoint file itself (zip archive, legacy pickle, garbage);
//   odd:  the rest is [n][n x 2-byte little-endian sizes][data.pkl]: wrapped into a valid zip
//         with records archive/data/0 .. archive/data/<n-1> of those sizes, so mutations reach
//         the unpickler instead of dying on zip CRCs.
// Contract under test: any input either loads or throws FormatError (anything else escaping is
// a crash), and every loaded tensor's first and last elements are readable (ASan checks that
// the views stay inside their storages).
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/zip_writer.h"
#include "sepmech/io/checkpoint.h"

namespace {

std::string wrap(const std::uint8_t* data, std::size_t size) {
  std::size_t pos = 0;
  std::size_t n = size > 0 ? data[pos++] % 33 : 0;
  std::vector<std::pair<std::string, std::string>> entries;
  std::vector<std::pair<std::string, std::string>> records;
  for (std::size_t k = 0; k < n && pos + 2 <= size; ++k, pos += 2) {
    std::size_t len = data[pos] | (static_cast<std::size_t>(data[pos + 1]) << 8);
    std::string bytes(len, '\0');
    for (std::size_t j = 0; j < len; ++j) bytes[j] = static_cast<char>((j * 37 + k) & 0xff);
    records.emplace_back("archive/data/" + std::to_string(k), std::move(bytes));
  }
  entries.emplace_back("archive/data.pkl", std::string(reinterpret_cast<const char*>(data) + pos, size - pos));
  entries.insert(entries.end(), records.begin(), records.end());
  entries.emplace_back("archive/version", "3\n");
  return sepmech::testing::make_zip(entries);
}

void touch(const torch::Tensor& t) {
  if (t.numel() == 0) return;
  torch::Tensor first = t, last = t;
  for (int64_t d = 0; d < t.dim(); ++d) {
    first = first.select(0, 0);
    last = last.select(0, t.size(d) - 1);
  }
  (void)first.item();
  (void)last.item();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string file = (data[0] & 1) ? wrap(data + 1, size - 1)
                                   : std::string(reinterpret_cast<const char*>(data) + 1, size - 1);
  sepmech::io::Checkpoint ckpt;
  try {
    ckpt = sepmech::io::parse_checkpoint(reinterpret_cast<const std::uint8_t*>(file.data()), file.size(), "fuzz.pt");
  } catch (const sepmech::io::FormatError&) {
    return 0;
  }
  for (const auto& [k, t] : ckpt.tensors) touch(t);
  (void)sepmech::io::checkpoint_state_dict(ckpt);
  return 0;
}
