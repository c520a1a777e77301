// The sepmech command line as a user meets it: --help everywhere, --version, --threads, and a
// clear one-line error with a non-zero exit code for bad arguments and bad files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "sepmech/io/safetensors.h"
#include "support/cli_run.h"
#include "sepmech/version.h"

namespace {

namespace fs = std::filesystem;

using sepmech_test::CliRun;
using sepmech_test::run_cli;
using sepmech_test::slurp;

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// A failed command: non-zero exit, exactly one line on stderr, "sepmech: error: ..." holding `what`.
#define EXPECT_ONE_LINE_ERROR(args, what)                                                          \
  do {                                                                                             \
    CliRun r_ = run_cli(args);                                                                        \
    EXPECT_NE(r_.code, 0) << (args);                                                               \
    EXPECT_NE(r_.code, -1) << (args) << ": crashed";                                              \
    EXPECT_EQ(r_.err.rfind("sepmech: error: ", 0), 0u) << (args) << ": " << r_.err;               \
    EXPECT_EQ(count_lines(r_.err), 1) << (args) << ": " << r_.err;                                 \
    EXPECT_NE(r_.err.find(what), std::string::npos) << (args) << ": '" << (what) << "' not in " << r_.err; \
  } while (0)

const std::string kCheckpoints = std::string(SEPMECH_TEST_DATA) + "/checkpoints/";

}  // namespace

TEST(Cli, VersionAndHelpEverywhere) {
  CliRun v = run_cli("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out, "sepmech " + sepmech::version() + "\n");
  for (const char* args : {"--help", "-h", "parity --help", "info --help", "bench --help", "--threads 1 info --help"}) {
    CliRun r = run_cli(args);
    EXPECT_EQ(r.code, 0) << args << ": " << r.err;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << args << ": " << r.out;
    EXPECT_EQ(r.err, "") << args;
  }
  CliRun top = run_cli("--help");
  for (const char* sub : {"parity", "info", "bench", "--threads", "--version"})
    EXPECT_NE(top.out.find(sub), std::string::npos) << sub << " not in the top-level help:\n" << top.out;
}

TEST(Cli, BadArgumentsGiveOneLineErrors) {
  EXPECT_ONE_LINE_ERROR("", "subcommand is required");
  EXPECT_ONE_LINE_ERROR("no_such_command", "unknown command 'no_such_command'");
  EXPECT_ONE_LINE_ERROR("--threads 1 parityy x", "unknown command 'parityy'");
  EXPECT_ONE_LINE_ERROR("--threads -1 info x", "--threads");
  EXPECT_ONE_LINE_ERROR("--threads abc info x", "--threads");
  EXPECT_ONE_LINE_ERROR("--threads 100000 info x", "--threads");  // would start 100000 OpenMP threads
  EXPECT_ONE_LINE_ERROR("info", "file is required");
  EXPECT_ONE_LINE_ERROR("parity", "paths is required");
  EXPECT_ONE_LINE_ERROR("bench --threads -2", "--threads");
  EXPECT_ONE_LINE_ERROR("bench --seconds 0", "--seconds");
  EXPECT_ONE_LINE_ERROR("bench no_such_workload", "unknown workload 'no_such_workload'");
  EXPECT_ONE_LINE_ERROR("info --no-such-flag x", "--no-such-flag");
}

TEST(Cli, BadFilesGiveOneLineErrorsNamingTheFile) {
  fs::path dir = fs::temp_directory_path() / ("sepmech_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  EXPECT_ONE_LINE_ERROR("info " + dir.string(), dir.string() + ": is a directory");
  EXPECT_ONE_LINE_ERROR("info " + (dir / "missing.safetensors").string(), "missing.safetensors: cannot open file");
  auto bytes = sepmech::io::serialize_safetensors({{"weight", torch::ones({4, 4})}});
  fs::path cut = dir / "cut.safetensors";
  std::ofstream(cut, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                             static_cast<std::streamsize>(bytes.size() - 3));
  EXPECT_ONE_LINE_ERROR("info " + cut.string(), cut.string() + ": tensor 'weight'");
  fs::path junk = dir / "junk.pt";
  std::ofstream(junk, std::ios::binary) << "PK\x03\x04 this is not a zip archive";
  EXPECT_ONE_LINE_ERROR("info " + junk.string(), junk.string() + ": ");
  EXPECT_ONE_LINE_ERROR("info " + kCheckpoints + "legacy.pt", "_use_new_zipfile_serialization=True");
  // A FIFO nobody writes to: refused at once (it used to block forever in open()).
  fs::path fifo = dir / "pipe.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_ONE_LINE_ERROR("info " + fifo.string(), fifo.string() + ": is not a regular file");
  fs::remove_all(dir);
}

TEST(Cli, InfoReadsSafetensorsWhoseHeaderLengthStartsWith0x80) {
  // 128-byte header: the file starts with 0x80, like a pickle. It used to be refused as a
  // "legacy (non-zip) torch.save" file.
  fs::path dir = fs::temp_directory_path() / ("sepmech_cli_hdr_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::set<int> lengths;
  for (std::size_t pad = 0; pad < 400; ++pad) {
    auto bytes = sepmech::io::serialize_safetensors({{"w", torch::ones({2})}}, {{"pad", std::string(pad, 'x')}});
    if (bytes[0] != 0x80 || !lengths.insert(bytes[0] | bytes[1] << 8).second) continue;
    fs::path p = dir / ("pad" + std::to_string(pad) + ".safetensors");
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                             static_cast<std::streamsize>(bytes.size()));
    CliRun r = run_cli("info " + p.string());
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("safetensors, 1 tensor"), std::string::npos) << r.out << r.err;
  }
  EXPECT_EQ(lengths, (std::set<int>{128, 384}));
  fs::remove_all(dir);
}

TEST(Cli, ThreadsOptionAndNoBlasWarning) {
  // A good run prints nothing on stderr: in particular no reference-BLAS warning (setup.sh
  // installs OpenBLAS).
  for (const char* threads : {"", "--threads 0 ", "--threads 1 ", "--threads 2 "}) {
    CliRun r = run_cli(std::string(threads) + "info " + kCheckpoints + "state_dict.pt");
    EXPECT_EQ(r.code, 0) << threads << r.err;
    EXPECT_EQ(r.err, "") << threads;
    EXPECT_NE(r.out.find("PyTorch checkpoint"), std::string::npos) << r.out;
  }
  CliRun list = run_cli("--threads 2 bench --list");
  EXPECT_EQ(list.code, 0) << list.err;
  // A build without any family registers no workload: `bench` says so instead of printing nothing.
  if (list.out.empty()) EXPECT_ONE_LINE_ERROR("bench", "no benchmark workloads are registered in this build");
}

TEST(Cli, BenchKeepHeapIsReportedPerLine) {
  CliRun list = run_cli("bench --list");
  ASSERT_EQ(list.code, 0) << list.err;
  if (list.out.empty()) GTEST_SKIP() << "no workload registered in this build";
  const std::string first = list.out.substr(0, list.out.find(' '));
  for (bool keep : {false, true}) {
    CliRun r = run_cli(std::string("bench --json --seconds 0.01 ") + (keep ? "--keep-heap " : "") + first);
    if (keep && r.code != 0 && r.err.find("needs glibc's mallopt") != std::string::npos)
      GTEST_SKIP() << "malloc is not glibc's (e.g. a sanitizer build): " << r.err;
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string want = std::string("\"freed_memory_kept\":") + (keep ? "true" : "false");
    EXPECT_NE(r.out.find(want), std::string::npos) << r.out;
  }
}
