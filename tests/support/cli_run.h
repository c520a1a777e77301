#pragma once
// Runs the sepmech CLI (SEPMECH_CLI, set by tests/CMakeLists.txt) as a child process and captures
// its exit code, stdout and stderr, for the end-to-end tests of tests/cli/.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace sepmech_test {

struct CliRun {
  int code = -1;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/// `sepmech ARGS` under `timeout`: a command that blocks (e.g. opening a FIFO) fails the test
/// instead of hanging it.
inline CliRun run_cli(const std::string& args, int timeout_seconds = 120) {
  namespace fs = std::filesystem;
  fs::path err_file = fs::temp_directory_path() / ("sepmech_cli_err_" + std::to_string(::getpid()));
  std::string cmd = "timeout " + std::to_string(timeout_seconds) + " " + SEPMECH_CLI + " " + args + " 2>" +
                    err_file.string();
  CliRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = slurp(err_file);
  fs::remove(err_file);
  return r;
}

}  // namespace sepmech_test
