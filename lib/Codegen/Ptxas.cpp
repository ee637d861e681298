//===- Ptxas.cpp - Assembling PTX into a cubin with CUDA's ptxas ----------===//

#include "kiln/Codegen/Lowering.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

static bool isExecutable(const llvm::Twine &path) {
  return llvm::sys::fs::exists(path) && llvm::sys::fs::can_execute(path);
}

std::string kiln::codegen::findPtxas() {
  if (std::optional<std::string> explicitPath =
          llvm::sys::Process::GetEnv("KILN_PTXAS"))
    if (isExecutable(*explicitPath))
      return *explicitPath;
  for (const char *variable : {"CUDA_HOME", "CUDA_ROOT", "CUDA_PATH"}) {
    std::optional<std::string> root = llvm::sys::Process::GetEnv(variable);
    if (!root)
      continue;
    SmallString<256> path(*root);
    llvm::sys::path::append(path, "bin", "ptxas");
    if (isExecutable(path))
      return path.str().str();
  }
  if (llvm::ErrorOr<std::string> onPath = llvm::sys::findProgramByName("ptxas"))
    return *onPath;
  if (isExecutable("/usr/local/cuda/bin/ptxas"))
    return "/usr/local/cuda/bin/ptxas";
  return "";
}

namespace {
/// A temporary file removed when the scope ends.
struct TempFile {
  SmallString<128> path;
  std::unique_ptr<llvm::FileRemover> remover;

  LogicalResult create(StringRef suffix) {
    if (llvm::sys::fs::createTemporaryFile("kiln-kernel", suffix, path))
      return failure();
    remover = std::make_unique<llvm::FileRemover>(path);
    return success();
  }
};
} // namespace

FailureOr<std::vector<char>>
kiln::codegen::assembleWithPtxas(Location loc, StringRef ptx, StringRef chip,
                                 ArrayRef<std::string> extraOptions,
                                 std::string *log) {
  std::string ptxas = findPtxas();
  if (ptxas.empty())
    return emitError(loc)
           << "ptxas not found (looked at $KILN_PTXAS, $CUDA_HOME/bin, PATH "
              "and /usr/local/cuda/bin); install the CUDA toolkit or emit PTX "
              "and let the driver JIT it";

  TempFile input, output, messages;
  if (failed(input.create("ptx")) || failed(output.create("cubin")) ||
      failed(messages.create("log")))
    return emitError(loc) << "cannot create temporary files for ptxas";
  {
    std::error_code error;
    llvm::raw_fd_ostream os(input.path, error);
    if (error)
      return emitError(loc)
             << "cannot write " << input.path << ": " << error.message();
    os << ptx;
  }

  std::string arch = "-arch=" + chip.str();
  SmallVector<StringRef> args = {ptxas, arch, "-O3"};
  for (const std::string &option : extraOptions)
    args.push_back(option);
  args.append({input.path.str(), "-o", output.path.str()});
  std::optional<StringRef> redirects[] = {std::nullopt, messages.path.str(),
                                          messages.path.str()};
  std::string executionError;
  int status = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects,
                                         /*SecondsToWait=*/0,
                                         /*MemoryLimit=*/0, &executionError);
  std::string printed;
  if (auto buffer = llvm::MemoryBuffer::getFile(messages.path))
    printed = (*buffer)->getBuffer().str();
  if (log)
    *log = printed;
  if (status != 0) {
    auto diag = emitError(loc) << ptxas << " " << arch << " failed";
    if (!executionError.empty())
      diag << " (" << executionError << ")";
    diag << ":\n" << StringRef(printed).rtrim();
    return diag;
  }

  auto cubin = llvm::MemoryBuffer::getFile(output.path, /*IsText=*/false,
                                           /*RequiresNullTerminator=*/false);
  if (!cubin)
    return emitError(loc) << "ptxas wrote no cubin: "
                          << cubin.getError().message();
  StringRef bytes = (*cubin)->getBuffer();
  return std::vector<char>(bytes.begin(), bytes.end());
}
