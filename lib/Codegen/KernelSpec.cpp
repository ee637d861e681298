//===- KernelSpec.cpp - Launch contract of a generated kernel -------------===//

#include "kiln/Codegen/KernelSpec.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>

using namespace kiln::codegen;

llvm::StringRef kiln::codegen::stringifyDType(KernelDType dtype) {
  switch (dtype) {
  case KernelDType::F16:
    return "f16";
  case KernelDType::BF16:
    return "bf16";
  case KernelDType::F32:
    return "f32";
  case KernelDType::I32:
    return "i32";
  case KernelDType::I64:
    return "i64";
  case KernelDType::U8:
    return "u8";
  }
  return "f16";
}

std::optional<KernelDType> kiln::codegen::parseDType(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<KernelDType>>(name.lower())
      .Cases({"f16", "fp16", "half", "float16"}, KernelDType::F16)
      .Cases({"bf16", "bfloat16"}, KernelDType::BF16)
      .Default(std::nullopt);
}

mlir::Type kiln::codegen::getElementType(mlir::MLIRContext *context,
                                         KernelDType dtype) {
  mlir::Builder b(context);
  switch (dtype) {
  case KernelDType::F16:
    return b.getF16Type();
  case KernelDType::BF16:
    return b.getBF16Type();
  case KernelDType::F32:
    return b.getF32Type();
  case KernelDType::I32:
    return b.getI32Type();
  case KernelDType::I64:
    return b.getI64Type();
  case KernelDType::U8:
    return b.getI8Type();
  }
  return b.getF16Type();
}

int64_t kiln::codegen::getElementBytes(KernelDType dtype) {
  switch (dtype) {
  case KernelDType::F16:
  case KernelDType::BF16:
    return 2;
  case KernelDType::F32:
  case KernelDType::I32:
    return 4;
  case KernelDType::I64:
    return 8;
  case KernelDType::U8:
    return 1;
  }
  return 2;
}

void KernelSpec::addParam(llvm::StringRef key, int64_t value) {
  params.emplace_back(key.str(), std::to_string(value));
}

void KernelSpec::addParam(llvm::StringRef key, llvm::StringRef value) {
  params.emplace_back(key.str(), value.str());
}

void KernelSpec::addFloatParam(llvm::StringRef key, double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.9g", value);
  params.emplace_back(key.str(), text);
}

std::string KernelSpec::str() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "family=" << family << " name=" << name << " grid=" << grid[0] << ","
     << grid[1] << "," << grid[2] << " block=" << block[0] << "," << block[1]
     << "," << block[2] << " smem=" << dynamicSharedBytes;
  for (const auto &[key, value] : params)
    os << " " << key << "=" << value;
  os << " args=";
  llvm::interleave(
      args, os,
      [&](const KernelArg &arg) {
        os << arg.name << ":" << stringifyDType(arg.dtype) << "[";
        llvm::interleave(arg.shape, os, "x");
        os << "]" << (arg.isOutput ? ":out" : "")
           << (arg.isScratch ? (arg.zeroed ? ":zeroed" : ":scratch") : "");
      },
      ",");
  return text;
}
