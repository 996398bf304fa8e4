// tests/fuzz/karpathy_fuzz.cpp: libFuzzer harness for the Karpathy split JSON loader. Any input
// must end in caption records or a DataError: never a crash or another exception.
#include <cstddef>
#include <cstdint>
#include <string>

#include "vision/data/karpathy.h"
#include "vision/errors.h"

namespace vision = attnkit::vision;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto records = vision::parse_karpathy_json(text, "fuzz.json", "images");
    for (const auto& record : records) {
      // The loader's promise: every record has at least one non-empty caption.
      if (record.captions.empty() || record.captions.front().empty()) __builtin_trap();
    }
  } catch (const vision::DataError&) {
  }
  return 0;
}
