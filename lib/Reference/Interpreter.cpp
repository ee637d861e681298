//===- Interpreter.cpp - The host reference executor ----------------------===//

#include "kiln/Reference/Interpreter.h"
#include "kiln/Reference/PackedWeights.h"

#include "kernels/Kernels.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Reference/TensorConversion.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/DenseMap.h"

#include <algorithm>
#include <memory>

using namespace mlir;
using namespace kiln;
using namespace kiln::reference;

namespace {
/// The value of an SSA value during execution: either owned (op results) or
/// borrowed (function inputs, weights cached by the WeightStore).
struct Slot {
  const HostTensor *tensor = nullptr;
  std::unique_ptr<HostTensor> owned;
};

/// Half-precision tensors are relabelled f32 in fp32 compute, so that the
/// kernels see one float type (their values are exact in fp32).
bool isHalf(DType t) { return t == DType::F16 || t == DType::BF16; }
} // namespace

/// True when `t` is a well-formed tensor of `type`: same element type, and
/// for ranked types the same rank and static dimensions.
/// Whether a tensor of `actual` dtype may stand for a value declared
/// `declared`: the same dtype, or, when computing in fp32, any two of
/// f32/f16/bf16 (half-precision values are held in fp32 then).
static bool compatibleDType(DType actual, DType declared, bool fp32Compute) {
  if (actual == declared)
    return true;
  auto isNarrowOrF32 = [](DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16;
  };
  return fp32Compute && isNarrowOrF32(actual) && isNarrowOrF32(declared);
}

static bool matchesType(const HostTensor &t, Type type, bool fp32Compute) {
  auto tensorType = dyn_cast<TensorType>(type);
  if (!tensorType)
    return false;
  auto dtype = dtypeFromType(tensorType.getElementType());
  if (!dtype || !compatibleDType(t.dtype, *dtype, fp32Compute))
    return false;
  if (auto ranked = dyn_cast<RankedTensorType>(type)) {
    if (ranked.getRank() != t.rank())
      return false;
    for (int64_t d = 0; d < t.rank(); ++d)
      if (!ShapedType::isDynamic(ranked.getDimSize(d)) &&
          ranked.getDimSize(d) != t.shape[d])
        return false;
  }
  for (int64_t d : t.shape)
    if (d < 0)
      return false;
  size_t n = (size_t)t.numElements();
  return t.isFloat() ? t.f.size() == n : t.i.size() == n;
}

bool Interpreter::hasKernel(StringRef opName) {
  return opName == "llm.weight" || opName == "func.return" ||
         getKernelRegistry().kernels.count(opName);
}

std::vector<std::string> Interpreter::supportedOps() {
  std::vector<std::string> names = {"llm.weight", "func.return"};
  for (const auto &entry : getKernelRegistry().kernels)
    names.push_back(entry.getKey().str());
  std::sort(names.begin(), names.end());
  return names;
}

LogicalResult Interpreter::bindPackedWeight(llm::WeightOp weight,
                                            std::unique_ptr<HostTensor> &out) {
  // The matrix layout its readers take: [N, K] for transposed ones.
  std::optional<bool> nk;
  for (Operation *user : weight->getUsers()) {
    bool t = false;
    if (auto linear = dyn_cast<llm::LinearOp>(user))
      t = linear.getTransposeWeight();
    else if (auto mlp = dyn_cast<llm::GatedMLPOp>(user))
      t = mlp.getTransposeWeights();
    if (nk && *nk != t)
      return weight.emitOpError() << "packed weight '" << weight.getName()
                                  << "' is read both as [K, N] and [N, K]";
    nk = t;
  }
  auto external = dyn_cast<llm::ExternalDataAttr>(weight.getSource());
  if (!external)
    return weight.emitOpError() << "packed weight '" << weight.getName()
                                << "' must be external data";
  auto bytesType = RankedTensorType::get(
      {external.getLength()},
      IntegerType::get(weight.getContext(), 8, IntegerType::Unsigned));
  std::string error;
  auto bytes = weights.load(weight.getSource(), bytesType, error);
  out = std::make_unique<HostTensor>();
  if (failed(bytes) || !decodePackedWeight(weight.getType(), **bytes,
                                           nk.value_or(false), *out, error))
    return weight.emitOpError() << "cannot load packed weight '"
                                << weight.getName() << "': " << error;
  return success();
}

LogicalResult Interpreter::run(func::FuncOp func,
                               const std::vector<HostTensor> &inputs,
                               std::vector<HostTensor> &outputs) {
  outputs.clear();
  if (func.isExternal())
    return func.emitOpError() << "has no body to run";
  if (!func.getBody().hasOneBlock())
    return func.emitOpError()
           << "has control flow, which the host reference does not run";
  Block &body = func.getBody().front();
  FunctionType type = func.getFunctionType();

  // Check the inputs against the signature.
  if (inputs.size() != type.getNumInputs())
    return emitError(func.getLoc())
           << "the model takes " << type.getNumInputs() << " inputs, got "
           << inputs.size();
  for (unsigned i = 0; i < inputs.size(); ++i) {
    if (matchesType(inputs[i], type.getInput(i), fp32Compute))
      continue;
    InFlightDiagnostic diag = emitError(func.getLoc()) << "input " << i;
    if (auto name = func.getArgAttrOfType<StringAttr>(i, "llm.name"))
      diag << " ('" << name.getValue() << "')";
    return diag << " has shape " << inputs[i].shapeString()
                << " but the model expects " << type.getInput(i);
  }

  // For each value, the op after which it is dead.
  llvm::DenseMap<Operation *, unsigned> order;
  unsigned numOps = 0;
  for (Operation &op : body)
    order[&op] = numOps++;
  std::vector<SmallVector<Value, 4>> freeAfter(numOps);
  auto scheduleFree = [&](Value v, int64_t defined) {
    int64_t last = defined;
    for (Operation *user : v.getUsers())
      if (Operation *ancestor = body.findAncestorOpInBlock(*user))
        last = std::max<int64_t>(last, order[ancestor]);
    if (last >= 0)
      freeAfter[last].push_back(v);
  };

  llvm::DenseMap<Value, Slot> env;
  // Binds `v` to `t`, copying half-precision tensors into fp32 ones when
  // computing in fp32.
  auto bind = [&](Value v, const HostTensor *t) {
    Slot &slot = env[v];
    if (fp32Compute && isHalf(t->dtype)) {
      slot.owned = std::make_unique<HostTensor>(*t);
      slot.owned->dtype = DType::F32;
      slot.tensor = slot.owned.get();
    } else {
      slot.tensor = t;
    }
  };
  for (auto [i, arg] : llvm::enumerate(body.getArguments())) {
    bind(arg, &inputs[i]);
    scheduleFree(arg, -1);
  }
  for (Operation &op : body)
    for (Value result : op.getResults())
      scheduleFree(result, order[&op]);

  const KernelRegistry &registry = getKernelRegistry();
  std::vector<const HostTensor *> operands;
  for (Operation &op : body) {
    operands.clear();
    for (auto [i, operand] : llvm::enumerate(op.getOperands())) {
      auto it = env.find(operand);
      if (it == env.end())
        return op.emitOpError() << "operand #" << i
                                << " has no value (defined outside the body?)";
      operands.push_back(it->second.tensor);
    }

    if (isa<func::ReturnOp>(op)) {
      for (const HostTensor *t : operands)
        outputs.push_back(*t);
      return success();
    }

    if (auto weight = dyn_cast<llm::WeightOp>(op);
        weight && isPackedWeightType(weight.getType())) {
      if (failed(bindPackedWeight(weight, env[weight.getResult()].owned)))
        return failure();
      env[weight.getResult()].tensor = env[weight.getResult()].owned.get();
      if (observer)
        observer(&op, {*env[weight.getResult()].tensor});
    } else if (auto weight = dyn_cast<llm::WeightOp>(op)) {
      std::string error;
      auto tensor = weights.load(weight.getSource(), weight.getType(), error);
      if (failed(tensor))
        return weight.emitOpError() << "cannot load weight '"
                                    << weight.getName() << "': " << error;
      if (!matchesType(**tensor, weight.getType(), fp32Compute))
        return weight.emitOpError() << "loaded " << (*tensor)->shapeString()
                                    << " for weight '" << weight.getName()
                                    << "' of type " << weight.getType();
      bind(weight.getResult(), *tensor);
      if (observer)
        observer(&op, {**tensor});
    } else {
      auto kernel = registry.kernels.find(op.getName().getStringRef());
      if (kernel == registry.kernels.end())
        return op.emitOpError() << "has no host reference kernel";
      std::vector<HostTensor> results(op.getNumResults());
      for (auto [i, result] : llvm::enumerate(op.getResults())) {
        auto tensorType = dyn_cast<TensorType>(result.getType());
        auto dtype = tensorType ? dtypeFromType(tensorType.getElementType())
                                : std::nullopt;
        if (!dtype)
          return op.emitOpError() << "result #" << i << " has type "
                                  << result.getType()
                                  << ", which the host reference does not "
                                     "support";
        // In fp32 compute, half-precision results are not rounded.
        if (fp32Compute && (*dtype == DType::F16 || *dtype == DType::BF16))
          dtype = DType::F32;
        results[i].dtype = *dtype;
      }
      if (failed(kernel->second(&op, operands, results)))
        return failure();
      if (results.size() != op.getNumResults())
        return op.emitOpError() << "host kernel produced " << results.size()
                                << " results for " << op.getNumResults();
      for (auto [i, result] : llvm::enumerate(op.getResults()))
        if (!matchesType(results[i], result.getType(), fp32Compute))
          return op.emitOpError() << "computed " << results[i].shapeString()
                                  << " for result #" << i
                                  << " but its type is " << result.getType();
      if (observer)
        observer(&op, results);
      for (auto [i, result] : llvm::enumerate(op.getResults())) {
        Slot &slot = env[result];
        slot.owned = std::make_unique<HostTensor>(std::move(results[i]));
        if (fp32Compute && isHalf(slot.owned->dtype))
          slot.owned->dtype = DType::F32;
        slot.tensor = slot.owned.get();
      }
    }

    for (Value dead : freeAfter[order[&op]])
      env.erase(dead);
  }
  return func.emitOpError() << "body does not end with func.return";
}
