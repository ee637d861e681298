//===- ElementwiseKernels.cpp - Unary, binary, where, cast, clip ----------===//
//
// Float math is done in double and rounded to the result dtype, which for
// +, -, *, / gives exactly the fp32 result. Integer math is done in int64
// and wrapped to the result dtype as ONNX (two's complement) does.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"

#include "llvm/ADT/StringSwitch.h"

#include <cmath>
#include <functional>
#include <limits>

using namespace mlir;
using namespace kiln;
using namespace kiln::reference;

/// The op name without the "llm." prefix.
static StringRef mnemonic(Operation *op) {
  StringRef name = op->getName().getStringRef();
  name.consume_front("llm.");
  return name;
}

//===----------------------------------------------------------------------===//
// Unary
//===----------------------------------------------------------------------===//

/// log(1 + exp(x)) without overflow for large x.
static double softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

/// The float function of a unary op; null if the op has none.
static std::function<double(double)> floatUnaryFn(Operation *op) {
  StringRef name = mnemonic(op);
  if (name == "neg") return [](double x) { return -x; };
  if (name == "exp") return [](double x) { return std::exp(x); };
  if (name == "log") return [](double x) { return std::log(x); };
  if (name == "sqrt") return [](double x) { return std::sqrt(x); };
  if (name == "reciprocal") return [](double x) { return 1.0 / x; };
  if (name == "abs") return [](double x) { return std::fabs(x); };
  if (name == "sigmoid")
    return [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  if (name == "tanh") return [](double x) { return std::tanh(x); };
  if (name == "cos") return [](double x) { return std::cos(x); };
  if (name == "sin") return [](double x) { return std::sin(x); };
  if (name == "tan") return [](double x) { return std::tan(x); };
  if (name == "erf") return [](double x) { return std::erf(x); };
  if (name == "floor") return [](double x) { return std::floor(x); };
  if (name == "ceil") return [](double x) { return std::ceil(x); };
  // Round half to even, as ONNX Round specifies (default FE_TONEAREST).
  if (name == "round") return [](double x) { return std::nearbyint(x); };
  if (name == "sign")
    return [](double x) { return std::isnan(x) ? x : (double)((x > 0) - (x < 0)); };
  if (name == "softplus") return softplus;
  if (name == "softsign") return [](double x) { return x / (1.0 + std::fabs(x)); };
  if (name == "asin") return [](double x) { return std::asin(x); };
  if (name == "acos") return [](double x) { return std::acos(x); };
  if (name == "atan") return [](double x) { return std::atan(x); };
  if (name == "sinh") return [](double x) { return std::sinh(x); };
  if (name == "cosh") return [](double x) { return std::cosh(x); };
  if (name == "asinh") return [](double x) { return std::asinh(x); };
  if (name == "acosh") return [](double x) { return std::acosh(x); };
  if (name == "atanh") return [](double x) { return std::atanh(x); };
  if (name == "elu") {
    double alpha = floatAttrOr(op, "alpha", 1.0);
    return [alpha](double x) { return x < 0 ? alpha * (std::exp(x) - 1.0) : x; };
  }
  if (name == "selu") {
    double alpha = floatAttrOr(op, "alpha", 1.67326319217681884765625);
    double gamma = floatAttrOr(op, "gamma", 1.05070102214813232421875);
    return [alpha, gamma](double x) {
      return x > 0 ? gamma * x : gamma * alpha * (std::exp(x) - 1.0);
    };
  }
  if (name == "leaky_relu") {
    double alpha = floatAttrOr(op, "alpha", 0.01);
    return [alpha](double x) { return x < 0 ? alpha * x : x; };
  }
  if (name == "hard_sigmoid") {
    double alpha = floatAttrOr(op, "alpha", 0.2);
    double beta = floatAttrOr(op, "beta", 0.5);
    return [alpha, beta](double x) {
      return std::max(0.0, std::min(1.0, alpha * x + beta));
    };
  }
  if (name == "hard_swish")
    return [](double x) {
      return x * std::max(0.0, std::min(1.0, x / 6.0 + 0.5));
    };
  if (name == "celu") {
    double alpha = floatAttrOr(op, "alpha", 1.0);
    return [alpha](double x) {
      return std::max(0.0, x) + std::min(0.0, alpha * (std::exp(x / alpha) - 1.0));
    };
  }
  if (name == "mish")
    return [](double x) { return x * std::tanh(softplus(x)); };
  if (name == "thresholded_relu") {
    double alpha = floatAttrOr(op, "alpha", 1.0);
    return [alpha](double x) { return x > alpha ? x : 0.0; };
  }
  if (name == "shrink") {
    double bias = floatAttrOr(op, "bias", 0.0);
    double lambd = floatAttrOr(op, "lambd", 0.5);
    return [bias, lambd](double x) {
      return x < -lambd ? x + bias : x > lambd ? x - bias : 0.0;
    };
  }
  if (name == "not") return [](double x) { return x == 0.0 ? 1.0 : 0.0; };
  if (name == "isnan") return [](double x) { return std::isnan(x) ? 1.0 : 0.0; };
  if (name == "isinf") {
    bool negative = intAttrOr(op, "detect_negative", 1) != 0;
    bool positive = intAttrOr(op, "detect_positive", 1) != 0;
    return [negative, positive](double x) {
      return std::isinf(x) && ((x > 0 && positive) || (x < 0 && negative)) ? 1.0
                                                                           : 0.0;
    };
  }
  return nullptr;
}

static LogicalResult unaryKernel(Operation *op,
                                 const std::vector<const HostTensor *> &inputs,
                                 std::vector<HostTensor> &outputs) {
  const HostTensor &x = *inputs[0];
  HostTensor out(outputs[0].dtype, x.shape);
  int64_t n = x.numElements();
  StringRef name = mnemonic(op);

  if (!x.isFloat()) {
    // Integer and boolean inputs: exact int64 arithmetic.
    std::function<int64_t(int64_t)> fn;
    if (name == "neg") fn = [](int64_t v) { return (int64_t)(0 - (uint64_t)v); };
    else if (name == "abs") fn = [](int64_t v) { return v < 0 ? (int64_t)(0 - (uint64_t)v) : v; };
    else if (name == "sign") fn = [](int64_t v) { return (int64_t)((v > 0) - (v < 0)); };
    else if (name == "not") fn = [](int64_t v) { return (int64_t)(v == 0); };
    else if (name == "bitwise_not") fn = [](int64_t v) { return ~v; };
    else if (name == "isnan" || name == "isinf") fn = [](int64_t) { return (int64_t)0; };
    else if (name == "floor" || name == "ceil" || name == "round") fn = [](int64_t v) { return v; };
    if (fn) {
      if (x.dtype == DType::U64 && name == "abs")
        fn = [](int64_t v) { return v; };
      for (int64_t k = 0; k < n; ++k)
        out.setInt(k, fn(x.i[k]));
      outputs[0] = std::move(out);
      return success();
    }
  } else if (name == "bitwise_not") {
    return op->emitOpError() << "needs an integer operand, got "
                             << x.shapeString();
  }

  auto fn = floatUnaryFn(op);
  if (!fn)
    return op->emitOpError() << "has no host reference kernel for "
                             << x.shapeString();
  for (int64_t k = 0; k < n; ++k)
    out.set(k, fn(x.get(k)));
  outputs[0] = std::move(out);
  return success();
}

//===----------------------------------------------------------------------===//
// Binary
//===----------------------------------------------------------------------===//

namespace {
enum class BinKind {
  Add, Sub, Mul, Div, Pow, Max, Min, Mod, And, Or, Xor, Equal, Less,
  LessOrEqual, Greater, GreaterOrEqual, PRelu, BitAnd, BitOr, BitXor, Unknown
};
} // namespace

static BinKind binKind(Operation *op) {
  return llvm::StringSwitch<BinKind>(mnemonic(op))
      .Case("add", BinKind::Add)
      .Case("sub", BinKind::Sub)
      .Case("mul", BinKind::Mul)
      .Case("div", BinKind::Div)
      .Case("pow", BinKind::Pow)
      .Case("max", BinKind::Max)
      .Case("min", BinKind::Min)
      .Case("mod", BinKind::Mod)
      .Case("and", BinKind::And)
      .Case("or", BinKind::Or)
      .Case("xor", BinKind::Xor)
      .Case("equal", BinKind::Equal)
      .Case("less", BinKind::Less)
      .Case("less_or_equal", BinKind::LessOrEqual)
      .Case("greater", BinKind::Greater)
      .Case("greater_or_equal", BinKind::GreaterOrEqual)
      .Case("prelu", BinKind::PRelu)
      .Case("bitwise_and", BinKind::BitAnd)
      .Case("bitwise_or", BinKind::BitOr)
      .Case("bitwise_xor", BinKind::BitXor)
      .Default(BinKind::Unknown);
}

static double floatBinary(BinKind kind, double a, double b, bool fmod) {
  switch (kind) {
  case BinKind::Add: return a + b;
  case BinKind::Sub: return a - b;
  case BinKind::Mul: return a * b;
  case BinKind::Div: return a / b;
  case BinKind::Pow: return std::pow(a, b);
  case BinKind::Max:
    return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b);
  case BinKind::Min:
    return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b);
  case BinKind::Mod: {
    double r = std::fmod(a, b);
    // Without fmod the result takes the sign of the divisor (Python %).
    if (!fmod && r != 0 && ((r < 0) != (b < 0)))
      r += b;
    return r;
  }
  case BinKind::And: return (a != 0) && (b != 0);
  case BinKind::Or: return (a != 0) || (b != 0);
  case BinKind::Xor: return (a != 0) != (b != 0);
  case BinKind::Equal: return a == b;
  case BinKind::Less: return a < b;
  case BinKind::LessOrEqual: return a <= b;
  case BinKind::Greater: return a > b;
  case BinKind::GreaterOrEqual: return a >= b;
  case BinKind::PRelu: return a < 0 ? a * b : a;
  default: return 0;
  }
}

/// Integer arithmetic in int64 (uint64 where `isU64`), wrapping on overflow.
static int64_t intBinary(BinKind kind, int64_t a, int64_t b, bool fmod,
                         bool isU64) {
  uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
  switch (kind) {
  case BinKind::Add: return (int64_t)(ua + ub);
  case BinKind::Sub: return (int64_t)(ua - ub);
  case BinKind::Mul: return (int64_t)(ua * ub);
  case BinKind::Div:
    // Integer division truncates toward zero; x / 0 is undefined in ONNX
    // and yields 0 here rather than trapping.
    if (b == 0)
      return 0;
    if (isU64)
      return (int64_t)(ua / ub);
    if (a == std::numeric_limits<int64_t>::min() && b == -1)
      return a;
    return a / b;
  case BinKind::Mod: {
    if (b == 0)
      return 0;
    if (isU64)
      return (int64_t)(ua % ub);
    if (b == -1)
      return 0;
    int64_t r = a % b;
    if (!fmod && r != 0 && ((r < 0) != (b < 0)))
      r += b;
    return r;
  }
  case BinKind::Pow: {
    if (b < 0)
      return a == 1 ? 1 : (a == -1 ? (b % 2 ? -1 : 1) : 0);
    uint64_t result = 1, base = ua;
    for (uint64_t e = ub; e; e >>= 1, base *= base)
      if (e & 1)
        result *= base;
    return (int64_t)result;
  }
  case BinKind::Max:
    return isU64 ? (ua > ub ? a : b) : std::max(a, b);
  case BinKind::Min:
    return isU64 ? (ua < ub ? a : b) : std::min(a, b);
  case BinKind::And: return (a != 0) && (b != 0);
  case BinKind::Or: return (a != 0) || (b != 0);
  case BinKind::Xor: return (a != 0) != (b != 0);
  case BinKind::Equal: return a == b;
  case BinKind::Less: return isU64 ? ua < ub : a < b;
  case BinKind::LessOrEqual: return isU64 ? ua <= ub : a <= b;
  case BinKind::Greater: return isU64 ? ua > ub : a > b;
  case BinKind::GreaterOrEqual: return isU64 ? ua >= ub : a >= b;
  case BinKind::PRelu: return a < 0 ? (int64_t)(ua * ub) : a;
  case BinKind::BitAnd: return a & b;
  case BinKind::BitOr: return a | b;
  case BinKind::BitXor: return a ^ b;
  default: return 0;
  }
}

static LogicalResult binaryKernel(Operation *op,
                                  const std::vector<const HostTensor *> &inputs,
                                  std::vector<HostTensor> &outputs) {
  const HostTensor &a = *inputs[0], &b = *inputs[1];
  BinKind kind = binKind(op);
  if (kind == BinKind::Unknown)
    return op->emitOpError() << "has no host reference kernel";
  auto shape = broadcastShapes(op, a, b);
  if (failed(shape))
    return failure();
  bool isBitwise =
      kind == BinKind::BitAnd || kind == BinKind::BitOr || kind == BinKind::BitXor;
  if (isBitwise && (a.isFloat() || b.isFloat()))
    return op->emitOpError() << "needs integer operands, got "
                             << a.shapeString() << " and " << b.shapeString();
  bool fmod = intAttrOr(op, "fmod", 0) != 0;
  HostTensor out(outputs[0].dtype, *shape);
  std::vector<std::vector<int64_t>> strides = {broadcastStrides(a.shape, *shape),
                                               broadcastStrides(b.shape, *shape)};
  if (!a.isFloat() && !b.isFloat()) {
    bool isU64 = a.dtype == DType::U64;
    forEachStrided(*shape, strides, {0, 0}, [&](int64_t k, const int64_t *off) {
      out.setInt(k, intBinary(kind, a.i[off[0]], b.i[off[1]], fmod, isU64));
    });
  } else if (a.isFloat() && b.isFloat() && out.dtype == DType::F32 &&
             (kind == BinKind::Add || kind == BinKind::Sub ||
              kind == BinKind::Mul || kind == BinKind::Div)) {
    // The common activations case: plain fp32 arithmetic.
    const float *pa = a.f.data(), *pb = b.f.data();
    float *po = out.f.data();
    switch (kind) {
    case BinKind::Add:
      forEachStrided(*shape, strides, {0, 0}, [&](int64_t k, const int64_t *off) {
        po[k] = pa[off[0]] + pb[off[1]];
      });
      break;
    case BinKind::Sub:
      forEachStrided(*shape, strides, {0, 0}, [&](int64_t k, const int64_t *off) {
        po[k] = pa[off[0]] - pb[off[1]];
      });
      break;
    case BinKind::Mul:
      forEachStrided(*shape, strides, {0, 0}, [&](int64_t k, const int64_t *off) {
        po[k] = pa[off[0]] * pb[off[1]];
      });
      break;
    default:
      forEachStrided(*shape, strides, {0, 0}, [&](int64_t k, const int64_t *off) {
        po[k] = pa[off[0]] / pb[off[1]];
      });
      break;
    }
  } else {
    // Floats, or Pow with mixed element types: compute in double.
    auto value = [](const HostTensor &t, int64_t k) {
      return t.dtype == DType::U64 ? (double)(uint64_t)t.i[k] : t.get(k);
    };
    forEachStrided(*shape, strides, {0, 0}, [&](int64_t k, const int64_t *off) {
      out.set(k, floatBinary(kind, value(a, off[0]), value(b, off[1]), fmod));
    });
  }
  outputs[0] = std::move(out);
  return success();
}

//===----------------------------------------------------------------------===//
// Where, cast, clip
//===----------------------------------------------------------------------===//

static LogicalResult whereKernel(Operation *op,
                                 const std::vector<const HostTensor *> &inputs,
                                 std::vector<HostTensor> &outputs) {
  const HostTensor &c = *inputs[0], &x = *inputs[1], &y = *inputs[2];
  if (x.dtype != y.dtype)
    return op->emitOpError() << "operands have different element types: "
                             << x.shapeString() << " and " << y.shapeString();
  auto xy = broadcastShapes(op, x, y);
  if (failed(xy))
    return failure();
  auto shape = broadcastShapes(op, c.shape, *xy);
  if (failed(shape))
    return failure();
  HostTensor out(x.dtype, *shape);
  std::vector<std::vector<int64_t>> strides = {broadcastStrides(c.shape, *shape),
                                               broadcastStrides(x.shape, *shape),
                                               broadcastStrides(y.shape, *shape)};
  auto run = [&](auto &o, const auto &xs, const auto &ys) {
    forEachStrided(*shape, strides, {0, 0, 0}, [&](int64_t k, const int64_t *off) {
      o[k] = c.get(off[0]) != 0 ? xs[off[1]] : ys[off[2]];
    });
  };
  if (x.isFloat())
    run(out.f, x.f, y.f);
  else
    run(out.i, x.i, y.i);
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult castKernel(Operation *op,
                                const std::vector<const HostTensor *> &inputs,
                                std::vector<HostTensor> &outputs) {
  const HostTensor &x = *inputs[0];
  HostTensor out(outputs[0].dtype, x.shape);
  int64_t n = x.numElements();
  if (x.isFloat()) {
    // Float to integer truncates toward zero; to narrower floats rounds to
    // nearest even; to bool is "non-zero" (NaN is true).
    for (int64_t k = 0; k < n; ++k)
      out.set(k, x.f[k]);
  } else if (x.dtype == DType::U64 && out.isFloat()) {
    for (int64_t k = 0; k < n; ++k)
      out.set(k, (double)(uint64_t)x.i[k]);
  } else {
    for (int64_t k = 0; k < n; ++k)
      out.setInt(k, x.i[k]);
  }
  outputs[0] = std::move(out);
  return success();
}

static LogicalResult clipKernel(Operation *op,
                                const std::vector<const HostTensor *> &inputs,
                                std::vector<HostTensor> &outputs) {
  auto clip = cast<llm::ClipOp>(op);
  const HostTensor &x = *inputs[0];
  const HostTensor *lo = inputFor(op, inputs, clip.getMin());
  const HostTensor *hi = inputFor(op, inputs, clip.getMax());
  for (const HostTensor *bound : {lo, hi})
    if (bound && bound->numElements() != 1)
      return op->emitOpError() << "bounds must be scalars, got "
                               << bound->shapeString();
  HostTensor out(x.dtype, x.shape);
  int64_t n = x.numElements();
  if (x.isFloat()) {
    float l = lo ? (float)lo->get(0) : -INFINITY;
    float h = hi ? (float)hi->get(0) : INFINITY;
    for (int64_t k = 0; k < n; ++k) {
      float v = x.f[k];
      if (v < l) v = l;
      if (v > h) v = h;
      out.f[k] = v;
    }
  } else {
    int64_t l = lo ? lo->getInt(0) : std::numeric_limits<int64_t>::min();
    int64_t h = hi ? hi->getInt(0) : std::numeric_limits<int64_t>::max();
    for (int64_t k = 0; k < n; ++k)
      out.i[k] = std::min(std::max(x.i[k], l), h);
  }
  outputs[0] = std::move(out);
  return success();
}

void kiln::reference::registerElementwiseKernels(KernelRegistry &registry) {
  for (const char *name :
       {"neg", "exp", "log", "sqrt", "reciprocal", "abs", "sigmoid", "tanh",
        "cos", "sin", "tan", "erf", "floor", "ceil", "round", "sign",
        "softplus", "softsign", "asin", "acos", "atan", "sinh", "cosh",
        "asinh", "acosh", "atanh", "elu", "selu", "leaky_relu",
        "hard_sigmoid", "hard_swish", "celu", "mish", "thresholded_relu",
        "not", "isnan", "isinf", "bitwise_not", "shrink"})
    registry.add(std::string("llm.") + name, unaryKernel);
  for (const char *name :
       {"add", "sub", "mul", "div", "pow", "max", "min", "mod", "and", "or",
        "xor", "equal", "less", "less_or_equal", "greater",
        "greater_or_equal", "prelu", "bitwise_and", "bitwise_or",
        "bitwise_xor"})
    registry.add(std::string("llm.") + name, binaryKernel);
  registry.add("llm.where", whereKernel);
  registry.add("llm.cast", castKernel);
  registry.add("llm.clip", clipKernel);
}
