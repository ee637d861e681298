//===- StepTimer.cpp - GPU time and launches per entry point --------------===//

#include "StepTimer.h"

#include <cstdio>
#include <cstdlib>

namespace kiln::runtime {

StepTimer::StepTimer(const cuda::Driver *driver) : d_(driver) {
  const char *v = std::getenv("KILN_STEP_TIMING");
  enabled_ = v && std::string(v) != "0";
  listKernels_ = v && std::string(v) == "2";
}

void StepTimer::noteLaunch(const char *name) {
  if (listKernels_)
    stepKernels_.push_back(name);
}

StepTimer::~StepTimer() {
  if (start_)
    d_->cuEventDestroy(start_);
  if (stop_)
    d_->cuEventDestroy(stop_);
}

void StepTimer::beginStep() {
  if (!enabled_)
    return;
  wallStart_ = std::chrono::steady_clock::now();
  launches_ = 0;
  stepKernels_.clear();
}

void StepTimer::kernelsBegin(cuda::CUstream stream) {
  if (!enabled_)
    return;
  // Created lazily: the device's context is current by the first step.
  if (!start_ && (d_->cuEventCreate(&start_, 0) != cuda::CUDA_SUCCESS ||
                  d_->cuEventCreate(&stop_, 0) != cuda::CUDA_SUCCESS)) {
    std::fprintf(stderr, "kiln: KILN_STEP_TIMING: cannot create events; "
                         "step timing is off\n");
    enabled_ = false;
    return;
  }
  d_->cuEventRecord(start_, stream);
}

void StepTimer::kernelsEnd(cuda::CUstream stream) {
  if (enabled_)
    d_->cuEventRecord(stop_, stream);
}

void StepTimer::endStep(const std::string &entry, int64_t rows) {
  if (!enabled_ || !start_)
    return;
  // A replayed graph issues no launches of its own: the capture listed them.
  if (!stepKernels_.empty())
    kernelLists_.emplace(entry + " T=" + std::to_string(rows), stepKernels_);
  float ms = 0;
  if (d_->cuEventElapsedTime(&ms, start_, stop_) != cuda::CUDA_SUCCESS)
    return;
  Totals &t = totals_[entry];
  t.steps += 1;
  t.launches += launches_;
  t.gpuSeconds += ms * 1e-3;
  t.wallSeconds += std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - wallStart_)
                       .count();
}

std::string StepTimer::report(const std::string &model) const {
  std::string out;
  char line[256];
  for (const auto &[entry, t] : totals_) {
    double n = double(t.steps);
    std::snprintf(line, sizeof(line),
                  "kiln: step timing: %s %-12s %8lld steps  GPU %8.1f us/step  "
                  "wall %8.1f us/step  %6.1f launches/step\n",
                  model.c_str(), entry.c_str(), static_cast<long long>(t.steps),
                  t.gpuSeconds / n * 1e6, t.wallSeconds / n * 1e6,
                  double(t.launches) / n);
    out += line;
  }
  for (const auto &[step, kernels] : kernelLists_) {
    out += "kiln: step kernels: " + model + " " + step + ":";
    for (const std::string &k : kernels)
      out += " " + k;
    out += "\n";
  }
  return out;
}

} // namespace kiln::runtime
