//===- ShapeKernels.cpp - Data movement and shape arithmetic --------------===//
//
// Reshape, expand, concat, slice, the gathers, squeeze/unsqueeze, shape,
// size, range, constant_of_shape, flatten, split, tile, transpose, trilu,
// identity, cumsum, constant, scatter_nd, scatter_elements, pad, one_hot,
// nonzero and compress, with ONNX semantics.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Reference/TensorConversion.h"

#include <algorithm>
#include <cmath>
#include <set>

using namespace mlir;
using namespace kiln;
using namespace kiln::reference;
namespace llm = kiln::llm;

using Inputs = std::vector<const HostTensor *>;
using Outputs = std::vector<HostTensor>;

/// Copies all elements of `src` into a tensor of the same dtype and `shape`.
static HostTensor withShape(const HostTensor &src, std::vector<int64_t> shape) {
  HostTensor out;
  out.dtype = src.dtype;
  out.shape = std::move(shape);
  out.f = src.f;
  out.i = src.i;
  return out;
}

static std::string listString(const std::vector<int64_t> &v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

/// Validates a 1-D integer tensor used as a shape or an axes list.
static LogicalResult expectIntVector(Operation *op, const HostTensor &t,
                                     StringRef what) {
  if (t.isFloat() || t.rank() > 1)
    return op->emitOpError() << what << " must be a 1-D integer tensor, got "
                             << t.shapeString();
  return success();
}

/// Normalizes a list of axes against `rank`, rejecting duplicates.
static FailureOr<std::vector<int64_t>>
normalizeAxes(Operation *op, std::vector<int64_t> axes, int64_t rank) {
  std::set<int64_t> seen;
  for (int64_t &axis : axes) {
    auto a = normalizeAxis(op, axis, rank);
    if (failed(a))
      return failure();
    if (!seen.insert(*a).second)
      return op->emitOpError() << "axis " << axis << " is repeated in "
                               << listString(axes);
    axis = *a;
  }
  return axes;
}

//===----------------------------------------------------------------------===//

static LogicalResult constantKernel(Operation *op, const Inputs &inputs,
                                    Outputs &outputs) {
  std::string error;
  if (!hostTensorFromElementsAttr(cast<llm::ConstantOp>(op).getValue(),
                                  outputs[0], error))
    return op->emitOpError() << error;
  return success();
}

static LogicalResult identityKernel(Operation *op, const Inputs &inputs,
                                    Outputs &outputs) {
  outputs[0] = *inputs[0];
  return success();
}

static LogicalResult reshapeKernel(Operation *op, const Inputs &inputs,
                                   Outputs &outputs) {
  const HostTensor &data = *inputs[0], &shapeT = *inputs[1];
  if (failed(expectIntVector(op, shapeT, "shape")))
    return failure();
  bool allowZero = cast<llm::ReshapeOp>(op).getAllowzero() != 0;
  std::vector<int64_t> req = toInt64s(shapeT), shape(req.size());
  int64_t inferred = -1, known = 1;
  bool hasZero = false;
  for (size_t d = 0; d < req.size(); ++d) {
    int64_t s = req[d];
    if (s == 0 && !allowZero) {
      if ((int64_t)d >= data.rank())
        return op->emitOpError() << "shape " << listString(req)
                                 << " copies dimension " << d << " of "
                                 << data.shapeString() << ", which has none";
      s = data.shape[d];
    } else if (s == -1) {
      if (inferred >= 0)
        return op->emitOpError() << "shape " << listString(req)
                                 << " has more than one -1";
      inferred = d;
      continue;
    } else if (s < -1) {
      return op->emitOpError() << "shape " << listString(req)
                               << " has a negative dimension";
    }
    hasZero |= s == 0;
    shape[d] = s;
    known *= s;
  }
  if (allowZero && hasZero && inferred >= 0)
    return op->emitOpError() << "shape " << listString(req)
                             << " has both 0 and -1 with allowzero";
  int64_t total = data.numElements();
  if (inferred >= 0) {
    if (known == 0 || total % known != 0)
      return op->emitOpError() << "cannot reshape " << data.shapeString()
                               << " to " << listString(req);
    shape[inferred] = total / known;
  } else if (known != total) {
    return op->emitOpError() << "cannot reshape " << data.shapeString()
                             << " to " << listString(req);
  }
  outputs[0] = withShape(data, shape);
  return success();
}

static LogicalResult expandKernel(Operation *op, const Inputs &inputs,
                                  Outputs &outputs) {
  const HostTensor &x = *inputs[0], &shapeT = *inputs[1];
  if (failed(expectIntVector(op, shapeT, "shape")))
    return failure();
  std::vector<int64_t> req = toInt64s(shapeT);
  for (int64_t d : req)
    if (d < 0)
      return op->emitOpError() << "shape " << listString(req)
                               << " has a negative dimension";
  auto shape = broadcastShapes(op, x.shape, req);
  if (failed(shape))
    return failure();
  HostTensor out(x.dtype, *shape);
  copyStrided(x, out, broadcastStrides(x.shape, *shape));
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult concatKernel(Operation *op, const Inputs &inputs,
                                  Outputs &outputs) {
  if (inputs.empty())
    return op->emitOpError() << "needs at least one operand";
  const HostTensor &first = *inputs[0];
  auto axis = normalizeAxis(op, (int64_t)cast<llm::ConcatOp>(op).getAxis(),
                            first.rank());
  if (failed(axis))
    return failure();
  std::vector<int64_t> shape = first.shape;
  shape[*axis] = 0;
  for (const HostTensor *t : inputs) {
    bool ok = t->dtype == first.dtype && t->rank() == first.rank();
    for (int64_t d = 0; ok && d < first.rank(); ++d)
      ok = d == *axis || t->shape[d] == first.shape[d];
    if (!ok)
      return op->emitOpError() << "cannot concatenate " << first.shapeString()
                               << " with " << t->shapeString() << " along axis "
                               << *axis;
    shape[*axis] += t->shape[*axis];
  }
  HostTensor out(first.dtype, shape);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < *axis; ++d)
    outer *= shape[d];
  for (int64_t d = *axis + 1; d < (int64_t)shape.size(); ++d)
    inner *= shape[d];
  int64_t outRow = shape[*axis] * inner, offset = 0;
  for (const HostTensor *t : inputs) {
    int64_t row = t->shape[*axis] * inner;
    auto run = [&](auto &dst, const auto &src) {
      for (int64_t o = 0; o < outer; ++o)
        std::copy(src.begin() + o * row, src.begin() + (o + 1) * row,
                  dst.begin() + o * outRow + offset);
    };
    if (first.isFloat())
      run(out.f, t->f);
    else
      run(out.i, t->i);
    offset += row;
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult sliceKernel(Operation *op, const Inputs &inputs,
                                 Outputs &outputs) {
  auto slice = cast<llm::SliceOp>(op);
  const HostTensor &data = *inputs[0];
  const HostTensor *axesT = inputFor(op, inputs, slice.getAxes());
  const HostTensor *stepsT = inputFor(op, inputs, slice.getSteps());
  for (const HostTensor *t : {inputs[1], inputs[2], axesT, stepsT})
    if (t && failed(expectIntVector(op, *t, "slice parameter")))
      return failure();
  std::vector<int64_t> starts = toInt64s(*inputs[1]);
  std::vector<int64_t> ends = toInt64s(*inputs[2]);
  size_t n = starts.size();
  std::vector<int64_t> axes, steps(n, 1);
  if (axesT) {
    axes = toInt64s(*axesT);
  } else {
    for (size_t k = 0; k < n; ++k)
      axes.push_back(k);
  }
  if (stepsT)
    steps = toInt64s(*stepsT);
  if (ends.size() != n || axes.size() != n || steps.size() != n)
    return op->emitOpError() << "starts, ends, axes and steps must have the "
                                "same length, got "
                             << n << ", " << ends.size() << ", " << axes.size()
                             << ", " << steps.size();
  auto normAxes = normalizeAxes(op, axes, data.rank());
  if (failed(normAxes))
    return failure();

  std::vector<int64_t> start(data.rank(), 0), step(data.rank(), 1);
  std::vector<int64_t> shape = data.shape;
  for (size_t k = 0; k < n; ++k) {
    int64_t axis = (*normAxes)[k], dim = data.shape[axis];
    int64_t s = starts[k], e = ends[k], st = steps[k];
    if (st == 0)
      return op->emitOpError() << "slice step must not be 0";
    // ONNX: negative indices count from the end, then clamp to [0, dim]
    // for positive steps and [-1, dim - 1] (start: [0, dim - 1]) for
    // negative ones.
    if (s < 0)
      s = s < -dim ? -1 : s + dim; // keep huge negatives from overflowing
    if (e < 0)
      e = e < -dim ? -1 : e + dim;
    if (st > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
    }
    int64_t len = 0;
    if (st > 0 && e > s)
      len = (e - s + st - 1) / st;
    else if (st < 0 && s > e)
      len = (s - e + (-st) - 1) / (-st);
    start[axis] = s;
    step[axis] = st;
    shape[axis] = len;
  }
  std::vector<int64_t> dataStrides = stridesOf(data.shape), strides(data.rank());
  int64_t base = 0;
  for (int64_t d = 0; d < data.rank(); ++d) {
    strides[d] = dataStrides[d] * step[d];
    if (shape[d] > 0)
      base += start[d] * dataStrides[d];
  }
  HostTensor out(data.dtype, shape);
  copyStrided(data, out, strides, base);
  outputs[0] = std::move(out);
  return success();
}

/// Normalizes a (possibly negative) index into [0, dim).
static FailureOr<int64_t> normalizeIndex(Operation *op, int64_t idx,
                                         int64_t dim) {
  if (idx < -dim || idx >= dim)
    return op->emitOpError() << "index " << idx
                             << " is out of range for a dimension of size "
                             << dim;
  return idx < 0 ? idx + dim : idx;
}

static LogicalResult gatherKernel(Operation *op, const Inputs &inputs,
                                  Outputs &outputs) {
  const HostTensor &data = *inputs[0], &indices = *inputs[1];
  if (indices.isFloat())
    return op->emitOpError() << "indices must be integers, got "
                             << indices.shapeString();
  auto axis = normalizeAxis(op, (int64_t)cast<llm::GatherOp>(op).getAxis(),
                            data.rank());
  if (failed(axis))
    return failure();
  std::vector<int64_t> shape(data.shape.begin(), data.shape.begin() + *axis);
  shape.insert(shape.end(), indices.shape.begin(), indices.shape.end());
  shape.insert(shape.end(), data.shape.begin() + *axis + 1, data.shape.end());
  int64_t outer = 1, inner = 1, dim = data.shape[*axis];
  for (int64_t d = 0; d < *axis; ++d)
    outer *= data.shape[d];
  for (int64_t d = *axis + 1; d < data.rank(); ++d)
    inner *= data.shape[d];
  int64_t numIdx = indices.numElements();
  std::vector<int64_t> idx(numIdx);
  for (int64_t j = 0; j < numIdx; ++j) {
    auto v = normalizeIndex(op, indices.i[j], dim);
    if (failed(v))
      return failure();
    idx[j] = *v;
  }
  HostTensor out(data.dtype, shape);
  auto run = [&](auto &dst, const auto &src) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < numIdx; ++j)
        std::copy_n(src.begin() + (o * dim + idx[j]) * inner, inner,
                    dst.begin() + (o * numIdx + j) * inner);
  };
  if (data.isFloat())
    run(out.f, data.f);
  else
    run(out.i, data.i);
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult gatherElementsKernel(Operation *op, const Inputs &inputs,
                                          Outputs &outputs) {
  const HostTensor &data = *inputs[0], &indices = *inputs[1];
  if (indices.isFloat() || indices.rank() != data.rank())
    return op->emitOpError() << "indices must be integers of the rank of the "
                                "data, got "
                             << indices.shapeString() << " for "
                             << data.shapeString();
  auto axis = normalizeAxis(
      op, (int64_t)cast<llm::GatherElementsOp>(op).getAxis(), data.rank());
  if (failed(axis))
    return failure();
  for (int64_t d = 0; d < data.rank(); ++d)
    if (d != *axis && indices.shape[d] > data.shape[d])
      return op->emitOpError() << "indices " << indices.shapeString()
                               << " exceed data " << data.shapeString()
                               << " along dimension " << d;
  std::vector<int64_t> dataStrides = stridesOf(data.shape);
  std::vector<int64_t> strides = dataStrides;
  strides[*axis] = 0; // the axis coordinate comes from the index
  HostTensor out(data.dtype, indices.shape);
  int64_t dim = data.shape[*axis];
  LogicalResult result = success();
  forEachStrided(indices.shape, {strides}, {0}, [&](int64_t k, const int64_t *off) {
    if (failed(result))
      return;
    int64_t idx = indices.i[k];
    if (idx < -dim || idx >= dim) {
      result = op->emitOpError() << "index " << idx
                                 << " is out of range for a dimension of size "
                                 << dim;
      return;
    }
    if (idx < 0)
      idx += dim;
    int64_t src = off[0] + idx * dataStrides[*axis];
    if (data.isFloat())
      out.f[k] = data.f[src];
    else
      out.i[k] = data.i[src];
  });
  if (failed(result))
    return failure();
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult gatherNDKernel(Operation *op, const Inputs &inputs,
                                    Outputs &outputs) {
  const HostTensor &data = *inputs[0], &indices = *inputs[1];
  int64_t b = (int64_t)cast<llm::GatherNDOp>(op).getBatchDims();
  int64_t r = data.rank(), q = indices.rank();
  if (indices.isFloat() || q < 1)
    return op->emitOpError() << "indices must be integers of rank >= 1, got "
                             << indices.shapeString();
  int64_t m = indices.shape[q - 1];
  if (b < 0 || b >= std::min(r, q) || m < 1 || m > r - b)
    return op->emitOpError() << "cannot gather " << indices.shapeString()
                             << " from " << data.shapeString()
                             << " with batch_dims " << b;
  for (int64_t d = 0; d < b; ++d)
    if (indices.shape[d] != data.shape[d])
      return op->emitOpError() << "batch dimensions of indices "
                               << indices.shapeString() << " and data "
                               << data.shapeString() << " differ";
  std::vector<int64_t> shape(indices.shape.begin(), indices.shape.end() - 1);
  shape.insert(shape.end(), data.shape.begin() + b + m, data.shape.end());
  int64_t slice = 1;
  for (int64_t d = b + m; d < r; ++d)
    slice *= data.shape[d];
  int64_t batch = 1;
  for (int64_t d = 0; d < b; ++d)
    batch *= data.shape[d];
  // Tuples per batch element, and the data stride of one batch element.
  int64_t tuples = 1;
  for (int64_t d = b; d < q - 1; ++d)
    tuples *= indices.shape[d];
  std::vector<int64_t> dataStrides = stridesOf(data.shape);
  int64_t batchStride = b > 0 ? dataStrides[b - 1] : 0;
  HostTensor out(data.dtype, shape);
  for (int64_t bi = 0; bi < batch; ++bi) {
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t tuple = bi * tuples + t;
      int64_t src = bi * batchStride;
      for (int64_t j = 0; j < m; ++j) {
        auto idx = normalizeIndex(op, indices.i[tuple * m + j],
                                  data.shape[b + j]);
        if (failed(idx))
          return failure();
        src += *idx * dataStrides[b + j];
      }
      if (data.isFloat())
        std::copy_n(data.f.begin() + src, slice, out.f.begin() + tuple * slice);
      else
        std::copy_n(data.i.begin() + src, slice, out.i.begin() + tuple * slice);
    }
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult squeezeKernel(Operation *op, const Inputs &inputs,
                                   Outputs &outputs) {
  const HostTensor &data = *inputs[0];
  const HostTensor *axesT = inputFor(op, inputs, cast<llm::SqueezeOp>(op).getAxes());
  std::vector<bool> drop(data.rank(), false);
  if (axesT) {
    if (failed(expectIntVector(op, *axesT, "axes")))
      return failure();
    auto axes = normalizeAxes(op, toInt64s(*axesT), data.rank());
    if (failed(axes))
      return failure();
    for (int64_t a : *axes) {
      if (data.shape[a] != 1)
        return op->emitOpError() << "cannot squeeze dimension " << a << " of "
                                 << data.shapeString() << ": it is not 1";
      drop[a] = true;
    }
  } else {
    for (int64_t d = 0; d < data.rank(); ++d)
      drop[d] = data.shape[d] == 1;
  }
  std::vector<int64_t> shape;
  for (int64_t d = 0; d < data.rank(); ++d)
    if (!drop[d])
      shape.push_back(data.shape[d]);
  outputs[0] = withShape(data, shape);
  return success();
}

static LogicalResult unsqueezeKernel(Operation *op, const Inputs &inputs,
                                     Outputs &outputs) {
  const HostTensor &data = *inputs[0], &axesT = *inputs[1];
  if (failed(expectIntVector(op, axesT, "axes")))
    return failure();
  std::vector<int64_t> axesList = toInt64s(axesT);
  int64_t outRank = data.rank() + (int64_t)axesList.size();
  auto axes = normalizeAxes(op, axesList, outRank);
  if (failed(axes))
    return failure();
  std::vector<bool> isNew(outRank, false);
  for (int64_t a : *axes)
    isNew[a] = true;
  std::vector<int64_t> shape;
  int64_t next = 0;
  for (int64_t d = 0; d < outRank; ++d)
    shape.push_back(isNew[d] ? 1 : data.shape[next++]);
  outputs[0] = withShape(data, shape);
  return success();
}

static LogicalResult flattenKernel(Operation *op, const Inputs &inputs,
                                   Outputs &outputs) {
  const HostTensor &data = *inputs[0];
  int64_t axis = (int64_t)cast<llm::FlattenOp>(op).getAxis(), r = data.rank();
  if (axis < -r || axis > r)
    return op->emitOpError() << "axis " << axis << " is out of range for rank "
                             << r;
  if (axis < 0)
    axis += r;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < r; ++d)
    (d < axis ? outer : inner) *= data.shape[d];
  outputs[0] = withShape(data, {outer, inner});
  return success();
}

static LogicalResult shapeKernel(Operation *op, const Inputs &inputs,
                                 Outputs &outputs) {
  auto shapeOp = cast<llm::ShapeOp>(op);
  const HostTensor &data = *inputs[0];
  int64_t r = data.rank();
  auto clampIndex = [r](int64_t v) {
    if (v < 0)
      v += r;
    return std::clamp<int64_t>(v, 0, r);
  };
  int64_t start = clampIndex((int64_t)shapeOp.getStart());
  int64_t end = shapeOp.getEnd() ? clampIndex((int64_t)*shapeOp.getEnd()) : r;
  std::vector<int64_t> dims;
  for (int64_t d = start; d < end; ++d)
    dims.push_back(data.shape[d]);
  outputs[0] = HostTensor::fromInts({(int64_t)dims.size()}, dims, outputs[0].dtype);
  return success();
}

static LogicalResult sizeKernel(Operation *op, const Inputs &inputs,
                                Outputs &outputs) {
  outputs[0] = HostTensor::fromInts({}, {inputs[0]->numElements()}, outputs[0].dtype);
  return success();
}

static LogicalResult rangeKernel(Operation *op, const Inputs &inputs,
                                 Outputs &outputs) {
  for (const HostTensor *t : inputs)
    if (t->numElements() != 1)
      return op->emitOpError() << "start, limit and delta must be scalars, got "
                               << t->shapeString();
  DType dtype = outputs[0].dtype;
  if (!isFloatDType(dtype)) {
    int64_t start = inputs[0]->getInt(0), limit = inputs[1]->getInt(0),
            delta = inputs[2]->getInt(0);
    if (delta == 0)
      return op->emitOpError() << "delta must not be 0";
    int64_t n = std::max<int64_t>(
        0, (int64_t)std::ceil((double)(limit - start) / (double)delta));
    HostTensor out(dtype, {n});
    for (int64_t k = 0; k < n; ++k)
      out.setInt(k, start + k * delta);
    outputs[0] = std::move(out);
    return success();
  }
  // Floats accumulate in the element type as onnxruntime does.
  float start = (float)inputs[0]->get(0), limit = (float)inputs[1]->get(0),
        delta = (float)inputs[2]->get(0);
  if (delta == 0)
    return op->emitOpError() << "delta must not be 0";
  double count = std::ceil(((double)limit - (double)start) / (double)delta);
  if (!(count < 1e10))
    return op->emitOpError() << "range is too long";
  int64_t n = std::max<int64_t>(0, (int64_t)count);
  HostTensor out(dtype, {n});
  float v = start;
  for (int64_t k = 0; k < n; ++k, v += delta)
    out.set(k, v);
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult constantOfShapeKernel(Operation *op, const Inputs &inputs,
                                           Outputs &outputs) {
  const HostTensor &shapeT = *inputs[0];
  if (failed(expectIntVector(op, shapeT, "shape")))
    return failure();
  std::vector<int64_t> shape = toInt64s(shapeT);
  for (int64_t d : shape)
    if (d < 0)
      return op->emitOpError() << "shape " << listString(shape)
                               << " has a negative dimension";
  HostTensor value;
  std::string error;
  if (!hostTensorFromElementsAttr(cast<llm::ConstantOfShapeOp>(op).getValue(),
                                  value, error))
    return op->emitOpError() << error;
  if (value.numElements() != 1)
    return op->emitOpError() << "value must have one element, got "
                             << value.shapeString();
  HostTensor out(value.dtype, shape);
  if (out.isFloat())
    std::fill(out.f.begin(), out.f.end(), value.f[0]);
  else
    std::fill(out.i.begin(), out.i.end(), value.i[0]);
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult splitKernel(Operation *op, const Inputs &inputs,
                                 Outputs &outputs) {
  auto split = cast<llm::SplitOp>(op);
  const HostTensor &x = *inputs[0];
  auto axis = normalizeAxis(op, (int64_t)split.getAxis(), x.rank());
  if (failed(axis))
    return failure();
  int64_t dim = x.shape[*axis], parts = op->getNumResults();
  std::vector<int64_t> sizes;
  if (const HostTensor *sizesT = inputFor(op, inputs, split.getSplit())) {
    if (failed(expectIntVector(op, *sizesT, "split")))
      return failure();
    sizes = toInt64s(*sizesT);
    int64_t sum = 0;
    for (int64_t s : sizes) {
      if (s < 0)
        return op->emitOpError() << "split sizes must be non-negative";
      sum += s;
    }
    if ((int64_t)sizes.size() != parts || sum != dim)
      return op->emitOpError() << "split sizes " << listString(sizes)
                               << " do not split dimension " << *axis << " of "
                               << x.shapeString() << " into " << parts
                               << " parts";
  } else {
    // Equal parts; with num_outputs (opset 18) the last one may be smaller.
    int64_t chunk = parts > 0 ? (dim + parts - 1) / parts : 0;
    if (parts <= 0 || (dim % parts != 0 && chunk * (parts - 1) >= dim))
      return op->emitOpError() << "cannot split dimension " << *axis << " of "
                               << x.shapeString() << " into " << parts
                               << " parts";
    for (int64_t p = 0; p < parts; ++p)
      sizes.push_back(p + 1 < parts ? chunk : dim - chunk * (parts - 1));
  }
  std::vector<int64_t> xStrides = stridesOf(x.shape);
  int64_t offset = 0;
  for (int64_t p = 0; p < parts; ++p) {
    std::vector<int64_t> shape = x.shape;
    shape[*axis] = sizes[p];
    HostTensor out(x.dtype, shape);
    copyStrided(x, out, xStrides, offset * xStrides[*axis]);
    offset += sizes[p];
    outputs[p] = std::move(out);
  }
  return success();
}

static LogicalResult tileKernel(Operation *op, const Inputs &inputs,
                                Outputs &outputs) {
  const HostTensor &x = *inputs[0], &repeatsT = *inputs[1];
  if (failed(expectIntVector(op, repeatsT, "repeats")))
    return failure();
  std::vector<int64_t> repeats = toInt64s(repeatsT);
  if ((int64_t)repeats.size() != x.rank())
    return op->emitOpError() << "repeats " << listString(repeats)
                             << " do not match the rank of " << x.shapeString();
  std::vector<int64_t> shape = x.shape;
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (repeats[d] < 0)
      return op->emitOpError() << "repeats must be non-negative";
    shape[d] *= repeats[d];
  }
  HostTensor out(x.dtype, shape);
  std::vector<int64_t> xStrides = stridesOf(x.shape), index(x.rank(), 0);
  int64_t n = out.numElements();
  for (int64_t k = 0; k < n; ++k) {
    int64_t src = 0;
    for (int64_t d = 0; d < x.rank(); ++d)
      src += (index[d] % x.shape[d]) * xStrides[d];
    if (x.isFloat())
      out.f[k] = x.f[src];
    else
      out.i[k] = x.i[src];
    for (int64_t d = x.rank() - 1; d >= 0; --d) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult transposeKernel(Operation *op, const Inputs &inputs,
                                     Outputs &outputs) {
  const HostTensor &x = *inputs[0];
  ArrayRef<int64_t> perm = cast<llm::TransposeOp>(op).getPerm();
  if ((int64_t)perm.size() != x.rank())
    return op->emitOpError() << "perm has " << perm.size()
                             << " entries for " << x.shapeString();
  std::vector<int64_t> xStrides = stridesOf(x.shape), shape, strides;
  for (int64_t p : perm) {
    shape.push_back(x.shape[p]);
    strides.push_back(xStrides[p]);
  }
  HostTensor out(x.dtype, shape);
  copyStrided(x, out, strides);
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult triluKernel(Operation *op, const Inputs &inputs,
                                 Outputs &outputs) {
  auto trilu = cast<llm::TriluOp>(op);
  const HostTensor &x = *inputs[0];
  if (x.rank() < 2)
    return op->emitOpError() << "input must have rank >= 2, got "
                             << x.shapeString();
  int64_t k = 0;
  if (const HostTensor *kT = inputFor(op, inputs, trilu.getK())) {
    auto v = scalarInt(op, *kT, "k");
    if (failed(v))
      return failure();
    k = *v;
  }
  bool upper = trilu.getUpper() != 0;
  HostTensor out = x;
  int64_t rows = x.shape[x.rank() - 2], cols = x.shape[x.rank() - 1];
  int64_t mats = rows * cols ? x.numElements() / (rows * cols) : 0;
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        bool keep = upper ? j - i >= k : j - i <= k;
        if (keep)
          continue;
        int64_t e = (m * rows + i) * cols + j;
        if (out.isFloat())
          out.f[e] = 0;
        else
          out.i[e] = 0;
      }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult cumsumKernel(Operation *op, const Inputs &inputs,
                                  Outputs &outputs) {
  auto cumsum = cast<llm::CumSumOp>(op);
  const HostTensor &x = *inputs[0];
  auto axisValue = scalarInt(op, *inputs[1], "axis");
  if (failed(axisValue))
    return failure();
  auto axis = normalizeAxis(op, *axisValue, x.rank());
  if (failed(axis))
    return failure();
  bool exclusive = cumsum.getExclusive() != 0, reverse = cumsum.getReverse() != 0;
  int64_t outer = 1, inner = 1, dim = x.shape[*axis];
  for (int64_t d = 0; d < *axis; ++d)
    outer *= x.shape[d];
  for (int64_t d = *axis + 1; d < x.rank(); ++d)
    inner *= x.shape[d];
  HostTensor out(x.dtype, x.shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      double fsum = 0;
      int64_t isum = 0;
      for (int64_t j = 0; j < dim; ++j) {
        int64_t jj = reverse ? dim - 1 - j : j;
        int64_t e = (o * dim + jj) * inner + in;
        if (x.isFloat()) {
          if (!exclusive)
            fsum += x.f[e];
          out.set(e, fsum);
          if (exclusive)
            fsum += x.f[e];
        } else {
          if (!exclusive)
            isum = (int64_t)((uint64_t)isum + (uint64_t)x.i[e]);
          out.setInt(e, isum);
          if (exclusive)
            isum = (int64_t)((uint64_t)isum + (uint64_t)x.i[e]);
        }
      }
    }
  outputs[0] = std::move(out);
  return success();
}

//===----------------------------------------------------------------------===//
// Scatters, pad, one-hot, nonzero, compress
//===----------------------------------------------------------------------===//

/// out[k] = src[s] (same storage kind).
static void copyElement(HostTensor &out, int64_t k, const HostTensor &src,
                        int64_t s) {
  if (out.isFloat())
    out.f[k] = src.isFloat() ? src.f[s] : (float)src.i[s];
  else
    out.i[k] = src.isFloat() ? (int64_t)src.f[s] : src.i[s];
}

/// Applies `reduction` (none, add, mul, max, min) of update u[s] to out[k].
static void combineElement(HostTensor &out, int64_t k, const HostTensor &u,
                           int64_t s, StringRef reduction) {
  if (reduction == "none") {
    copyElement(out, k, u, s);
    return;
  }
  if (out.isFloat()) {
    double a = out.f[k], b = u.get(s), r = b;
    if (reduction == "add")
      r = a + b;
    else if (reduction == "mul")
      r = a * b;
    else if (reduction == "max")
      r = std::max(a, b);
    else if (reduction == "min")
      r = std::min(a, b);
    out.set(k, r);
    return;
  }
  int64_t a = out.i[k], b = u.getInt(s), r = b;
  if (reduction == "add")
    r = (int64_t)((uint64_t)a + (uint64_t)b);
  else if (reduction == "mul")
    r = (int64_t)((uint64_t)a * (uint64_t)b);
  else if (reduction == "max")
    r = isUnsignedDType(out.dtype) ? (int64_t)std::max((uint64_t)a, (uint64_t)b)
                                   : std::max(a, b);
  else if (reduction == "min")
    r = isUnsignedDType(out.dtype) ? (int64_t)std::min((uint64_t)a, (uint64_t)b)
                                   : std::min(a, b);
  out.setInt(k, r);
}

static LogicalResult scatterNDKernel(Operation *op, const Inputs &inputs,
                                     Outputs &outputs) {
  auto scatter = cast<llm::ScatterNDOp>(op);
  const HostTensor &data = *inputs[0], &indices = *inputs[1],
                   &updates = *inputs[2];
  if (indices.isFloat() || indices.rank() < 1)
    return op->emitOpError() << "indices must be integers of rank >= 1, got "
                             << indices.shapeString();
  int64_t r = data.rank(), q = indices.rank(), k = indices.shape[q - 1];
  if (k > r)
    return op->emitOpError() << "index tuples of length " << k
                             << " exceed the rank of " << data.shapeString();
  std::vector<int64_t> expected(indices.shape.begin(), indices.shape.end() - 1);
  expected.insert(expected.end(), data.shape.begin() + k, data.shape.end());
  if (updates.shape != expected || updates.dtype != data.dtype)
    return op->emitOpError() << "updates " << updates.shapeString()
                             << " do not match the expected shape "
                             << shapeString(expected);
  int64_t slice = 1;
  for (int64_t d = k; d < r; ++d)
    slice *= data.shape[d];
  int64_t tuples = 1;
  for (int64_t d = 0; d < q - 1; ++d)
    tuples *= indices.shape[d];
  std::vector<int64_t> strides = stridesOf(data.shape);
  HostTensor out = data;
  StringRef reduction = scatter.getReduction();
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t base = 0;
    for (int64_t j = 0; j < k; ++j) {
      auto idx = normalizeIndex(op, indices.i[t * k + j], data.shape[j]);
      if (failed(idx))
        return failure();
      base += *idx * strides[j];
    }
    for (int64_t e = 0; e < slice; ++e)
      combineElement(out, base + e, updates, t * slice + e, reduction);
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult scatterElementsKernel(Operation *op, const Inputs &inputs,
                                           Outputs &outputs) {
  auto scatter = cast<llm::ScatterElementsOp>(op);
  const HostTensor &data = *inputs[0], &indices = *inputs[1],
                   &updates = *inputs[2];
  if (indices.isFloat() || indices.rank() != data.rank() ||
      updates.shape != indices.shape || updates.dtype != data.dtype)
    return op->emitOpError() << "indices and updates must have one shape of "
                                "the rank of the data, got "
                             << indices.shapeString() << ", "
                             << updates.shapeString() << " for "
                             << data.shapeString();
  auto axis = normalizeAxis(op, (int64_t)scatter.getAxis(), data.rank());
  if (failed(axis))
    return failure();
  for (int64_t d = 0; d < data.rank(); ++d)
    if (d != *axis && indices.shape[d] > data.shape[d])
      return op->emitOpError() << "indices " << indices.shapeString()
                               << " exceed data " << data.shapeString()
                               << " along dimension " << d;
  std::vector<int64_t> strides = stridesOf(data.shape), index(data.rank(), 0);
  HostTensor out = data;
  StringRef reduction = scatter.getReduction();
  int64_t n = indices.numElements();
  for (int64_t e = 0; e < n; ++e) {
    auto idx = normalizeIndex(op, indices.i[e], data.shape[*axis]);
    if (failed(idx))
      return failure();
    int64_t dst = 0;
    for (int64_t d = 0; d < data.rank(); ++d)
      dst += (d == *axis ? *idx : index[d]) * strides[d];
    combineElement(out, dst, updates, e, reduction);
    for (int64_t d = data.rank() - 1; d >= 0; --d) {
      if (++index[d] < indices.shape[d])
        break;
      index[d] = 0;
    }
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult padKernel(Operation *op, const Inputs &inputs,
                               Outputs &outputs) {
  auto pad = cast<llm::PadOp>(op);
  const HostTensor &data = *inputs[0], &padsT = *inputs[1];
  if (failed(expectIntVector(op, padsT, "pads")))
    return failure();
  int64_t r = data.rank();
  std::vector<int64_t> axes;
  if (const HostTensor *axesT = inputFor(op, inputs, pad.getAxes())) {
    if (failed(expectIntVector(op, *axesT, "axes")))
      return failure();
    auto norm = normalizeAxes(op, toInt64s(*axesT), r);
    if (failed(norm))
      return failure();
    axes = *norm;
  } else {
    for (int64_t d = 0; d < r; ++d)
      axes.push_back(d);
  }
  std::vector<int64_t> pads = toInt64s(padsT);
  int64_t n = axes.size();
  if ((int64_t)pads.size() != 2 * n)
    return op->emitOpError() << "pads " << listString(pads) << " must have "
                             << 2 * n << " entries for " << data.shapeString();
  // Negative pads crop first; the other modes then read the cropped view
  // [lo, hi) of each dimension (this matters for wrap).
  std::vector<int64_t> begin(r, 0), lo(r, 0), hi = data.shape,
                                    shape = data.shape;
  for (int64_t j = 0; j < n; ++j) {
    int64_t a = axes[j];
    begin[a] = std::max<int64_t>(pads[j], 0);
    lo[a] = std::max<int64_t>(-pads[j], 0);
    hi[a] = data.shape[a] - std::max<int64_t>(-pads[j + n], 0);
    shape[a] += pads[j] + pads[j + n];
    if (shape[axes[j]] < 0)
      return op->emitOpError() << "pads " << listString(pads) << " crop "
                               << data.shapeString() << " below zero";
  }
  StringRef mode = pad.getMode();
  double value = 0;
  if (const HostTensor *v = inputFor(op, inputs, pad.getConstantValue())) {
    if (v->numElements() > 1)
      return op->emitOpError() << "constant_value must be a scalar, got "
                               << v->shapeString();
    if (v->numElements() == 1)
      value = v->get(0);
  }
  HostTensor out(data.dtype, shape);
  std::vector<int64_t> strides = stridesOf(data.shape), index(r, 0);
  int64_t total = out.numElements();
  for (int64_t e = 0; e < total; ++e) {
    int64_t src = 0;
    bool inside = true;
    for (int64_t d = 0; d < r && inside; ++d) {
      int64_t c = index[d] - begin[d], dim = std::max<int64_t>(hi[d] - lo[d], 0);
      if (c < 0 || c >= dim) {
        if (mode == "constant" || dim == 0) {
          if (mode != "constant")
            return op->emitOpError() << "cannot pad an empty dimension in "
                                     << mode << " mode";
          inside = false;
          break;
        }
        if (mode == "edge") {
          c = std::clamp<int64_t>(c, 0, dim - 1);
        } else if (mode == "wrap") {
          c = ((c % dim) + dim) % dim;
        } else { // reflect
          if (dim == 1) {
            c = 0;
          } else {
            int64_t period = 2 * (dim - 1);
            c = ((c % period) + period) % period;
            if (c >= dim)
              c = period - c;
          }
        }
      }
      src += (lo[d] + c) * strides[d];
    }
    if (inside)
      copyElement(out, e, data, src);
    else if (out.isFloat())
      out.set(e, value);
    else
      out.setInt(e, (int64_t)value);
    for (int64_t d = r - 1; d >= 0; --d) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult oneHotKernel(Operation *op, const Inputs &inputs,
                                  Outputs &outputs) {
  const HostTensor &indices = *inputs[0], &depthT = *inputs[1],
                   &values = *inputs[2];
  if (depthT.numElements() != 1)
    return op->emitOpError() << "depth must be a scalar, got "
                             << depthT.shapeString();
  if (values.numElements() != 2)
    return op->emitOpError() << "values must hold [off, on], got "
                             << values.shapeString();
  int64_t depth = depthT.getInt(0);
  if (depth < 1)
    return op->emitOpError() << "depth must be positive, got " << depth;
  int64_t r = indices.rank();
  int64_t axis = (int64_t)cast<llm::OneHotOp>(op).getAxis();
  if (axis < -r - 1 || axis > r)
    return op->emitOpError() << "axis " << axis << " is out of range for rank "
                             << r + 1;
  if (axis < 0)
    axis += r + 1;
  std::vector<int64_t> shape = indices.shape;
  shape.insert(shape.begin() + axis, depth);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= indices.shape[d];
  for (int64_t d = axis; d < r; ++d)
    inner *= indices.shape[d];
  HostTensor out(values.dtype, shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < depth; ++j)
      for (int64_t in = 0; in < inner; ++in) {
        int64_t idx = indices.getInt(o * inner + in);
        if (idx < 0)
          idx += depth;
        copyElement(out, (o * depth + j) * inner + in, values, idx == j ? 1 : 0);
      }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult nonZeroKernel(Operation *op, const Inputs &inputs,
                                   Outputs &outputs) {
  const HostTensor &x = *inputs[0];
  int64_t n = x.numElements(), r = x.rank();
  std::vector<int64_t> hits;
  for (int64_t e = 0; e < n; ++e)
    if (x.get(e) != 0)
      hits.push_back(e);
  int64_t count = hits.size();
  std::vector<int64_t> strides = stridesOf(x.shape), values(r * count);
  for (int64_t j = 0; j < count; ++j) {
    int64_t rem = hits[j];
    for (int64_t d = 0; d < r; ++d) {
      values[d * count + j] = rem / strides[d];
      rem %= strides[d];
    }
  }
  outputs[0] = HostTensor::fromInts({r, count}, values, outputs[0].dtype);
  return success();
}

static LogicalResult compressKernel(Operation *op, const Inputs &inputs,
                                    Outputs &outputs) {
  auto compress = cast<llm::CompressOp>(op);
  const HostTensor &x = *inputs[0], &cond = *inputs[1];
  if (cond.rank() != 1)
    return op->emitOpError() << "condition must be 1-D, got "
                             << cond.shapeString();
  std::vector<int64_t> shape = x.shape;
  int64_t axis = 0;
  if (compress.getAxis()) {
    auto a = normalizeAxis(op, (int64_t)*compress.getAxis(), x.rank());
    if (failed(a))
      return failure();
    axis = *a;
  } else {
    shape = {x.numElements()};
  }
  int64_t dim = shape[axis], outer = 1, inner = 1;
  if (cond.numElements() > dim)
    return op->emitOpError() << "condition " << cond.shapeString()
                             << " is longer than dimension " << axis << " ("
                             << dim << ")";
  for (int64_t d = 0; d < axis; ++d)
    outer *= shape[d];
  for (int64_t d = axis + 1; d < (int64_t)shape.size(); ++d)
    inner *= shape[d];
  std::vector<int64_t> keep;
  for (int64_t j = 0; j < cond.numElements(); ++j)
    if (cond.get(j) != 0)
      keep.push_back(j);
  shape[axis] = keep.size();
  HostTensor out(x.dtype, shape);
  int64_t k = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j : keep)
      for (int64_t in = 0; in < inner; ++in)
        copyElement(out, k++, x, (o * dim + j) * inner + in);
  outputs[0] = std::move(out);
  return success();
}

void kiln::reference::registerShapeKernels(KernelRegistry &registry) {
  registry.add("llm.constant", constantKernel);
  registry.add("llm.identity", identityKernel);
  registry.add("llm.reshape", reshapeKernel);
  registry.add("llm.expand", expandKernel);
  registry.add("llm.concat", concatKernel);
  registry.add("llm.slice", sliceKernel);
  registry.add("llm.gather", gatherKernel);
  registry.add("llm.gather_elements", gatherElementsKernel);
  registry.add("llm.gather_nd", gatherNDKernel);
  registry.add("llm.squeeze", squeezeKernel);
  registry.add("llm.unsqueeze", unsqueezeKernel);
  registry.add("llm.flatten", flattenKernel);
  registry.add("llm.shape", shapeKernel);
  registry.add("llm.size", sizeKernel);
  registry.add("llm.range", rangeKernel);
  registry.add("llm.constant_of_shape", constantOfShapeKernel);
  registry.add("llm.split", splitKernel);
  registry.add("llm.tile", tileKernel);
  registry.add("llm.transpose", transposeKernel);
  registry.add("llm.trilu", triluKernel);
  registry.add("llm.cumsum", cumsumKernel);
  registry.add("llm.scatter_nd", scatterNDKernel);
  registry.add("llm.scatter_elements", scatterElementsKernel);
  registry.add("llm.pad", padKernel);
  registry.add("llm.one_hot", oneHotKernel);
  registry.add("llm.nonzero", nonZeroKernel);
  registry.add("llm.compress", compressKernel);
}
