//===- Device.cpp - Choosing and opening a device -------------------------===//

#include "kiln/runtime/Device.h"
#include "kiln/runtime/HostDevice.h"
#include "kiln/runtime/Sampler.h"

#include "CudaDevice.h"

#include <algorithm>
#include <cstdlib>

namespace kiln::runtime {

Device::~Device() = default;

Status checkForwardBatch(const ForwardBatch &batch, Span<const int32_t> tokens,
                         int32_t cacheBlockSize) {
  int64_t T = batch.numTokens(), N = batch.numSequences(),
          M = batch.maxBlocksPerSequence;
  if (T < 1 || N < 1 || M < 0 || (int64_t)tokens.size() != T ||
      (int64_t)batch.slotMapping.size() != T ||
      (int64_t)batch.queryStartLoc.size() != N + 1 ||
      (int64_t)batch.contextLengths.size() != N ||
      (int64_t)batch.blockTables.size() != N * M)
    return makeError(StatusCode::InvalidArgument,
                     "inconsistent forward batch: ", tokens.size(),
                     " token ids, ", T, " positions, ",
                     batch.slotMapping.size(), " slots, ", N,
                     " sequences with ", batch.queryStartLoc.size(),
                     " query start locations, ", batch.contextLengths.size(),
                     " context lengths and ", batch.blockTables.size(),
                     " block-table entries of width ", M);
  if (batch.blockSize != cacheBlockSize)
    return makeError(StatusCode::InvalidArgument, "forward batch of ",
                     batch.blockSize, "-token blocks for a cache of ",
                     cacheBlockSize);
  return Status::ok();
}

Status checkCacheFitsModel(const Model *model, const KVCacheConfig &cache) {
  if (!model)
    return makeError(StatusCode::InvalidArgument, "no model");
  KILN_RETURN_IF_ERROR(cache.validate());
  KVCacheConfig expected = kvCacheConfigFor(*model, cache.numBlocks);
  if (cache.numLayers != expected.numLayers ||
      cache.numKVHeads != expected.numKVHeads ||
      cache.headDim != expected.headDim ||
      cache.blockSize != expected.blockSize ||
      cache.elementBytes != expected.elementBytes)
    return makeError(StatusCode::InvalidArgument,
                     "KV cache geometry does not match the model (",
                     expected.numLayers, " layers, ", expected.numKVHeads,
                     " KV heads of ", expected.headDim, ", blocks of ",
                     expected.blockSize, ", ", expected.elementBytes,
                     "-byte elements)");
  return Status::ok();
}

Status Device::runGreedy(const EntryPoint &entry, const ForwardBatch &batch,
                         Span<const int32_t> tokens,
                         std::vector<int32_t> &ids) {
  std::vector<float> logits;
  KILN_RETURN_IF_ERROR(run(entry, batch, tokens, logits));
  int64_t rows = entry.logits == LogitsMode::All ? batch.numTokens()
                                                 : batch.numSequences();
  if (rows <= 0 || logits.size() % rows)
    return makeError(StatusCode::Internal, logits.size(),
                     " logits do not split into ", rows, " rows");
  size_t vocab = logits.size() / rows;
  ids.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    StatusOr<int32_t> id =
        Sampler::greedy(Span<const float>(logits.data() + r * vocab, vocab));
    ids[r] = id.isOk() ? *id : -1;
  }
  return Status::ok();
}

Status Device::runGreedyChain(const EntryPoint &entry,
                              Span<const ForwardBatch> batches,
                              Span<const int32_t> tokens,
                              std::vector<int32_t> &ids) {
  ids.clear();
  std::vector<int32_t> feed(tokens.begin(), tokens.end()), step;
  for (const ForwardBatch &batch : batches) {
    if (batch.numTokens() != batch.numSequences() ||
        batch.numTokens() != static_cast<int64_t>(feed.size()))
      return makeError(StatusCode::InvalidArgument,
                       "a chained greedy step feeds one token a sequence: ",
                       batch.numTokens(), " rows for ", batch.numSequences(),
                       " sequences and ", feed.size(), " tokens");
    KILN_RETURN_IF_ERROR(runGreedy(entry, batch, feed, step));
    ids.insert(ids.end(), step.begin(), step.end());
    // A row without a finite logit ends the chain: the caller reports it.
    if (std::find(step.begin(), step.end(), -1) != step.end())
      return Status::ok();
    feed = step;
  }
  return Status::ok();
}

StatusOr<std::unique_ptr<Device>> createDevice(std::string_view kind) {
  if (kind == "host")
    return std::unique_ptr<Device>(new HostDevice());
  if (kind == "host:storage")
    return std::unique_ptr<Device>(new HostDevice(/*roundToStorage=*/true));
  if (kind == "cuda")
    return CudaDevice::open(0);
  if (kind.substr(0, 5) == "cuda:") {
    std::string digits(kind.substr(5));
    char *end = nullptr;
    long ordinal = std::strtol(digits.c_str(), &end, 10);
    if (digits.empty() || *end || ordinal < 0)
      return makeError(StatusCode::InvalidArgument, "bad device '", kind,
                       "' (expected cuda:N)");
    return CudaDevice::open(static_cast<int>(ordinal));
  }
  return makeError(StatusCode::InvalidArgument, "unknown device '", kind,
                   "' (expected host, host:storage, cuda, cuda:N or auto)");
}

StatusOr<std::unique_ptr<Device>>
openPreparedDevice(std::string_view kind, std::shared_ptr<const Model> model,
                   const KVCacheConfig &cache, std::string *note) {
  if (kind == "auto") {
    StatusOr<std::unique_ptr<Device>> gpu = createDevice("cuda");
    Status why = gpu.isOk() ? (*gpu)->prepare(model, cache) : gpu.status();
    if (why.isOk())
      return std::move(gpu).value();
    if (note)
      *note = "the host device, since the CUDA device is not available: " +
              why.message();
    kind = "host";
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Device> device, createDevice(kind));
  KILN_RETURN_IF_ERROR(device->prepare(std::move(model), cache));
  return device;
}

} // namespace kiln::runtime
