// sepmech: the command-line tool. Subcommands are in cmd_*.cpp.
#include <cstdio>
#include <iostream>

#include "command.h"
#include "sepmech/runtime.h"
#include "sepmech/version.h"

namespace sepmech::cli {

std::vector<std::pair<int, CommandSetup>>& commands() {
  static std::vector<std::pair<int, CommandSetup>> c;
  return c;
}

RegisterCommand::RegisterCommand(int order, CommandSetup setup) { commands().emplace_back(order, std::move(setup)); }

}  // namespace sepmech::cli

int main(int argc, char** argv) {
  CLI::App app{"sepmech: mechanisms of DNN speech separation and enhancement (TAC, deep filtering, "
               "OSA_RES_eSE, score-based diffusion)"};
  app.set_version_flag("--version", "sepmech " + sepmech::version());
  app.require_subcommand(1);
  int threads = 0;
  // Bounded: an absurd count would make OpenMP try to start that many threads.
  app.add_option("--threads", threads, "LibTorch intra-op threads (0 = all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  // Every command-line error is one line on stderr, like the errors of the commands themselves.
  app.failure_message([](const CLI::App* a, const CLI::Error& e) {
    std::string what = e.what();
    // CLI11 reports a mistyped subcommand as "A subcommand is required"; name the word instead.
    if (a && a->get_subcommands().empty() && !a->remaining().empty() && what.find("subcommand is required") != std::string::npos)
      what = "unknown command '" + a->remaining().front() + "'";
    return "sepmech: error: " + what + " (see --help)\n";
  });
  app.parse_complete_callback([&] {
    sepmech::set_num_threads(threads);
    std::string warn = sepmech::blas_warning();
    if (!warn.empty()) std::cerr << warn << "\n";
  });
  int exit_code = 0;
  auto& cmds = sepmech::cli::commands();
  std::stable_sort(cmds.begin(), cmds.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [order, setup] : cmds) setup(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const c10::Error& e) {
    std::cerr << "sepmech: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "sepmech: error: " << e.what() << "\n";
    return 1;
  } catch (...) {
    std::cerr << "sepmech: error: unexpected exception\n";
    return 1;
  }
  return exit_code;
}
