// The torch.save checkpoint reader: real files written by PyTorch (tests/data/checkpoints, see
// make_fixtures.py there) and hand-made malformed archives.
#include <gtest/gtest.h>

#include <fstream>

#include "io/format_error.h"
#include "io/unpickler.h"  // the resource bounds (src/io)
#include "io/zip_writer.h"
#include "sepmech/io/checkpoint.h"
#include "sepmech/io/safetensors.h"
#include "sepmech/io/state_dict.h"

using sepmech::io::Checkpoint;
using sepmech::io::FormatError;
using sepmech::testing::format_error;
using sepmech::testing::make_zip;
using sepmech::testing::Pickle;

namespace {

const std::string kDir = std::string(SEPMECH_TEST_DATA) + "/checkpoints/";

Checkpoint parse(const std::string& bytes, const std::string& name = "test.pt") {
  return sepmech::io::parse_checkpoint(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), name);
}

#define EXPECT_FORMAT_ERROR(bytes, ...)                                            \
  do {                                                                             \
    std::string msg_ = format_error([&] { parse(bytes); });                        \
    EXPECT_EQ(msg_.rfind("test.pt: ", 0), 0u) << "must name the file: " << msg_;   \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(msg_.find(part), std::string::npos) << "'" << part << "' not in: " << msg_; \
  } while (0)

// A one-tensor state dict {"w": FloatStorage[numel] viewed as sizes/strides at offset}.
std::string one_tensor_pkl(std::int64_t numel, std::int64_t offset, const std::vector<std::int64_t>& sizes,
                           const std::vector<std::int64_t>& strides, const std::string& type = "FloatStorage") {
  Pickle p;
  p.proto().ordered_dict().str("w").tensor(type, "0", numel, offset, sizes, strides).op('s').stop();
  return p.b;
}

std::string archive(const std::string& pkl, const std::string& storage0) {
  return make_zip({{"archive/data.pkl", pkl}, {"archive/data/0", storage0}, {"archive/version", "3\n"}});
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void expect_same(const torch::Tensor& got, const torch::Tensor& want, const std::string& key) {
  ASSERT_TRUE(got.defined()) << key;
  EXPECT_EQ(got.scalar_type(), want.scalar_type()) << key;
  EXPECT_EQ(got.sizes(), want.sizes()) << key;
  EXPECT_TRUE(got.equal(want)) << key << ": got " << got << " want " << want;
}

}  // namespace

// --- real files written by PyTorch ---------------------------------------------------------------

TEST(Checkpoint, StateDictFromPyTorchMatchesExpectedValuesExactly) {
  auto ckpt = sepmech::io::load_checkpoint(kDir + "state_dict.pt");
  auto expected = sepmech::io::load_safetensors(kDir + "expected.safetensors").tensors;
  std::size_t compared = 0;
  for (const auto& [key, want] : expected) {
    if (key.rfind("lightning.", 0) == 0) continue;
    ASSERT_TRUE(ckpt.tensors.count(key)) << "missing " << key;
    expect_same(ckpt.tensors.at(key), want, key);
    ++compared;
  }
  EXPECT_EQ(compared, ckpt.tensors.size());  // nothing more, nothing less
  EXPECT_EQ(compared, 21u);
  // Every storage dtype the fixture holds.
  for (auto [key, dt] : std::vector<std::pair<std::string, torch::ScalarType>>{
           {"lin.weight", torch::kFloat}, {"f64", torch::kDouble}, {"f16", torch::kHalf}, {"bf16", torch::kBFloat16},
           {"i64", torch::kLong}, {"i32", torch::kInt}, {"i16", torch::kShort}, {"i8", torch::kChar},
           {"u8", torch::kByte}, {"flag", torch::kBool}, {"c64", torch::kComplexFloat}})
    EXPECT_EQ(ckpt.tensors.at(key).scalar_type(), dt) << key;
  EXPECT_TRUE(ckpt.metadata.empty());  // an OrderedDict of tensors; its _metadata attribute is dropped
  EXPECT_TRUE(ckpt.top_level_keys.count("lin.weight"));
}

TEST(Checkpoint, KeepsStridesOffsetsAndSharedStorage) {
  auto ckpt = sepmech::io::load_checkpoint(kDir + "state_dict.pt");
  const auto& strided = ckpt.tensors.at("strided");  // arange(12).reshape(4, 3).t()
  EXPECT_EQ(strided.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(strided.strides(), (std::vector<int64_t>{1, 3}));
  EXPECT_FALSE(strided.is_contiguous());
  EXPECT_EQ(strided[2][1].item<float>(), 5.0f);  // base[1][2] = 1*3+2
  const auto& a = ckpt.tensors.at("shared_a");  // (arange(10)*0.5)[1:7].view(2,3)
  const auto& b = ckpt.tensors.at("shared_b");  // (arange(10)*0.5)[4:10:2]
  EXPECT_EQ(a.storage_offset(), 1);
  EXPECT_EQ(b.storage_offset(), 4);
  EXPECT_EQ(b.strides(), (std::vector<int64_t>{2}));
  EXPECT_EQ(a.storage().data(), b.storage().data());  // one data/ record, like torch.load
  EXPECT_EQ(b[1].item<float>(), 3.0f);
}

TEST(Checkpoint, LightningCheckpointStateDictAndMetadata) {
  auto ckpt = sepmech::io::load_checkpoint(kDir + "lightning.ckpt");
  auto expected = sepmech::io::load_safetensors(kDir + "expected.safetensors").tensors;
  auto sd = sepmech::io::checkpoint_state_dict(ckpt);
  std::size_t n = 0;
  for (const auto& [key, want] : expected) {
    if (key.rfind("lightning.", 0) == 0) {
      std::string k = key.substr(10);
      ASSERT_TRUE(ckpt.tensors.count(k)) << k;
      expect_same(ckpt.tensors.at(k), want, k);
      EXPECT_FALSE(sd.count(k)) << k << " is not part of the state dict";
    } else {
      ASSERT_TRUE(sd.count("model." + key)) << key;
      expect_same(sd.at("model." + key), want, key);
      ++n;
    }
  }
  EXPECT_EQ(sd.size(), n);
  EXPECT_EQ(ckpt.metadata.at("epoch"), "3");
  EXPECT_EQ(ckpt.metadata.at("global_step"), "120");
  EXPECT_EQ(ckpt.metadata.at("pytorch-lightning_version"), "1.9.5");
  EXPECT_EQ(ckpt.metadata.at("hyper_parameters.hidden"), "8");
  EXPECT_EQ(ckpt.metadata.at("hyper_parameters.dropout"), "None");
  EXPECT_EQ(ckpt.metadata.at("optimizer_states.0.param_groups.0.lr"), "0.001");
  EXPECT_EQ(ckpt.metadata.at("optimizer_states.0.param_groups.0.betas.1"), "0.999");
  EXPECT_EQ(ckpt.metadata.at("optimizer_states.0.param_groups.0.amsgrad"), "False");
  EXPECT_TRUE(ckpt.top_level_keys.count("state_dict"));
  EXPECT_TRUE(ckpt.top_level_keys.count("lr_schedulers"));  // empty list: a key, no entries
}

TEST(Checkpoint, StateDictOfPlainCheckpointIsEverything) {
  auto ckpt = sepmech::io::load_checkpoint(kDir + "state_dict.pt");
  EXPECT_EQ(sepmech::io::checkpoint_state_dict(ckpt).size(), ckpt.tensors.size());
}

TEST(Checkpoint, LoadsIntoAModuleThroughLoadStateDict) {
  auto ckpt = sepmech::io::load_checkpoint(kDir + "lightning.ckpt");
  torch::nn::Linear lin(3, 2);
  sepmech::io::LoadOptions opt;
  opt.strip_prefix = "model.lin.";
  sepmech::io::load_state_dict(*lin, sepmech::io::checkpoint_state_dict(ckpt), opt);
  auto want = sepmech::io::load_safetensors(kDir + "expected.safetensors").tensors.at("lin.weight");
  EXPECT_TRUE(lin->weight.equal(want));
}

TEST(Checkpoint, LegacyFormatIsRefusedWithHowToResave) {
  std::string msg = format_error([] { sepmech::io::load_checkpoint(kDir + "legacy.pt"); });
  EXPECT_NE(msg.find("legacy.pt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("legacy"), std::string::npos) << msg;
  EXPECT_NE(msg.find("_use_new_zipfile_serialization=True"), std::string::npos) << msg;
}

TEST(Checkpoint, MissingFileNamesIt) {
  std::string msg = format_error([] { sepmech::io::load_checkpoint(kDir + "no_such_file.pt"); });
  EXPECT_NE(msg.find("no_such_file.pt"), std::string::npos) << msg;
  // A directory is refused by name (it used to surface as std::bad_alloc).
  std::string dir_msg = format_error([] { sepmech::io::load_checkpoint(kDir); });
  EXPECT_EQ(dir_msg.rfind(kDir + ": is a directory", 0), 0u) << dir_msg;
}

// --- hand-made archives: the valid baseline, then one defect at a time ------------------------

TEST(CheckpointMalformed, HandMadeBaselineLoads) {
  auto ckpt = parse(archive(one_tensor_pkl(6, 1, {2, 2}, {1, 2}), sepmech::testing::f32_bytes({0, 1, 2, 3, 4, 5})));
  ASSERT_TRUE(ckpt.tensors.count("w"));
  // element [i][j] = storage[1 + i + 2j]
  EXPECT_TRUE(ckpt.tensors.at("w").equal(torch::tensor({{1.0f, 3.0f}, {2.0f, 4.0f}})));
}

TEST(CheckpointMalformed, EmptyAndGarbageFiles) {
  EXPECT_FORMAT_ERROR(std::string(), "not a PyTorch checkpoint");
  EXPECT_FORMAT_ERROR(std::string("hello world, not a zip"), "not a PyTorch checkpoint");
  EXPECT_FORMAT_ERROR(std::string("PK\x03\x04garbage", 11), "zip");
}

TEST(CheckpointMalformed, TruncatedArchive) {
  std::string full = read_file(kDir + "state_dict.pt");
  ASSERT_GT(full.size(), 1000u);
  for (std::size_t cut : {full.size() - 1, full.size() - 30, full.size() / 2, std::size_t{30}})
    EXPECT_FORMAT_ERROR(full.substr(0, cut), "zip");
}

TEST(CheckpointMalformed, CorruptedStorageBytesFailTheCrc) {
  std::string z = archive(one_tensor_pkl(2, 0, {2}, {1}), sepmech::testing::f32_bytes({1, 2}));
  auto pos = z.find(sepmech::testing::f32_bytes({1, 2}));
  ASSERT_NE(pos, std::string::npos);
  z[pos] ^= 0x55;
  EXPECT_FORMAT_ERROR(z, "archive/data/0");
}

TEST(CheckpointMalformed, ZipWithoutDataPkl) {
  EXPECT_FORMAT_ERROR(make_zip({{"archive/version", "3\n"}, {"archive/data/0", "abcd"}}), "data.pkl");
  EXPECT_FORMAT_ERROR(make_zip({}), "data.pkl");
}

TEST(CheckpointMalformed, TwoDataPkl) {
  std::string pkl = one_tensor_pkl(1, 0, {1}, {1});
  EXPECT_FORMAT_ERROR(make_zip({{"a/data.pkl", pkl}, {"b/data.pkl", pkl}}), "2 '<dir>/data.pkl' entries");
}

TEST(CheckpointMalformed, BigEndianByteOrderRefused) {
  std::string pkl = one_tensor_pkl(1, 0, {1}, {1});
  EXPECT_FORMAT_ERROR(make_zip({{"archive/data.pkl", pkl}, {"archive/byteorder", "big"}, {"archive/data/0", "abcd"}}),
                      "byte order 'big'");
}

TEST(CheckpointMalformed, StorageRecordMissing) {
  EXPECT_FORMAT_ERROR(make_zip({{"archive/data.pkl", one_tensor_pkl(2, 0, {2}, {1})}}), "archive/data/0", "missing");
}

TEST(CheckpointMalformed, StorageRecordOfWrongSize) {
  // FloatStorage of 3 elements needs 12 bytes; the record holds 8.
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(3, 0, {3}, {1}), sepmech::testing::f32_bytes({1, 2})), "archive/data/0",
                      "holds 8 bytes", "needs 12");
  // The same 8 bytes read as DoubleStorage of 2 elements need 16 (wrong dtype size).
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(2, 0, {2}, {1}, "DoubleStorage"), sepmech::testing::f32_bytes({1, 2})),
                      "needs 16");
}

TEST(CheckpointMalformed, StorageNumelOverflow) {
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(INT64_MAX / 2, 0, {1}, {1}), sepmech::testing::f32_bytes({1})),
                      "more than 2^63");
}

TEST(CheckpointMalformed, ViewOutsideItsStorage) {
  auto four = sepmech::testing::f32_bytes({0, 1, 2, 3});
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(4, 0, {5}, {1}), four), "reach element 4", "with 4 elements");
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(4, 2, {3}, {1}), four), "reach element 4");
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(4, 0, {2, 2}, {1, 3}), four), "reach element 4");
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(4, 9, {0}, {1}), four), "offset 9 is past");
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(4, 0, {2}, {1, 1}), four), "1 dimensions but stride has 2");
}

TEST(CheckpointMalformed, HugeShapesWhoseProductOverflows) {
  auto four = sepmech::testing::f32_bytes({0, 1, 2, 3});
  const std::int64_t big = std::int64_t{1} << 40;
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(4, 0, {big, big}, {0, 0}), four), "overflows 64 bits");
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(4, 0, {2, 2}, {INT64_MAX, 1}), four), "overflows 64 bits");
  // A zero-stride (expanded) view is legal and allocates nothing.
  auto ok = parse(archive(one_tensor_pkl(4, 1, {big}, {0}), four));
  EXPECT_EQ(ok.tensors.at("w").size(0), big);
  EXPECT_EQ(ok.tensors.at("w")[12345].item<float>(), 1.0f);
}

TEST(CheckpointMalformed, UnknownGlobalsAreRefusedByName) {
  Pickle p;
  p.proto().global("os", "system").str("echo pwned").op(0x85).op('R').stop();
  EXPECT_FORMAT_ERROR(archive(p.b, ""), "refusing global 'os.system'");
  Pickle q;  // protocol 4 STACK_GLOBAL
  q.proto(4).op(0x8c).op(8).raw("builtins").op(0x8c).op(4).raw("eval").op(0x93).stop();
  EXPECT_FORMAT_ERROR(archive(q.b, ""), "refusing global 'builtins.eval'");
  // A storage type torch has but this reader does not (quantized).
  EXPECT_FORMAT_ERROR(archive(one_tensor_pkl(4, 0, {4}, {1}, "QInt8Storage"), "abcd"), "torch.QInt8Storage");
}

TEST(CheckpointMalformed, UnknownAndUnsupportedOpcodes) {
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().op(0xff).stop().b, ""), "unknown pickle opcode 0xff", "at byte 2");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().raw("I01\n").stop().b, ""), "INT (protocol 0)");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().raw("i").raw("os\nsystem\n").stop().b, ""), "INST");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto(6).stop().b, ""), "protocol 6");
}

TEST(CheckpointMalformed, TruncatedAndInconsistentPickles) {
  std::string good = one_tensor_pkl(1, 0, {1}, {1});
  auto one = sepmech::testing::f32_bytes({7});
  EXPECT_FORMAT_ERROR(archive(good.substr(0, good.size() - 1), one), "truncated");  // no STOP
  EXPECT_FORMAT_ERROR(archive(good.substr(0, 40), one), "archive/data.pkl");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().op('X').u32(1000).raw("abc").stop().b, ""), "truncated");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().op('R').stop().b, ""), "stack underflow");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().op('h').op(7).stop().b, ""), "memo entry 7");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().op('t').stop().b, ""), "no MARK");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().op(']').str("k").integer(1).op('s').stop().b, ""), "not a dict");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().op('.').b, ""), "STOP with an empty stack");
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().op(0x8a).op(9).raw("123456789").stop().b, ""), "does not fit 64 bits");
  // REDUCE of something that is not a global.
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().str("f").op(')').op('R').stop().b, ""), "REDUCE of a str");
  // Wrong argument count for _rebuild_tensor_v2.
  EXPECT_FORMAT_ERROR(
      archive(Pickle().proto().global("torch._utils", "_rebuild_tensor_v2").op(')').op('R').stop().b, ""),
      "takes 6-7 arguments, got 0");
}

TEST(CheckpointMalformed, BadPersistentIds) {
  auto with_pid = [](const std::function<void(Pickle&)>& pid) {
    Pickle p;
    p.proto();
    pid(p);
    p.op('Q').stop();
    return archive(p.b, "abcd");
  };
  EXPECT_FORMAT_ERROR(with_pid([](Pickle& p) { p.str("storage"); }), "persistent id must be a tuple");
  EXPECT_FORMAT_ERROR(with_pid([](Pickle& p) { p.mark().str("storage").op('t'); }), "5 fields");
  EXPECT_FORMAT_ERROR(with_pid([](Pickle& p) {
                        p.mark().str("module").global("torch", "FloatStorage").str("0").str("cpu").integer(1).op('t');
                      }),
                      "('storage', ...)");
  EXPECT_FORMAT_ERROR(with_pid([](Pickle& p) {
                        p.mark().str("storage").global("torch", "FloatStorage").str("../0").str("cpu").integer(1).op('t');
                      }),
                      "storage key '../0'");
  EXPECT_FORMAT_ERROR(with_pid([](Pickle& p) {
                        p.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(-1).op('t');
                      }),
                      "numel must be a non-negative int");
  // The same record referenced with two dtypes.
  Pickle p;
  p.proto().ordered_dict().mark();
  p.str("a").tensor("FloatStorage", "0", 1, 0, {1}, {1});
  p.str("b").tensor("IntStorage", "0", 1, 0, {1}, {1});
  p.op('u').stop();
  EXPECT_FORMAT_ERROR(archive(p.b, "abcd"), "storage '0' is referenced as");
}

TEST(CheckpointMalformed, CyclesAndDeepNestingAreBounded) {
  // l = []; l.append(l)  -> flattening would recurse forever
  EXPECT_FORMAT_ERROR(archive(Pickle().proto().op(']').op('q').op(0).op('h').op(0).op('a').stop().b, ""),
                      "nesting deeper than");
  // 1000 nested lists
  Pickle deep;
  deep.proto();
  for (int k = 0; k < 1000; ++k) deep.op(']');
  for (int k = 0; k < 999; ++k) deep.op('a');
  EXPECT_FORMAT_ERROR(archive(deep.stop().b, ""), "nesting deeper than");
}

TEST(CheckpointMalformed, SharedSubtreesCannotExplode) {
  // d0 = [1]; d_{k+1} = [d_k, d_k]: 2^60 leaves from a few hundred bytes.
  Pickle p;
  p.proto().op(']').integer(1).op('a');
  for (int k = 0; k < 60; ++k) p.op('q').op(0).op(']').op('h').op(0).op('a').op('h').op(0).op('a');
  EXPECT_FORMAT_ERROR(archive(p.stop().b, ""), "shared subtrees");
}

TEST(CheckpointMalformed, StackAndMarkLimits) {
  Pickle p;
  p.proto();
  for (std::size_t k = 0; k <= sepmech::io::kMaxPickleMarks; ++k) p.mark();
  EXPECT_FORMAT_ERROR(archive(p.stop().b, ""), "open MARKs");
  Pickle s;
  s.proto().op('N');
  for (std::size_t k = 0; k < sepmech::io::kMaxPickleStack; ++k) s.op('2');  // DUP
  EXPECT_FORMAT_ERROR(archive(s.stop().b, ""), "pickle stack deeper than");
}

TEST(CheckpointMalformed, DuplicateFlattenedNames) {
  // {"a.b": 1, "a": {"b": 2}}
  Pickle p;
  p.proto().empty_dict().mark().str("a.b").integer(1).str("a").empty_dict().str("b").integer(2).op('s').op('u').stop();
  EXPECT_FORMAT_ERROR(archive(p.b, ""), "two entries flatten to the same name 'a.b'");
}

TEST(CheckpointMalformed, ScalarsAndProtocol4OpcodesDecode) {
  // {"i": -5, "big": 2^40, "f": 0.25, "t": True, "s": "x", "n": None, "l": [1, 2], 3: "int key"}
  Pickle p;
  p.proto(4).op(0x95).raw(std::string(8, '\0')).empty_dict().op(0x94).mark();
  p.op(0x8c).op(1).raw("i").integer(-5);
  p.op(0x8c).op(3).raw("big").integer(std::int64_t{1} << 40);
  p.op(0x8c).op(1).raw("f").op('G').raw(std::string("\x3f\xd0\x00\x00\x00\x00\x00\x00", 8));
  p.op(0x8c).op(1).raw("t").op(0x88);
  p.op(0x8c).op(1).raw("s").op(0x8c).op(1).raw("x");
  p.op(0x8c).op(1).raw("n").op('N');
  p.op(0x8c).op(1).raw("l").op(']').op(0x94).mark().integer(1).integer(2).op('e');
  p.integer(3).op(0x8c).op(7).raw("int key");
  p.op('u').stop();
  auto c = parse(archive(p.b, ""));
  EXPECT_EQ(c.metadata.at("i"), "-5");
  EXPECT_EQ(c.metadata.at("big"), "1099511627776");
  EXPECT_EQ(c.metadata.at("f"), "0.25");
  EXPECT_EQ(c.metadata.at("t"), "True");
  EXPECT_EQ(c.metadata.at("s"), "x");
  EXPECT_EQ(c.metadata.at("n"), "None");
  EXPECT_EQ(c.metadata.at("l.1"), "2");
  EXPECT_EQ(c.metadata.at("3"), "int key");
  EXPECT_TRUE(c.tensors.empty());
}

TEST(CheckpointMalformed, ParameterAndRepeatedKeys) {
  // {"p": Parameter(w), "p": w}: SETITEM replaces, like a Python dict.
  Pickle p;
  p.proto().empty_dict().str("p").global("torch._utils", "_rebuild_parameter");
  p.mark().tensor("FloatStorage", "0", 1, 0, {1}, {1}).op(0x88).ordered_dict().op('t').op('R').op('s');
  p.str("p").tensor("FloatStorage", "0", 1, 0, {}, {}).op('s').stop();
  auto c = parse(archive(p.b, sepmech::testing::f32_bytes({4.5f})));
  ASSERT_EQ(c.tensors.size(), 1u);
  EXPECT_EQ(c.tensors.at("p").dim(), 0);
  EXPECT_EQ(c.tensors.at("p").item<float>(), 4.5f);
}

TEST(Checkpoint, SniffingTellsCheckpointsFromSafetensorsOfAnyHeaderLength) {
  auto sniff = [](const std::string& b) {
    return sepmech::io::looks_like_torch_checkpoint(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
  };
  EXPECT_TRUE(sniff(read_file(kDir + "state_dict.pt")));
  EXPECT_TRUE(sniff(read_file(kDir + "lightning.ckpt")));
  EXPECT_TRUE(sniff(read_file(kDir + "legacy.pt")));  // protocol 2: PROTO, LONG1 magic
  // torch.save(..., _use_new_zipfile_serialization=False, pickle_protocol=4) starts with a FRAME.
  const std::string proto4("\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 24);
  EXPECT_TRUE(sniff(proto4));
  EXPECT_FALSE(sniff(proto4.substr(0, 20)));  // cut inside the magic number
  // Header lengths padded to multiples of 8 put 0x80 first in 1 of every 32 safetensors files;
  // the first byte alone used to make `sepmech info` call them legacy checkpoints.
  for (std::size_t pad = 0; pad < 600; ++pad) {
    auto bytes = sepmech::io::serialize_safetensors({{"w", torch::ones({2})}}, {{"pad", std::string(pad, 'x')}});
    std::string b(bytes.begin(), bytes.end());
    ASSERT_FALSE(sniff(b)) << "header length " << (static_cast<unsigned>(bytes[0]) | bytes[1] << 8);
  }
  EXPECT_FALSE(sniff(std::string("\x80\x02}q\x00.", 6)));  // a pickle, but not torch.save's
  EXPECT_FALSE(sniff(""));
  EXPECT_FALSE(sniff("PK"));
}
