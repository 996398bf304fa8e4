// vision/checkpoint/captioner_file.h: captioner model files: the weights, the CaptionerConfig
// (attnkit.config), the vocabulary (attnkit.vocab) and the preprocessing, in one safetensors.
#pragma once

#include <string>

#include "vision/checkpoint/model_file.h"
#include "vision/models/captioner.h"
#include "vision/models/vocabulary.h"

namespace attnkit::vision {

struct LoadedCaptioner {
  Captioner model{nullptr};
  CaptionerConfig config;
  Vocabulary vocabulary;
  ModelInfo info;
};

/// Writes a captioner model file (atomically); `info.arch` and `info.config_json` are set here.
void save_captioner(const std::string& path, Captioner& model, const Vocabulary& vocabulary,
                    ModelInfo info);

/// Loads a captioner model file strictly (eval mode). Throws CheckpointError naming the file.
LoadedCaptioner load_captioner(const std::string& path);

}  // namespace attnkit::vision
