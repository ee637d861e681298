//===- InterpreterTest.cpp - Tests of the host reference executor ---------===//
//
// Small llm modules parsed from text and run on hand-computed inputs; the
// model kernels are checked against naive re-implementations.
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "kiln/Reference/HostTensor.h"
#include "kiln/Reference/Interpreter.h"
#include "kiln/Reference/TensorConversion.h"
#include "kiln/Reference/WeightStore.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <onnx/onnx_pb.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

using namespace kiln;

namespace {

class InterpreterTest : public ::testing::Test {
protected:
  InterpreterTest() {
    context.loadDialect<kiln::llm::LLMDialect, mlir::func::FuncDialect>();
  }

  /// Parses `source` (a module whose first func is run) and runs it. The
  /// diagnostics are collected into `diagnostics`.
  mlir::LogicalResult run(const std::string &source,
                          const std::vector<HostTensor> &inputs,
                          std::vector<HostTensor> &outputs,
                          WeightStore *store = nullptr) {
    diagnostics.clear();
    mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
      diagnostics += d.str() + "\n";
      return mlir::success();
    });
    module = mlir::parseSourceString<mlir::ModuleOp>(source, &context);
    if (!module) {
      ADD_FAILURE() << "cannot parse:\n" << source << "\n" << diagnostics;
      return mlir::failure();
    }
    auto func = *module->getOps<mlir::func::FuncOp>().begin();
    WeightStore defaultStore("");
    Interpreter interpreter(store ? *store : defaultStore);
    interpreter.setFp32Compute(fp32Compute);
    return interpreter.run(func, inputs, outputs);
  }

  /// Runs a module with one result and returns it (failing the test on error).
  HostTensor run1(const std::string &source,
                  const std::vector<HostTensor> &inputs = {},
                  WeightStore *store = nullptr) {
    std::vector<HostTensor> outputs;
    if (mlir::failed(run(source, inputs, outputs, store)) || outputs.size() != 1) {
      ADD_FAILURE() << "run failed:\n" << diagnostics;
      return HostTensor();
    }
    return outputs[0];
  }

  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  /// Whether runs compute half precision in fp32 (the interpreter default).
  bool fp32Compute = true;
  std::string diagnostics;
};

void expectFloats(const HostTensor &t, const std::vector<int64_t> &shape,
                  const std::vector<float> &expected, float tol = 1e-6f) {
  ASSERT_EQ(t.shape, shape);
  ASSERT_TRUE(t.isFloat());
  ASSERT_EQ(t.f.size(), expected.size());
  for (size_t k = 0; k < expected.size(); ++k)
    EXPECT_NEAR(t.f[k], expected[k], tol * std::max(1.0f, std::fabs(expected[k])))
        << "at element " << k;
}

void expectInts(const HostTensor &t, const std::vector<int64_t> &shape,
                const std::vector<int64_t> &expected) {
  ASSERT_EQ(t.shape, shape);
  ASSERT_FALSE(t.isFloat());
  EXPECT_EQ(t.i, expected);
}

/// Deterministic pseudo-random values in [-1, 1).
std::vector<float> pseudoRandom(int64_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (int64_t k = 0; k < n; ++k) {
    s = s * 1664525u + 1013904223u;
    v[k] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
  return v;
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, BroadcastingAdd) {
  HostTensor r = run1(R"mlir(
    func.func @main(%a: tensor<2x3xf32>, %b: tensor<3xf32>) -> tensor<2x3xf32> {
      %r = llm.add %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
      return %r : tensor<2x3xf32>
    })mlir",
                      {HostTensor::fromFloats({2, 3}, {1, 2, 3, 4, 5, 6}),
                       HostTensor::fromFloats({3}, {10, 20, 30})});
  expectFloats(r, {2, 3}, {11, 22, 33, 14, 25, 36});
}

TEST_F(InterpreterTest, BidirectionalBroadcastMul) {
  HostTensor r = run1(R"mlir(
    func.func @main(%a: tensor<?x1xf32>, %b: tensor<?xf32>) -> tensor<?x?xf32> {
      %r = llm.mul %a, %b : (tensor<?x1xf32>, tensor<?xf32>) -> tensor<?x?xf32>
      return %r : tensor<?x?xf32>
    })mlir",
                      {HostTensor::fromFloats({2, 1}, {2, 3}),
                       HostTensor::fromFloats({3}, {1, 10, 100})});
  expectFloats(r, {2, 3}, {2, 20, 200, 3, 30, 300});
}

TEST_F(InterpreterTest, IntegerDivAndMod) {
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%a: tensor<4xi32>, %b: tensor<4xi32>) -> (tensor<4xi32>, tensor<4xi32>, tensor<4xi32>) {
      %d = llm.div %a, %b : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
      %m = llm.mod %a, %b : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
      %f = llm.mod %a, %b {fmod = 1 : i64} : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
      return %d, %m, %f : tensor<4xi32>, tensor<4xi32>, tensor<4xi32>
    })mlir",
                                  {HostTensor::fromInts({4}, {-7, 7, -7, 7}, DType::I32),
                                   HostTensor::fromInts({4}, {2, -2, -2, 2}, DType::I32)},
                                  outputs)))
      << diagnostics;
  ASSERT_EQ(outputs.size(), 3u);
  expectInts(outputs[0], {4}, {-3, -3, 3, 3});  // truncation
  expectInts(outputs[1], {4}, {1, -1, -1, 1});  // sign of the divisor
  expectInts(outputs[2], {4}, {-1, 1, -1, 1});  // sign of the dividend
}

TEST_F(InterpreterTest, ComparisonWhereAndCast) {
  fp32Compute = false; // storage precision: Cast to f16 rounds.
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%a: tensor<2x2xf32>, %b: tensor<f32>) -> (tensor<2x2xf32>, tensor<2x2xi32>, tensor<2x2xf16>) {
      %c = llm.less %a, %b : (tensor<2x2xf32>, tensor<f32>) -> tensor<2x2xi1>
      %z = llm.constant dense<0.0> : tensor<1xf32> : tensor<1xf32>
      %w = llm.where %c, %a, %z : (tensor<2x2xi1>, tensor<2x2xf32>, tensor<1xf32>) -> tensor<2x2xf32>
      %i = llm.cast %a : (tensor<2x2xf32>) -> tensor<2x2xi32>
      %h = llm.cast %a : (tensor<2x2xf32>) -> tensor<2x2xf16>
      return %w, %i, %h : tensor<2x2xf32>, tensor<2x2xi32>, tensor<2x2xf16>
    })mlir",
                                  {HostTensor::fromFloats({2, 2}, {-1.7f, 2.5f, 0.1f, 3.0f}),
                                   HostTensor::scalar(1.0, DType::F32)},
                                  outputs)))
      << diagnostics;
  expectFloats(outputs[0], {2, 2}, {-1.7f, 0, 0.1f, 0});
  expectInts(outputs[1], {2, 2}, {-1, 2, 0, 3});
  EXPECT_EQ(outputs[2].dtype, DType::F16);
  EXPECT_EQ(outputs[2].f[2], 0.0999755859375f); // 0.1 rounded to half
}

TEST_F(InterpreterTest, Fp32ComputeKeepsHalfValuesUnrounded) {
  HostTensor r = run1(R"mlir(
    func.func @main(%a: tensor<2xf32>) -> tensor<2xf16> {
      %h = llm.cast %a : (tensor<2xf32>) -> tensor<2xf16>
      %s = llm.add %h, %h : (tensor<2xf16>, tensor<2xf16>) -> tensor<2xf16>
      return %s : tensor<2xf16>
    })mlir",
                      {HostTensor::fromFloats({2}, {0.1f, 1.0f})});
  EXPECT_EQ(r.dtype, DType::F32);
  ASSERT_EQ(r.f.size(), 2u);
  EXPECT_EQ(r.f[0], 0.2f); // not 2 * 0.0999755859375
}

TEST_F(InterpreterTest, UnaryWithAttributes) {
  HostTensor r = run1(R"mlir(
    func.func @main(%a: tensor<3xf32>) -> tensor<3xf32> {
      %r = llm.leaky_relu %a {alpha = 0.5 : f32} : (tensor<3xf32>) -> tensor<3xf32>
      return %r : tensor<3xf32>
    })mlir",
                      {HostTensor::fromFloats({3}, {-2, 0, 3})});
  expectFloats(r, {3}, {-1, 0, 3});
}

//===----------------------------------------------------------------------===//
// Shapes
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, SliceWithNegativeSteps) {
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%d: tensor<3x4xi64>, %v: tensor<5xf32>) -> (tensor<?x?xi64>, tensor<?xf32>, tensor<?xf32>) {
      %s = llm.constant dense<[2, -1]> : tensor<2xi64> : tensor<2xi64>
      %e = llm.constant dense<[-100, 0]> : tensor<2xi64> : tensor<2xi64>
      %a = llm.constant dense<[0, -1]> : tensor<2xi64> : tensor<2xi64>
      %st = llm.constant dense<[-1, -1]> : tensor<2xi64> : tensor<2xi64>
      %r = llm.slice %d, %s, %e axes %a steps %st : (tensor<3x4xi64>, tensor<2xi64>, tensor<2xi64>, tensor<2xi64>, tensor<2xi64>) -> tensor<?x?xi64>
      %s1 = llm.constant dense<[-1]> : tensor<1xi64> : tensor<1xi64>
      %e1 = llm.constant dense<[-9223372036854775808]> : tensor<1xi64> : tensor<1xi64>
      %st1 = llm.constant dense<[-2]> : tensor<1xi64> : tensor<1xi64>
      %r1 = llm.slice %v, %s1, %e1 steps %st1 : (tensor<5xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?xf32>
      %s2 = llm.constant dense<[1]> : tensor<1xi64> : tensor<1xi64>
      %e2 = llm.constant dense<[9223372036854775807]> : tensor<1xi64> : tensor<1xi64>
      %r2 = llm.slice %v, %s2, %e2 : (tensor<5xf32>, tensor<1xi64>, tensor<1xi64>) -> tensor<?xf32>
      return %r, %r1, %r2 : tensor<?x?xi64>, tensor<?xf32>, tensor<?xf32>
    })mlir",
                                  {HostTensor::fromInts({3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}),
                                   HostTensor::fromFloats({5}, {0, 1, 2, 3, 4})},
                                  outputs)))
      << diagnostics;
  // Rows 2, 1, 0 and columns 3, 2, 1 (end 0 is exclusive).
  expectInts(outputs[0], {3, 3}, {11, 10, 9, 7, 6, 5, 3, 2, 1});
  expectFloats(outputs[1], {3}, {4, 2, 0});
  expectFloats(outputs[2], {4}, {1, 2, 3, 4});
}

TEST_F(InterpreterTest, ReshapeZeroAndMinusOne) {
  HostTensor r = run1(R"mlir(
    func.func @main(%d: tensor<2x3x4xf32>) -> tensor<2x?xf32> {
      %s = llm.constant dense<[0, -1]> : tensor<2xi64> : tensor<2xi64>
      %r = llm.reshape %d, %s : (tensor<2x3x4xf32>, tensor<2xi64>) -> tensor<2x?xf32>
      return %r : tensor<2x?xf32>
    })mlir",
                      {HostTensor::fromFloats({2, 3, 4}, std::vector<float>(24, 1.0f))});
  EXPECT_EQ(r.shape, (std::vector<int64_t>{2, 12}));
}

TEST_F(InterpreterTest, ReshapeMismatchIsDiagnosed) {
  std::vector<HostTensor> outputs;
  EXPECT_TRUE(mlir::failed(run(R"mlir(
    func.func @main(%d: tensor<2x3xf32>) -> tensor<?xf32> {
      %s = llm.constant dense<[4]> : tensor<1xi64> : tensor<1xi64>
      %r = llm.reshape %d, %s : (tensor<2x3xf32>, tensor<1xi64>) -> tensor<?xf32>
      return %r : tensor<?xf32>
    })mlir",
                               {HostTensor::fromFloats({2, 3}, {1, 2, 3, 4, 5, 6})},
                               outputs)));
  EXPECT_NE(diagnostics.find("cannot reshape [2x3]f32 to [4]"), std::string::npos)
      << diagnostics;
}

TEST_F(InterpreterTest, GatherNegativeIndex) {
  HostTensor r = run1(R"mlir(
    func.func @main(%d: tensor<3x2xf32>) -> tensor<2x2xf32> {
      %i = llm.constant dense<[-1, 0]> : tensor<2xi64> : tensor<2xi64>
      %r = llm.gather %d, %i {axis = 0 : i64} : (tensor<3x2xf32>, tensor<2xi64>) -> tensor<2x2xf32>
      return %r : tensor<2x2xf32>
    })mlir",
                      {HostTensor::fromFloats({3, 2}, {1, 2, 3, 4, 5, 6})});
  expectFloats(r, {2, 2}, {5, 6, 1, 2});
  HostTensor c = run1(R"mlir(
    func.func @main(%d: tensor<3x2xf32>) -> tensor<3xf32> {
      %i = llm.constant dense<-1> : tensor<i64> : tensor<i64>
      %r = llm.gather %d, %i {axis = -1 : i64} : (tensor<3x2xf32>, tensor<i64>) -> tensor<3xf32>
      return %r : tensor<3xf32>
    })mlir",
                      {HostTensor::fromFloats({3, 2}, {1, 2, 3, 4, 5, 6})});
  expectFloats(c, {3}, {2, 4, 6});
}

TEST_F(InterpreterTest, GatherNDBatchDims) {
  HostTensor r = run1(R"mlir(
    func.func @main(%d: tensor<2x2x2xi32>) -> tensor<2x2xi32> {
      %i = llm.constant dense<[[1], [0]]> : tensor<2x1xi64> : tensor<2x1xi64>
      %r = llm.gather_nd %d, %i {batch_dims = 1 : i64} : (tensor<2x2x2xi32>, tensor<2x1xi64>) -> tensor<2x2xi32>
      return %r : tensor<2x2xi32>
    })mlir",
                      {HostTensor::fromInts({2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7}, DType::I32)});
  expectInts(r, {2, 2}, {2, 3, 4, 5});
}

TEST_F(InterpreterTest, CumSumExclusiveReverse) {
  HostTensor r = run1(R"mlir(
    func.func @main(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
      %a = llm.constant dense<1> : tensor<i32> : tensor<i32>
      %r = llm.cumsum %x, %a {exclusive = 1 : i64, reverse = 1 : i64} : (tensor<2x3xf32>, tensor<i32>) -> tensor<2x3xf32>
      return %r : tensor<2x3xf32>
    })mlir",
                      {HostTensor::fromFloats({2, 3}, {1, 2, 3, 4, 5, 6})});
  expectFloats(r, {2, 3}, {5, 3, 0, 11, 6, 0});
}

TEST_F(InterpreterTest, RangeExpandTriluSplit) {
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main() -> (tensor<?xi64>, tensor<?x?xf32>, tensor<3x3xf32>, tensor<?xi64>, tensor<?xi64>) {
      %s = llm.constant dense<10> : tensor<i64> : tensor<i64>
      %l = llm.constant dense<1> : tensor<i64> : tensor<i64>
      %d = llm.constant dense<-3> : tensor<i64> : tensor<i64>
      %r = llm.range %s, %l, %d : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
      %x = llm.constant dense<[[1.0], [2.0]]> : tensor<2x1xf32> : tensor<2x1xf32>
      %shape = llm.constant dense<[2, 3]> : tensor<2xi64> : tensor<2xi64>
      %e = llm.expand %x, %shape : (tensor<2x1xf32>, tensor<2xi64>) -> tensor<?x?xf32>
      %ones = llm.constant dense<1.0> : tensor<3x3xf32> : tensor<3x3xf32>
      %k = llm.constant dense<-1> : tensor<i64> : tensor<i64>
      %t = llm.trilu %ones k %k {upper = 0 : i64} : (tensor<3x3xf32>, tensor<i64>) -> tensor<3x3xf32>
      %a, %b = llm.split %r {axis = 0 : i64} : (tensor<?xi64>) -> (tensor<?xi64>, tensor<?xi64>)
      return %r, %e, %t, %a, %b : tensor<?xi64>, tensor<?x?xf32>, tensor<3x3xf32>, tensor<?xi64>, tensor<?xi64>
    })mlir",
                                  {}, outputs)))
      << diagnostics;
  expectInts(outputs[0], {3}, {10, 7, 4});
  expectFloats(outputs[1], {2, 3}, {1, 1, 1, 2, 2, 2});
  expectFloats(outputs[2], {3, 3}, {0, 0, 0, 1, 0, 0, 1, 1, 0});
  expectInts(outputs[3], {2}, {10, 7});
  expectInts(outputs[4], {1}, {4});
}

TEST_F(InterpreterTest, ConcatTransposeShape) {
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%a: tensor<2x1xf32>, %b: tensor<2x2xf32>) -> (tensor<3x2xf32>, tensor<1xi64>) {
      %c = llm.concat %a, %b {axis = -1 : i64} : (tensor<2x1xf32>, tensor<2x2xf32>) -> tensor<2x3xf32>
      %t = llm.transpose %c {perm = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
      %s = llm.shape %t {start = -1 : i64} : (tensor<3x2xf32>) -> tensor<1xi64>
      return %t, %s : tensor<3x2xf32>, tensor<1xi64>
    })mlir",
                                  {HostTensor::fromFloats({2, 1}, {1, 4}),
                                   HostTensor::fromFloats({2, 2}, {2, 3, 5, 6})},
                                  outputs)))
      << diagnostics;
  expectFloats(outputs[0], {3, 2}, {1, 4, 2, 5, 3, 6});
  expectInts(outputs[1], {1}, {2});
}

TEST_F(InterpreterTest, MoreShapeOps) {
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%x: tensor<1x2x3xf32>) -> (tensor<2x3xf32>, tensor<1x1x2x3xf32>, tensor<2x6xf32>, tensor<2x2xf32>, tensor<2x3xi64>, tensor<1x6xf32>, tensor<1x2x3xf32>, tensor<i64>) {
      %sq = llm.squeeze %x : (tensor<1x2x3xf32>) -> tensor<2x3xf32>
      %a = llm.constant dense<[-4]> : tensor<1xi64> : tensor<1xi64>
      %un = llm.unsqueeze %x, %a : (tensor<1x2x3xf32>, tensor<1xi64>) -> tensor<1x1x2x3xf32>
      %rep = llm.constant dense<[1, 2]> : tensor<2xi64> : tensor<2xi64>
      %t = llm.tile %sq, %rep : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<2x6xf32>
      %idx = llm.constant dense<[[2, -3], [1, 1]]> : tensor<2x2xi64> : tensor<2x2xi64>
      %ge = llm.gather_elements %sq, %idx {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x2xi64>) -> tensor<2x2xf32>
      %shape = llm.shape %sq : (tensor<2x3xf32>) -> tensor<2xi64>
      %cs = llm.constant_of_shape %shape {value = dense<7> : tensor<1xi64>} : (tensor<2xi64>) -> tensor<2x3xi64>
      %fl = llm.flatten %x {axis = 0 : i64} : (tensor<1x2x3xf32>) -> tensor<1x6xf32>
      %lo = llm.constant dense<2.0> : tensor<f32> : tensor<f32>
      %cl = llm.clip %x min %lo : (tensor<1x2x3xf32>, tensor<f32>) -> tensor<1x2x3xf32>
      %n = llm.size %x : (tensor<1x2x3xf32>) -> tensor<i64>
      return %sq, %un, %t, %ge, %cs, %fl, %cl, %n : tensor<2x3xf32>, tensor<1x1x2x3xf32>, tensor<2x6xf32>, tensor<2x2xf32>, tensor<2x3xi64>, tensor<1x6xf32>, tensor<1x2x3xf32>, tensor<i64>
    })mlir",
                                  {HostTensor::fromFloats({1, 2, 3}, {1, 2, 3, 4, 5, 6})},
                                  outputs)))
      << diagnostics;
  expectFloats(outputs[0], {2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(outputs[1].shape, (std::vector<int64_t>{1, 1, 2, 3}));
  expectFloats(outputs[2], {2, 6}, {1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6});
  expectFloats(outputs[3], {2, 2}, {3, 1, 5, 5});
  expectInts(outputs[4], {2, 3}, {7, 7, 7, 7, 7, 7});
  expectFloats(outputs[5], {1, 6}, {1, 2, 3, 4, 5, 6});
  expectFloats(outputs[6], {1, 2, 3}, {2, 2, 3, 4, 5, 6});
  expectInts(outputs[7], {}, {6});
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, SoftmaxAndLogSoftmax) {
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
      %s = llm.softmax %x : (tensor<2x3xf32>) -> tensor<2x3xf32>
      %l = llm.log_softmax %x {axis = 0 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
      return %s, %l : tensor<2x3xf32>, tensor<2x3xf32>
    })mlir",
                                  {HostTensor::fromFloats({2, 3}, {1, 2, 3, 0, 0, 1000})},
                                  outputs)))
      << diagnostics;
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  expectFloats(outputs[0], {2, 3},
               {(float)(std::exp(1.0) / z), (float)(std::exp(2.0) / z),
                (float)(std::exp(3.0) / z), 0, 0, 1});
  auto lse = [](double a, double b) {
    double m = std::max(a, b);
    return m + std::log(std::exp(a - m) + std::exp(b - m));
  };
  expectFloats(outputs[1], {2, 3},
               {(float)(1 - lse(1, 0)), (float)(2 - lse(2, 0)), -997.0f,
                (float)(0 - lse(1, 0)), (float)(0 - lse(2, 0)), 0.0f},
               1e-5f);
}

TEST_F(InterpreterTest, ReductionsAndArgMax) {
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%x: tensor<2x3xf32>) -> (tensor<2xf32>, tensor<2x3xf32>, tensor<1x1xf32>, tensor<2x1xi64>, tensor<2x1xi64>) {
      %axes = llm.constant dense<[-1]> : tensor<1xi64> : tensor<1xi64>
      %s = llm.reduce_sum %x axes %axes {keepdims = 0 : i64} : (tensor<2x3xf32>, tensor<1xi64>) -> tensor<2xf32>
      %empty = llm.constant dense<> : tensor<0xi64> : tensor<0xi64>
      %n = llm.reduce_max %x axes %empty {noop_with_empty_axes = 1 : i64} : (tensor<2x3xf32>, tensor<0xi64>) -> tensor<2x3xf32>
      %m = llm.reduce_mean %x : (tensor<2x3xf32>) -> tensor<1x1xf32>
      %a = llm.argmax %x {axis = 1 : i64} : (tensor<2x3xf32>) -> tensor<2x1xi64>
      %b = llm.argmax %x {axis = 1 : i64, select_last_index = 1 : i64} : (tensor<2x3xf32>) -> tensor<2x1xi64>
      return %s, %n, %m, %a, %b : tensor<2xf32>, tensor<2x3xf32>, tensor<1x1xf32>, tensor<2x1xi64>, tensor<2x1xi64>
    })mlir",
                                  {HostTensor::fromFloats({2, 3}, {1, 5, 5, 2, 0, 2})},
                                  outputs)))
      << diagnostics;
  expectFloats(outputs[0], {2}, {11, 4});
  expectFloats(outputs[1], {2, 3}, {1, 5, 5, 2, 0, 2});
  expectFloats(outputs[2], {1, 1}, {2.5f});
  expectInts(outputs[3], {2, 1}, {1, 0});
  expectInts(outputs[4], {2, 1}, {2, 2});
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, MatMulBroadcastAnd1D) {
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%a: tensor<2x2x3xf32>, %b: tensor<3x2xf32>, %v: tensor<3xf32>) -> (tensor<2x2x2xf32>, tensor<2x2xf32>) {
      %r = llm.matmul %a, %b : (tensor<2x2x3xf32>, tensor<3x2xf32>) -> tensor<2x2x2xf32>
      %s = llm.matmul %a, %v : (tensor<2x2x3xf32>, tensor<3xf32>) -> tensor<2x2xf32>
      return %r, %s : tensor<2x2x2xf32>, tensor<2x2xf32>
    })mlir",
                                  {HostTensor::fromFloats({2, 2, 3}, {1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 1, 0}),
                                   HostTensor::fromFloats({3, 2}, {1, 2, 3, 4, 5, 6}),
                                   HostTensor::fromFloats({3}, {1, 1, 1})},
                                  outputs)))
      << diagnostics;
  expectFloats(outputs[0], {2, 2, 2}, {22, 28, 49, 64, 1, 2, 3, 4});
  expectFloats(outputs[1], {2, 2}, {6, 15, 1, 1});
}

TEST_F(InterpreterTest, MatMulNBitsDequantization) {
  const int64_t K = 32, N = 3, block = 16, blocks = 2, blob = 8;
  std::vector<int64_t> q(N * K);
  for (int64_t k = 0; k < N * K; ++k)
    q[k] = (k * 7 + 3) % 16;
  std::vector<int64_t> packed(N * blocks * blob, 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      int64_t byte = n * blocks * blob + k / 2; // blocks are contiguous
      packed[byte] |= q[n * K + k] << ((k % 2) * 4);
    }
  std::vector<float> scales = {0.5f, 0.25f, 1.0f, 2.0f, 0.125f, 1.5f};
  std::vector<int64_t> zeros = {3, 9, 15}; // zp of blocks (0,1) of each row
  std::vector<int64_t> zpPacked(N);
  std::vector<int64_t> zp(N * blocks);
  for (int64_t n = 0; n < N; ++n) {
    zp[n * 2] = zeros[n] % 16;
    zp[n * 2 + 1] = (zeros[n] + 5) % 16;
    zpPacked[n] = zp[n * 2] | (zp[n * 2 + 1] << 4);
  }
  std::vector<float> a = pseudoRandom(2 * K, 7);
  auto expected = [&](bool withZp) {
    std::vector<float> y(2 * N);
    for (int64_t m = 0; m < 2; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) {
          int64_t b = k / block;
          double z = withZp ? zp[n * blocks + b] : 8;
          acc += a[m * K + k] * (q[n * K + k] - z) * scales[n * blocks + b];
        }
        y[m * N + n] = (float)acc;
      }
    return y;
  };
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%a: tensor<2x32xf32>, %b: tensor<3x2x8xui8>, %s: tensor<6xf32>, %z: tensor<3xui8>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
      %r = llm.matmul_nbits %a, %b, %s zero_points %z {K = 32 : i64, N = 3 : i64, bits = 4 : i64, block_size = 16 : i64} : (tensor<2x32xf32>, tensor<3x2x8xui8>, tensor<6xf32>, tensor<3xui8>) -> tensor<2x3xf32>
      %d = llm.matmul_nbits %a, %b, %s {K = 32 : i64, N = 3 : i64, bits = 4 : i64, block_size = 16 : i64} : (tensor<2x32xf32>, tensor<3x2x8xui8>, tensor<6xf32>) -> tensor<2x3xf32>
      return %r, %d : tensor<2x3xf32>, tensor<2x3xf32>
    })mlir",
                                  {HostTensor::fromFloats({2, K}, a),
                                   HostTensor::fromInts({N, blocks, blob}, packed, DType::U8),
                                   HostTensor::fromFloats({N * blocks}, scales),
                                   HostTensor::fromInts({N}, zpPacked, DType::U8)},
                                  outputs)))
      << diagnostics;
  expectFloats(outputs[0], {2, 3}, expected(true), 1e-5f);
  expectFloats(outputs[1], {2, 3}, expected(false), 1e-5f);
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, RMSNormAndLayerNorm) {
  std::vector<float> x = {1, 2, 3, 4, -1, 0, 1, 2}, w = {1, 0.5f, 2, -1};
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%x: tensor<2x4xf32>, %w: tensor<4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>) {
      %r = llm.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
      %g = llm.rms_norm %x, %w {epsilon = 1.0e-5 : f32, weight_offset = 1.0 : f32} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
      %l = llm.layer_norm %x, %w, %w {epsilon = 1.0e-5 : f32} : (tensor<2x4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
      return %r, %g, %l : tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>
    })mlir",
                                  {HostTensor::fromFloats({2, 4}, x),
                                   HostTensor::fromFloats({4}, w)},
                                  outputs)))
      << diagnostics;
  std::vector<float> rms(8), gemma(8), ln(8);
  for (int r = 0; r < 2; ++r) {
    double ms = 0, mean = 0, var = 0;
    for (int j = 0; j < 4; ++j) {
      ms += x[r * 4 + j] * x[r * 4 + j] / 4.0;
      mean += x[r * 4 + j] / 4.0;
    }
    for (int j = 0; j < 4; ++j)
      var += (x[r * 4 + j] - mean) * (x[r * 4 + j] - mean) / 4.0;
    for (int j = 0; j < 4; ++j) {
      rms[r * 4 + j] = x[r * 4 + j] / std::sqrt(ms + 1e-5) * w[j];
      gemma[r * 4 + j] = x[r * 4 + j] / std::sqrt(ms + 1e-5) * (w[j] + 1);
      ln[r * 4 + j] = (x[r * 4 + j] - mean) / std::sqrt(var + 1e-5) * w[j] + w[j];
    }
  }
  expectFloats(outputs[0], {2, 4}, rms, 1e-5f);
  expectFloats(outputs[1], {2, 4}, gemma, 1e-5f);
  expectFloats(outputs[2], {2, 4}, ln, 1e-5f);
}

TEST_F(InterpreterTest, RotaryTableAndRope) {
  const int64_t B = 1, H = 2, S = 2, D = 6, rot = 4;
  std::vector<float> x = pseudoRandom(B * H * S * D, 3);
  std::vector<int64_t> positions = {0, 3};
  std::vector<float> invFreq = {1.0f, 0.5f};
  HostTensor r = run1(R"mlir(
    func.func @main(%x: tensor<1x2x2x6xf32>, %p: tensor<1x2xi64>) -> tensor<1x2x2x6xf32> {
      %c, %s = llm.rotary_table %p {inv_freq = array<f32: 1.0, 0.5>} : (tensor<1x2xi64>) -> (tensor<1x2x4xf32>, tensor<1x2x4xf32>)
      %r = llm.rope %x, %c, %s {rotary_dim = 4 : i64} : (tensor<1x2x2x6xf32>, tensor<1x2x4xf32>, tensor<1x2x4xf32>) -> tensor<1x2x2x6xf32>
      return %r : tensor<1x2x2x6xf32>
    })mlir",
                      {HostTensor::fromFloats({B, H, S, D}, x),
                       HostTensor::fromInts({1, 2}, positions)});
  std::vector<float> expected(x);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t s = 0; s < S; ++s) {
      const float *in = x.data() + (h * S + s) * D;
      float *out = expected.data() + (h * S + s) * D;
      for (int64_t i = 0; i < rot / 2; ++i) {
        double angle = positions[s] * invFreq[i];
        double c = std::cos(angle), sn = std::sin(angle);
        out[i] = in[i] * c - in[i + rot / 2] * sn;
        out[i + rot / 2] = in[i + rot / 2] * c + in[i] * sn;
      }
    }
  expectFloats(r, {B, H, S, D}, expected, 1e-5f);
}

/// Naive grouped-query attention: repeat the KV heads, mask, softmax.
static std::vector<float> naiveAttention(const std::vector<float> &q,
                                         const std::vector<float> &k,
                                         const std::vector<float> &v, int64_t H,
                                         int64_t KVH, int64_t S, int64_t T,
                                         int64_t D, float scale, bool causal,
                                         int64_t window,
                                         const std::vector<float> *mask) {
  std::vector<float> y(H * S * D, 0.0f);
  for (int64_t h = 0; h < H; ++h) {
    int64_t kh = h / (H / KVH);
    for (int64_t i = 0; i < S; ++i) {
      std::vector<double> s(T);
      double mx = -INFINITY;
      for (int64_t j = 0; j < T; ++j) {
        bool visible = (!causal || j <= i + T - S) &&
                       (window <= 0 || j > i + T - S - window);
        if (!visible) {
          s[j] = -INFINITY;
          continue;
        }
        double dot = 0;
        for (int64_t d = 0; d < D; ++d)
          dot += q[(h * S + i) * D + d] * k[(kh * T + j) * D + d];
        s[j] = dot * scale + (mask ? (*mask)[i * T + j] : 0.0);
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < T; ++j)
        sum += s[j] = std::exp(s[j] - mx);
      for (int64_t j = 0; j < T; ++j)
        for (int64_t d = 0; d < D; ++d)
          y[(h * S + i) * D + d] += s[j] / sum * v[(kh * T + j) * D + d];
    }
  }
  return y;
}

TEST_F(InterpreterTest, GroupedQueryCausalAttention) {
  const int64_t H = 4, KVH = 2, S = 3, T = 5, D = 4;
  std::vector<float> q = pseudoRandom(H * S * D, 11), k = pseudoRandom(KVH * T * D, 12),
                     v = pseudoRandom(KVH * T * D, 13);
  HostTensor r = run1(R"mlir(
    func.func @main(%q: tensor<1x4x3x4xf32>, %k: tensor<1x2x5x4xf32>, %v: tensor<1x2x5x4xf32>) -> tensor<1x4x3x4xf32> {
      %r = llm.attention %q, %k, %v {scale = 0.5 : f32, num_heads = 4 : i64, kv_heads = 2 : i64, causal = true} : (tensor<1x4x3x4xf32>, tensor<1x2x5x4xf32>, tensor<1x2x5x4xf32>) -> tensor<1x4x3x4xf32>
      return %r : tensor<1x4x3x4xf32>
    })mlir",
                      {HostTensor::fromFloats({1, H, S, D}, q),
                       HostTensor::fromFloats({1, KVH, T, D}, k),
                       HostTensor::fromFloats({1, KVH, T, D}, v)});
  expectFloats(r, {1, H, S, D},
               naiveAttention(q, k, v, H, KVH, S, T, D, 0.5f, true, 0, nullptr),
               1e-5f);
}

TEST_F(InterpreterTest, SlidingWindowAttentionWithMask) {
  const int64_t H = 2, KVH = 1, S = 4, T = 4, D = 2;
  std::vector<float> q = pseudoRandom(H * S * D, 21), k = pseudoRandom(KVH * T * D, 22),
                     v = pseudoRandom(KVH * T * D, 23), mask = pseudoRandom(S * T, 24);
  HostTensor r = run1(R"mlir(
    func.func @main(%q: tensor<1x2x4x2xf32>, %k: tensor<1x1x4x2xf32>, %v: tensor<1x1x4x2xf32>, %m: tensor<4x4xf32>) -> tensor<1x2x4x2xf32> {
      %r = llm.attention %q, %k, %v mask %m {scale = 1.0 : f32, num_heads = 2 : i64, kv_heads = 1 : i64, causal = true, sliding_window = 2 : i64} : (tensor<1x2x4x2xf32>, tensor<1x1x4x2xf32>, tensor<1x1x4x2xf32>, tensor<4x4xf32>) -> tensor<1x2x4x2xf32>
      return %r : tensor<1x2x4x2xf32>
    })mlir",
                      {HostTensor::fromFloats({1, H, S, D}, q),
                       HostTensor::fromFloats({1, KVH, T, D}, k),
                       HostTensor::fromFloats({1, KVH, T, D}, v),
                       HostTensor::fromFloats({S, T}, mask)});
  expectFloats(r, {1, H, S, D},
               naiveAttention(q, k, v, H, KVH, S, T, D, 1.0f, true, 2, &mask),
               1e-5f);
}

TEST_F(InterpreterTest, LinearTransposedWithBiasAndGatedMLP) {
  const int64_t M = 3, K = 5, N = 4, I = 6;
  std::vector<float> x = pseudoRandom(M * K, 1), w = pseudoRandom(N * K, 2),
                     b = pseudoRandom(N, 3), wg = pseudoRandom(K * I, 4),
                     wu = pseudoRandom(K * I, 5), wd = pseudoRandom(I * N, 6);
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main(%x: tensor<1x3x5xf32>, %w: tensor<4x5xf32>, %b: tensor<4xf32>, %g: tensor<5x6xf32>, %u: tensor<5x6xf32>, %d: tensor<6x4xf32>) -> (tensor<1x3x4xf32>, tensor<1x3x4xf32>) {
      %y = llm.linear %x, %w, %b {transpose_weight} : (tensor<1x3x5xf32>, tensor<4x5xf32>, tensor<4xf32>) -> tensor<1x3x4xf32>
      %m = llm.gated_mlp %x, %g, %u, %d {activation = "silu"} : (tensor<1x3x5xf32>, tensor<5x6xf32>, tensor<5x6xf32>, tensor<6x4xf32>) -> tensor<1x3x4xf32>
      return %y, %m : tensor<1x3x4xf32>, tensor<1x3x4xf32>
    })mlir",
                                  {HostTensor::fromFloats({1, M, K}, x),
                                   HostTensor::fromFloats({N, K}, w),
                                   HostTensor::fromFloats({N}, b),
                                   HostTensor::fromFloats({K, I}, wg),
                                   HostTensor::fromFloats({K, I}, wu),
                                   HostTensor::fromFloats({I, N}, wd)},
                                  outputs)))
      << diagnostics;
  std::vector<float> y(M * N), mlp(M * N);
  for (int64_t m = 0; m < M; ++m) {
    std::vector<double> h(I);
    for (int64_t i = 0; i < I; ++i) {
      double g = 0, u = 0;
      for (int64_t k = 0; k < K; ++k) {
        g += x[m * K + k] * wg[k * I + i];
        u += x[m * K + k] * wu[k * I + i];
      }
      h[i] = g / (1 + std::exp(-g)) * u;
    }
    for (int64_t n = 0; n < N; ++n) {
      double acc = b[n], acc2 = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += x[m * K + k] * w[n * K + k];
      for (int64_t i = 0; i < I; ++i)
        acc2 += h[i] * wd[i * N + n];
      y[m * N + n] = (float)acc;
      mlp[m * N + n] = (float)acc2;
    }
  }
  expectFloats(outputs[0], {1, M, N}, y, 1e-5f);
  expectFloats(outputs[1], {1, M, N}, mlp, 1e-5f);
}

TEST_F(InterpreterTest, EmbeddingLooksUpRows) {
  HostTensor r = run1(R"mlir(
    func.func @main(%t: tensor<3x2xf32>, %ids: tensor<1x2xi64>) -> tensor<1x2x2xf32> {
      %r = llm.embedding %t[%ids] : (tensor<3x2xf32>, tensor<1x2xi64>) -> tensor<1x2x2xf32>
      return %r : tensor<1x2x2xf32>
    })mlir",
                      {HostTensor::fromFloats({3, 2}, {1, 2, 3, 4, 5, 6}),
                       HostTensor::fromInts({1, 2}, {2, 0})});
  expectFloats(r, {1, 2, 2}, {5, 6, 1, 2});
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, RunTimeShapeErrorIsDiagnosed) {
  std::vector<HostTensor> outputs;
  EXPECT_TRUE(mlir::failed(run(R"mlir(
    func.func @main(%a: tensor<?x?xf32>, %b: tensor<?xf32>) -> tensor<?x?xf32> {
      %r = llm.add %a, %b : (tensor<?x?xf32>, tensor<?xf32>) -> tensor<?x?xf32>
      return %r : tensor<?x?xf32>
    })mlir",
                               {HostTensor::fromFloats({2, 3}, std::vector<float>(6)),
                                HostTensor::fromFloats({4}, std::vector<float>(4))},
                               outputs)));
  EXPECT_NE(diagnostics.find("'llm.add' op cannot broadcast [2x3]f32 with [4]f32"),
            std::string::npos)
      << diagnostics;
}

TEST_F(InterpreterTest, InputShapeMismatchIsDiagnosed) {
  std::vector<HostTensor> outputs;
  EXPECT_TRUE(mlir::failed(run(R"mlir(
    func.func @main(%ids: tensor<1x?xi64> {llm.name = "input_ids"}) -> tensor<1x?xi64> {
      return %ids : tensor<1x?xi64>
    })mlir",
                               {HostTensor::fromInts({2, 3}, std::vector<int64_t>(6))},
                               outputs)));
  EXPECT_NE(diagnostics.find("input 0 ('input_ids') has shape [2x3]i64 but the model "
                             "expects 'tensor<1x?xi64>'"),
            std::string::npos)
      << diagnostics;
  EXPECT_TRUE(mlir::failed(run(R"mlir(
    func.func @main(%ids: tensor<1x?xi64>) -> tensor<1x?xi64> {
      return %ids : tensor<1x?xi64>
    })mlir",
                               {HostTensor::fromInts({1, 3}, std::vector<int64_t>(3), DType::I32)},
                               outputs)));
  EXPECT_NE(diagnostics.find("input 0 has shape [1x3]i32"), std::string::npos)
      << diagnostics;
}

TEST_F(InterpreterTest, WrongDeclaredResultTypeIsDiagnosed) {
  std::vector<HostTensor> outputs;
  EXPECT_TRUE(mlir::failed(run(R"mlir(
    func.func @main(%a: tensor<?xf32>) -> tensor<3xf32> {
      %r = llm.neg %a : (tensor<?xf32>) -> tensor<3xf32>
      return %r : tensor<3xf32>
    })mlir",
                               {HostTensor::fromFloats({2}, {1, 2})}, outputs)));
  EXPECT_NE(diagnostics.find("computed [2]f32 for result #0 but its type is "
                             "'tensor<3xf32>'"),
            std::string::npos)
      << diagnostics;
}

TEST_F(InterpreterTest, UnknownOpIsDiagnosed) {
  context.allowUnregisteredDialects();
  std::vector<HostTensor> outputs;
  EXPECT_TRUE(mlir::failed(run(R"mlir(
    func.func @main(%a: tensor<2xf32>) -> tensor<2xf32> {
      %r = "test.frobnicate"(%a) : (tensor<2xf32>) -> tensor<2xf32>
      return %r : tensor<2xf32>
    })mlir",
                               {HostTensor::fromFloats({2}, {1, 2})}, outputs)));
  EXPECT_NE(diagnostics.find("'test.frobnicate' op has no host reference kernel"),
            std::string::npos)
      << diagnostics;
  EXPECT_TRUE(Interpreter::hasKernel("llm.attention"));
  EXPECT_FALSE(Interpreter::hasKernel("test.frobnicate"));
}

TEST_F(InterpreterTest, EveryLLMOpHasAKernel) {
  std::vector<std::string> missing;
  for (mlir::RegisteredOperationName name : context.getRegisteredOperations())
    if (name.getDialectNamespace() == "llm" &&
        !Interpreter::hasKernel(name.getStringRef()))
      missing.push_back(name.getStringRef().str());
  EXPECT_TRUE(missing.empty()) << "no kernel for " << missing.size()
                               << " ops, first " << missing.front();
  EXPECT_GE(Interpreter::supportedOps().size(), 100u);
}

//===----------------------------------------------------------------------===//
// Paged KV cache
//===----------------------------------------------------------------------===//

/// [S, H, D] rows of a packed tensor starting at token `first`, as [H, S, D].
static std::vector<float> headMajor(const std::vector<float> &packed,
                                    int64_t first, int64_t S, int64_t H,
                                    int64_t D) {
  std::vector<float> out(H * S * D);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t d = 0; d < D; ++d)
        out[(h * S + s) * D + d] = packed[((first + s) * H + h) * D + d];
  return out;
}

TEST_F(InterpreterTest, PagedAttentionOverRaggedBlockTables) {
  // Two sequences of 5 and 3 tokens, all appended in this step, in blocks
  // of 2 tokens scattered over the pool; layer 1 of a 2-layer cache that is
  // NaN wherever nothing was written.
  const int64_t H = 4, KVH = 2, D = 4, B = 2, blocks = 5, T = 8;
  std::vector<float> q = pseudoRandom(T * H * D, 31),
                     k = pseudoRandom(T * KVH * D, 32),
                     v = pseudoRandom(T * KVH * D, 33);
  std::vector<int64_t> tables = {3, 1, 4, 2, 0, 0};
  std::vector<int64_t> slots;
  for (int64_t j = 0; j < 5; ++j)
    slots.push_back(tables[j / B] * B + j % B);
  for (int64_t j = 0; j < 3; ++j)
    slots.push_back(tables[3 + j / B] * B + j % B);
  HostTensor cache(DType::F32, {2, blocks, 2, KVH, B, D});
  std::fill(cache.f.begin(), cache.f.end(), NAN);
  HostTensor r = run1(R"mlir(
    func.func @main(%q: tensor<?x4x4xf32>, %k: tensor<?x2x4xf32>, %v: tensor<?x2x4xf32>, %slots: tensor<?xi64>,
                    %cache: tensor<2x?x2x2x2x4xf32>, %tables: tensor<?x?xi32>, %ctx: tensor<?xi32>, %qsl: tensor<?xi32>) -> tensor<?x4x4xf32> {
      %c = llm.kv_cache_write %cache, %k, %v, %slots {layer = 1 : i64} : (tensor<2x?x2x2x2x4xf32>, tensor<?x2x4xf32>, tensor<?x2x4xf32>, tensor<?xi64>) -> tensor<2x?x2x2x2x4xf32>
      %a = llm.paged_attention %q, %c, %tables, %ctx, %qsl {layer = 1 : i64, scale = 0.5 : f32, num_heads = 4 : i64, kv_heads = 2 : i64, sliding_window = 2 : i64} : (tensor<?x4x4xf32>, tensor<2x?x2x2x2x4xf32>, tensor<?x?xi32>, tensor<?xi32>, tensor<?xi32>) -> tensor<?x4x4xf32>
      return %a : tensor<?x4x4xf32>
    })mlir",
                      {HostTensor::fromFloats({T, H, D}, q),
                       HostTensor::fromFloats({T, KVH, D}, k),
                       HostTensor::fromFloats({T, KVH, D}, v),
                       HostTensor::fromInts({T}, slots), cache,
                       HostTensor::fromInts({2, 3}, tables, DType::I32),
                       HostTensor::fromInts({2}, {5, 3}, DType::I32),
                       HostTensor::fromInts({3}, {0, 5, 8}, DType::I32)});
  ASSERT_EQ(r.shape, (std::vector<int64_t>{T, H, D}));
  int64_t first = 0;
  for (int64_t len : {5, 3}) {
    std::vector<float> expected = naiveAttention(
        headMajor(q, first, len, H, D), headMajor(k, first, len, KVH, D),
        headMajor(v, first, len, KVH, D), H, KVH, len, len, D, 0.5f, true, 2,
        nullptr);
    std::vector<float> got = headMajor(r.f, first, len, H, D);
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], expected[i], 1e-5f) << "token " << first << ", " << i;
    first += len;
  }
}

TEST_F(InterpreterTest, PagedDecodeStepMatchesAttentionWithSoftcap) {
  // Three tokens cached by an earlier write (plus a padding token at slot
  // -1, which must be skipped), two appended now: the new queries sit at
  // positions 3 and 4, where llm.attention's bottom-right causal alignment
  // puts them.
  const int64_t H = 2, KVH = 1, D = 4, B = 4;
  std::vector<float> k = pseudoRandom(5 * KVH * D, 41),
                     v = pseudoRandom(5 * KVH * D, 42),
                     q = pseudoRandom(2 * H * D, 43);
  std::vector<float> kPast(k.begin(), k.begin() + 3 * D),
      vPast(v.begin(), v.begin() + 3 * D), kNew(k.begin() + 3 * D, k.end()),
      vNew(v.begin() + 3 * D, v.end());
  kPast.insert(kPast.end(), D, 100.0f); // a padding token, never written
  vPast.insert(vPast.end(), D, 100.0f);
  HostTensor cache(DType::F32, {1, 3, 2, KVH, B, D});
  std::fill(cache.f.begin(), cache.f.end(), NAN);
  std::vector<HostTensor> outputs;
  mlir::LogicalResult status = run(R"mlir(
    func.func @main(%cache: tensor<1x?x2x1x4x4xf32>, %kp: tensor<?x1x4xf32>, %vp: tensor<?x1x4xf32>, %sp: tensor<?xi64>,
                    %kn: tensor<?x1x4xf32>, %vn: tensor<?x1x4xf32>, %sn: tensor<?xi64>, %q: tensor<?x2x4xf32>,
                    %tables: tensor<?x?xi32>, %ctx: tensor<?xi32>, %qsl: tensor<?xi32>,
                    %q4: tensor<1x2x2x4xf32>, %k4: tensor<1x1x5x4xf32>, %v4: tensor<1x1x5x4xf32>) -> (tensor<?x2x4xf32>, tensor<1x2x2x4xf32>) {
      %c1 = llm.kv_cache_write %cache, %kp, %vp, %sp {layer = 0 : i64} : (tensor<1x?x2x1x4x4xf32>, tensor<?x1x4xf32>, tensor<?x1x4xf32>, tensor<?xi64>) -> tensor<1x?x2x1x4x4xf32>
      %c2 = llm.kv_cache_write %c1, %kn, %vn, %sn {layer = 0 : i64} : (tensor<1x?x2x1x4x4xf32>, tensor<?x1x4xf32>, tensor<?x1x4xf32>, tensor<?xi64>) -> tensor<1x?x2x1x4x4xf32>
      %a = llm.paged_attention %q, %c2, %tables, %ctx, %qsl {layer = 0 : i64, scale = 0.7 : f32, num_heads = 2 : i64, kv_heads = 1 : i64, softcap = 0.5 : f32} : (tensor<?x2x4xf32>, tensor<1x?x2x1x4x4xf32>, tensor<?x?xi32>, tensor<?xi32>, tensor<?xi32>) -> tensor<?x2x4xf32>
      %r = llm.attention %q4, %k4, %v4 {scale = 0.7 : f32, num_heads = 2 : i64, kv_heads = 1 : i64, causal = true, softcap = 0.5 : f32} : (tensor<1x2x2x4xf32>, tensor<1x1x5x4xf32>, tensor<1x1x5x4xf32>) -> tensor<1x2x2x4xf32>
      return %a, %r : tensor<?x2x4xf32>, tensor<1x2x2x4xf32>
    })mlir",
                                  {cache, HostTensor::fromFloats({4, KVH, D}, kPast),
                                   HostTensor::fromFloats({4, KVH, D}, vPast),
                                   HostTensor::fromInts({4}, {4, 5, 6, -1}),
                                   HostTensor::fromFloats({2, KVH, D}, kNew),
                                   HostTensor::fromFloats({2, KVH, D}, vNew),
                                   HostTensor::fromInts({2}, {7, 8}),
                                   HostTensor::fromFloats({2, H, D}, q),
                                   HostTensor::fromInts({1, 3}, {1, 2, 0}, DType::I32),
                                   HostTensor::fromInts({1}, {5}, DType::I32),
                                   HostTensor::fromInts({2}, {0, 2}, DType::I32),
                                   HostTensor::fromFloats({1, H, 2, D}, headMajor(q, 0, 2, H, D)),
                                   HostTensor::fromFloats({1, KVH, 5, D}, k),
                                   HostTensor::fromFloats({1, KVH, 5, D}, v)},
                                  outputs);
  ASSERT_TRUE(mlir::succeeded(status)) << diagnostics;
  // Block table [1, 2, 0] of 4-token blocks: positions 0..3 are slots 4..7,
  // position 4 is slot 8.
  expectFloats(outputs[0], {2, H, D}, headMajor(outputs[1].f, 0, 2, H, D),
               1e-6f);
}

TEST_F(InterpreterTest, PagedKernelsDiagnoseBadBatches) {
  HostTensor cache(DType::F32, {1, 2, 2, 1, 2, 2});
  std::vector<HostTensor> outputs;
  EXPECT_TRUE(mlir::failed(run(R"mlir(
    func.func @main(%q: tensor<?x1x2xf32>, %c: tensor<1x?x2x1x2x2xf32>, %t: tensor<?x?xi32>, %l: tensor<?xi32>, %s: tensor<?xi32>) -> tensor<?x1x2xf32> {
      %a = llm.paged_attention %q, %c, %t, %l, %s {layer = 0 : i64, scale = 1.0 : f32, num_heads = 1 : i64, kv_heads = 1 : i64} : (tensor<?x1x2xf32>, tensor<1x?x2x1x2x2xf32>, tensor<?x?xi32>, tensor<?xi32>, tensor<?xi32>) -> tensor<?x1x2xf32>
      return %a : tensor<?x1x2xf32>
    })mlir",
                               {HostTensor::fromFloats({3, 1, 2}, {1, 2, 3, 4, 5, 6}),
                                cache, HostTensor::fromInts({1, 1}, {0}, DType::I32),
                                HostTensor::fromInts({1}, {3}, DType::I32),
                                HostTensor::fromInts({2}, {0, 3}, DType::I32)},
                               outputs)));
  EXPECT_NE(diagnostics.find("sequence 0 of 3 tokens needs more than the 1 "
                             "blocks of its block table"),
            std::string::npos)
      << diagnostics;
}

TEST_F(InterpreterTest, GatherLastTokensAndPackedRope) {
  // Rows 1 and 4 are the last tokens of sequences [0, 2) and [2, 5).
  HostTensor x = HostTensor::fromFloats({5, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  HostTensor r = run1(R"mlir(
    func.func @main(%x: tensor<?x2xf32>, %qsl: tensor<?xi32>) -> tensor<?x2xf32> {
      %r = llm.gather_last_tokens %x, %qsl : (tensor<?x2xf32>, tensor<?xi32>) -> tensor<?x2xf32>
      return %r : tensor<?x2xf32>
    })mlir",
                      {x, HostTensor::fromInts({3}, {0, 2, 5}, DType::I32)});
  expectFloats(r, {2, 2}, {2, 3, 8, 9});

  // Packed [T, H, D] rope equals the [B, H, S, D] form on the same rows.
  const int64_t T = 3, H = 2, D = 6;
  std::vector<float> xs = pseudoRandom(T * H * D, 51);
  std::vector<HostTensor> outputs;
  mlir::LogicalResult status = run(R"mlir(
    func.func @main(%x: tensor<?x2x6xf32>, %x4: tensor<1x2x3x6xf32>, %p: tensor<?xi64>, %p2: tensor<1x3xi64>) -> (tensor<?x2x6xf32>, tensor<1x2x3x6xf32>) {
      %c, %s = llm.rotary_table %p {inv_freq = array<f32: 1.0, 0.5>} : (tensor<?xi64>) -> (tensor<?x4xf32>, tensor<?x4xf32>)
      %r = llm.rope %x, %c, %s {rotary_dim = 4 : i64} : (tensor<?x2x6xf32>, tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x2x6xf32>
      %c4, %s4 = llm.rotary_table %p2 {inv_freq = array<f32: 1.0, 0.5>} : (tensor<1x3xi64>) -> (tensor<1x3x4xf32>, tensor<1x3x4xf32>)
      %r4 = llm.rope %x4, %c4, %s4 {rotary_dim = 4 : i64} : (tensor<1x2x3x6xf32>, tensor<1x3x4xf32>, tensor<1x3x4xf32>) -> tensor<1x2x3x6xf32>
      return %r, %r4 : tensor<?x2x6xf32>, tensor<1x2x3x6xf32>
    })mlir",
                                  {HostTensor::fromFloats({T, H, D}, xs),
                                   HostTensor::fromFloats({1, H, T, D}, headMajor(xs, 0, T, H, D)),
                                   HostTensor::fromInts({T}, {4, 0, 7}),
                                   HostTensor::fromInts({1, T}, {4, 0, 7})},
                                  outputs);
  ASSERT_TRUE(mlir::succeeded(status)) << diagnostics;
  expectFloats(outputs[1], {1, H, T, D}, headMajor(outputs[0].f, 0, T, H, D));
}

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

class WeightStoreTest : public InterpreterTest {
protected:
  void SetUp() override {
    llvm::SmallString<128> path;
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("kiln-reference", path));
    dir = path.str().str();
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }
  std::string dir;
};

TEST_F(WeightStoreTest, ExternalDataAndInitializers) {
  // External data: 8 bytes of padding, then a 2x3 f32 tensor.
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  {
    std::ofstream out(dir + "/weights.bin", std::ios::binary);
    out.write("padding!", 8);
    out.write(reinterpret_cast<const char *>(values.data()), 24);
  }
  // An ONNX model with an initializer and a Constant node.
  {
    onnx::ModelProto model;
    onnx::GraphProto *graph = model.mutable_graph();
    onnx::TensorProto *init = graph->add_initializer();
    init->set_name("emb");
    init->set_data_type(onnx::TensorProto::FLOAT);
    init->add_dims(2);
    init->add_dims(2);
    for (float f : {0.5f, 1.5f, 2.5f, 3.5f})
      init->add_float_data(f);
    onnx::NodeProto *node = graph->add_node();
    node->set_op_type("Constant");
    node->add_output("shape_const");
    onnx::AttributeProto *attr = node->add_attribute();
    attr->set_name("value");
    attr->set_type(onnx::AttributeProto::TENSOR);
    onnx::TensorProto *t = attr->mutable_t();
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(2);
    t->add_int64_data(-1);
    t->add_int64_data(7);
    std::ofstream out(dir + "/model.onnx", std::ios::binary);
    ASSERT_TRUE(model.SerializeToOstream(&out));
  }
  WeightStore store(dir);
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(R"mlir(
    func.func @main() -> (tensor<2x3xf32>, tensor<2x2xf32>, tensor<2xi64>) {
      %w = llm.weight "w" (#llm.external_data<path = "weights.bin", offset = 8, length = 24>) : tensor<2x3xf32>
      %e = llm.weight "emb" (#llm.initializer<path = "model.onnx", name = "emb">) : tensor<2x2xf32>
      %c = llm.weight "c" (#llm.initializer<path = "model.onnx", name = "shape_const">) : tensor<2xi64>
      %e2 = llm.weight "emb" (#llm.initializer<path = "model.onnx", name = "emb">) : tensor<2x2xf32>
      %s = llm.add %e, %e2 : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
      return %w, %s, %c : tensor<2x3xf32>, tensor<2x2xf32>, tensor<2xi64>
    })mlir",
                                  {}, outputs, &store)))
      << diagnostics;
  expectFloats(outputs[0], {2, 3}, values);
  expectFloats(outputs[1], {2, 2}, {1, 3, 5, 7});
  expectInts(outputs[2], {2}, {-1, 7});

  EXPECT_TRUE(mlir::failed(run(R"mlir(
    func.func @main() -> tensor<2x2xf32> {
      %e = llm.weight "x" (#llm.initializer<path = "model.onnx", name = "missing">) : tensor<2x2xf32>
      return %e : tensor<2x2xf32>
    })mlir",
                               {}, outputs, &store)));
  EXPECT_NE(diagnostics.find("has no initializer or constant named 'missing'"),
            std::string::npos)
      << diagnostics;
  EXPECT_TRUE(mlir::failed(run(R"mlir(
    func.func @main() -> tensor<2xf32> {
      %e = llm.weight "x" (#llm.external_data<path = "nope.bin", offset = 0, length = 8>) : tensor<2xf32>
      return %e : tensor<2xf32>
    })mlir",
                               {}, outputs, &store)));
  EXPECT_NE(diagnostics.find("cannot load weight 'x': cannot open external data file"),
            std::string::npos)
      << diagnostics;
}

TEST(TensorConversionTest, RoundTripsThroughElementsAttr) {
  mlir::MLIRContext context;
  HostTensor t = HostTensor::fromInts({2, 2}, {1, -2, 300, 4}, DType::I16);
  mlir::DenseElementsAttr attr = elementsAttrFromHostTensor(t, &context);
  HostTensor back;
  std::string error;
  ASSERT_TRUE(hostTensorFromElementsAttr(attr, back, error)) << error;
  EXPECT_EQ(back.dtype, DType::I16);
  EXPECT_EQ(back.i, t.i);
  HostTensor u = HostTensor::fromInts({2}, {255, 7}, DType::U8);
  ASSERT_TRUE(hostTensorFromElementsAttr(elementsAttrFromHostTensor(u, &context),
                                         back, error));
  EXPECT_EQ(back.dtype, DType::U8);
  EXPECT_EQ(back.i, (std::vector<int64_t>{255, 7}));
  HostTensor h = HostTensor::fromFloats({3}, {0.1f, -2, 65504}, DType::BF16);
  ASSERT_TRUE(hostTensorFromElementsAttr(elementsAttrFromHostTensor(h, &context),
                                         back, error));
  EXPECT_EQ(back.dtype, DType::BF16);
  EXPECT_EQ(back.f, h.f);
  HostTensor b = HostTensor::fromInts({3}, {1, 0, 1}, DType::Bool);
  mlir::DenseElementsAttr boolAttr = elementsAttrFromHostTensor(b, &context);
  EXPECT_TRUE(boolAttr.getElementType().isInteger(1));
  ASSERT_TRUE(hostTensorFromElementsAttr(boolAttr, back, error));
  EXPECT_EQ(back.dtype, DType::Bool);
  EXPECT_EQ(back.i, (std::vector<int64_t>{1, 0, 1}));
  // Splats expand to every element.
  auto splat = mlir::DenseElementsAttr::get(
      mlir::RankedTensorType::get({2, 2}, mlir::Float16Type::get(&context)),
      llvm::APFloat(llvm::APFloat::IEEEhalf(), "1.5"));
  ASSERT_TRUE(hostTensorFromElementsAttr(splat, back, error));
  EXPECT_EQ(back.dtype, DType::F16);
  EXPECT_EQ(back.f, (std::vector<float>{1.5f, 1.5f, 1.5f, 1.5f}));
}

} // namespace

namespace {

TEST_F(WeightStoreTest, PackedWeightsRunAsTheirDefinition) {
  // !llm.qweight k=32 n=2, 4 bits, groups of 16, f32 scales, zero points:
  // codes [2, 16] bytes at 0, scales [2, 2] at 64, zero points [2, 2] at 128.
  // !llm.sparse24 k=8 n=2 f32: values [2, 4] at 0, metadata [2, 1] at 64.
  std::vector<uint8_t> q(132, 0), s(66, 0);
  std::vector<float> scales = {0.5f, 0.25f, 2.0f, 1.0f};
  uint8_t zeros[4] = {8, 3, 0, 15};
  std::vector<float> dense(2 * 32); // [N, K]
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 32; ++c) {
      unsigned u = (r * 7 + c * 5) % 16;
      q[r * 16 + c / 2] |= u << (4 * (c % 2));
      int g = r * 2 + c / 16;
      dense[r * 32 + c] = scales[g] * ((float)u - zeros[g]);
    }
  std::memcpy(q.data() + 64, scales.data(), 16);
  std::memcpy(q.data() + 128, zeros, 4);
  float values[8] = {1, -2, 3, 4, 0.5f, 6, -7, 8};
  std::memcpy(s.data(), values, 32);
  // Row 0: group 0 keeps positions (0, 1) (nibble 0x4), group 1 (3, 2)
  // (0xB); row 1: (0, 2) (0x8) and (2, 1) (0x6).
  s[64] = 0x4 | (0xB << 4);
  s[65] = 0x8 | (0x6 << 4);
  std::vector<float> sparse = {1,    -2, 0, 0, 0, 0, 4,  3,
                               0.5f, 0,  6, 0, 0, 8, -7, 0};
  {
    std::ofstream out(dir + "/packed.bin", std::ios::binary);
    out.write(reinterpret_cast<const char *>(q.data()), q.size());
    out.write(reinterpret_cast<const char *>(s.data()), s.size());
  }
  std::vector<float> x = pseudoRandom(32, 3), xs = pseudoRandom(8, 4);
  WeightStore store(dir);
  std::vector<HostTensor> outputs;
  ASSERT_TRUE(mlir::succeeded(run(
      R"mlir(
    func.func @main(%x: tensor<1x32xf32>, %xs: tensor<1x8xf32>) -> (tensor<1x2xf32>, tensor<1x2xf32>) {
      %q = llm.weight "q" (#llm.external_data<path = "packed.bin", offset = 0, length = 132>) : !llm.qweight<k = 32, n = 2, bits = 4, group = 16, scaleType = f32, zeroPoint = true>
      %s = llm.weight "s" (#llm.external_data<path = "packed.bin", offset = 132, length = 66>) : !llm.sparse24<k = 8, n = 2, elementType = f32>
      %y = llm.linear %x, %q {transpose_weight} : (tensor<1x32xf32>, !llm.qweight<k = 32, n = 2, bits = 4, group = 16, scaleType = f32, zeroPoint = true>) -> tensor<1x2xf32>
      %z = llm.linear %xs, %s : (tensor<1x8xf32>, !llm.sparse24<k = 8, n = 2, elementType = f32>) -> tensor<1x2xf32>
      return %y, %z : tensor<1x2xf32>, tensor<1x2xf32>
    })mlir",
      {HostTensor::fromFloats({1, 32}, x), HostTensor::fromFloats({1, 8}, xs)},
      outputs, &store)))
      << diagnostics;
  std::vector<float> y(2, 0.0f), z(2, 0.0f);
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 32; ++c)
      y[r] += x[c] * dense[r * 32 + c];
    for (int c = 0; c < 8; ++c)
      z[r] += xs[c] * sparse[r * 8 + c];
  }
  expectFloats(outputs[0], {1, 2}, y, 1e-5f);
  expectFloats(outputs[1], {1, 2}, z, 1e-5f);

  // Bytes that do not hold the layout are an error at the weight.
  EXPECT_TRUE(
      mlir::failed(run(R"mlir(
    func.func @main(%xs: tensor<1x8xf32>) -> tensor<1x2xf32> {
      %s = llm.weight "s" (#llm.external_data<path = "packed.bin", offset = 190, length = 66>) : !llm.sparse24<k = 8, n = 2, elementType = f32>
      %z = llm.linear %xs, %s : (tensor<1x8xf32>, !llm.sparse24<k = 8, n = 2, elementType = f32>) -> tensor<1x2xf32>
      return %z : tensor<1x2xf32>
    })mlir",
                       {HostTensor::fromFloats({1, 8}, xs)}, outputs, &store)));
  EXPECT_NE(diagnostics.find("cannot load packed weight 's'"),
            std::string::npos)
      << diagnostics;
}

} // namespace
