#include "sepmech/io/safetensors.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

namespace sepmech::io {
namespace {

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  std::size_t size;
};

const DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat32, 4}, {"F64", torch::kFloat64, 8}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8}, {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::set<std::string> split_commas(const std::string& s) {
  std::set<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.insert(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  if (!cur.empty()) out.insert(cur);
  return out;
}

// Little-endian hosts only (x86_64, aarch64): the bytes are copied as they are.
static_assert(sizeof(void*) == 8, "sepmech assumes a 64-bit host");

}  // namespace

std::string safetensors_dtype_name(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw std::invalid_argument(std::string("safetensors cannot store dtype ") + c10::toString(t));
}

TensorFile parse_safetensors(const std::uint8_t* data, std::size_t size, const std::string& name) {
  if (size < 8) throw FormatError(name, "file is " + std::to_string(size) + " bytes; a safetensors file needs at least 8");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kMaxSafetensorsHeader)
    throw FormatError(name, "header length " + std::to_string(n) + " exceeds the limit of " +
                                std::to_string(kMaxSafetensorsHeader) + " bytes");
  if (n > size - 8)
    throw FormatError(name, "header length " + std::to_string(n) + " runs past the end of the file (" +
                                std::to_string(size - 8) + " bytes after the length field)");
  nlohmann::json header;
  // A valid header nests 3 levels ({name: {shape: [...]}}); deeper nesting is refused while
  // parsing, before it can cost ~40 bytes of DOM per input byte.
  constexpr int kMaxHeaderDepth = 8;
  struct TooDeep {};
  try {
    header = nlohmann::json::parse(data + 8, data + 8 + n, [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > kMaxHeaderDepth) throw TooDeep{};
      return true;
    });
  } catch (const TooDeep&) {
    throw FormatError(name, "header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels");
  } catch (const std::exception& e) {
    throw FormatError(name, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw FormatError(name, "header must be a JSON object");

  const std::uint8_t* base = data + 8 + n;
  const std::uint64_t data_size = size - 8 - n;
  TensorFile out;
  std::set<std::string> complex_keys;
  if (auto it = header.find("__metadata__"); it != header.end()) {
    if (!it->is_object()) throw FormatError(name, "__metadata__ must be an object of strings");
    for (auto& [k, v] : it->items()) {
      if (!v.is_string()) throw FormatError(name, "__metadata__ entry '" + k + "' must be a string");
      out.metadata[k] = v.get<std::string>();
    }
    if (auto c = out.metadata.find("complex"); c != out.metadata.end()) complex_keys = split_commas(c->second);
  }

  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  std::vector<std::string> range_names;
  for (auto& item : header.items()) {
    const std::string& key = item.key();  // not a structured binding: lambdas below capture it
    const nlohmann::json& entry = item.value();
    if (key == "__metadata__") continue;
    auto where = [&](const std::string& msg) { return FormatError(name, "tensor '" + key + "': " + msg); };
    if (!entry.is_object()) throw where("entry must be an object");
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto of = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) throw where("missing string field 'dtype'");
    if (sh == entry.end() || !sh->is_array()) throw where("missing array field 'shape'");
    if (of == entry.end() || !of->is_array() || of->size() != 2) throw where("'data_offsets' must be [begin, end]");
    const DtypeInfo* info = find_dtype(dt->get<std::string>());
    if (!info) throw where("unsupported dtype '" + dt->get<std::string>() + "'");
    // Like the checkpoint reader: millions of size-1 dimensions fit a 100 MB header but no tensor.
    if (sh->size() > kMaxSafetensorsDims)
      throw where("shape has " + std::to_string(sh->size()) + " dimensions (at most " +
                  std::to_string(kMaxSafetensorsDims) + ")");
    std::vector<int64_t> shape;
    std::uint64_t numel = 1;
    // Product of the non-zero dimensions: with a zero dimension the tensor is empty, but the
    // others must still fit an int64 (LibTorch computes strides from them).
    std::uint64_t nonzero_product = 1;
    const std::uint64_t int64_max = static_cast<std::uint64_t>(std::numeric_limits<int64_t>::max());
    for (auto& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        throw where("shape entries must be non-negative integers");
      std::uint64_t v = d.get<std::uint64_t>();
      if (v > int64_max || (v != 0 && nonzero_product > int64_max / v)) throw where("shape product overflows");
      if (v != 0) nonzero_product *= v;
      numel *= v;
      shape.push_back(static_cast<int64_t>(v));
    }
    if (numel > std::numeric_limits<std::uint64_t>::max() / info->size) throw where("byte size overflows");
    for (auto& o : *of)
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        throw where("data_offsets must be non-negative integers");
    std::uint64_t a = (*of)[0].get<std::uint64_t>(), b = (*of)[1].get<std::uint64_t>();
    if (a > b) throw where("data_offsets begin " + std::to_string(a) + " > end " + std::to_string(b));
    if (b > data_size)
      throw where("data_offsets end " + std::to_string(b) + " is past the data section (" +
                  std::to_string(data_size) + " bytes)");
    if (b - a != numel * info->size)
      throw where("holds " + std::to_string(b - a) + " bytes but dtype " + info->name + " x shape needs " +
                  std::to_string(numel * info->size));
    ranges.emplace_back(a, b);
    range_names.push_back(key);

    torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(info->type));
    if (b > a) std::memcpy(t.data_ptr(), base + a, b - a);
    if (complex_keys.count(key)) {
      if (!(info->type == torch::kFloat32 || info->type == torch::kFloat64) || shape.empty() || shape.back() != 2)
        throw where("listed in metadata 'complex' but is not a float tensor with trailing dimension 2");
      t = torch::view_as_complex(t).clone();
    }
    out.tensors.emplace(key, std::move(t));
  }
  // No two tensors may share bytes.
  std::vector<std::size_t> order(ranges.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return ranges[x] < ranges[y]; });
  std::uint64_t max_end = 0;
  std::size_t max_owner = 0;
  for (std::size_t idx : order) {
    const auto& r = ranges[idx];
    if (r.second == r.first) continue;  // empty tensors occupy no bytes
    if (r.first < max_end)
      throw FormatError(name, "tensors '" + range_names[max_owner] + "' and '" + range_names[idx] +
                                  "' overlap in the data section");
    max_end = r.second;
    max_owner = idx;
  }
  for (const auto& k : complex_keys)
    if (!out.tensors.count(k)) throw FormatError(name, "metadata 'complex' names '" + k + "', which is not a tensor");
  return out;
}

std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  // std::ifstream opens a directory and then reports a nonsense size (std::bad_alloc follows):
  // refuse anything that is not a regular file (or a link to one) up front.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw FormatError(path, "cannot open file");
  if (std::filesystem::is_directory(status)) throw FormatError(path, "is a directory, not a file");
  if (!std::filesystem::is_regular_file(status)) throw FormatError(path, "is not a regular file");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw FormatError(path, "cannot open file");
  std::streamoff len = f.tellg();
  if (len < 0) throw FormatError(path, "cannot determine file size");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(len));
  f.seekg(0);
  if (len > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), len)) throw FormatError(path, "read failed");
  return bytes;
}

TensorFile load_safetensors(const std::string& path) {
  auto bytes = read_file_bytes(path);
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

std::vector<std::uint8_t> serialize_safetensors(const TensorMap& tensors, const Metadata& metadata) {
  nlohmann::json header = nlohmann::json::object();
  Metadata meta = metadata;
  std::string complex_list;
  std::vector<torch::Tensor> blobs;
  std::uint64_t off = 0;
  for (const auto& [key, t0] : tensors) {
    TORCH_CHECK(key != "__metadata__", "serialize_safetensors: '__metadata__' cannot be a tensor name");
    TORCH_CHECK(t0.defined(), "serialize_safetensors: tensor '", key, "' is undefined");
    torch::Tensor t = t0.detach().to(torch::kCPU);
    if (t.is_complex()) {
      t = torch::view_as_real(t.contiguous());
      complex_list += (complex_list.empty() ? "" : ",") + key;
    }
    t = t.contiguous();
    std::uint64_t nbytes = static_cast<std::uint64_t>(t.numel()) * t.element_size();
    header[key] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                   {"shape", t.sizes().vec()},
                   {"data_offsets", {off, off + nbytes}}};
    off += nbytes;
    blobs.push_back(t);
  }
  if (!complex_list.empty()) meta["complex"] = complex_list;
  if (!meta.empty()) header["__metadata__"] = meta;
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  std::vector<std::uint8_t> out(8 + h.size() + off);
  std::uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, h.data(), h.size());
  std::uint8_t* p = out.data() + 8 + h.size();
  for (const auto& t : blobs) {
    std::size_t nb = t.numel() * t.element_size();
    if (nb) std::memcpy(p, t.data_ptr(), nb);
    p += nb;
  }
  return out;
}

void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  auto bytes = serialize_safetensors(tensors, metadata);
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw FormatError(path, "cannot open " + tmp + " for writing");
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) {
      std::remove(tmp.c_str());  // no half-written temporary left behind
      throw FormatError(path, "write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw FormatError(path, "cannot rename the temporary file " + tmp + " to it");
  }
}

}  // namespace sepmech::io
