// Every validation rule of the safetensors reader, one defect at a time: each must raise a
// FormatError naming the file (and the tensor), never read out of bounds or allocate wildly.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "io/format_error.h"
#include "sepmech/io/safetensors.h"

using sepmech::io::FormatError;

namespace {

// 8-byte little-endian length + header text + data bytes.
std::string st_file(const std::string& header, const std::string& data = "", std::uint64_t declared = UINT64_MAX) {
  std::uint64_t n = declared == UINT64_MAX ? header.size() : declared;
  std::string out;
  for (int k = 0; k < 8; ++k) out += static_cast<char>((n >> (8 * k)) & 0xff);
  return out + header + data;
}

std::string parse_error(const std::string& bytes) {
  return sepmech::testing::format_error([&] {
    sepmech::io::parse_safetensors(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), "bad.safetensors");
  });
}

#define EXPECT_ST_ERROR(bytes, ...)                                                                     \
  do {                                                                                                  \
    std::string msg_ = parse_error(bytes);                                                              \
    EXPECT_EQ(msg_.rfind("bad.safetensors: ", 0), 0u) << "must name the file: " << msg_;               \
    for (const char* part : {__VA_ARGS__})                                                              \
      EXPECT_NE(msg_.find(part), std::string::npos) << "'" << part << "' not in: " << msg_;            \
  } while (0)

const std::string kEight(8, '\x01');

}  // namespace

TEST(SafetensorsMalformed, ValidBaselineParses) {
  auto f = sepmech::io::parse_safetensors(
      reinterpret_cast<const std::uint8_t*>(st_file(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", kEight).data()),
      st_file(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", kEight).size());
  EXPECT_EQ(f.tensors.at("a")[0].item<int>(), 0x01010101);
}

TEST(SafetensorsMalformed, TooShortForTheLengthField) {
  EXPECT_ST_ERROR(std::string(), "0 bytes", "at least 8");
  EXPECT_ST_ERROR(std::string(7, '\0'), "7 bytes");
}

TEST(SafetensorsMalformed, HeaderLengthPastTheEnd) {
  EXPECT_ST_ERROR(st_file("{}", "", 3), "header length 3 runs past the end");
  EXPECT_ST_ERROR(st_file("{}", "", 1ull << 20), "runs past the end");
  EXPECT_ST_ERROR(st_file("{}", "", UINT64_MAX - 1), "exceeds the limit");
  EXPECT_ST_ERROR(st_file("{}", "", sepmech::io::kMaxSafetensorsHeader + 1), "exceeds the limit");
}

TEST(SafetensorsMalformed, TruncatedFiles) {
  std::string good = st_file(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})", std::string(16, '\0'));
  EXPECT_ST_ERROR(good.substr(0, good.size() - 1), "tensor 'a'", "past the data section (15 bytes)");
  EXPECT_ST_ERROR(good.substr(0, 20), "runs past the end");
}

TEST(SafetensorsMalformed, HeaderIsNotWellFormedJson) {
  EXPECT_ST_ERROR(st_file(R"({"a": )"), "not valid JSON");
  EXPECT_ST_ERROR(st_file("\xff\xfe"), "not valid JSON");
  EXPECT_ST_ERROR(st_file("[1, 2]"), "must be a JSON object");
  EXPECT_ST_ERROR(st_file(std::string(100000, '[') + std::string(100000, ']')), "nests deeper than 8 levels");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F32","shape":[[[[[[[[1]]]]]]]],"data_offsets":[0,4]}})"), "nests deeper");
}

TEST(SafetensorsMalformed, BadMetadata) {
  EXPECT_ST_ERROR(st_file(R"({"__metadata__": [1]})"), "__metadata__ must be an object");
  EXPECT_ST_ERROR(st_file(R"({"__metadata__": {"k": 3}})"), "'k' must be a string");
  EXPECT_ST_ERROR(st_file(R"({"__metadata__": {"complex": "nothere"}})"), "'nothere', which is not a tensor");
  EXPECT_ST_ERROR(st_file(R"({"__metadata__": {"complex": "a"}, "a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", kEight),
                  "tensor 'a'", "not a float tensor with trailing dimension 2");
}

TEST(SafetensorsMalformed, BadTensorEntries) {
  EXPECT_ST_ERROR(st_file(R"({"a": 5})"), "tensor 'a'", "must be an object");
  EXPECT_ST_ERROR(st_file(R"({"a": {"shape":[1],"data_offsets":[0,4]}})"), "tensor 'a'", "'dtype'");
  EXPECT_ST_ERROR(st_file(R"({"a": {"dtype":"F32","data_offsets":[0,4]}})"), "tensor 'a'", "'shape'");
  EXPECT_ST_ERROR(st_file(R"({"a": {"dtype":"F32","shape":[1],"data_offsets":[0]}})"), "'data_offsets' must be [begin, end]");
  EXPECT_ST_ERROR(st_file(R"({"a": {"dtype":"F8","shape":[1],"data_offsets":[0,1]}})"), "unsupported dtype 'F8'");
  EXPECT_ST_ERROR(st_file(R"({"a": {"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})"), "non-negative integers");
  EXPECT_ST_ERROR(st_file(R"({"a": {"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})"), "non-negative integers");
  EXPECT_ST_ERROR(st_file(R"({"a": {"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", kEight), "non-negative integers");
}

TEST(SafetensorsMalformed, WrongDtypeSizes) {
  // 8 bytes hold two I32 but not two F64 nor three F32.
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", kEight), "tensor 'a'",
                  "holds 8 bytes but dtype F64 x shape needs 16");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kEight), "needs 12");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"BOOL","shape":[4],"data_offsets":[0,8]}})", kEight), "needs 4");
}

TEST(SafetensorsMalformed, HugeShapesWhoseProductOverflows) {
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", kEight),
                  "tensor 'a'", "overflows");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})", kEight),
                  "overflows");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", kEight),
                  "overflows");
  // A zero dimension makes the byte size 0, but the other dimensions must still fit together.
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})"),
                  "overflows");
}

TEST(SafetensorsMalformed, TooManyDimensions) {
  std::string ones = "1";
  for (int k = 1; k < 65; ++k) ones += ",1";  // 65 dimensions of size 1: 4 bytes of F32
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F32","shape":[)" + ones + R"(],"data_offsets":[0,4]}})", kEight.substr(0, 4)),
                  "tensor 'a'", "65 dimensions (at most 64)");
  std::string ok = "1";
  for (int k = 1; k < 64; ++k) ok += ",1";
  auto f = st_file(R"({"a":{"dtype":"F32","shape":[)" + ok + R"(],"data_offsets":[0,4]}})", kEight.substr(0, 4));
  EXPECT_EQ(sepmech::io::parse_safetensors(reinterpret_cast<const std::uint8_t*>(f.data()), f.size()).tensors.at("a").dim(), 64);
}

TEST(SafetensorsMalformed, OffsetsOutOfRange) {
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[8,16]}})", kEight), "tensor 'a'",
                  "end 16 is past the data section (8 bytes)");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[8,0]}})", kEight), "begin 8 > end 0");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[18446744073709551608,0]}})", kEight),
                  "begin");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"I32","shape":[0],"data_offsets":[9,9]}})", kEight), "past the data section");
}

TEST(SafetensorsMalformed, OverlappingTensors) {
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},
                             "b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}})", kEight),
                  "tensors 'a' and 'b' overlap");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},
                             "b":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", kEight),
                  "overlap");
  // Adjacent ranges and empty tensors anywhere are fine.
  auto ok = st_file(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},
                        "b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},
                        "c":{"dtype":"I32","shape":[0],"data_offsets":[2,2]}})", kEight);
  EXPECT_EQ(sepmech::io::parse_safetensors(reinterpret_cast<const std::uint8_t*>(ok.data()), ok.size()).tensors.size(), 3u);
}

TEST(SafetensorsMalformed, FileErrorsNameTheFile) {
  namespace fs = std::filesystem;
  std::string missing = (fs::temp_directory_path() / "sepmech_no_such_file.safetensors").string();
  try {
    sepmech::io::load_safetensors(missing);
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_EQ(e.file(), missing);
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos) << e.what();
  }
  // A real file cut short: the error names the path on disk and the tensor.
  std::string path = (fs::temp_directory_path() / ("sepmech_trunc_" + std::to_string(::getpid()) + ".safetensors")).string();
  auto bytes = sepmech::io::serialize_safetensors({{"weight", torch::ones({4, 4})}});
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() - 3));
  }
  try {
    sepmech::io::load_safetensors(path);
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find("tensor 'weight'"), std::string::npos) << msg;
  }
  fs::remove(path);
}

TEST(SafetensorsMalformed, SaveRoundTripThroughAFile) {
  namespace fs = std::filesystem;
  std::string path = (fs::temp_directory_path() / ("sepmech_rt_" + std::to_string(::getpid()) + ".safetensors")).string();
  auto c = torch::complex(torch::arange(6, torch::kFloat64).reshape({3, 2}), -torch::arange(6, torch::kFloat64).reshape({3, 2}));
  sepmech::io::save_safetensors(path, {{"c", c}, {"x", torch::arange(3, torch::kInt16)}}, {{"module", "demo"}});
  auto back = sepmech::io::load_safetensors(path);
  fs::remove(path);
  EXPECT_EQ(back.tensors.at("c").scalar_type(), torch::kComplexDouble);
  EXPECT_TRUE(back.tensors.at("c").equal(c));
  EXPECT_TRUE(back.tensors.at("x").equal(torch::arange(3, torch::kInt16)));
  EXPECT_EQ(back.metadata.at("module"), "demo");
  EXPECT_EQ(back.metadata.at("complex"), "c");
}

TEST(SafetensorsMalformed, DirectoriesAndSpecialFilesAreRefusedNotAllocated) {
  // std::ifstream opens a directory and reports a size of ~2^63: reading "it" used to end in
  // std::bad_alloc (and `sepmech info DIR` printed "error: std::bad_alloc").
  namespace fs = std::filesystem;
  const std::string dir = fs::temp_directory_path().string();
  for (auto load : {+[](const std::string& p) { sepmech::io::load_safetensors(p); },
                    +[](const std::string& p) { (void)sepmech::io::read_file_bytes(p); }}) {
    try {
      load(dir);
      ADD_FAILURE() << "no error for a directory";
    } catch (const FormatError& e) {
      EXPECT_EQ(e.file(), dir);
      EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "expected a FormatError, got: " << e.what();
    }
  }
  try {
    sepmech::io::load_safetensors("/dev/null");
    ADD_FAILURE() << "no error for /dev/null";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/null: "), std::string::npos) << e.what();
  }
}

TEST(SafetensorsMalformed, FailedSaveNamesTheFileAndLeavesNoTemporary) {
  namespace fs = std::filesystem;
  // The target is an existing directory: writing the temporary works, renaming over it cannot.
  fs::path dir = fs::temp_directory_path() / ("sepmech_save_" + std::to_string(::getpid()));
  fs::create_directories(dir / "target.safetensors");
  try {
    sepmech::io::save_safetensors((dir / "target.safetensors").string(), {{"x", torch::ones({2})}});
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_EQ(e.file(), (dir / "target.safetensors").string());
    EXPECT_NE(std::string(e.what()).find("cannot rename"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "target.safetensors.tmp"));
  // A directory that does not exist: the temporary cannot even be opened.
  try {
    sepmech::io::save_safetensors((dir / "no_such_dir" / "x.safetensors").string(), {{"x", torch::ones({2})}});
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
