//===- KernelUtils.cpp - Helpers shared by the host reference kernels -----===//

#include "Kernels.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"

#include <algorithm>

using namespace mlir;
using namespace kiln;
using namespace kiln::reference;

const KernelRegistry &kiln::reference::getKernelRegistry() {
  static const KernelRegistry registry = [] {
    KernelRegistry r;
    registerElementwiseKernels(r);
    registerShapeKernels(r);
    registerReductionKernels(r);
    registerLinearAlgebraKernels(r);
    registerModelKernels(r);
    registerCacheKernels(r);
    return r;
  }();
  return registry;
}

const HostTensor *
kiln::reference::inputFor(Operation *op,
                          const std::vector<const HostTensor *> &inputs,
                          Value v) {
  if (!v)
    return nullptr;
  for (OpOperand &operand : op->getOpOperands())
    if (operand.get() == v)
      return inputs[operand.getOperandNumber()];
  return nullptr;
}

FailureOr<int64_t> kiln::reference::normalizeAxis(Operation *op, int64_t axis,
                                                  int64_t rank,
                                                  StringRef what) {
  if (axis < -rank || axis >= rank)
    return op->emitOpError() << what << " " << axis
                             << " is out of range for rank " << rank;
  return axis < 0 ? axis + rank : axis;
}

static FailureOr<std::vector<int64_t>>
broadcastImpl(Operation *op, const std::vector<int64_t> &a,
              const std::vector<int64_t> &b, const std::string &aText,
              const std::string &bText) {
  size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return op->emitOpError()
             << "cannot broadcast " << aText << " with " << bText;
    out[i] = da == 1 ? db : da;
  }
  return out;
}

FailureOr<std::vector<int64_t>>
kiln::reference::broadcastShapes(Operation *op, const HostTensor &a,
                                 const HostTensor &b) {
  return broadcastImpl(op, a.shape, b.shape, a.shapeString(), b.shapeString());
}

FailureOr<std::vector<int64_t>>
kiln::reference::broadcastShapes(Operation *op, const std::vector<int64_t> &a,
                                 const std::vector<int64_t> &b) {
  return broadcastImpl(op, a, b, shapeString(a), shapeString(b));
}

std::vector<int64_t>
kiln::reference::broadcastStrides(const std::vector<int64_t> &in,
                                  const std::vector<int64_t> &out) {
  std::vector<int64_t> inStrides = stridesOf(in);
  std::vector<int64_t> strides(out.size(), 0);
  size_t lead = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d)
    strides[lead + d] = in[d] == 1 ? 0 : inStrides[d];
  return strides;
}

void kiln::reference::copyStrided(const HostTensor &src, HostTensor &dst,
                                  const std::vector<int64_t> &srcStrides,
                                  int64_t base) {
  auto run = [&](auto &out, const auto &in) {
    forEachStrided(dst.shape, {srcStrides}, {base},
                   [&](int64_t k, const int64_t *off) { out[k] = in[off[0]]; });
  };
  if (src.isFloat())
    run(dst.f, src.f);
  else
    run(dst.i, src.i);
}

std::vector<int64_t> kiln::reference::toInt64s(const HostTensor &t) {
  std::vector<int64_t> v(t.numElements());
  for (int64_t k = 0; k < (int64_t)v.size(); ++k)
    v[k] = t.getInt(k);
  return v;
}

FailureOr<int64_t> kiln::reference::scalarInt(Operation *op,
                                              const HostTensor &t,
                                              StringRef what) {
  if (t.numElements() != 1)
    return op->emitOpError() << what << " must have one element, got "
                             << t.shapeString();
  return t.getInt(0);
}

LogicalResult kiln::reference::expectFloat(Operation *op, const HostTensor &t,
                                           StringRef what) {
  if (!t.isFloat())
    return op->emitOpError() << what << " must be a floating-point tensor, got "
                             << t.shapeString();
  return success();
}

double kiln::reference::floatAttrOr(Operation *op, StringRef name,
                                    double dflt) {
  Attribute attr = op->getAttr(name);
  if (auto f = dyn_cast_or_null<FloatAttr>(attr))
    return f.getValueAsDouble();
  if (auto i = dyn_cast_or_null<IntegerAttr>(attr))
    return (double)i.getValue().getSExtValue();
  return dflt;
}

int64_t kiln::reference::intAttrOr(Operation *op, StringRef name,
                                   int64_t dflt) {
  Attribute attr = op->getAttr(name);
  if (auto i = dyn_cast_or_null<IntegerAttr>(attr))
    return i.getValue().getSExtValue();
  if (auto b = dyn_cast_or_null<BoolAttr>(attr))
    return b.getValue();
  return dflt;
}

void kiln::reference::gemm(const float *A, int64_t lda, const float *B,
                           int64_t ldb, float *C, int64_t ldc, int64_t M,
                           int64_t K, int64_t N) {
  // i-k-j order with the inner loop contiguous over N, blocked so that a
  // block of C rows stays in cache while B's rows stream through once per
  // block. Accumulation over k is in order, in fp32.
  constexpr int64_t MB = 16, NB = 512;
  for (int64_t m = 0; m < M; ++m)
    std::fill(C + m * ldc, C + m * ldc + N, 0.0f);
  for (int64_t m0 = 0; m0 < M; m0 += MB) {
    int64_t m1 = std::min(M, m0 + MB);
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
      int64_t len = std::min(N, n0 + NB) - n0;
      for (int64_t k = 0; k < K; ++k) {
        const float *__restrict b = B + k * ldb + n0;
        for (int64_t m = m0; m < m1; ++m) {
          float a = A[m * lda + k];
          float *__restrict c = C + m * ldc + n0;
          for (int64_t j = 0; j < len; ++j)
            c[j] += a * b[j];
        }
      }
    }
  }
}

void kiln::reference::denseLayer(const float *x, int64_t M, int64_t K,
                                 const float *w, bool transposed, int64_t N,
                                 const float *bias, float *y) {
  if (!transposed) {
    gemm(x, K, w, N, y, N, M, K, N);
  } else {
    // W is [N, K]: transpose a block of its rows at a time into [K, NB] so
    // that the product streams contiguously without a full copy of W.
    constexpr int64_t NB = 256;
    std::vector<float> block(K * std::min<int64_t>(N, NB));
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
      int64_t len = std::min(N, n0 + NB) - n0;
      for (int64_t j = 0; j < len; ++j)
        for (int64_t k = 0; k < K; ++k)
          block[k * len + j] = w[(n0 + j) * K + k];
      gemm(x, K, block.data(), len, y + n0, N, M, K, len);
    }
  }
  if (bias)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n)
        y[m * N + n] += bias[n];
}
