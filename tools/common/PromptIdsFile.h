//===- PromptIdsFile.h - Token-id prompt files of the runtime tools -------===//
//
// kiln-agree and kiln-spec-bench read their prompts as token ids, one prompt
// a line, comma-separated (what `kiln-perplexity --dump-ids` and the GPU
// runs use, since a runtime may be built without SentencePiece). Empty lines
// are skipped; anything else that is not an integer is an error naming the
// file and line.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_COMMON_PROMPTIDSFILE_H
#define KILN_TOOLS_COMMON_PROMPTIDSFILE_H

#include "kiln/runtime/Status.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::tools {

inline runtime::StatusOr<std::vector<std::vector<int32_t>>>
readPromptIdsFile(const std::string &path) {
  using runtime::makeError;
  using runtime::StatusCode;
  std::ifstream in(path);
  if (!in)
    return makeError(StatusCode::NotFound, "cannot open '", path, "'");
  std::vector<std::vector<int32_t>> prompts;
  std::string line;
  for (int lineNo = 1; std::getline(in, line); ++lineNo) {
    if (line.empty())
      continue;
    std::vector<int32_t> ids;
    std::stringstream ss(line);
    for (std::string part; std::getline(ss, part, ',');) {
      char *end = nullptr;
      long v = std::strtol(part.c_str(), &end, 10);
      if (part.empty() || *end)
        return makeError(StatusCode::InvalidArgument, path, ":", lineNo,
                         ": expected comma-separated token ids, got '", part,
                         "'");
      ids.push_back(static_cast<int32_t>(v));
    }
    prompts.push_back(std::move(ids));
  }
  if (prompts.empty())
    return makeError(StatusCode::InvalidArgument, path, ": no prompts");
  return prompts;
}

} // namespace kiln::tools

#endif // KILN_TOOLS_COMMON_PROMPTIDSFILE_H
