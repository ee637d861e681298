//===- KernelTable.cpp - The Kernels section ------------------------------===//

#include "kiln/runtime/KernelTable.h"

#include "ByteStream.h"

#include <set>
#include <sstream>

namespace kiln::runtime {

const char *launchScaleName(LaunchScale scale) {
  switch (scale) {
  case LaunchScale::None:
    return "fixed";
  case LaunchScale::Tokens:
    return "T";
  case LaunchScale::Seqs:
    return "N";
  case LaunchScale::Copies:
    return "copies";
  case LaunchScale::TokenChunks:
    return "T/tokens";
  }
  return "unknown";
}

const char *launchRepeatName(LaunchRepeat repeat) {
  switch (repeat) {
  case LaunchRepeat::Once:
    return "once";
  case LaunchRepeat::PerToken:
    return "per_token";
  case LaunchRepeat::PerLayer:
    return "per_layer";
  }
  return "unknown";
}

const char *argAccessName(ArgAccess access) {
  switch (access) {
  case ArgAccess::In:
    return "in";
  case ArgAccess::Out:
    return "out";
  case ArgAccess::Scratch:
    return "scratch";
  case ArgAccess::ZeroedScratch:
    return "zeroed";
  }
  return "unknown";
}

const char *weightLayoutName(WeightLayout layout) {
  switch (layout) {
  case WeightLayout::None:
    return "none";
  case WeightLayout::NK:
    return "NK";
  }
  return "unknown";
}

std::string KernelInfo::param(const std::string &key) const {
  for (const auto &p : params)
    if (p.first == key)
      return p.second;
  return std::string();
}

const KernelInfo *KernelTable::find(const std::string &name) const {
  for (const KernelInfo &k : kernels)
    if (k.name == name)
      return &k;
  return nullptr;
}

const EntryKernels *KernelTable::bindingsFor(std::string_view entry) const {
  for (const EntryKernels &e : bindings)
    if (e.entry == entry)
      return &e;
  return nullptr;
}

size_t KernelTable::numGenerated() const {
  size_t n = 0;
  for (const KernelInfo &k : kernels)
    n += k.status == KernelStatus::Generated;
  return n;
}

size_t KernelTable::numMissing() const {
  return kernels.size() - numGenerated();
}

size_t KernelTable::numCubins() const {
  size_t n = 0;
  for (const KernelInfo &k : kernels)
    n += !k.cubin.empty();
  return n;
}

/// "KKNT": the payload's first four bytes.
static constexpr uint32_t kTableMagic = 0x544e4b4bu;

std::vector<uint8_t> KernelTable::serialize() const {
  ByteWriter w;
  w.u32(kTableMagic);
  w.u32(kFormatVersion);
  w.str(target);
  w.u32(static_cast<uint32_t>(kernels.size()));
  for (const KernelInfo &k : kernels) {
    w.str(k.name);
    w.str(k.family);
    w.u8(static_cast<uint8_t>(k.status));
    w.u8(0);
    w.u16(0);
    w.u32(k.uses);
    w.u32(static_cast<uint32_t>(k.params.size()));
    for (const auto &p : k.params) {
      w.str(p.first);
      w.str(p.second);
    }
    if (k.status == KernelStatus::Missing) {
      w.str(k.reason);
      continue;
    }
    for (int64_t g : k.grid)
      w.i64(g);
    for (int64_t b : k.block)
      w.i64(b);
    w.i64(k.dynamicSharedBytes);
    w.u8(static_cast<uint8_t>(k.gridScale));
    w.u8(k.gridScaleDim);
    w.u8(static_cast<uint8_t>(k.repeat));
    w.u8(static_cast<uint8_t>(k.weightLayout));
    w.u32(static_cast<uint32_t>(k.args.size()));
    for (const KernelArgInfo &a : k.args) {
      w.str(a.name);
      w.u8(static_cast<uint8_t>(a.dtype));
      w.u8(static_cast<uint8_t>(a.access));
      w.u16(0);
      w.u32(static_cast<uint32_t>(a.shape.size()));
      for (int64_t d : a.shape)
        w.i64(d);
    }
    w.str(k.ptx);
    w.u64(k.cubin.size());
    w.raw(k.cubin.data(), k.cubin.size());
  }
  w.u32(static_cast<uint32_t>(bindings.size()));
  for (const EntryKernels &e : bindings) {
    w.str(e.entry);
    w.u32(static_cast<uint32_t>(e.steps.size()));
    for (const std::vector<uint32_t> &step : e.steps) {
      w.u32(static_cast<uint32_t>(step.size()));
      for (uint32_t index : step)
        w.u32(index);
    }
  }
  return w.take();
}

StatusOr<KernelTable> KernelTable::deserialize(Span<const uint8_t> bytes) {
  ByteReader r(bytes);
  uint32_t magic = r.u32("kernel table magic");
  if (r.ok() && magic != kTableMagic)
    return makeError(StatusCode::DataLoss,
                     "kernel table: bad magic (not a kernel table payload)");
  uint32_t version = r.u32("kernel table version");
  if (r.ok() && version != kFormatVersion)
    return makeError(StatusCode::Unimplemented,
                     "unsupported kernel table version ", version,
                     " (this runtime reads version ", kFormatVersion, ")");
  KernelTable table;
  table.target = r.str("kernel table target");
  uint32_t count = r.count("kernel count", 20);
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    KernelInfo k;
    k.name = r.str("kernel name");
    k.family = r.str("kernel family");
    k.status = static_cast<KernelStatus>(r.u8("kernel status"));
    uint8_t pad8 = r.u8("kernel padding");
    uint16_t pad16 = r.u16("kernel padding");
    if (r.ok() && (pad8 || pad16))
      r.fail("kernel #" + std::to_string(i) + ": non-zero padding");
    k.uses = r.u32("kernel uses");
    uint32_t numParams = r.count("kernel parameter count", 8);
    for (uint32_t p = 0; p < numParams && r.ok(); ++p) {
      std::string key = r.str("parameter key");
      std::string value = r.str("parameter value");
      k.params.emplace_back(std::move(key), std::move(value));
    }
    if (!r.ok())
      break;
    if (k.status == KernelStatus::Missing) {
      k.reason = r.str("missing-kernel reason");
    } else if (k.status == KernelStatus::Generated) {
      for (int64_t &g : k.grid)
        g = r.i64("kernel grid");
      for (int64_t &b : k.block)
        b = r.i64("kernel block");
      k.dynamicSharedBytes = r.i64("kernel shared memory");
      k.gridScale = static_cast<LaunchScale>(r.u8("kernel grid scale"));
      k.gridScaleDim = r.u8("kernel grid scale dimension");
      k.repeat = static_cast<LaunchRepeat>(r.u8("kernel launch repeat"));
      k.weightLayout = static_cast<WeightLayout>(r.u8("kernel weight layout"));
      uint32_t numArgs = r.count("kernel argument count", 12);
      for (uint32_t a = 0; a < numArgs && r.ok(); ++a) {
        KernelArgInfo arg;
        arg.name = r.str("argument name");
        arg.dtype = static_cast<DType>(r.u8("argument dtype"));
        arg.access = static_cast<ArgAccess>(r.u8("argument access"));
        if (r.u16("argument padding") && r.ok())
          r.fail("kernel #" + std::to_string(i) + ": non-zero padding");
        uint32_t rank = r.count("argument rank", 8);
        for (uint32_t d = 0; d < rank && r.ok(); ++d)
          arg.shape.push_back(r.i64("argument dimension"));
        k.args.push_back(std::move(arg));
      }
      k.ptx = r.str("kernel PTX");
      std::vector<uint8_t> cubin = r.blob("kernel cubin");
      k.cubin = std::move(cubin);
    } else if (r.ok()) {
      return makeError(StatusCode::DataLoss, "kernel table: kernel #", i, " ('",
                       k.name, "'): unknown status ",
                       static_cast<int>(k.status));
    }
    table.kernels.push_back(std::move(k));
  }
  uint32_t numEntries = r.ok() ? r.count("binding entry count", 4) : 0;
  for (uint32_t e = 0; e < numEntries && r.ok(); ++e) {
    EntryKernels entry;
    entry.entry = r.str("binding entry name");
    uint32_t numSteps = r.count("binding step count", 4);
    for (uint32_t s = 0; s < numSteps && r.ok(); ++s) {
      uint32_t n = r.count("binding kernel count", 4);
      std::vector<uint32_t> step;
      for (uint32_t j = 0; j < n && r.ok(); ++j)
        step.push_back(r.u32("binding kernel index"));
      entry.steps.push_back(std::move(step));
    }
    table.bindings.push_back(std::move(entry));
  }
  if (!r.ok())
    return makeError(StatusCode::DataLoss, "kernel table: ", r.error());
  if (!r.atEnd())
    return makeError(StatusCode::DataLoss, "kernel table: ", r.remaining(),
                     " trailing bytes after the last kernel");
  Status valid = table.validate();
  if (!valid.isOk())
    return valid;
  return table;
}

Status KernelTable::validate() const {
  std::set<std::string> names;
  for (size_t i = 0; i < kernels.size(); ++i) {
    const KernelInfo &k = kernels[i];
    auto bad = [&](const auto &...what) {
      return makeError(StatusCode::DataLoss, "kernel table: kernel #", i, " ('",
                       k.name, "'): ", what...);
    };
    if (k.name.empty())
      return bad("empty name");
    if (k.family.empty())
      return bad("empty family");
    if (!names.insert(k.name).second)
      return bad("duplicate name");
    for (const auto &p : k.params)
      if (p.first.empty())
        return bad("empty parameter key");
    if (k.status == KernelStatus::Missing) {
      if (k.reason.empty())
        return bad("missing kernel without a reason");
      continue;
    }
    if (k.status != KernelStatus::Generated)
      return bad("unknown status ", static_cast<int>(k.status));
    int64_t threads = 1;
    for (int d = 0; d < 3; ++d) {
      if (k.grid[d] <= 0 || k.grid[d] > (int64_t(1) << 31))
        return bad("grid dimension ", d, " is ", k.grid[d]);
      if (k.block[d] <= 0 || k.block[d] > 1024)
        return bad("block dimension ", d, " is ", k.block[d]);
      threads *= k.block[d];
    }
    if (threads > 1024)
      return bad("block of ", threads, " threads (at most 1024)");
    if (k.dynamicSharedBytes < 0)
      return bad("negative dynamic shared memory");
    if (static_cast<uint8_t>(k.gridScale) > 4)
      return bad("unknown grid scale ", static_cast<int>(k.gridScale));
    if (k.gridScaleDim > 2)
      return bad("grid scale dimension ", static_cast<int>(k.gridScaleDim));
    if (static_cast<uint8_t>(k.repeat) > 2)
      return bad("unknown launch repeat ", static_cast<int>(k.repeat));
    if (static_cast<uint8_t>(k.weightLayout) > 1)
      return bad("unknown weight layout ", static_cast<int>(k.weightLayout));
    if (k.args.empty())
      return bad("no arguments");
    for (const KernelArgInfo &a : k.args) {
      if (a.name.empty())
        return bad("an argument without a name");
      if (dtypeBytes(a.dtype) == 0)
        return bad("argument '", a.name, "': unknown dtype ",
                   static_cast<int>(a.dtype));
      if (a.access < ArgAccess::In || a.access > ArgAccess::ZeroedScratch)
        return bad("argument '", a.name, "': unknown access ",
                   static_cast<int>(a.access));
      for (int64_t d : a.shape)
        if (d <= 0)
          return bad("argument '", a.name, "': dimension ", d);
    }
    if (k.gridScale == LaunchScale::TokenChunks) {
      std::string tokens = k.param("tokens");
      if (tokens.empty() ||
          tokens.find_first_not_of("0123456789") != std::string::npos ||
          std::stoll(tokens) < 1)
        return bad("grid scale T/tokens without a positive 'tokens' "
                   "parameter");
    }
    for (const char *key : {"chunked", "tiled", "skinny", "flash"})
      if (std::string v = k.param(key); !v.empty()) {
        const KernelInfo *variant = find(v);
        if (!variant || variant->gridScale != LaunchScale::TokenChunks)
          return bad("'", key, "' names '", v,
                     "', not a row-chunked kernel of the table");
      }
    if (std::string v = k.param("dequant"); !v.empty()) {
      const KernelInfo *variant = find(v);
      if (!variant || variant->family != "qdequant" || k.param("tiled").empty())
        return bad("'dequant' names '", v,
                   "', not a qdequant kernel of the table, or comes without "
                   "a 'tiled' GEMM");
    }
    if (std::string v = k.param("gated"); !v.empty()) {
      const KernelInfo *variant = find(v);
      if (!variant || variant->family != "gemv_gated")
        return bad("'gated' names '", v,
                   "', not a fused gate/up gemv of the table");
    }
    if (k.ptx.empty())
      return bad("no PTX");
    if (k.ptx.find(".entry " + k.name) == std::string::npos)
      return bad("the PTX has no .entry ", k.name);
  }
  std::set<std::string> entries;
  for (const EntryKernels &e : bindings) {
    if (e.entry.empty() || !entries.insert(e.entry).second)
      return makeError(StatusCode::DataLoss,
                       "kernel table: bindings of entry point '", e.entry,
                       "' are empty-named or repeated");
    for (size_t s = 0; s < e.steps.size(); ++s)
      for (uint32_t index : e.steps[s])
        if (index >= kernels.size())
          return makeError(StatusCode::DataLoss, "kernel table: entry point '",
                           e.entry, "' step #", s, " names kernel #", index,
                           " of ", kernels.size());
  }
  return Status::ok();
}

std::string describeKernelTable(const KernelTable &table) {
  std::ostringstream os;
  os << "kernels for " << table.target << ": " << table.numGenerated()
     << " generated (" << table.numCubins() << " with cubin), "
     << table.numMissing() << " missing\n";
  for (const EntryKernels &e : table.bindings) {
    size_t launches = 0, kernelSteps = 0;
    for (const std::vector<uint32_t> &step : e.steps) {
      launches += step.size();
      kernelSteps += !step.empty();
    }
    os << "  entry " << e.entry << ": " << kernelSteps << " of "
       << e.steps.size() << " steps launch " << launches << " kernels\n";
  }
  for (const KernelInfo &k : table.kernels) {
    if (k.status == KernelStatus::Missing) {
      os << "  missing   " << k.family;
      for (const auto &p : k.params)
        os << " " << p.first << "=" << p.second;
      os << " uses=" << k.uses << ": " << k.reason << "\n";
      continue;
    }
    os << "  generated " << k.family << " " << k.name;
    for (const auto &p : k.params)
      os << " " << p.first << "=" << p.second;
    os << " uses=" << k.uses << " grid=" << k.grid[0] << "," << k.grid[1] << ","
       << k.grid[2] << " block=" << k.block[0] << "," << k.block[1] << ","
       << k.block[2] << " smem=" << k.dynamicSharedBytes;
    if (k.gridScale != LaunchScale::None)
      os << " grid."
         << "xyz"[k.gridScaleDim] << "*=" << launchScaleName(k.gridScale);
    if (k.repeat != LaunchRepeat::Once)
      os << " launch=" << launchRepeatName(k.repeat);
    if (k.weightLayout != WeightLayout::None)
      os << " weight=" << weightLayoutName(k.weightLayout);
    os << " args=";
    for (size_t a = 0; a < k.args.size(); ++a) {
      const KernelArgInfo &arg = k.args[a];
      os << (a ? "," : "") << arg.name << ":" << dtypeName(arg.dtype) << "[";
      for (size_t d = 0; d < arg.shape.size(); ++d)
        os << (d ? "x" : "") << arg.shape[d];
      os << "]";
      if (arg.access != ArgAccess::In)
        os << ":" << argAccessName(arg.access);
    }
    os << " ptx=" << k.ptx.size() << "B";
    if (!k.cubin.empty())
      os << " cubin=" << k.cubin.size() << "B";
    os << "\n";
  }
  return os.str();
}

} // namespace kiln::runtime
