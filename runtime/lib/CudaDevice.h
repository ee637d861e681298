//===- CudaDevice.h - Running launch plans with the generated kernels -----===//
//
// The GPU device: loads the artifact's Kernels section (cubins, or PTX the
// driver compiles), uploads the weights (transposed where a kernel reads
// W [N, K] and the plan stores [K, N]) and allocates the paged KV cache
// [layers, blocks, 2, kv_heads, block, head_dim]. Each entry point becomes
// a program at prepare time: per plan step, the kernel launches the
// table's bindings name, with every argument resolved to a plan buffer, a
// layer of the cache or device scratch. A step uploads the batch's arrays
// once, runs the launches in order on one stream and copies the logits
// back; the only host synchronization is that final copy.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CUDADEVICE_H
#define KILN_RUNTIME_CUDADEVICE_H

#include "CudaDriver.h"
#include "StepTimer.h"

#include "kiln/runtime/Device.h"

#include <map>
#include <memory>

namespace kiln::runtime {

class CudaDevice : public Device {
public:
  /// Opens device `ordinal`: Unimplemented without a driver, NotFound for
  /// an ordinal past the machine's GPUs.
  static StatusOr<std::unique_ptr<Device>> open(int ordinal);
  ~CudaDevice() override;

  std::string name() const override;
  Status prepare(std::shared_ptr<const Model> model,
                 const KVCacheConfig &cache) override;
  Status run(const EntryPoint &entry, const ForwardBatch &batch,
             Span<const int32_t> tokens, std::vector<float> &logits) override;
  Status writeCache(int32_t layer, Span<const int64_t> slots,
                    Span<const float> keys, Span<const float> values) override;
  Status runGreedy(const EntryPoint &entry, const ForwardBatch &batch,
                   Span<const int32_t> tokens,
                   std::vector<int32_t> &ids) override;
  /// Steps of a graph-captured entry point run back to back: each step's
  /// upload comes from its own pinned staging, a 2-D copy moves the
  /// previous step's argmax ids into the tokens input (i32 into the low
  /// halves of i64), each step's ids are gathered on the device, and one
  /// copy back and synchronization serve the chain.
  Status runGreedyChain(const EntryPoint &entry,
                        Span<const ForwardBatch> batches,
                        Span<const int32_t> tokens,
                        std::vector<int32_t> &ids) override;
  StatusOr<double> measureCopyBandwidth(int64_t bytes) override;
  Status readCache(int32_t layer, Span<const int64_t> slots,
                   std::vector<float> &keys,
                   std::vector<float> &values) override;

  struct Program;
  struct Memory;

private:
  CudaDevice(const cuda::Driver *driver, int ordinal);
  Status loadKernels(const KernelTable &table);
  /// run and runGreedy: the logits into `logits`, or (with `ids`) each
  /// logits row's greedy token picked on the device.
  Status execute(const EntryPoint &entry, const ForwardBatch &batch,
                 Span<const int32_t> tokens, std::vector<float> *logits,
                 std::vector<int32_t> *ids);
  Status uploadWeights();
  Status buildProgram(const EntryPoint &entry, Program &program);
  Status checkCacheAccess(const char *what, int32_t layer,
                          Span<const int64_t> slots) const;
  /// Device byte offset of (layer, slot's block, K or V, head 0, slot's
  /// offset, 0); rows of different heads are blockSize * headDim apart.
  int64_t cacheRowOffset(int32_t layer, int64_t slot, int kv) const;
  /// Launches kernel `kernel` on the device's stream; with programmatic
  /// dependent launch (pdl_) through cuLaunchKernelEx, so that its CTAs may
  /// be scheduled while the previous kernel finishes (the generated kernels
  /// wait for it with griddepcontrol.wait before touching memory).
  Status launchOnStream(uint32_t kernel, const int64_t grid[3],
                        const int64_t block[3], int64_t sharedBytes,
                        void **params, const char *what);

  const cuda::Driver *d_;
  int ordinal_;
  /// KILN_CUDA_GRAPHS=0 turns step graphs off (debugging, measuring).
  bool graphsEnabled_ = true;
  /// Programmatic dependent launch: sm_90+, a driver with cuLaunchKernelEx,
  /// and not turned off with KILN_PDL=0.
  bool pdl_ = false;
  std::string deviceName_;
  int ccMajor_ = 0, ccMinor_ = 0;
  cuda::CUdevice device_ = 0;
  cuda::CUcontext context_ = nullptr;
  cuda::CUstream stream_ = nullptr;
  std::shared_ptr<const Model> model_;
  KVCacheConfig cache_;
  DType cacheDType_ = DType::F16;
  std::vector<cuda::CUmodule> modules_;
  /// Per kernel table entry (null for missing entries).
  std::vector<cuda::CUfunction> functions_;
  /// The table's argmax kernel for this vocabulary (-1: none).
  int32_t argmaxKernel_ = -1;
  /// Per weight: its bytes as stored and, where a kernel reads it
  /// transposed, the [N, K] copy.
  std::vector<std::unique_ptr<Memory>> weights_, transposed_;
  std::unique_ptr<Memory> kvCache_;
  std::map<const EntryPoint *, std::unique_ptr<Program>> programs_;
  /// Kernels launched so far (launchOnStream), for the step timer's count.
  int64_t launchesIssued_ = 0;
  /// A step of runGreedyChain (null otherwise): execute uploads from the
  /// pinned chainStaging_[slot] (grown as needed: a slot serves one step of
  /// a chain, and a chain ends synchronized), feeds `tokensFrom` (the
  /// previous step's i32 ids; 0: the given tokens) and, instead of copying
  /// its ids back, copies them to `idsTo` and leaves the stream running;
  /// `idsAt` receives where it wrote them.
  struct ChainStep {
    size_t slot = 0;
    cuda::CUdeviceptr tokensFrom = 0, idsTo = 0, idsAt = 0;
  };
  ChainStep *chain_ = nullptr;
  /// Pinned staging per chain position, and the chain's ids on the device.
  std::vector<std::pair<void *, size_t>> chainStaging_;
  std::unique_ptr<Memory> chainIds_;
  StepTimer timer_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_CUDADEVICE_H
