// Running the project's command-line tools from tests.
#pragma once

#include <string>

namespace ledger::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `binary_env` (an environment variable naming the binary, set by
// meson) with `args` (already shell-quoted as needed).
CommandResult RunTool(const char* binary_env, const std::string& args);

// Runs a shell command line.
CommandResult RunShell(const std::string& command);

}  // namespace ledger::testing
