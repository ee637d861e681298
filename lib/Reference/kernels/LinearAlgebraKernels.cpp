//===- LinearAlgebraKernels.cpp - matmul, matmul_nbits and einsum ---------===//

#include "Kernels.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include <algorithm>
#include <cctype>
#include <map>

using namespace mlir;
using namespace kiln;
using namespace kiln::reference;
namespace llm = kiln::llm;

using Inputs = std::vector<const HostTensor *>;
using Outputs = std::vector<HostTensor>;

/// Stores fp32 results into `out`, rounding when its dtype is narrower.
static void storeFloats(HostTensor &out, const std::vector<float> &values) {
  if (out.dtype == DType::F32) {
    out.f = values;
    return;
  }
  for (int64_t k = 0; k < (int64_t)values.size(); ++k)
    out.set(k, values[k]);
}

static LogicalResult matmulKernel(Operation *op, const Inputs &inputs,
                                  Outputs &outputs) {
  const HostTensor &a = *inputs[0], &b = *inputs[1];
  if (a.rank() < 1 || b.rank() < 1)
    return op->emitOpError() << "operands must have rank >= 1, got "
                             << a.shapeString() << " and " << b.shapeString();
  // numpy matmul: a 1-D lhs is a row vector, a 1-D rhs a column vector;
  // the added dimension is removed from the result.
  std::vector<int64_t> aShape = a.shape, bShape = b.shape;
  if (a.rank() == 1)
    aShape.insert(aShape.begin(), 1);
  if (b.rank() == 1)
    bShape.push_back(1);
  int64_t M = aShape[aShape.size() - 2], K = aShape.back();
  int64_t K2 = bShape[bShape.size() - 2], N = bShape.back();
  if (K != K2)
    return op->emitOpError() << "cannot multiply " << a.shapeString() << " by "
                             << b.shapeString();
  std::vector<int64_t> aBatch(aShape.begin(), aShape.end() - 2);
  std::vector<int64_t> bBatch(bShape.begin(), bShape.end() - 2);
  auto batch = broadcastShapes(op, aBatch, bBatch);
  if (failed(batch))
    return failure();
  std::vector<int64_t> shape = *batch;
  if (a.rank() > 1)
    shape.push_back(M);
  if (b.rank() > 1)
    shape.push_back(N);
  HostTensor out(outputs[0].dtype, shape);

  std::vector<int64_t> aStrides = broadcastStrides(aBatch, *batch);
  std::vector<int64_t> bStrides = broadcastStrides(bBatch, *batch);
  for (int64_t &s : aStrides)
    s *= M * K;
  for (int64_t &s : bStrides)
    s *= K * N;
  if (a.isFloat() && b.isFloat()) {
    if (!out.isFloat())
      return op->emitOpError() << "float operands need a float result";
    std::vector<float> c(out.numElements());
    forEachStrided(*batch, {aStrides, bStrides}, {0, 0},
                   [&](int64_t k, const int64_t *off) {
                     gemm(a.f.data() + off[0], K, b.f.data() + off[1], N,
                          c.data() + k * M * N, N, M, K, N);
                   });
    storeFloats(out, c);
  } else {
    forEachStrided(*batch, {aStrides, bStrides}, {0, 0},
                   [&](int64_t k, const int64_t *off) {
                     for (int64_t m = 0; m < M; ++m)
                       for (int64_t n = 0; n < N; ++n) {
                         if (a.isFloat() || b.isFloat()) {
                           double acc = 0;
                           for (int64_t kk = 0; kk < K; ++kk)
                             acc += a.get(off[0] + m * K + kk) *
                                    b.get(off[1] + kk * N + n);
                           out.set(k * M * N + m * N + n, acc);
                         } else {
                           uint64_t acc = 0;
                           for (int64_t kk = 0; kk < K; ++kk)
                             acc += (uint64_t)a.i[off[0] + m * K + kk] *
                                    (uint64_t)b.i[off[1] + kk * N + n];
                           out.setInt(k * M * N + m * N + n, (int64_t)acc);
                         }
                       }
                   });
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult matmulNBitsKernel(Operation *op, const Inputs &inputs,
                                       Outputs &outputs) {
  auto mm = cast<llm::MatMulNBitsOp>(op);
  const HostTensor &a = *inputs[0], &b = *inputs[1], &scales = *inputs[2];
  const HostTensor *zp = inputFor(op, inputs, mm.getZeroPoints());
  int64_t K = mm.getK(), N = mm.getN(), bits = mm.getBits(),
          block = mm.getBlockSize();
  if (failed(expectFloat(op, a, "input")) ||
      failed(expectFloat(op, scales, "scales")))
    return failure();
  if (a.rank() < 1 || a.shape.back() != K)
    return op->emitOpError() << "input " << a.shapeString() << " must have "
                             << K << " features";
  if (bits != 2 && bits != 4 && bits != 8)
    return op->emitOpError() << "bits must be 2, 4 or 8, got " << bits;
  int64_t blocks = (K + block - 1) / block;
  int64_t blob = block * bits / 8;
  if (b.isFloat() || b.numElements() != N * blocks * blob)
    return op->emitOpError() << "packed weight " << b.shapeString()
                             << " must hold " << N << "x" << blocks << "x"
                             << blob << " bytes";
  if (scales.numElements() != N * blocks)
    return op->emitOpError() << "scales " << scales.shapeString()
                             << " must hold " << N * blocks << " values";
  int64_t zpRowBytes = (blocks * bits + 7) / 8;
  if (zp) {
    int64_t expected = zp->isFloat() ? N * blocks : N * zpRowBytes;
    if (zp->numElements() != expected)
      return op->emitOpError() << "zero points " << zp->shapeString()
                               << " must hold " << expected << " values";
  }
  int64_t mask = (1 << bits) - 1;
  float defaultZero = (float)(1 << (bits - 1));
  // Dequantized element (k, n) of the K x N weight.
  auto weight = [&](int64_t n, int64_t k) -> float {
    int64_t blk = k / block, bit = (k % block) * bits;
    int64_t byte = b.i[(n * blocks + blk) * blob + bit / 8];
    float q = (float)((byte >> (bit % 8)) & mask);
    float z = defaultZero;
    if (zp && zp->isFloat()) {
      z = zp->f[n * blocks + blk];
    } else if (zp) {
      int64_t zbit = blk * bits;
      z = (float)((zp->i[n * zpRowBytes + zbit / 8] >> (zbit % 8)) & mask);
    }
    return (q - z) * scales.f[n * blocks + blk];
  };

  int64_t M = a.numElements() / K;
  std::vector<int64_t> shape = a.shape;
  shape.back() = N;
  std::vector<float> c(M * N);
  // Dequantize a block of columns at a time into [K, NB] and multiply.
  constexpr int64_t NB = 256;
  std::vector<float> w(K * std::min<int64_t>(N, NB));
  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    int64_t len = std::min(N, n0 + NB) - n0;
    for (int64_t j = 0; j < len; ++j)
      for (int64_t k = 0; k < K; ++k)
        w[k * len + j] = weight(n0 + j, k);
    gemm(a.f.data(), K, w.data(), len, c.data() + n0, N, M, K, len);
  }
  HostTensor out(outputs[0].dtype, shape);
  if (!out.isFloat())
    return op->emitOpError() << "result must be floating point";
  storeFloats(out, c);
  outputs[0] = std::move(out);
  return success();
}

/// Einsum: parses the equation into labels per operand dimension (the
/// dimensions of `...` get labels of their own, right-aligned across
/// operands and broadcast), then sums products over every label not in the
/// output. Repeated labels in one operand take diagonals.
static LogicalResult einsumKernel(Operation *op, const Inputs &inputs,
                                  Outputs &outputs) {
  std::string eq;
  for (char ch : cast<llm::EinsumOp>(op).getEquation())
    if (ch != ' ')
      eq += ch;
  size_t arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma - start));
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  if (terms.size() != inputs.size())
    return op->emitOpError() << "equation '" << eq << "' has " << terms.size()
                             << " operand terms for " << inputs.size()
                             << " operands";
  constexpr int kEllipsis = 1000; // labels kEllipsis + i for `...` dims
  // Labels of each operand's dimensions; the rank of `...`.
  std::vector<std::vector<int>> labels(inputs.size());
  int64_t ellRank = 0;
  auto parseTerm = [&](const std::string &term, int64_t rank,
                       std::vector<int> &out) -> LogicalResult {
    size_t dots = term.find("...");
    int64_t letters = (int64_t)term.size() - (dots == std::string::npos ? 0 : 3);
    int64_t ell = rank - letters;
    if (ell < 0 || (dots == std::string::npos && ell != 0))
      return op->emitOpError() << "term '" << term << "' of '" << eq
                               << "' does not match an operand of rank " << rank;
    for (size_t p = 0; p < term.size(); ++p) {
      if (p == dots) {
        for (int64_t e = 0; e < ell; ++e)
          out.push_back(-1 - (int)(ell - e)); // fixed up once ellRank is known
        p += 2;
        continue;
      }
      if (!std::isalpha((unsigned char)term[p]))
        return op->emitOpError() << "equation '" << eq << "' is malformed";
      out.push_back(term[p]);
    }
    ellRank = std::max(ellRank, ell);
    return success();
  };
  for (size_t j = 0; j < inputs.size(); ++j)
    if (failed(parseTerm(terms[j], inputs[j]->rank(), labels[j])))
      return failure();
  // -1 - (distance from the end of `...`) -> kEllipsis + position.
  for (auto &ls : labels)
    for (int &l : ls)
      if (l < 0)
        l = kEllipsis + (int)(ellRank + l + 1);
  // Sizes of the labels (1 broadcasts within `...`).
  std::map<int, int64_t> size;
  for (size_t j = 0; j < inputs.size(); ++j)
    for (size_t d = 0; d < labels[j].size(); ++d) {
      int l = labels[j][d];
      int64_t s = inputs[j]->shape[d];
      auto it = size.find(l);
      if (it == size.end() || (it->second == 1 && l >= kEllipsis))
        size[l] = s;
      else if (it->second != s && !(l >= kEllipsis && s == 1))
        return op->emitOpError() << "dimension sizes of label in '" << eq
                                 << "' differ: " << it->second << " vs " << s;
    }
  std::vector<int> outLabels;
  if (arrow != std::string::npos) {
    std::string rhs = eq.substr(arrow + 2);
    for (size_t p = 0; p < rhs.size(); ++p) {
      if (rhs.compare(p, 3, "...") == 0) {
        for (int64_t e = 0; e < ellRank; ++e)
          outLabels.push_back(kEllipsis + (int)e);
        p += 2;
      } else if (std::isalpha((unsigned char)rhs[p]) && size.count(rhs[p])) {
        outLabels.push_back(rhs[p]);
      } else {
        return op->emitOpError() << "output of '" << eq << "' is malformed";
      }
    }
  } else {
    // Implicit output: `...` then the letters used once, alphabetically.
    std::map<int, int> count;
    for (auto &ls : labels)
      for (int l : ls)
        ++count[l];
    for (int64_t e = 0; e < ellRank; ++e)
      outLabels.push_back(kEllipsis + (int)e);
    for (auto [l, n] : count)
      if (l < kEllipsis && n == 1)
        outLabels.push_back(l);
    std::sort(outLabels.begin() + ellRank, outLabels.end());
  }
  std::vector<int> all = outLabels;
  for (auto [l, s] : size)
    if (std::find(all.begin(), all.end(), l) == all.end())
      all.push_back(l);
  std::vector<int64_t> extent, outShape;
  for (int l : all)
    extent.push_back(size.count(l) ? size[l] : 1);
  for (size_t d = 0; d < outLabels.size(); ++d)
    outShape.push_back(extent[d]);
  // strides[j][a]: the step of operand j along label all[a].
  std::vector<std::vector<int64_t>> strides(inputs.size(),
                                            std::vector<int64_t>(all.size(), 0));
  for (size_t j = 0; j < inputs.size(); ++j) {
    std::vector<int64_t> st = stridesOf(inputs[j]->shape);
    for (size_t d = 0; d < labels[j].size(); ++d) {
      if (inputs[j]->shape[d] == 1 && size[labels[j][d]] != 1)
        continue; // broadcast
      size_t a = std::find(all.begin(), all.end(), labels[j][d]) - all.begin();
      strides[j][a] += st[d];
    }
  }
  HostTensor out(outputs[0].dtype, outShape);
  int64_t nOut = out.numElements(), nSum = 1;
  for (size_t a = outLabels.size(); a < all.size(); ++a)
    nSum *= extent[a];
  std::vector<int64_t> index(all.size(), 0);
  bool isFloat = out.isFloat();
  for (int64_t e = 0; e < nOut; ++e) {
    double fsum = 0;
    int64_t isum = 0;
    for (size_t a = outLabels.size(); a < all.size(); ++a)
      index[a] = 0;
    for (int64_t s = 0; s < nSum; ++s) {
      double fprod = 1;
      int64_t iprod = 1;
      for (size_t j = 0; j < inputs.size(); ++j) {
        int64_t off = 0;
        for (size_t a = 0; a < all.size(); ++a)
          off += index[a] * strides[j][a];
        if (isFloat)
          fprod *= inputs[j]->get(off);
        else
          iprod = (int64_t)((uint64_t)iprod * (uint64_t)inputs[j]->getInt(off));
      }
      fsum += fprod;
      isum = (int64_t)((uint64_t)isum + (uint64_t)iprod);
      for (size_t a = all.size(); a-- > outLabels.size();) {
        if (++index[a] < extent[a])
          break;
        index[a] = 0;
      }
    }
    if (isFloat)
      out.set(e, fsum);
    else
      out.setInt(e, isum);
    for (size_t a = outLabels.size(); a-- > 0;) {
      if (++index[a] < extent[a])
        break;
      index[a] = 0;
    }
  }
  outputs[0] = std::move(out);
  return success();
}

void kiln::reference::registerLinearAlgebraKernels(KernelRegistry &registry) {
  registry.add("llm.matmul", matmulKernel);
  registry.add("llm.matmul_nbits", matmulNBitsKernel);
  registry.add("llm.einsum", einsumKernel);
}
