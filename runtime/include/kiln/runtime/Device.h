//===- Device.h - Where a launch plan's steps run -------------------------===//
//
// A device owns the memory of a model's weights, the step buffers and the
// paged KV cache ([layers, num_blocks, 2, kv_heads, block_size, head_dim]
// of the model's cache dtype), and runs an entry point's steps for one
// ForwardBatch. The host device (HostDevice.h) runs every step kind in
// plain C++ fp32; the CUDA device (CudaDevice.h) launches the
// artifact's generated kernels.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DEVICE_H
#define KILN_RUNTIME_DEVICE_H

#include "kiln/runtime/ForwardBatch.h"
#include "kiln/runtime/KVCacheConfig.h"
#include "kiln/runtime/LaunchPlan.h"
#include "kiln/runtime/Model.h"
#include "kiln/runtime/Span.h"
#include "kiln/runtime/Status.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime {

class Device {
public:
  virtual ~Device();

  /// "host", "cuda:0", ...
  virtual std::string name() const = 0;

  /// Takes the model's weights (converting or uploading them) and
  /// allocates a KV cache of `cache.numBlocks` blocks whose geometry must
  /// match the model's. Called once, before run.
  virtual Status prepare(std::shared_ptr<const Model> model,
                         const KVCacheConfig &cache) = 0;

  /// Runs `entry` (one of the prepared model's entry points) for one step:
  /// applies `batch.copies`, binds the batch's arrays and `tokens` (one id
  /// per batch token) to the entry's inputs, runs the steps in order (the
  /// KV writes land in the cache) and returns the logits as fp32 rows of
  /// vocab_size: N rows (one per sequence) or T (every token, for
  /// entry points with all logits). Inconsistent arrays, token ids outside
  /// the vocabulary or slots outside the cache are InvalidArgument /
  /// OutOfRange, never undefined behaviour.
  virtual Status run(const EntryPoint &entry, const ForwardBatch &batch,
                     Span<const int32_t> tokens,
                     std::vector<float> &logits) = 0;

  /// Runs `entry` like run and returns each logits row's greedy token
  /// (the first index of its largest logit) instead of the logits, or -1
  /// for a row with a NaN or +inf logit or none finite (the caller reports
  /// it). The default runs `run` and picks on the host; the CUDA device
  /// picks on the device and copies back one id per row.
  virtual Status runGreedy(const EntryPoint &entry, const ForwardBatch &batch,
                           Span<const int32_t> tokens,
                           std::vector<int32_t> &ids);

  /// Greedy steps of `entry` in a chain: step 0 feeds `tokens`, step r > 0
  /// feeds step r - 1's greedy ids (every batch one row a sequence, in the
  /// same sequence order), as a speculative draft's K proposal steps do.
  /// `ids` receives batches.size() rows of ids per sequence, step by step
  /// (-1 as runGreedy gives it). The default runs runGreedy step by step,
  /// feeding the ids back from the host; the CUDA device feeds them on the
  /// device and synchronizes once for the whole chain.
  virtual Status runGreedyChain(const EntryPoint &entry,
                                Span<const ForwardBatch> batches,
                                Span<const int32_t> tokens,
                                std::vector<int32_t> &ids);

  /// Writes keys and values of layer `layer` into the KV cache:
  /// `keys`/`values` are fp32 [slots.size(), kv_heads, head_dim], rounded
  /// to the cache dtype; slot j (block * block_size + offset, as in
  /// ForwardBatch::slotMapping) receives row j. For caches filled from
  /// outside a step (an exporter's past keys and values). A layer or slot
  /// outside the cache is OutOfRange, arrays of the wrong size
  /// InvalidArgument; nothing is written then.
  virtual Status writeCache(int32_t layer, Span<const int64_t> slots,
                            Span<const float> keys,
                            Span<const float> values) = 0;

  /// Reads the keys and values of layer `layer` at `slots` back as fp32
  /// [slots.size(), kv_heads, head_dim] (resizing `keys` and `values`).
  /// Same errors as writeCache.
  /// Device-to-device copy bandwidth in bytes per second, read and write
  /// both counted (the decode floor's denominator), measured on `bytes`
  /// of memory; Unimplemented for devices without one (the host).
  virtual StatusOr<double> measureCopyBandwidth(int64_t bytes) {
    return makeError(StatusCode::Unimplemented, name(),
                     " has no copy bandwidth to measure");
  }

  virtual Status readCache(int32_t layer, Span<const int64_t> slots,
                           std::vector<float> &keys,
                           std::vector<float> &values) = 0;
};

/// "host", "host:storage" (activations rounded to their plan dtypes, as
/// the GPU keeps them), "cuda" (GPU 0) or "cuda:N". Unimplemented for cuda on a
/// machine without a CUDA driver, NotFound for a GPU it does not have.
StatusOr<std::unique_ptr<Device>> createDevice(std::string_view kind);

/// createDevice + prepare. `kind` may also be "auto": the CUDA device when
/// the machine has one and the artifact carries kernels it can run, else
/// the host device; `note` (when given) then says why the host was chosen.
StatusOr<std::unique_ptr<Device>>
openPreparedDevice(std::string_view kind, std::shared_ptr<const Model> model,
                   const KVCacheConfig &cache, std::string *note = nullptr);

/// What every device's run checks first: the batch's arrays agree with
/// each other and with `tokens` (one id per token), and its block size is
/// the cache's; InvalidArgument naming the sizes otherwise.
Status checkForwardBatch(const ForwardBatch &batch, Span<const int32_t> tokens,
                         int32_t cacheBlockSize);

/// What every device's prepare checks first: a model, a valid cache
/// config, and the geometry (layers, KV heads, head_dim, block size,
/// element size) the model needs; InvalidArgument otherwise.
Status checkCacheFitsModel(const Model *model, const KVCacheConfig &cache);

/// The cache geometry a model needs, for `numBlocks` blocks.
KVCacheConfig kvCacheConfigFor(const Model &model, int32_t numBlocks);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_DEVICE_H
