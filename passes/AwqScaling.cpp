//===- AwqScaling.cpp - AWQ's activation-aware scales for quantization ----===//
//
// AWQ protects the input features with large activations by scaling them
// up in the weight before rounding and down in the layer's input. The
// input is scaled where it is produced, so the model computes the same
// function before quantization: an RMSNorm's weight (q/k/v after the
// attention norm, gate/up after the MLP norm) or the up projection of a
// gated MLP (down reads act(gate x) * (up x), linear in up's rows). Down
// projections are rescaled first, since that changes up, which the MLP
// norm's set then rescales with gate.
//
//===----------------------------------------------------------------------===//

#include "AwqScaling.h"
#include "RaiseUtils.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace kiln::llm;
namespace q = kiln::quant;

namespace {

constexpr int kGrid = 10;

struct Context {
  Context(const q::CalibrationStats &stats, const q::QuantSpec &spec,
          WeightValues &values)
      : stats(stats), spec(spec), values(values) {}

  const q::CalibrationStats &stats;
  const q::QuantSpec &spec;
  WeightValues &values;
  llvm::DenseMap<Operation *, MatrixWeight *> byOp;

  MatrixWeight *matrix(Value v) {
    Operation *def = v.getDefiningOp();
    auto it = def ? byOp.find(def) : byOp.end();
    return it == byOp.end() ? nullptr : it->second;
  }
  const q::InputStats *input(MatrixWeight *w) {
    auto it = stats.byWeight.find(w->op.getName().str());
    return it == stats.byWeight.end() || it->second->features != w->k ||
                   it->second->tokens == 0
               ? nullptr
               : it->second.get();
  }
  /// The scales for `set` (all reading `in`), applied to their columns.
  std::vector<float> scale(ArrayRef<MatrixWeight *> set,
                           const q::InputStats &in) {
    std::vector<const std::vector<float> *> ws;
    std::vector<int64_t> rows;
    for (MatrixWeight *w : set) {
      ws.push_back(&values[w->op]);
      rows.push_back(w->n);
    }
    std::vector<double> mean(in.features);
    for (int64_t c = 0; c < in.features; ++c)
      mean[c] = in.absSum[c] / in.tokens;
    std::vector<float> s =
        q::awqScales(ws, rows, in.features, spec, in.xxt, mean, kGrid);
    for (MatrixWeight *w : set) {
      std::vector<float> &v = values[w->op];
      for (int64_t r = 0; r < w->n; ++r)
        for (int64_t c = 0; c < w->k; ++c)
          v[r * w->k + c] *= s[c];
    }
    return s;
  }
};

} // namespace

LogicalResult kiln::llm::applyAwqScaling(
    ModuleOp module, std::vector<MatrixWeight> &weights,
    const q::CalibrationStats &stats, const q::QuantSpec &spec,
    PackedDataWriter &writer, WeightValues &values,
    llvm::DenseMap<Operation *, std::vector<double>> &importance,
    int64_t &scaled) {
  Context ctx(stats, spec, values);
  for (MatrixWeight &w : weights) {
    ctx.byOp[w.op] = &w;
    if (const q::InputStats *in = ctx.input(&w)) {
      std::vector<double> &imp = importance[w.op];
      imp.resize(w.k);
      for (int64_t c = 0; c < w.k; ++c)
        imp[c] = in->xxt[c * w.k + c] / in->tokens;
    }
  }
  // Scaling input feature c by 1/s_c divides its mean square by s_c^2.
  auto rescaled = [&](MatrixWeight *w, const std::vector<float> &s) {
    auto it = importance.find(w->op);
    if (it != importance.end())
      for (int64_t c = 0; c < w->k; ++c)
        it->second[c] /= (double)s[c] * s[c];
  };

  // Down projections: their input's scale goes into up's rows.
  SmallVector<GatedMLPOp> mlps;
  module.walk([&](GatedMLPOp mlp) { mlps.push_back(mlp); });
  for (GatedMLPOp mlp : mlps) {
    MatrixWeight *down = ctx.matrix(mlp.getDownWeight());
    MatrixWeight *up = ctx.matrix(mlp.getUpWeight());
    const q::InputStats *in = down ? ctx.input(down) : nullptr;
    if (!down || !up || !in || up->uses.size() != 1 || down->uses.size() != 1)
      continue;
    std::vector<float> s = ctx.scale({down}, *in);
    rescaled(down, s);
    std::vector<float> &u = values[up->op];
    for (int64_t r = 0; r < up->n; ++r)
      for (int64_t c = 0; c < up->k; ++c)
        u[r * up->k + c] /= s[r];
    ++scaled;
  }

  // Sets after an RMSNorm: its weight divided by the scales.
  SmallVector<RMSNormOp> norms;
  module.walk([&](RMSNormOp norm) { norms.push_back(norm); });
  for (RMSNormOp norm : norms) {
    SmallVector<MatrixWeight *> set;
    bool foldable = !norm.getResult().use_empty();
    for (OpOperand &use : norm.getResult().getUses()) {
      Operation *user = use.getOwner();
      if (auto linear = dyn_cast<LinearOp>(user);
          linear && use.getOperandNumber() == 0) {
        MatrixWeight *w = ctx.matrix(linear.getWeight());
        foldable &= w && w->uses.size() == 1;
        set.push_back(w);
      } else if (auto mlp = dyn_cast<GatedMLPOp>(user);
                 mlp && use.getOperandNumber() == 0) {
        for (Value v : {mlp.getGateWeight(), mlp.getUpWeight()}) {
          MatrixWeight *w = ctx.matrix(v);
          foldable &= w && w->uses.size() == 1;
          set.push_back(w);
        }
      } else {
        foldable = false;
      }
    }
    auto normWeight = norm.getWeight().getDefiningOp<WeightOp>();
    const q::InputStats *in =
        foldable && !set.empty() ? ctx.input(set.front()) : nullptr;
    if (!in || !normWeight)
      continue;
    SmallVector<float> w;
    std::string why;
    if (failed(readWeightFloats(normWeight, w, why)))
      return normWeight.emitError() << "method=awq: cannot read norm weight '"
                                    << normWeight.getName() << "': " << why;
    if ((int64_t)w.size() != in->features)
      continue;
    std::vector<float> s = ctx.scale(set, *in);
    for (MatrixWeight *w : set)
      rescaled(w, s);
    float offset = norm.getWeightOffset().convertToFloat();
    std::vector<float> folded(w.size());
    for (size_t c = 0; c < w.size(); ++c)
      folded[c] = (w[c] + offset) / s[c] - offset;
    Type type = normWeight.getType();
    auto offsetInFile = writer.append(
        normWeight,
        encodeFloats(folded, cast<RankedTensorType>(type).getElementType()));
    if (failed(offsetInFile))
      return failure();
    OpBuilder b(normWeight);
    int64_t length = (int64_t)w.size() *
                     cast<RankedTensorType>(type).getElementTypeBitWidth() / 8;
    auto scaledNorm =
        WeightOp::create(b, normWeight.getLoc(), type,
                         b.getStringAttr(normWeight.getName() + ".awq"),
                         ExternalDataAttr::get(b.getContext(), writer.path(),
                                               *offsetInFile, length));
    norm->setOperand(1, scaledNorm.getResult());
    if (normWeight->use_empty())
      normWeight->erase();
    ++scaled;
  }
  return success();
}
