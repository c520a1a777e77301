#pragma once
// Private: the restricted unpickler of a torch.save checkpoint's data.pkl, and the resource
// bounds of reading a checkpoint (unpickling here, flattening in checkpoint.cpp).
//
// The unpickler never imports or calls anything: it builds the values listed in Kind, rebuilds
// tensors from the archive's storage records and refuses every global outside a fixed list.
//
// Scalars live in the Value itself; strings, containers, tensors and globals live in an arena
// and are referred to by index. That keeps copies (DUP, memo GET) O(1), lets a container hold
// itself (a cycle) without leaking, and frees everything at once.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

namespace sepmech::io {

/// Resource bounds of the unpickler (a malformed file hits these instead of exhausting memory).
constexpr std::size_t kMaxPickleStack = 1u << 20;    ///< values on the pickle stack
constexpr std::size_t kMaxPickleMarks = 1u << 16;    ///< open MARKs
constexpr std::size_t kMaxPickleMemo = 1u << 22;     ///< memo entries
constexpr std::size_t kMaxPickleObjects = 1u << 22;  ///< containers, strings, tensors built
constexpr std::size_t kMaxCheckpointDepth = 128;     ///< nesting of dicts/lists when flattening
constexpr std::size_t kMaxCheckpointLeaves = 1u << 22;  ///< flattened entries (shared subtrees count each time)

namespace detail {

class ZipArchive;

enum class Kind : std::uint8_t { None, Bool, Int, Float, Str, Bytes, Tuple, List, Set, Dict, Tensor, Storage, Global };

/// "None", "bool", "int", ... for error messages.
const char* kind_name(Kind k);

struct Value {
  Kind kind = Kind::None;
  std::int64_t i = 0;  // Bool, Int
  double f = 0.0;      // Float
  std::size_t ref = 0; // index into the arena for every other kind but None
};

/// What an allowed global is. Everything else is refused while unpickling.
enum class GlobalKind { DictClass, RebuildTensorV2, RebuildTensor, RebuildParameter, RebuildParameterWithState, StorageType };

struct Object {
  Kind kind = Kind::None;
  std::string text;          // Str/Bytes: the bytes; Global: "module.name"; Storage: its record name
  std::vector<Value> items;  // Tuple/List/Set: elements; Dict: key0, value0, key1, value1, ...
  std::unordered_map<std::string, std::size_t> index;  // Dict: key identity -> position of the key
  torch::Tensor tensor;      // Tensor; Storage: 1-D tensor over the record's bytes
  GlobalKind global = GlobalKind::DictClass;
  torch::ScalarType dtype = torch::kFloat;  // StorageType global, Storage
};

/// The loaded object: its root value and the arena every non-scalar value refers into.
struct Unpickled {
  Value root;
  std::vector<std::unique_ptr<Object>> arena;

  const Object& obj(const Value& v) const { return *arena[v.ref]; }
};

/// Unpickles `pkl`, the entry `<prefix>data.pkl` of `zip`; storages are read from the records
/// `<prefix>data/<key>`. Throws FormatError naming `file`, the entry and the opcode's byte
/// offset when the pickle is malformed, exceeds a bound above or uses a refused global.
Unpickled unpickle(const std::vector<std::uint8_t>& pkl, const ZipArchive& zip, const std::string& prefix,
                   const std::string& file);

}  // namespace detail
}  // namespace sepmech::io
