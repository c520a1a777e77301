// libFuzzer target: sepmech::io::parse_safetensors on arbitrary bytes.
// Contract under test: any input either parses or throws FormatError (anything else escaping is
// a crash), nothing reads out of bounds, and what parses survives a write/read round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "sepmech/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sepmech::io::TensorFile f;
  try {
    f = sepmech::io::parse_safetensors(data, size, "fuzz.safetensors");
  } catch (const sepmech::io::FormatError&) {
    return 0;
  }
  auto bytes = sepmech::io::serialize_safetensors(f.tensors, f.metadata);
  auto back = sepmech::io::parse_safetensors(bytes.data(), bytes.size(), "roundtrip.safetensors");
  if (back.tensors.size() != f.tensors.size()) std::abort();
  for (const auto& [k, t] : f.tensors) {
    const auto& u = back.tensors.at(k);
    if (u.scalar_type() != t.scalar_type() || u.sizes() != t.sizes()) std::abort();
    // Bitwise: NaNs must survive too.
    if (t.numel() > 0 && std::memcmp(t.data_ptr(), u.data_ptr(), t.numel() * t.element_size()) != 0) std::abort();
  }
  return 0;
}
