//===- HostDevice.h - The launch plan on the CPU, in fp32 ----------------===//
//
// The reference device of the runtime: every step kind in plain C++
// (HostKernels.h) computing in fp32; weight matrices stay in their stored
// dtype (the artifact's mapped bytes when aligned) and are widened inside
// the matrix product, smaller weights get fp32 copies; the KV cache is a
// real in-place buffer of the model's cache dtype laid out as [layers,
// num_blocks, 2, kv_heads, block_size, head_dim]. It is what the CUDA device is checked against, and it runs
// small models at usable speed (kiln-run --device host).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_HOSTDEVICE_H
#define KILN_RUNTIME_HOSTDEVICE_H

#include "kiln/runtime/Device.h"
#include "kiln/runtime/HostKernels.h"

#include <map>
#include <memory>
#include <vector>

namespace kiln::runtime {

class HostDevice : public Device {
public:
  /// With `roundToStorage`, every step's results are rounded to their
  /// buffers' dtypes (f16/bf16) as a GPU stores them; by default the host
  /// keeps activations in fp32 (a higher-precision reference).
  explicit HostDevice(bool roundToStorage = false);
  ~HostDevice() override;

  std::string name() const override {
    return roundToStorage_ ? "host:storage" : "host";
  }
  Status prepare(std::shared_ptr<const Model> model,
                 const KVCacheConfig &cache) override;
  Status run(const EntryPoint &entry, const ForwardBatch &batch,
             Span<const int32_t> tokens, std::vector<float> &logits) override;
  Status writeCache(int32_t layer, Span<const int64_t> slots,
                    Span<const float> keys, Span<const float> values) override;
  Status readCache(int32_t layer, Span<const int64_t> slots,
                   std::vector<float> &keys,
                   std::vector<float> &values) override;

  /// The cache memory (for tests and tools that inspect it).
  const host::KVCacheView &cache() const { return cacheView_; }
  /// Fills the cache with NaN, so that a read of a slot no step wrote
  /// shows up in the logits.
  void poisonCache();

private:
  struct EntryState;
  bool roundToStorage_ = false;
  /// host:storage's rounding to `dtype`, or null.
  float (*storageRounding(DType dtype) const)(float);
  /// The checks writeCache and readCache share.
  Status checkCacheAccess(const char *what, int32_t layer,
                          Span<const int64_t> slots) const;
  Status prepareEntry(const EntryPoint &entry, EntryState &state);
  /// Decides, from how the plan reads each weight, which copies it needs.
  void prepareWeights();
  /// The fp32 [K, N] matrix of a QuantLinear or SparseLinear step's packed
  /// weight, into transposed_ of its codes' (values') entry, when all its
  /// parts are weights.
  void decodePacked(const EntryPoint &entry, const Step &s);

  std::shared_ptr<const Model> model_;
  /// Every weight in its stored dtype: the model's bytes when aligned.
  std::vector<host::WeightRef> raw_;
  std::vector<std::vector<uint8_t>> owned_;
  /// fp32 copies of weights that steps other than matrix products and
  /// embeddings read (norm scales, biases), and [K, N] fp32 copies of
  /// weights read transposed and of packed weights decoded.
  std::vector<std::vector<float>> weights_;
  std::vector<std::vector<float>> transposed_;
  std::vector<uint8_t> cacheMemory_;
  host::KVCacheView cacheView_;
  std::map<const EntryPoint *, std::unique_ptr<EntryState>> entries_;
  std::vector<float> scratch_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_HOSTDEVICE_H
