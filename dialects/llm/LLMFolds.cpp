//===- LLMFolds.cpp - Folders of llm ops ----------------------------------===//

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

using namespace mlir;
using namespace kiln::llm;

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }
