// vision/cpu_features.cpp: cpuid (with the OS's register-state check) and /proc/cpuinfo readers.
#include "vision/cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define ATTNKIT_HAVE_CPUID 1
#endif

namespace attnkit::vision {
namespace {

/// Every feature's /proc/cpuinfo name, in the order `attn info` lists them.
const std::pair<const char*, bool CpuFeatures::*> kFlags[] = {
    {"avx2", &CpuFeatures::avx2},
    {"fma", &CpuFeatures::fma},
    {"avx512f", &CpuFeatures::avx512f},
    {"avx512_bf16", &CpuFeatures::avx512_bf16},
    {"amx_tile", &CpuFeatures::amx_tile},
    {"amx_bf16", &CpuFeatures::amx_bf16},
    {"avx512_vnni", &CpuFeatures::avx512_vnni},
    {"avx_vnni", &CpuFeatures::avx_vnni},
};

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

/// The value of the first "<key>\t: value" line of /proc/cpuinfo, or "".
std::string cpuinfo_field(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon != std::string::npos && trim(line.substr(0, colon)) == key) {
      return trim(line.substr(colon + 1));
    }
  }
  return "";
}

#ifdef ATTNKIT_HAVE_CPUID
bool bit(unsigned value, int n) { return ((value >> n) & 1u) != 0; }

/// Reads the features with cpuid. A feature counts only if the OS also saves its registers
/// (XCR0), as a kernel without AVX-512 or AMX state support makes the instructions fault.
bool read_cpuid(CpuFeatures& f) {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const bool osxsave = bit(ecx, 27);
  const bool fma = bit(ecx, 12);
  uint64_t xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  const bool avx_state = (xcr0 & 0x6) == 0x6;                    // XMM and YMM
  const bool avx512_state = avx_state && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM
  const bool amx_state = (xcr0 & 0x60000) == 0x60000;            // XTILECFG, XTILEDATA
  f.fma = avx_state && fma;
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    f.avx2 = avx_state && bit(ebx, 5);
    f.avx512f = avx512_state && bit(ebx, 16);
    f.avx512_vnni = avx512_state && bit(ecx, 11);
    f.amx_bf16 = amx_state && bit(edx, 22);
    f.amx_tile = amx_state && bit(edx, 24);
    const unsigned max_subleaf = eax;
    if (max_subleaf >= 1) {
      __cpuid_count(7, 1, eax, ebx, ecx, edx);
      f.avx_vnni = avx_state && bit(eax, 4);
      f.avx512_bf16 = avx512_state && bit(eax, 5);
    }
  }
  char brand[49] = {};
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002 + i, &eax, &ebx, &ecx, &edx);
      const unsigned words[4] = {eax, ebx, ecx, edx};
      for (int w = 0; w < 4; ++w) {
        for (int b = 0; b < 4; ++b)
          brand[i * 16 + w * 4 + b] = static_cast<char>(words[w] >> (8 * b));
      }
    }
  }
  f.model = trim(brand);
  f.source = "cpuid";
  return true;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
  const char* pretend = std::getenv("ATTNKIT_CPU_FEATURES");
  bool read = false;
#ifdef ATTNKIT_HAVE_CPUID
  if (!pretend) read = read_cpuid(f);
#endif
  if (!read) {
    f = parse_cpu_flags(pretend ? pretend : cpuinfo_field("flags"));
    f.source = pretend ? "ATTNKIT_CPU_FEATURES" : "/proc/cpuinfo";
  }
  if (f.model.empty()) f.model = cpuinfo_field("model name");
  if (f.model.empty()) f.model = "unknown CPU";
  return f;
}

}  // namespace

std::vector<std::pair<std::string, bool>> CpuFeatures::list() const {
  std::vector<std::pair<std::string, bool>> out;
  for (const auto& [name, member] : kFlags) out.emplace_back(name, this->*member);
  return out;
}

CpuFeatures parse_cpu_flags(const std::string& flags) {
  CpuFeatures f;
  std::string spaced = flags;
  for (char& ch : spaced) {
    if (ch == ',') ch = ' ';
  }
  std::istringstream in(spaced);
  for (std::string word; in >> word;) {
    for (const auto& [name, member] : kFlags) {
      if (word == name) f.*member = true;
    }
  }
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string describe_vector_units(const CpuFeatures& cpu) {
  if (cpu.amx_bf16) return "AMX-BF16";
  if (cpu.avx512_bf16) return "AVX512-BF16";
  if (cpu.avx512f) return "AVX-512 without BF16";
  if (cpu.avx2) return "AVX2 only";
  return "no AVX2";
}

}  // namespace attnkit::vision
