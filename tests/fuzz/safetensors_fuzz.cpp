// tests/fuzz/safetensors_fuzz.cpp: libFuzzer harness for the safetensors header parser. Any input
// must end in a parsed header or a CheckpointError: never a crash, hang or out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "vision/checkpoint/safetensors.h"
#include "vision/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<std::string, std::string> metadata;
  try {
    attnkit::vision::parse_safetensors(data, size, "fuzz.safetensors", &metadata);
  } catch (const attnkit::vision::CheckpointError&) {
    // Rejecting malformed input with a message is the expected outcome.
  }
  return 0;
}
