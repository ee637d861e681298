//===- StepTimer.h - GPU time and launches per entry point ------*- C++ -*-===//
//
// With KILN_STEP_TIMING=1 the CUDA device brackets each step's kernels with
// two events and counts its launches (a replayed graph counts the launches
// it captured), and prints per entry point, when the device closes, the
// mean GPU time of a step next to its mean wall time. The difference is
// what the host adds to a step (batch checks, staging, the copy back), the
// part a device-side loop of steps would save; launches a step tell what
// a fused or persistent kernel would save. KILN_STEP_TIMING=2 also lists
// the kernels of the first step of each entry point and row count. Off, it
// costs nothing.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_STEPTIMER_H
#define KILN_RUNTIME_STEPTIMER_H

#include "CudaDriver.h"

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace kiln::runtime {

class StepTimer {
public:
  /// On when KILN_STEP_TIMING is set to anything but "0".
  explicit StepTimer(const cuda::Driver *driver);
  ~StepTimer();
  StepTimer(const StepTimer &) = delete;
  StepTimer &operator=(const StepTimer &) = delete;

  bool enabled() const { return enabled_; }
  /// A step of `entry` starts (host side): its wall clock starts.
  void beginStep();
  /// Its kernels start / have all been issued on `stream`.
  void kernelsBegin(cuda::CUstream stream);
  void kernelsEnd(cuda::CUstream stream);
  /// `launches` kernels were issued for the step.
  void countLaunches(int64_t launches) { launches_ += launches; }
  /// With KILN_STEP_TIMING=2: kernel `name` was issued (eagerly or into a
  /// graph being captured); the first step of each entry point and row
  /// count lists them, in order, in the report.
  void noteLaunch(const char *name);
  /// The step has synchronized: its times are read and added to `entry`;
  /// `rows` is its token row count (for the kernel lists).
  void endStep(const std::string &entry, int64_t rows);
  /// The per-entry table of `model` ("" when nothing was timed).
  std::string report(const std::string &model) const;

private:
  struct Totals {
    int64_t steps = 0, launches = 0;
    double gpuSeconds = 0, wallSeconds = 0;
  };
  const cuda::Driver *d_;
  bool enabled_ = false;
  cuda::CUevent start_ = nullptr, stop_ = nullptr;
  std::chrono::steady_clock::time_point wallStart_;
  int64_t launches_ = 0;
  std::map<std::string, Totals> totals_;
  bool listKernels_ = false;
  std::vector<std::string> stepKernels_;
  /// "entry T=rows": the kernels of its first step that launched any.
  std::map<std::string, std::vector<std::string>> kernelLists_;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_STEPTIMER_H
