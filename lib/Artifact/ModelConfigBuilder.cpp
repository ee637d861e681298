//===- ModelConfigBuilder.cpp - The Config section of an artifact ---------===//
//
// Most of ModelConfig is read off the laid-out graph, which is what the
// plan will run: the cache argument gives layers, KV heads, head size and
// block size; paged attention the query heads; the logits the vocabulary;
// the token embedding the hidden size and weight dtype; rotary tables the
// rope theta. What a graph does not say (token ids, context length, and
// the MLP width of models without a gated MLP) comes from the exporter's
// config.json next to the model (or the "config" object of a fixture's
// meta.json), and BOS/EOS from the tokenizer when one is given.
//
//===----------------------------------------------------------------------===//

#include "kiln/Artifact/ArtifactCompiler.h"

#include "kiln/Dialect/LLM/IR/LLMDialect.h"
#include "SentencePieceInfo.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace mlir;
using namespace kiln;
namespace rt = kiln::runtime;
namespace llm = kiln::llm;

namespace {

/// The exporter's configuration object, or null.
std::optional<llvm::json::Object> readConfigJson(const std::string &dir,
                                                 std::string &source) {
  for (const char *file : {"config.json", "meta.json"}) {
    std::string path = dir + "/" + file;
    auto buffer = llvm::MemoryBuffer::getFile(path);
    if (!buffer)
      continue;
    auto parsed = llvm::json::parse((*buffer)->getBuffer());
    if (!parsed) {
      llvm::consumeError(parsed.takeError());
      continue;
    }
    llvm::json::Object *object = parsed->getAsObject();
    if (!object)
      continue;
    if (std::string(file) == "meta.json") {
      llvm::json::Object *config = object->getObject("config");
      if (!config)
        continue;
      source = path + " (\"config\")";
      return std::move(*config);
    }
    source = path;
    return std::move(*object);
  }
  return std::nullopt;
}

/// An integer key (or the first of a list, as eos_token_id may be).
std::optional<int64_t> intKey(const llvm::json::Object *o,
                              std::initializer_list<const char *> keys) {
  if (!o)
    return std::nullopt;
  for (const char *key : keys) {
    const llvm::json::Value *v = o->get(key);
    if (!v)
      continue;
    if (auto i = v->getAsInteger())
      return *i;
    if (auto *array = v->getAsArray())
      if (!array->empty())
        if (auto i = (*array)[0].getAsInteger())
          return *i;
  }
  return std::nullopt;
}

std::optional<double> ropeThetaKey(const llvm::json::Object *o) {
  if (!o)
    return std::nullopt;
  if (auto v = o->getNumber("rope_theta"))
    return *v;
  if (const llvm::json::Object *p = o->getObject("rope_parameters"))
    if (auto v = p->getNumber("rope_theta"))
      return *v;
  return std::nullopt;
}

} // namespace

LogicalResult kiln::buildModelConfig(ModuleOp module,
                                     const ConfigOptions &options,
                                     CompiledModel &model,
                                     std::vector<std::string> &notes) {
  auto prefill = module.lookupSymbol<func::FuncOp>("prefill");
  if (!prefill || prefill.getNumArguments() != 7 ||
      prefill.getNumResults() != 2)
    return module.emitError() << "expected a laid-out @prefill";
  rt::ModelConfig &c = model.config;
  auto fail = [&](const Twine &what) {
    return module.emitError() << "cannot derive the model config: " << what;
  };

  auto cacheType = dyn_cast<RankedTensorType>(prefill.getArgument(6).getType());
  auto logitsType = dyn_cast<RankedTensorType>(prefill.getResultTypes()[0]);
  if (!cacheType || cacheType.getRank() != 6 || !logitsType ||
      logitsType.getRank() != 2 || logitsType.isDynamicDim(1))
    return fail("unexpected @prefill signature");
  c.numLayers = cacheType.getDimSize(0);
  c.numKVHeads = cacheType.getDimSize(3);
  c.blockSize = cacheType.getDimSize(4);
  c.headDim = cacheType.getDimSize(5);
  c.vocabSize = logitsType.getDimSize(1);

  llm::PagedAttentionOp attention;
  llm::EmbeddingOp tokenEmbedding;
  llm::GatedMLPOp mlp;
  llm::RotaryTableOp rotary;
  prefill.walk([&](Operation *op) {
    if (auto a = dyn_cast<llm::PagedAttentionOp>(op); a && !attention)
      attention = a;
    if (auto e = dyn_cast<llm::EmbeddingOp>(op);
        e && !tokenEmbedding && e.getIds() == prefill.getArgument(0))
      tokenEmbedding = e;
    if (auto m = dyn_cast<llm::GatedMLPOp>(op); m && !mlp)
      mlp = m;
    if (auto r = dyn_cast<llm::RotaryTableOp>(op); r && !rotary)
      rotary = r;
  });
  if (!attention || !tokenEmbedding)
    return fail("expected paged attention and a token embedding in @prefill");
  c.numHeads = attention.getNumHeads();
  auto tableType =
      dyn_cast<RankedTensorType>(tokenEmbedding.getTable().getType());
  if (!tableType || tableType.getRank() != 2 || !tableType.hasStaticShape())
    return fail("expected a static [vocab, hidden] embedding table");
  c.hiddenSize = tableType.getDimSize(1);
  Type elem = tableType.getElementType();
  c.dtype = elem.isF32() ? "f32" : elem.isF16() ? "f16" : elem.isBF16() ? "bf16" : "";
  if (c.dtype.empty()) {
    std::string type;
    llvm::raw_string_ostream os(type);
    os << tableType;
    return fail("embedding table of unsupported type " + type);
  }

  std::string configSource;
  std::optional<llvm::json::Object> json =
      readConfigJson(options.modelDir, configSource);
  const llvm::json::Object *cfg = json ? &*json : nullptr;
  if (!cfg)
    notes.push_back("no config.json in " + options.modelDir +
                    ": context length, BOS/EOS and MLP width use defaults");

  if (mlp) {
    auto gate = dyn_cast<RankedTensorType>(mlp.getGateWeight().getType());
    if (gate && gate.hasStaticShape())
      c.intermediateSize =
          gate.getDimSize(mlp.getTransposeWeights() ? 0 : 1);
  }
  if (c.intermediateSize <= 0)
    c.intermediateSize =
        intKey(cfg, {"intermediate_size", "n_inner", "ffn_dim"})
            .value_or(4 * c.hiddenSize);

  if (rotary && rotary.getTheta())
    c.ropeTheta = rotary.getTheta()->convertToDouble();
  else if (auto theta = ropeThetaKey(cfg))
    c.ropeTheta = *theta;
  else
    c.ropeTheta = 10000.0;

  if (options.contextLength > 0) {
    c.contextLength = options.contextLength;
  } else if (auto ctx = intKey(cfg, {"max_position_embeddings", "n_positions",
                                     "max_sequence_length", "seq_length",
                                     "n_ctx"})) {
    c.contextLength = static_cast<int32_t>(*ctx);
  } else {
    c.contextLength = 2048;
    notes.push_back("no context length in the config: using 2048 (set "
                    "--context-length)");
  }

  std::optional<int64_t> bos = intKey(cfg, {"bos_token_id"}),
                         eos = intKey(cfg, {"eos_token_id"});
  if (!options.tokenizerPath.empty()) {
    auto bytes = llvm::MemoryBuffer::getFile(options.tokenizerPath);
    if (!bytes)
      return module.emitError() << "cannot read tokenizer '"
                                << options.tokenizerPath
                                << "': " << bytes.getError().message();
    StringRef data = (*bytes)->getBuffer();
    model.tokenizer.assign(data.begin(), data.end());
    std::string error;
    auto tokenizer = readSentencePieceInfo(model.tokenizer, error);
    if (!tokenizer)
      return module.emitError() << "tokenizer '" << options.tokenizerPath
                                << "': " << error;
    if (tokenizer->vocabSize > c.vocabSize)
      return module.emitError()
             << "tokenizer '" << options.tokenizerPath << "' has "
             << tokenizer->vocabSize << " pieces, more than the model's "
             << c.vocabSize << " logits";
    if (tokenizer->bosId >= 0)
      bos = tokenizer->bosId;
    if (tokenizer->eosId >= 0)
      eos = tokenizer->eosId;
  }
  bool hadIds = bos && eos;
  // Tiny test exports keep the full model's token ids in a small vocabulary.
  for (auto [id, what] : {std::pair<std::optional<int64_t> *, const char *>{
                              &bos, "BOS"},
                          {&eos, "EOS"}})
    if (*id && (**id < 0 || **id >= c.vocabSize)) {
      notes.push_back(std::string(what) + " token id " +
                      std::to_string(**id) + " of " + configSource +
                      " is outside the vocabulary of " +
                      std::to_string(c.vocabSize) + ": using 0");
      id->reset();
    }
  if (!hadIds)
    notes.push_back("no BOS/EOS token ids in the config or tokenizer: using "
                    "0");
  c.bosTokenId = static_cast<int32_t>(bos.value_or(0));
  c.eosTokenId = static_cast<int32_t>(eos.value_or(0));

  rt::Status valid = c.validate();
  if (!valid.isOk())
    return fail(valid.message());
  return success();
}
