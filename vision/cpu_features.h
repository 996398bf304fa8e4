// vision/cpu_features.h: what this CPU computes natively (AVX2, AVX-512, bf16, AMX, VNNI), read
// once, so precision and kernel defaults can follow the machine instead of one developer's CPU.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace attnkit::vision {

/// The instruction-set features that decide attnkit's defaults. Names follow /proc/cpuinfo.
struct CpuFeatures {
  std::string model;   ///< brand string, e.g. "AMD EPYC 7B13 64-Core Processor"
  std::string source;  ///< "cpuid", "/proc/cpuinfo" or "ATTNKIT_CPU_FEATURES"
  bool fma = false;
  bool avx2 = false;
  bool avx512f = false;
  bool avx512_bf16 = false;  ///< vdpbf16ps: bf16 dot products in AVX-512 registers
  bool avx512_vnni = false;
  bool avx_vnni = false;
  bool amx_tile = false;
  bool amx_bf16 = false;  ///< bf16 matrix tiles (Sapphire Rapids and later)

  /// True where bf16 matrix products run in hardware (AVX512-BF16 or AMX-BF16); elsewhere
  /// oneDNN emulates them, many times slower than fp32.
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
  /// (cpuinfo name, present) for every feature above, in a fixed order.
  std::vector<std::pair<std::string, bool>> list() const;
};

/// Features from a list of /proc/cpuinfo flag names (separated by spaces or commas); unknown
/// names are ignored. `model` and `source` are left empty.
CpuFeatures parse_cpu_flags(const std::string& flags);

/// "AMX-BF16", "AVX512-BF16", "AVX-512 without BF16", "AVX2 only" or "no AVX2": the widest
/// instruction set that matters for the precision choices.
std::string describe_vector_units(const CpuFeatures& cpu);

/// This CPU's features, read once (cpuid on x86, /proc/cpuinfo's first "flags" line otherwise).
/// $ATTNKIT_CPU_FEATURES, when set, replaces the flags (e.g. "avx2,fma" pretends an AVX2-only
/// CPU) so both sides of every CPU-dependent choice can be tested on any machine.
const CpuFeatures& cpu_features();

}  // namespace attnkit::vision
