// The public entry points of reading a torch.save checkpoint, and the flattener: the loaded
// object's nested dicts and lists become name -> tensor and name -> text. The zip layer is
// io/zip_archive.cpp, the restricted unpickler io/unpickler.cpp.
#include "sepmech/io/checkpoint.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "io/unpickler.h"
#include "io/zip_archive.h"

namespace sepmech::io {
namespace {

using detail::Kind;
using detail::kind_name;
using detail::Value;

std::string float_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  for (int prec = 15; prec <= 17; ++prec) {  // shortest text that reads back to the same double
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // keep it recognisably a float
  return s;
}

// ---------------------------------------------------------------------------------------------
// Flattening the loaded object into name -> tensor / name -> text.
// ---------------------------------------------------------------------------------------------
class Flattener {
 public:
  Flattener(const detail::Unpickled& up, Checkpoint& out, std::string file) : up_(up), out_(out), file_(std::move(file)) {}

  void run(const Value& root) {
    if (root.kind == Kind::Dict) {
      const auto& items = up_.obj(root).items;
      for (std::size_t j = 0; j + 1 < items.size(); j += 2) out_.top_level_keys.insert(key_text(items[j], 0));
    }
    visit(root, "", 0);
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { throw FormatError(file_, "data.pkl: " + msg); }

  std::string key_text(const Value& k, std::size_t depth) const {
    if (depth > 8) return "...";
    switch (k.kind) {
      case Kind::Str: return up_.obj(k).text;
      case Kind::Int: return std::to_string(k.i);
      case Kind::Bool: return k.i ? "True" : "False";
      case Kind::None: return "None";
      case Kind::Float: return float_text(k.f);
      case Kind::Bytes: return "<" + std::to_string(up_.obj(k).text.size()) + " bytes>";
      case Kind::Tuple: {
        std::string s = "(";
        const auto& items = up_.obj(k).items;
        for (std::size_t j = 0; j < items.size() && j < 16; ++j) s += (j ? ", " : "") + key_text(items[j], depth + 1);
        return s + (items.size() > 16 ? ", ...)" : ")");
      }
      default: return std::string("<") + kind_name(k.kind) + ">";
    }
  }

  std::string child(const std::string& prefix, const std::string& key) {
    std::string name = prefix.empty() ? key : prefix + "." + key;
    name_bytes_ += name.size();
    if (name_bytes_ > (std::size_t{1} << 28)) fail("flattened names exceed 256 MiB (shared subtrees?)");
    return name;
  }

  void leaf(const std::string& name) {
    if (out_.tensors.count(name) || out_.metadata.count(name)) fail("two entries flatten to the same name '" + name + "'");
  }

  void visit(const Value& v, const std::string& name, std::size_t depth) {
    if (depth > kMaxCheckpointDepth) fail("nesting deeper than " + std::to_string(kMaxCheckpointDepth) + " at '" + name.substr(0, 200) + "' (a cycle?)");
    if (++visited_ > kMaxCheckpointLeaves) fail("more than " + std::to_string(kMaxCheckpointLeaves) + " entries (shared subtrees?)");
    switch (v.kind) {
      case Kind::Dict: {
        const auto& items = up_.obj(v).items;
        for (std::size_t j = 0; j + 1 < items.size(); j += 2) visit(items[j + 1], child(name, key_text(items[j], 0)), depth + 1);
        return;
      }
      case Kind::List:
      case Kind::Tuple:
      case Kind::Set: {
        const auto& items = up_.obj(v).items;
        for (std::size_t j = 0; j < items.size(); ++j) visit(items[j], child(name, std::to_string(j)), depth + 1);
        return;
      }
      case Kind::Tensor:
        leaf(name);
        out_.tensors.emplace(name, up_.obj(v).tensor);
        return;
      case Kind::Storage:
        leaf(name);
        out_.metadata.emplace(name, std::string("<storage ") + c10::toString(up_.obj(v).dtype) + "[" +
                                        std::to_string(up_.obj(v).tensor.numel()) + "]>");
        return;
      case Kind::Global:
        leaf(name);
        out_.metadata.emplace(name, "<global " + up_.obj(v).text + ">");
        return;
      case Kind::Str:
        leaf(name);
        out_.metadata.emplace(name, up_.obj(v).text);
        return;
      default:
        leaf(name);
        out_.metadata.emplace(name, key_text(v, 0));
        return;
    }
  }

  const detail::Unpickled& up_;
  Checkpoint& out_;
  std::string file_;
  std::size_t visited_ = 0, name_bytes_ = 0;
};

}  // namespace

bool looks_like_torch_checkpoint(const std::uint8_t* data, std::size_t size) {
  if (size >= 4 && data[0] == 'P' && data[1] == 'K' &&
      ((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6)))
    return true;
  // A first byte 0x80 alone says nothing: it is also how every safetensors file whose header
  // length is 128 mod 256 begins. A legacy torch.save file starts with a pickle of its magic
  // number 0x1950a86a20f9469cfc6c: PROTO n, (FRAME from protocol 4,) LONG1 of 10 bytes.
  static const std::uint8_t kLegacyMagic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  if (size < 2 || data[0] != 0x80) return false;
  std::size_t pos = 2;
  if (size > pos && data[pos] == 0x95) pos += 9;  // FRAME + 8-byte length
  return size >= pos + sizeof kLegacyMagic && std::memcmp(data + pos, kLegacyMagic, sizeof kLegacyMagic) == 0;
}

Checkpoint parse_checkpoint(const std::uint8_t* data, std::size_t size, const std::string& name) {
  if (size >= 2 && data[0] == 0x80)
    throw FormatError(name,
                      "legacy (non-zip) torch.save format, which sepmech does not read. Re-save it with PyTorch: "
                      "torch.save(torch.load(path), path, _use_new_zipfile_serialization=True)");
  if (!looks_like_torch_checkpoint(data, size))
    throw FormatError(name, "not a PyTorch checkpoint: neither a zip archive written by torch.save nor a legacy pickle");
  detail::ZipArchive zip(data, size, name);

  // torch.save writes "<dir>/data.pkl" next to "<dir>/data/<key>" records.
  std::string prefix;
  int found = 0;
  const std::int64_t n = zip.num_entries();
  for (std::int64_t i = 0; i < n; ++i) {
    std::string e = zip.entry_name(i);
    const std::string tail = "/data.pkl";
    if (e.size() > tail.size() && e.compare(e.size() - tail.size(), tail.size(), tail) == 0 &&
        e.find('/') == e.size() - tail.size()) {
      if (found++ == 0) prefix = e.substr(0, e.size() - tail.size() + 1);
    }
  }
  if (found == 0) throw FormatError(name, "zip archive has no '<dir>/data.pkl' entry: not a torch.save checkpoint");
  if (found > 1) throw FormatError(name, "zip archive has " + std::to_string(found) + " '<dir>/data.pkl' entries");

  const std::int64_t bo = zip.locate(prefix + "byteorder");
  if (bo >= 0) {
    auto order = zip.read_all(bo, prefix + "byteorder");
    std::string s(order.begin(), order.end());
    if (s != "little") throw zip.error(prefix + "byteorder", "byte order '" + s.substr(0, 16) + "' is not supported (little-endian only)");
  }

  const std::string pkl_name = prefix + "data.pkl";
  auto pkl = zip.read_all(zip.locate(pkl_name), pkl_name);
  const detail::Unpickled up = detail::unpickle(pkl, zip, prefix, name);
  Checkpoint out;
  Flattener(up, out, name).run(up.root);
  return out;
}

Checkpoint load_checkpoint(const std::string& path) {
  auto bytes = read_file_bytes(path);
  return parse_checkpoint(bytes.data(), bytes.size(), path);
}

TensorMap checkpoint_state_dict(const Checkpoint& ckpt) {
  if (!ckpt.top_level_keys.count("state_dict")) return ckpt.tensors;
  const std::string prefix = "state_dict.";
  TensorMap out;
  for (const auto& [k, t] : ckpt.tensors)
    if (k.compare(0, prefix.size(), prefix) == 0) out.emplace(k.substr(prefix.size()), t);
  return out;
}

}  // namespace sepmech::io
