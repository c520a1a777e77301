#pragma once
// Test/fuzz helpers: a minimal writer of zip archives with stored (uncompressed) entries, and a
// builder of pickle byte strings, to hand-craft torch.save-like checkpoints (valid or broken).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sepmech::testing {

inline std::uint32_t crc32_of(const std::string& s) {
  std::uint32_t c = 0xffffffffu;
  for (unsigned char ch : s) {
    c ^= ch;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

/// A zip archive of stored entries, in the order given (the bytes of a .pt file).
inline std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, central;
  auto put16 = [](std::string& s, std::uint32_t v) {
    s += static_cast<char>(v & 0xff);
    s += static_cast<char>((v >> 8) & 0xff);
  };
  auto put32 = [&](std::string& s, std::uint32_t v) {
    put16(s, v & 0xffff);
    put16(s, v >> 16);
  };
  for (const auto& [name, data] : entries) {
    const std::uint32_t offset = static_cast<std::uint32_t>(out.size());
    const std::uint32_t crc = crc32_of(data);
    const auto size = static_cast<std::uint32_t>(data.size());
    put32(out, 0x04034b50);
    put16(out, 20);      // version needed
    put16(out, 0);       // flags
    put16(out, 0);       // stored
    put16(out, 0);       // time
    put16(out, 0x21);    // date 1980-01-01
    put32(out, crc);
    put32(out, size);
    put32(out, size);
    put16(out, static_cast<std::uint32_t>(name.size()));
    put16(out, 0);
    out += name;
    out += data;
    put32(central, 0x02014b50);
    put16(central, 20);  // made by
    put16(central, 20);  // needed
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0x21);
    put32(central, crc);
    put32(central, size);
    put32(central, size);
    put16(central, static_cast<std::uint32_t>(name.size()));
    put16(central, 0);  // extra
    put16(central, 0);  // comment
    put16(central, 0);  // disk
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, offset);
    central += name;
  }
  const auto cd_offset = static_cast<std::uint32_t>(out.size());
  out += central;
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<std::uint32_t>(entries.size()));
  put16(out, static_cast<std::uint32_t>(entries.size()));
  put32(out, static_cast<std::uint32_t>(central.size()));
  put32(out, cd_offset);
  put16(out, 0);
  return out;
}

/// Builds pickle bytes opcode by opcode (protocol 2 unless told otherwise).
struct Pickle {
  std::string b;
  Pickle& raw(const std::string& s) { b += s; return *this; }
  Pickle& op(unsigned char c) { b += static_cast<char>(c); return *this; }
  Pickle& proto(int v = 2) { return op(0x80).op(static_cast<unsigned char>(v)); }
  Pickle& mark() { return op('('); }
  Pickle& stop() { return op('.'); }
  Pickle& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  Pickle& str(const std::string& s) {
    op('X');
    u32(static_cast<std::uint32_t>(s.size()));
    return raw(s);
  }
  Pickle& u32(std::uint32_t v) {
    for (int k = 0; k < 4; ++k) b += static_cast<char>((v >> (8 * k)) & 0xff);
    return *this;
  }
  Pickle& integer(std::int64_t v) {  // BININT1 / BININT / LONG1
    if (v >= 0 && v < 256) return op('K').op(static_cast<unsigned char>(v));
    if (v >= INT32_MIN && v <= INT32_MAX) return op('J').u32(static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
    op(0x8a).op(8);
    for (int k = 0; k < 8; ++k) b += static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * k)) & 0xff);
    return *this;
  }
  Pickle& ints(const std::vector<std::int64_t>& v) {  // a tuple of ints
    mark();
    for (auto x : v) integer(x);
    return op('t');
  }
  Pickle& empty_dict() { return op('}'); }
  Pickle& ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
  /// torch._utils._rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, sizes, strides, False, OrderedDict())
  Pickle& tensor(const std::string& storage_type, const std::string& key, std::int64_t numel, std::int64_t offset,
                 const std::vector<std::int64_t>& sizes, const std::vector<std::int64_t>& strides) {
    global("torch._utils", "_rebuild_tensor_v2");
    mark();
    mark().str("storage").global("torch", storage_type).str(key).str("cpu").integer(numel).op('t').op('Q');
    integer(offset).ints(sizes).ints(strides).op(0x89);
    ordered_dict();
    return op('t').op('R');
  }
};

/// Little-endian float32 bytes of the values (a storage record).
inline std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

}  // namespace sepmech::testing
