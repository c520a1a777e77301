#pragma once
// Each subcommand lives in its own file and registers itself here, so adding a command
// touches one new file only.
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace sepmech::cli {

/// Adds a subcommand to `app`. The callback it installs runs the command and returns the
/// process exit code through `exit_code`.
using CommandSetup = std::function<void(CLI::App& app, int& exit_code)>;

struct RegisterCommand {
  RegisterCommand(int order, CommandSetup setup);
};

std::vector<std::pair<int, CommandSetup>>& commands();

}  // namespace sepmech::cli
