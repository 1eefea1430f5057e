#include "tests/process_util.h"
#include "tests/test_support.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ledger::testing {

CommandResult RunTool(const char* binary_env, const std::string& args) {
  const char* binary = std::getenv(binary_env);
  if (binary == nullptr) throw std::runtime_error(std::string("set ") + binary_env);
  return RunShell(std::string(binary) + " " + args);
}

CommandResult RunShell(const std::string& command) {
  char out_path[] = "/tmp/ledger-tool-out-XXXXXX";
  char err_path[] = "/tmp/ledger-tool-err-XXXXXX";
  int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
  CommandResult r;
  std::string cmd = "(" + command + ") > " + out_path + " 2> " + err_path;
  int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = Slurp(out_path);
  r.err = Slurp(err_path);
  if (out_fd >= 0) close(out_fd);
  if (err_fd >= 0) close(err_fd);
  std::remove(out_path);
  std::remove(err_path);
  return r;
}

}  // namespace ledger::testing
