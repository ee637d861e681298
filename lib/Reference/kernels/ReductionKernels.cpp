//===- ReductionKernels.cpp - reduce_*, argmax/argmin, softmax ------------===//
//
// Float reductions accumulate in double (the oracle should be at least as
// accurate as what it checks); integer ones in int64.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "llvm/ADT/StringSwitch.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mlir;
using namespace kiln;
using namespace kiln::reference;
namespace llm = kiln::llm;

using Inputs = std::vector<const HostTensor *>;
using Outputs = std::vector<HostTensor>;

namespace {
enum class ReduceKind {
  Sum, Mean, Max, Min, Prod, L1, L2, SumSquare, LogSum, LogSumExp, Unknown
};
} // namespace

static ReduceKind reduceKind(Operation *op) {
  return llvm::StringSwitch<ReduceKind>(op->getName().getStringRef())
      .Case("llm.reduce_sum", ReduceKind::Sum)
      .Case("llm.reduce_mean", ReduceKind::Mean)
      .Case("llm.reduce_max", ReduceKind::Max)
      .Case("llm.reduce_min", ReduceKind::Min)
      .Case("llm.reduce_prod", ReduceKind::Prod)
      .Case("llm.reduce_l1", ReduceKind::L1)
      .Case("llm.reduce_l2", ReduceKind::L2)
      .Case("llm.reduce_sum_square", ReduceKind::SumSquare)
      .Case("llm.reduce_log_sum", ReduceKind::LogSum)
      .Case("llm.reduce_log_sum_exp", ReduceKind::LogSumExp)
      .Default(ReduceKind::Unknown);
}

static LogicalResult reduceKernel(Operation *op, const Inputs &inputs,
                                  Outputs &outputs) {
  ReduceKind kind = reduceKind(op);
  if (kind == ReduceKind::Unknown)
    return op->emitOpError() << "has no host reference kernel";
  const HostTensor &x = *inputs[0];
  // All reduce ops share the operand/attribute layout of ReduceSumOp.
  Value axesValue = op->getNumOperands() > 1 ? op->getOperand(1) : Value();
  bool keepDims = intAttrOr(op, "keepdims", 1) != 0;
  bool noopWithEmptyAxes = intAttrOr(op, "noop_with_empty_axes", 0) != 0;

  std::vector<bool> reduced(x.rank(), false);
  std::vector<int64_t> axes;
  if (const HostTensor *axesT = inputFor(op, inputs, axesValue)) {
    if (axesT->isFloat() || axesT->rank() > 1)
      return op->emitOpError() << "axes must be a 1-D integer tensor, got "
                               << axesT->shapeString();
    axes = toInt64s(*axesT);
  }
  if (axes.empty()) {
    if (noopWithEmptyAxes) {
      outputs[0] = x;
      return success();
    }
    reduced.assign(x.rank(), true);
  }
  for (int64_t a : axes) {
    auto axis = normalizeAxis(op, a, x.rank());
    if (failed(axis))
      return failure();
    reduced[*axis] = true;
  }

  std::vector<int64_t> outShape, keptShape;
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (!reduced[d])
      outShape.push_back(x.shape[d]);
    keptShape.push_back(reduced[d] ? 1 : x.shape[d]);
  }
  int64_t outN = numElementsOf(keptShape);
  int64_t count = 1; // elements per reduction
  for (int64_t d = 0; d < x.rank(); ++d)
    if (reduced[d])
      count *= x.shape[d];
  // Offsets into the output of each input element: 0 stride on reduced axes.
  std::vector<int64_t> outStrides = broadcastStrides(keptShape, x.shape);
  for (int64_t d = 0; d < x.rank(); ++d)
    if (reduced[d])
      outStrides[d] = 0;

  HostTensor out(x.dtype, keepDims ? keptShape : outShape);
  if (x.isFloat()) {
    double init = 0;
    if (kind == ReduceKind::Prod)
      init = 1;
    else if (kind == ReduceKind::Max || kind == ReduceKind::LogSumExp)
      init = -INFINITY;
    else if (kind == ReduceKind::Min)
      init = INFINITY;
    std::vector<double> acc(outN, init), shift(outN, 0.0);
    if (kind == ReduceKind::LogSumExp) {
      // Subtract the maximum for stability, as numpy/ORT reference does.
      forEachStrided(x.shape, {outStrides}, {0}, [&](int64_t k, const int64_t *o) {
        acc[o[0]] = std::max(acc[o[0]], (double)x.f[k]);
      });
      for (int64_t j = 0; j < outN; ++j) {
        shift[j] = std::isfinite(acc[j]) ? acc[j] : 0.0;
        acc[j] = 0;
      }
    }
    forEachStrided(x.shape, {outStrides}, {0}, [&](int64_t k, const int64_t *o) {
      double v = x.f[k];
      double &a = acc[o[0]];
      switch (kind) {
      case ReduceKind::Sum: case ReduceKind::Mean: case ReduceKind::LogSum:
        a += v; break;
      case ReduceKind::Max: a = std::isnan(v) || std::isnan(a) ? NAN : std::max(a, v); break;
      case ReduceKind::Min: a = std::isnan(v) || std::isnan(a) ? NAN : std::min(a, v); break;
      case ReduceKind::Prod: a *= v; break;
      case ReduceKind::L1: a += std::fabs(v); break;
      case ReduceKind::L2: case ReduceKind::SumSquare: a += v * v; break;
      case ReduceKind::LogSumExp: a += std::exp(v - shift[o[0]]); break;
      default: break;
      }
    });
    for (int64_t j = 0; j < outN; ++j) {
      double a = acc[j];
      switch (kind) {
      case ReduceKind::Mean: a = a / (double)count; break;
      case ReduceKind::L2: a = std::sqrt(a); break;
      case ReduceKind::LogSum: a = std::log(a); break;
      case ReduceKind::LogSumExp: a = std::log(a) + shift[j]; break;
      default: break;
      }
      out.set(j, a);
    }
  } else {
    int64_t init = 0;
    if (kind == ReduceKind::Prod)
      init = 1;
    else if (kind == ReduceKind::Max)
      init = x.dtype == DType::I64 ? std::numeric_limits<int64_t>::min()
                                   : (int64_t)dtypeLowest(x.dtype);
    else if (kind == ReduceKind::Min)
      init = x.dtype == DType::I64 || x.dtype == DType::U64
                 ? std::numeric_limits<int64_t>::max()
                 : (int64_t)dtypeHighest(x.dtype);
    std::vector<int64_t> acc(outN, init);
    std::vector<double> logAcc;
    if (kind == ReduceKind::LogSum || kind == ReduceKind::LogSumExp ||
        kind == ReduceKind::L2)
      logAcc.assign(outN, 0.0);
    forEachStrided(x.shape, {outStrides}, {0}, [&](int64_t k, const int64_t *o) {
      int64_t v = x.i[k];
      int64_t &a = acc[o[0]];
      switch (kind) {
      case ReduceKind::Sum: case ReduceKind::Mean: a += v; break;
      case ReduceKind::Max: a = std::max(a, v); break;
      case ReduceKind::Min: a = std::min(a, v); break;
      case ReduceKind::Prod: a *= v; break;
      case ReduceKind::L1: a += v < 0 ? -v : v; break;
      case ReduceKind::SumSquare: a += v * v; break;
      case ReduceKind::L2: logAcc[o[0]] += (double)v * (double)v; break;
      case ReduceKind::LogSum: logAcc[o[0]] += (double)v; break;
      case ReduceKind::LogSumExp: logAcc[o[0]] += std::exp((double)v); break;
      default: break;
      }
    });
    for (int64_t j = 0; j < outN; ++j) {
      switch (kind) {
      case ReduceKind::Mean:
        out.setInt(j, count ? acc[j] / count : 0);
        break;
      case ReduceKind::L2: out.set(j, std::sqrt(logAcc[j])); break;
      case ReduceKind::LogSum:
      case ReduceKind::LogSumExp: out.set(j, std::log(logAcc[j])); break;
      default: out.setInt(j, acc[j]); break;
      }
    }
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult argReduceKernel(Operation *op, const Inputs &inputs,
                                     Outputs &outputs) {
  const HostTensor &x = *inputs[0];
  bool isMax = isa<llm::ArgMaxOp>(op);
  auto axis = normalizeAxis(op, intAttrOr(op, "axis", 0), x.rank());
  if (failed(axis))
    return failure();
  bool keepDims = intAttrOr(op, "keepdims", 1) != 0;
  bool selectLast = intAttrOr(op, "select_last_index", 0) != 0;
  int64_t outer = 1, inner = 1, dim = x.shape[*axis];
  if (dim == 0)
    return op->emitOpError() << "cannot take the index of an extremum over an "
                                "empty axis of "
                             << x.shapeString();
  for (int64_t d = 0; d < *axis; ++d)
    outer *= x.shape[d];
  for (int64_t d = *axis + 1; d < x.rank(); ++d)
    inner *= x.shape[d];
  std::vector<int64_t> shape = x.shape;
  if (keepDims)
    shape[*axis] = 1;
  else
    shape.erase(shape.begin() + *axis);
  HostTensor out(outputs[0].dtype, shape);
  bool isU64 = x.dtype == DType::U64;
  // Strictly better, or equally good when the last index is wanted.
  auto better = [&](int64_t a, int64_t b) { // element a vs current best b
    if (x.isFloat()) {
      float va = x.f[a], vb = x.f[b];
      return isMax ? (va > vb || (selectLast && va == vb))
                   : (va < vb || (selectLast && va == vb));
    }
    if (isU64) {
      uint64_t va = x.i[a], vb = x.i[b];
      return isMax ? (va > vb || (selectLast && va == vb))
                   : (va < vb || (selectLast && va == vb));
    }
    int64_t va = x.i[a], vb = x.i[b];
    return isMax ? (va > vb || (selectLast && va == vb))
                 : (va < vb || (selectLast && va == vb));
  };
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      int64_t best = 0;
      for (int64_t j = 1; j < dim; ++j)
        if (better((o * dim + j) * inner + in, (o * dim + best) * inner + in))
          best = j;
      out.setInt(o * inner + in, best);
    }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult softmaxKernel(Operation *op, const Inputs &inputs,
                                   Outputs &outputs) {
  const HostTensor &x = *inputs[0];
  if (failed(expectFloat(op, x, "input")))
    return failure();
  bool isLog = isa<llm::LogSoftmaxOp>(op);
  auto axis = normalizeAxis(op, intAttrOr(op, "axis", -1), x.rank());
  if (failed(axis))
    return failure();
  int64_t outer = 1, inner = 1, dim = x.shape[*axis];
  for (int64_t d = 0; d < *axis; ++d)
    outer *= x.shape[d];
  for (int64_t d = *axis + 1; d < x.rank(); ++d)
    inner *= x.shape[d];
  HostTensor out(x.dtype, x.shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t j) { return (o * dim + j) * inner + in; };
      double mx = -INFINITY;
      for (int64_t j = 0; j < dim; ++j)
        mx = std::max(mx, (double)x.f[at(j)]);
      if (std::isinf(mx))
        mx = 0; // all -inf (or +inf): let exp produce the IEEE result
      double sum = 0;
      for (int64_t j = 0; j < dim; ++j)
        sum += std::exp((double)x.f[at(j)] - mx);
      for (int64_t j = 0; j < dim; ++j) {
        double v = (double)x.f[at(j)] - mx;
        out.set(at(j), isLog ? v - std::log(sum) : std::exp(v) / sum);
      }
    }
  outputs[0] = std::move(out);
  return success();
}

/// Hardmax: 1 at the first maximum of each line along the axis, else 0.
static LogicalResult hardmaxKernel(Operation *op, const Inputs &inputs,
                                   Outputs &outputs) {
  const HostTensor &x = *inputs[0];
  auto axis = normalizeAxis(op, intAttrOr(op, "axis", -1), x.rank());
  if (failed(axis))
    return failure();
  int64_t outer = 1, inner = 1, dim = x.shape[*axis];
  for (int64_t d = 0; d < *axis; ++d)
    outer *= x.shape[d];
  for (int64_t d = *axis + 1; d < x.rank(); ++d)
    inner *= x.shape[d];
  HostTensor out(x.dtype, x.shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t j) { return (o * dim + j) * inner + in; };
      int64_t best = 0;
      for (int64_t j = 1; j < dim; ++j)
        if (x.get(at(j)) > x.get(at(best)))
          best = j;
      if (dim > 0)
        out.set(at(best), 1.0);
    }
  outputs[0] = std::move(out);
  return success();
}

/// TopK: the k largest (smallest) along the axis, ties by lower index; the
/// values come sorted whatever `sorted` says (ONNX leaves that order open).
static LogicalResult topKKernel(Operation *op, const Inputs &inputs,
                                Outputs &outputs) {
  auto topk = cast<llm::TopKOp>(op);
  const HostTensor &x = *inputs[0];
  auto kValue = scalarInt(op, *inputs[1], "k");
  if (failed(kValue))
    return failure();
  auto axis = normalizeAxis(op, (int64_t)topk.getAxis(), x.rank());
  if (failed(axis))
    return failure();
  int64_t k = *kValue, dim = x.shape[*axis];
  if (k < 0 || k > dim)
    return op->emitOpError() << "k = " << k << " is out of range for dimension "
                             << *axis << " of " << x.shapeString();
  bool largest = topk.getLargest() != 0;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < *axis; ++d)
    outer *= x.shape[d];
  for (int64_t d = *axis + 1; d < x.rank(); ++d)
    inner *= x.shape[d];
  std::vector<int64_t> shape = x.shape;
  shape[*axis] = k;
  HostTensor values(x.dtype, shape), indices(outputs[1].dtype, shape);
  std::vector<int64_t> order(dim);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t j) { return (o * dim + j) * inner + in; };
      for (int64_t j = 0; j < dim; ++j)
        order[j] = j;
      auto ranks = [&](int64_t a, int64_t b) {
        if (x.isFloat()) {
          double va = x.f[at(a)], vb = x.f[at(b)];
          // NaN ranks above every number, as onnxruntime orders it.
          bool na = std::isnan(va), nb = std::isnan(vb);
          if (na || nb)
            return largest ? (na && !nb) : (!na && nb);
          return largest ? va > vb : va < vb;
        }
        int64_t va = x.i[at(a)], vb = x.i[at(b)];
        if (isUnsignedDType(x.dtype))
          return largest ? (uint64_t)va > (uint64_t)vb
                         : (uint64_t)va < (uint64_t)vb;
        return largest ? va > vb : va < vb;
      };
      // Equal values keep index order (ties go to the lower index).
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        if (ranks(a, b))
          return true;
        return !ranks(b, a) && a < b;
      });
      for (int64_t j = 0; j < k; ++j) {
        int64_t dst = (o * k + j) * inner + in;
        if (x.isFloat())
          values.f[dst] = x.f[at(order[j])];
        else
          values.i[dst] = x.i[at(order[j])];
        indices.setInt(dst, order[j]);
      }
    }
  outputs[0] = std::move(values);
  outputs[1] = std::move(indices);
  return success();
}

void kiln::reference::registerReductionKernels(KernelRegistry &registry) {
  for (const char *name :
       {"llm.reduce_sum", "llm.reduce_mean", "llm.reduce_max",
        "llm.reduce_min", "llm.reduce_prod", "llm.reduce_l1", "llm.reduce_l2",
        "llm.reduce_sum_square", "llm.reduce_log_sum",
        "llm.reduce_log_sum_exp"})
    registry.add(name, reduceKernel);
  registry.add("llm.argmax", argReduceKernel);
  registry.add("llm.argmin", argReduceKernel);
  registry.add("llm.softmax", softmaxKernel);
  registry.add("llm.log_softmax", softmaxKernel);
  registry.add("llm.hardmax", hardmaxKernel);
  registry.add("llm.topk", topKKernel);
}
