// sepmech parity [--json] PATH...: golden case files through the implementations.
#include <iostream>

#include "command.h"
#include "parity/parity.h"

namespace {

sepmech::cli::RegisterCommand reg(20, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("parity", "check golden case files (safetensors) against the implementations");
  auto paths = std::make_shared<std::vector<std::string>>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("paths", *paths, "case files or folders (searched recursively for *.safetensors)")->required();
  cmd->add_flag("--json", *json, "one JSON object per case instead of text lines");
  cmd->callback([paths, json, &exit_code] {
    auto files = sepmech::parity::collect_case_files(*paths);
    int passed = 0, failed = 0, params = 0;
    for (const auto& f : files) {
      auto rep = sepmech::parity::run_case(f);
      if (rep.params_only)
        ++params;
      else
        (rep.pass ? passed : failed)++;
      if (*json)
        std::cout << sepmech::parity::to_json(rep).dump() << "\n";
      else
        std::cout << sepmech::parity::to_line(rep) << "\n";
      std::cout.flush();
    }
    if (files.size() == static_cast<size_t>(params)) {
      std::cerr << (files.empty() ? "sepmech parity: no *.safetensors case files found\n"
                                  : "sepmech parity: only shared parameter files, no case to run\n");
      failed = std::max(failed, 1);
    }
    std::cout << passed << " passed, " << failed << " failed";
    if (params > 0) std::cout << ", " << params << " shared parameter file" << (params == 1 ? "" : "s");
    std::cout << "\n";
    exit_code = failed == 0 ? 0 : 1;
  });
});

}  // namespace
