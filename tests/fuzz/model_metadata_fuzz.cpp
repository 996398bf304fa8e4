// tests/fuzz/model_metadata_fuzz.cpp: libFuzzer harness for a model file's `__metadata__`: the
// input is the metadata object's JSON (string values, as in the safetensors header); it goes
// through model_info_from_metadata and the ViT and captioner config parsers and checks. Any input
// must end in configs or a CheckpointError: never a crash or another exception.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "vision/checkpoint/model_info.h"
#include "vision/errors.h"

namespace vision = attnkit::vision;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The safetensors parser (fuzzed on its own) hands over a map of strings; anything else is
  // refused before metadata parsing starts.
  const auto object = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (!object.is_object()) return 0;
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : object.items()) {
    if (!value.is_string()) return 0;
    metadata[key] = value.get<std::string>();
  }
  vision::ModelInfo info;
  try {
    info = vision::model_info_from_metadata(metadata, "fuzz.safetensors");
  } catch (const vision::CheckpointError&) {
    return 0;
  }
  try {
    vision::vit_config_from_info(info, "fuzz.safetensors");
  } catch (const vision::CheckpointError&) {
  }
  try {
    vision::captioner_spec_from_info(info, "fuzz.safetensors");
  } catch (const vision::CheckpointError&) {
  }
  // What was read must be written back and read again to the same values.
  const auto round_trip =
      vision::model_info_from_metadata(vision::model_info_to_metadata(info), "fuzz.safetensors");
  if (round_trip.labels != info.labels || round_trip.extra != info.extra ||
      round_trip.preprocess.to_json() != info.preprocess.to_json()) {
    __builtin_trap();
  }
  return 0;
}
