//===- RuntimeToolArgs.h - Command lines of the runtime-only tools --------===//
//
// kiln-run and kiln-perplexity link only KilnRuntime (no LLVM), so they
// parse their options with this small helper: `--name value`,
// `--name=value`, boolean `--flag`, and positionals. Errors are messages
// the tool prints before exiting with status 2.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_COMMON_RUNTIMETOOLARGS_H
#define KILN_TOOLS_COMMON_RUNTIMETOOLARGS_H

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace kiln::tools {

class Args {
public:
  /// `valued` options take a value; `flags` do not.
  Args(int argc, char **argv, std::set<std::string> valued,
       std::set<std::string> flags) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.size() < 2 || a[0] != '-' || a == "-") {
        positionals.push_back(a);
        continue;
      }
      std::string name = a.substr(a[1] == '-' ? 2 : 1), value;
      bool hasValue = false;
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        hasValue = true;
      }
      if (flags.count(name)) {
        if (hasValue) {
          error = "--" + name + " takes no value";
          return;
        }
        values[name] = "1";
      } else if (valued.count(name)) {
        if (!hasValue) {
          if (i + 1 >= argc) {
            error = "--" + name + " needs a value";
            return;
          }
          value = argv[++i];
        }
        values[name] = value;
      } else {
        error = "unknown option '" + a + "'";
        return;
      }
    }
  }

  bool has(const std::string &name) const { return values.count(name); }
  std::string str(const std::string &name, const std::string &dflt = "") const {
    auto it = values.find(name);
    return it == values.end() ? dflt : it->second;
  }
  /// Integer option; sets `error` for a malformed value.
  int64_t integer(const std::string &name, int64_t dflt) {
    auto it = values.find(name);
    if (it == values.end())
      return dflt;
    char *end = nullptr;
    errno = 0;
    long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (errno || end == it->second.c_str() || *end)
      error = "--" + name + " expects an integer, got '" + it->second + "'";
    return v;
  }
  double number(const std::string &name, double dflt) {
    auto it = values.find(name);
    if (it == values.end())
      return dflt;
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(it->second.c_str(), &end);
    if (errno || end == it->second.c_str() || *end)
      error = "--" + name + " expects a number, got '" + it->second + "'";
    return v;
  }

  std::vector<std::string> positionals;
  std::string error;

private:
  std::map<std::string, std::string> values;
};

} // namespace kiln::tools

#endif // KILN_TOOLS_COMMON_RUNTIMETOOLARGS_H
