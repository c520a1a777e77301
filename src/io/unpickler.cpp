#include "io/unpickler.h"

#include <cctype>
#include <cstdio>
#include <cstring>

#include "io/zip_archive.h"
#include "kernels/shape.h"
#include "sepmech/io/errors.h"

namespace sepmech::io::detail {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Set: return "set";
    case Kind::Dict: return "dict";
    case Kind::Tensor: return "tensor";
    case Kind::Storage: return "storage";
    case Kind::Global: return "global";
  }
  return "?";
}

namespace {

struct StorageType {
  const char* name;
  torch::ScalarType dtype;
};

const StorageType kStorageTypes[] = {
    {"FloatStorage", torch::kFloat32},         {"DoubleStorage", torch::kFloat64},
    {"HalfStorage", torch::kFloat16},          {"BFloat16Storage", torch::kBFloat16},
    {"LongStorage", torch::kInt64},            {"IntStorage", torch::kInt32},
    {"ShortStorage", torch::kInt16},           {"CharStorage", torch::kInt8},
    {"ByteStorage", torch::kUInt8},            {"BoolStorage", torch::kBool},
    {"ComplexFloatStorage", torch::kComplexFloat}, {"ComplexDoubleStorage", torch::kComplexDouble},
};

const char* kAllowedGlobals =
    "collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_tensor, "
    "torch._utils._rebuild_parameter, torch._utils._rebuild_parameter_with_state, "
    "torch.<Float|Double|Half|BFloat16|Long|Int|Short|Char|Byte|Bool|ComplexFloat|ComplexDouble>Storage, "
    "Lightning's AttributeDict";

// Names of pickle opcodes this reader deliberately does not implement, for the error message.
const char* unsupported_opcode_name(std::uint8_t op) {
  switch (op) {
    case 'I': return "INT (protocol 0)";
    case 'L': return "LONG (protocol 0)";
    case 'F': return "FLOAT (protocol 0)";
    case 'S': return "STRING (protocol 0)";
    case 'V': return "UNICODE (protocol 0)";
    case 'p': return "PUT (protocol 0)";
    case 'g': return "GET (protocol 0)";
    case 'P': return "PERSID (protocol 0)";
    case 'i': return "INST (calls a class)";
    case 'o': return "OBJ (calls a class)";
    case 0x82: return "EXT1 (extension registry)";
    case 0x83: return "EXT2 (extension registry)";
    case 0x84: return "EXT4 (extension registry)";
    case 0x97: return "NEXT_BUFFER (out-of-band data)";
    case 0x98: return "READONLY_BUFFER (out-of-band data)";
    default: return nullptr;
  }
}

std::string hex_byte(std::uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

bool mul_overflows(std::int64_t a, std::int64_t b, std::int64_t* out) { return __builtin_mul_overflow(a, b, out); }
bool add_overflows(std::int64_t a, std::int64_t b, std::int64_t* out) { return __builtin_add_overflow(a, b, out); }

class Unpickler {
 public:
  Unpickler(const std::vector<std::uint8_t>& pkl, const ZipArchive& zip, std::string prefix, std::string file)
      : p_(pkl.data()), n_(pkl.size()), zip_(zip), prefix_(std::move(prefix)), file_(std::move(file)) {}

  Value run() {
    while (true) {
      op_pos_ = pos_;
      std::uint8_t op = u8();
      switch (op) {
        case 0x80: {  // PROTO
          std::uint8_t v = u8();
          if (v > 5) fail("pickle protocol " + std::to_string(v) + " is newer than 5");
          break;
        }
        case 0x95:  // FRAME: a length hint only
          take(8);
          break;
        case '.': {  // STOP
          if (stack_.empty()) fail("STOP with an empty stack");
          return stack_.back();
        }
        case '(':  // MARK
          if (marks_.size() >= kMaxPickleMarks) fail("more than " + std::to_string(kMaxPickleMarks) + " open MARKs");
          marks_.push_back(stack_.size());
          break;
        case '}': push(make(Kind::Dict)); break;
        case ']': push(make(Kind::List)); break;
        case ')': push(make(Kind::Tuple)); break;
        case 0x8f: push(make(Kind::Set)); break;  // EMPTY_SET
        case 't': push(make_seq(Kind::Tuple, pop_mark())); break;
        case 'l': push(make_seq(Kind::List, pop_mark())); break;
        case 0x91: push(make_seq(Kind::Set, pop_mark())); break;  // FROZENSET
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          std::size_t k = op - 0x84u;
          std::vector<Value> items(k);
          for (std::size_t j = k; j-- > 0;) items[j] = pop();
          push(make_seq(Kind::Tuple, std::move(items)));
          break;
        }
        case 'd': {  // DICT
          Value d = make(Kind::Dict);
          set_items(d, pop_mark());
          push(d);
          break;
        }
        case 'a': {  // APPEND
          Value v = pop();
          append_to(top(), {v});
          break;
        }
        case 'e':     // APPENDS
        case 0x90: {  // ADDITEMS
          Value target = top_below_mark();
          append_to(target, pop_mark());
          break;
        }
        case 's': {  // SETITEM
          Value v = pop();
          Value k = pop();
          set_items(top(), {k, v});
          break;
        }
        case 'u': {  // SETITEMS
          Value target = top_below_mark();
          set_items(target, pop_mark());
          break;
        }
        case '0':  // POP (pops the MARK when nothing was pushed after it)
          if (!marks_.empty() && marks_.back() == stack_.size())
            marks_.pop_back();
          else
            pop();
          break;
        case '1': pop_mark(); break;  // POP_MARK
        case '2': push(top()); break; // DUP
        case 'q': memo_put(u8()); break;
        case 'r': memo_put(u32()); break;
        case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
        case 'h': memo_get(u8()); break;
        case 'j': memo_get(u32()); break;
        case 'N': push(Value{}); break;
        case 0x88: push(scalar_bool(true)); break;
        case 0x89: push(scalar_bool(false)); break;
        case 'J': push(scalar_int(static_cast<std::int32_t>(u32()))); break;
        case 'K': push(scalar_int(u8())); break;
        case 'M': push(scalar_int(u16())); break;
        case 0x8a: push(scalar_int(long_bytes(u8()))); break;  // LONG1
        case 0x8b: {  // LONG4
          std::uint32_t len = u32();
          if (len > 0x7fffffffu) fail("LONG4 with a negative length");
          push(scalar_int(long_bytes(len)));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          const std::uint8_t* b = take(8);
          std::uint64_t bits = 0;
          for (int j = 0; j < 8; ++j) bits = (bits << 8) | b[j];
          double d;
          std::memcpy(&d, &bits, 8);
          Value v;
          v.kind = Kind::Float;
          v.f = d;
          push(v);
          break;
        }
        case 'X': push(make_text(Kind::Str, u32())); break;    // BINUNICODE
        case 0x8c: push(make_text(Kind::Str, u8())); break;    // SHORT_BINUNICODE
        case 0x8d: push(make_text(Kind::Str, u64())); break;   // BINUNICODE8
        case 'T': {                                            // BINSTRING (signed length)
          std::uint32_t len = u32();
          if (len > 0x7fffffffu) fail("BINSTRING with a negative length");
          push(make_text(Kind::Str, len));
          break;
        }
        case 'U': push(make_text(Kind::Str, u8())); break;     // SHORT_BINSTRING
        case 'B': push(make_text(Kind::Bytes, u32())); break;  // BINBYTES
        case 'C': push(make_text(Kind::Bytes, u8())); break;   // SHORT_BINBYTES
        case 0x8e: push(make_text(Kind::Bytes, u64())); break; // BINBYTES8
        case 0x96: push(make_text(Kind::Bytes, u64())); break; // BYTEARRAY8
        case 'c': {  // GLOBAL "module\nname\n"
          std::string module = line();
          std::string name = line();
          push(resolve_global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Value name = pop();
          Value module = pop();
          if (name.kind != Kind::Str || module.kind != Kind::Str) fail("STACK_GLOBAL needs two strings");
          push(resolve_global(obj(module).text, obj(name).text));
          break;
        }
        case 'R': {  // REDUCE
          Value args = pop();
          Value fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 0x81: {  // NEWOBJ
          Value args = pop();
          Value cls = pop();
          push(new_object(cls, args));
          break;
        }
        case 0x92: {  // NEWOBJ_EX
          pop();  // kwargs
          Value args = pop();
          Value cls = pop();
          push(new_object(cls, args));
          break;
        }
        case 'b': {  // BUILD
          Value state = pop();
          (void)state;
          Value target = top();
          // An OrderedDict's instance attributes (a state dict's `_metadata` with module
          // versions) carry nothing a state dict needs; other objects have no BUILD.
          if (target.kind != Kind::Dict) fail(std::string("BUILD on a ") + kind_name(target.kind) + " is not supported");
          break;
        }
        case 'Q': {  // BINPERSID
          Value pid = pop();
          push(load_storage(pid));
          break;
        }
        default: {
          const char* what = unsupported_opcode_name(op);
          fail(what ? std::string("unsupported pickle opcode ") + what + " (" + hex_byte(op) + ")"
                    : "unknown pickle opcode " + hex_byte(op));
        }
      }
    }
  }

  const Object& obj(const Value& v) const { return *arena_[v.ref]; }

  /// Every object built, for the caller to keep after the Unpickler is gone.
  std::vector<std::unique_ptr<Object>> release_arena() { return std::move(arena_); }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw FormatError(file_, "entry '" + prefix_ + "data.pkl' at byte " + std::to_string(op_pos_) + ": " + msg);
  }

  // --- input ---
  const std::uint8_t* take(std::uint64_t k) {
    if (k > n_ - pos_) fail("truncated: needs " + std::to_string(k) + " more bytes, " + std::to_string(n_ - pos_) + " left");
    const std::uint8_t* b = p_ + pos_;
    pos_ += static_cast<std::size_t>(k);
    return b;
  }
  std::uint8_t u8() { return *take(1); }
  std::uint64_t le(int k) {
    const std::uint8_t* b = take(k);
    std::uint64_t v = 0;
    for (int j = k - 1; j >= 0; --j) v = (v << 8) | b[j];
    return v;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(le(2)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(le(4)); }
  std::uint64_t u64() { return le(8); }
  std::string line() {
    std::size_t start = pos_;
    while (pos_ < n_ && p_[pos_] != '\n') {
      if (pos_ - start > 256) fail("GLOBAL name longer than 256 bytes");
      ++pos_;
    }
    if (pos_ >= n_) fail("truncated GLOBAL name");
    std::string s(reinterpret_cast<const char*>(p_ + start), pos_ - start);
    ++pos_;
    return s;
  }
  std::int64_t long_bytes(std::uint64_t len) {
    if (len > 8) fail("integer of " + std::to_string(len) + " bytes does not fit 64 bits");
    const std::uint8_t* b = take(len);
    if (len == 0) return 0;
    std::uint64_t v = 0;
    for (std::uint64_t j = len; j-- > 0;) v = (v << 8) | b[j];
    if (len < 8 && (b[len - 1] & 0x80)) v |= ~std::uint64_t{0} << (8 * len);  // sign-extend
    std::int64_t out;
    std::memcpy(&out, &v, 8);
    return out;
  }

  // --- values ---
  Value make(Kind k) {
    if (arena_.size() >= kMaxPickleObjects) fail("more than " + std::to_string(kMaxPickleObjects) + " objects");
    arena_.push_back(std::make_unique<Object>());
    arena_.back()->kind = k;
    Value v;
    v.kind = k;
    v.ref = arena_.size() - 1;
    return v;
  }
  Value make_seq(Kind k, std::vector<Value> items) {
    Value v = make(k);
    arena_[v.ref]->items = std::move(items);
    return v;
  }
  Value make_text(Kind k, std::uint64_t len) {
    const std::uint8_t* b = take(len);
    Value v = make(k);
    arena_[v.ref]->text.assign(reinterpret_cast<const char*>(b), static_cast<std::size_t>(len));
    return v;
  }
  static Value scalar_int(std::int64_t x) {
    Value v;
    v.kind = Kind::Int;
    v.i = x;
    return v;
  }
  static Value scalar_bool(bool x) {
    Value v;
    v.kind = Kind::Bool;
    v.i = x ? 1 : 0;
    return v;
  }

  // --- stack, marks, memo ---
  std::size_t frame_start() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(const Value& v) {
    if (stack_.size() >= kMaxPickleStack) fail("pickle stack deeper than " + std::to_string(kMaxPickleStack));
    stack_.push_back(v);
  }
  Value pop() {
    if (stack_.size() <= frame_start()) fail("stack underflow");
    Value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value top() const {
    if (stack_.size() <= frame_start()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Value> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  // The object a MARK-terminated opcode (APPENDS, SETITEMS, ADDITEMS) adds to: just below the mark.
  Value top_below_mark() const {
    if (marks_.empty()) fail("no MARK");
    std::size_t m = marks_.back();
    std::size_t below = marks_.size() >= 2 ? marks_[marks_.size() - 2] : 0;
    if (m == 0 || m <= below) fail("no object below the MARK");
    return stack_[m - 1];
  }
  void memo_put(std::uint64_t idx) {
    Value v = top();
    auto it = memo_.find(idx);
    if (it == memo_.end() && memo_.size() >= kMaxPickleMemo) fail("more than " + std::to_string(kMaxPickleMemo) + " memo entries");
    memo_[idx] = v;
  }
  void memo_get(std::uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo entry " + std::to_string(idx) + " was never stored");
    push(it->second);
  }

  // --- containers ---
  void append_to(const Value& target, const std::vector<Value>& items) {
    if (target.kind != Kind::List && target.kind != Kind::Set)
      fail(std::string("APPEND/ADDITEMS to a ") + kind_name(target.kind) + ", not a list or set");
    auto& dst = arena_[target.ref]->items;
    dst.insert(dst.end(), items.begin(), items.end());
  }
  // Identity of a dict key for SETITEM's replace-if-present rule; "" for keys compared by object.
  std::string key_identity(const Value& k) const {
    switch (k.kind) {
      case Kind::Str: return "s" + obj(k).text;
      case Kind::Bytes: return "b" + obj(k).text;
      case Kind::Int: return "i" + std::to_string(k.i);
      case Kind::Bool: return "i" + std::to_string(k.i);  // True == 1 in Python
      case Kind::None: return "n";
      default: return "";
    }
  }
  void set_items(const Value& target, const std::vector<Value>& kv) {
    if (target.kind != Kind::Dict) fail(std::string("SETITEM(S) on a ") + kind_name(target.kind) + ", not a dict");
    if (kv.size() % 2) fail("SETITEMS with an odd number of values");
    Object& d = *arena_[target.ref];
    for (std::size_t j = 0; j < kv.size(); j += 2) {
      std::string id = key_identity(kv[j]);
      if (!id.empty()) {
        auto it = d.index.find(id);
        if (it != d.index.end()) {
          d.items[it->second + 1] = kv[j + 1];
          continue;
        }
        d.index.emplace(id, d.items.size());
      }
      d.items.push_back(kv[j]);
      d.items.push_back(kv[j + 1]);
    }
  }

  // --- globals and calls ---
  Value resolve_global(const std::string& module, const std::string& name) {
    Value v = make(Kind::Global);
    Object& g = *arena_[v.ref];
    g.text = module + "." + name;
    if (module == "collections" && name == "OrderedDict") {
      g.global = GlobalKind::DictClass;
    } else if (name == "AttributeDict" && (module == "pytorch_lightning.utilities.parsing" ||
                                           module == "lightning_fabric.utilities.data" ||
                                           module == "lightning.fabric.utilities.data")) {
      g.global = GlobalKind::DictClass;
    } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      g.global = GlobalKind::RebuildTensorV2;
    } else if (module == "torch._utils" && name == "_rebuild_tensor") {
      g.global = GlobalKind::RebuildTensor;
    } else if (module == "torch._utils" && name == "_rebuild_parameter") {
      g.global = GlobalKind::RebuildParameter;
    } else if (module == "torch._utils" && name == "_rebuild_parameter_with_state") {
      g.global = GlobalKind::RebuildParameterWithState;
    } else {
      bool found = false;
      if (module == "torch" || module == "torch.cuda")
        for (const auto& st : kStorageTypes)
          if (name == st.name) {
            g.global = GlobalKind::StorageType;
            g.dtype = st.dtype;
            found = true;
          }
      if (!found)
        fail("refusing global '" + g.text + "': a state-dict checkpoint only needs " + kAllowedGlobals);
    }
    return v;
  }

  const Object& global_of(const Value& fn, const char* op) const {
    if (fn.kind != Kind::Global) fail(std::string(op) + " of a " + kind_name(fn.kind) + ", not a global");
    return obj(fn);
  }
  const std::vector<Value>& tuple_items(const Value& args, const char* what) const {
    if (args.kind != Kind::Tuple) fail(std::string(what) + ": arguments must be a tuple, got a " + kind_name(args.kind));
    return obj(args).items;
  }

  Value new_object(const Value& cls, const Value& args) {
    const Object& g = global_of(cls, "NEWOBJ");
    if (g.global != GlobalKind::DictClass) fail("NEWOBJ of '" + g.text + "' is not supported");
    tuple_items(args, g.text.c_str());
    return make(Kind::Dict);
  }

  Value reduce(const Value& fn, const Value& args) {
    const Object& g = global_of(fn, "REDUCE");
    const std::string gname = g.text;
    const auto& a = tuple_items(args, gname.c_str());
    switch (g.global) {
      case GlobalKind::DictClass:
        if (!a.empty()) fail(gname + "(...) with arguments is not supported");
        return make(Kind::Dict);
      case GlobalKind::RebuildTensorV2:
      case GlobalKind::RebuildTensor: {
        std::size_t lo = g.global == GlobalKind::RebuildTensorV2 ? 6 : 4, hi = g.global == GlobalKind::RebuildTensorV2 ? 7 : 4;
        if (a.size() < lo || a.size() > hi)
          fail(gname + " takes " + std::to_string(lo) + (hi > lo ? "-" + std::to_string(hi) : "") +
               " arguments, got " + std::to_string(a.size()));
        return rebuild_tensor(gname, a);
      }
      case GlobalKind::RebuildParameter:
      case GlobalKind::RebuildParameterWithState: {
        std::size_t want = g.global == GlobalKind::RebuildParameter ? 3 : 4;
        if (a.size() != want) fail(gname + " takes " + std::to_string(want) + " arguments, got " + std::to_string(a.size()));
        if (a[0].kind != Kind::Tensor) fail(gname + ": first argument must be a tensor, got a " + kind_name(a[0].kind));
        return a[0];
      }
      case GlobalKind::StorageType:
        fail("calling storage type '" + gname + "' is not supported");
    }
    fail("unreachable");
  }

  std::vector<std::int64_t> int_tuple(const Value& v, const std::string& what) const {
    if (v.kind != Kind::Tuple && v.kind != Kind::List) fail(what + " must be a tuple of ints, got a " + kind_name(v.kind));
    std::vector<std::int64_t> out;
    for (const auto& e : obj(v).items) {
      if (e.kind != Kind::Int) fail(what + " must hold ints, got a " + kind_name(e.kind));
      if (e.i < 0) fail(what + " must be non-negative, got " + std::to_string(e.i));
      out.push_back(e.i);
    }
    return out;
  }

  Value rebuild_tensor(const std::string& gname, const std::vector<Value>& a) {
    if (a[0].kind != Kind::Storage) fail(gname + ": first argument must be a storage, got a " + kind_name(a[0].kind));
    if (a[1].kind != Kind::Int || a[1].i < 0) fail(gname + ": storage offset must be a non-negative int");
    const Object& st = obj(a[0]);
    const std::int64_t offset = a[1].i;
    auto sizes = int_tuple(a[2], gname + ": size");
    auto strides = int_tuple(a[3], gname + ": stride");
    if (sizes.size() != strides.size())
      fail(gname + ": size has " + std::to_string(sizes.size()) + " dimensions but stride has " + std::to_string(strides.size()));
    if (sizes.size() > 64) fail(gname + ": more than 64 dimensions");
    const std::int64_t storage_numel = st.tensor.numel();
    std::int64_t numel = 1, last = offset;
    bool overflow = false;
    for (std::size_t d = 0; d < sizes.size(); ++d) {
      overflow = overflow || mul_overflows(numel, sizes[d], &numel);
      if (sizes[d] > 0) {
        std::int64_t span;
        overflow = overflow || mul_overflows(sizes[d] - 1, strides[d], &span) || add_overflows(last, span, &last);
      }
    }
    if (overflow) fail(gname + ": size " + kernels::shape_str(sizes) + " / stride overflows 64 bits");
    if (numel > 0 && last >= storage_numel)
      fail(gname + ": size " + kernels::shape_str(sizes) + ", stride " + kernels::shape_str(strides) +
           ", offset " + std::to_string(offset) + " reach element " + std::to_string(last) + " of storage '" + st.text +
           "' with " + std::to_string(storage_numel) + " elements");
    if (numel == 0 && offset > storage_numel)
      fail(gname + ": offset " + std::to_string(offset) + " is past storage '" + st.text + "' (" +
           std::to_string(storage_numel) + " elements)");
    Value v = make(Kind::Tensor);
    arena_[v.ref]->tensor = st.tensor.as_strided(sizes, strides, offset);
    return v;
  }

  // ('storage', torch.<T>Storage, key, location, numel) -> the record <prefix>data/<key>.
  Value load_storage(const Value& pid) {
    if (pid.kind != Kind::Tuple) fail(std::string("persistent id must be a tuple, got a ") + kind_name(pid.kind));
    const auto& items = obj(pid).items;
    if (items.size() != 5) fail("persistent id must have 5 fields, got " + std::to_string(items.size()));
    if (items[0].kind != Kind::Str || obj(items[0]).text != "storage") fail("persistent id is not a ('storage', ...) tuple");
    if (items[1].kind != Kind::Global || obj(items[1]).global != GlobalKind::StorageType)
      fail("persistent id: second field must be a torch.*Storage type");
    if (items[2].kind != Kind::Str) fail("persistent id: storage key must be a string");
    if (items[3].kind != Kind::Str) fail("persistent id: location must be a string");
    if (items[4].kind != Kind::Int || items[4].i < 0) fail("persistent id: numel must be a non-negative int");
    const torch::ScalarType dtype = obj(items[1]).dtype;
    const std::string key = obj(items[2]).text;
    const std::int64_t numel = items[4].i;
    auto cached = storages_.find(key);
    if (cached != storages_.end()) {
      const Object& s = obj(cached->second);
      if (s.dtype != dtype || s.tensor.numel() != numel)
        fail("storage '" + key + "' is referenced as " + c10::toString(dtype) + "[" + std::to_string(numel) + "] and as " +
             c10::toString(s.dtype) + "[" + std::to_string(s.tensor.numel()) + "]");
      return cached->second;
    }
    for (char ch : key)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.')
        fail("storage key '" + key + "' has characters other than [A-Za-z0-9_.-]");
    const std::string entry = prefix_ + "data/" + key;
    const std::int64_t idx = zip_.locate(entry);
    if (idx < 0) fail("storage record '" + entry + "' is missing from the archive");
    const std::uint64_t size = zip_.entry_size(idx, entry);
    const std::int64_t elem = static_cast<std::int64_t>(c10::elementSize(dtype));
    std::int64_t need;
    if (mul_overflows(numel, elem, &need) || static_cast<std::uint64_t>(need) != size)
      throw zip_.error(entry, "holds " + std::to_string(size) + " bytes but " + obj(items[1]).text + " of " +
                                  std::to_string(numel) + " elements needs " +
                                  (mul_overflows(numel, elem, &need) ? std::string("more than 2^63") : std::to_string(need)));
    Value v = make(Kind::Storage);
    Object& s = *arena_[v.ref];
    s.text = entry;
    s.dtype = dtype;
    s.tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    if (size > 0) zip_.read(idx, entry, s.tensor.data_ptr(), size);
    storages_.emplace(key, v);
    return v;
  }

  const std::uint8_t* p_;
  std::size_t n_;
  std::size_t pos_ = 0, op_pos_ = 0;
  const ZipArchive& zip_;
  std::string prefix_, file_;
  std::vector<std::unique_ptr<Object>> arena_;
  std::vector<Value> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, Value> memo_;
  std::unordered_map<std::string, Value> storages_;
};

}  // namespace

Unpickled unpickle(const std::vector<std::uint8_t>& pkl, const ZipArchive& zip, const std::string& prefix,
                   const std::string& file) {
  Unpickler up(pkl, zip, prefix, file);
  Unpickled out;
  out.root = up.run();
  out.arena = up.release_arena();
  return out;
}

}  // namespace sepmech::io::detail
