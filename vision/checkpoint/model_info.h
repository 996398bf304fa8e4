// vision/checkpoint/model_info.h: a model file's `__metadata__` strings, parsed and checked into
// the configs they describe (kept apart from the tensors so the parsing can be fuzzed alone).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "vision/image/preprocess_config.h"
#include "vision/models/captioner_config.h"
#include "vision/models/vit_config.h"
#include "vision/models/vocabulary.h"

namespace attnkit::vision {

/// What travels in the header's `__metadata__` (keys `attnkit.arch`, `attnkit.config`,
/// `attnkit.labels`, `attnkit.preprocess`, `attnkit.source`).
struct ModelInfo {
  std::string arch = "vit";         ///< "vit" | "captioner"
  std::string config_json;          ///< the architecture's config as JSON
  std::vector<std::string> labels;  ///< class names, index order (may be empty)
  PreprocessConfig preprocess;
  std::string source;                        ///< where the weights came from (free text)
  std::map<std::string, std::string> extra;  ///< other attnkit.* keys (e.g. attnkit.vocab)
};

/// The name of class `index`: its label, or "class <index>" for a model without (enough) labels.
std::string class_label(const ModelInfo& info, int64_t index);

/// Metadata key of a captioner's vocabulary (a JSON list of words, index order).
constexpr const char* kVocabularyKey = "attnkit.vocab";

/// Parses the metadata of the model file `path` (used in messages): labels and preprocessing
/// are checked here, the config only by the *_config_from_info functions. Throws
/// CheckpointError.
ModelInfo model_info_from_metadata(const std::map<std::string, std::string>& metadata,
                                   const std::string& path);

/// The metadata that model_info_from_metadata() reads back as `info`.
std::map<std::string, std::string> model_info_to_metadata(const ModelInfo& info);

/// The ViT `info` describes, checked against its labels and preprocessing. Throws
/// CheckpointError naming `path` (not a ViT, bad config, label count or channels that differ).
ViTConfig vit_config_from_info(const ModelInfo& info, const std::string& path);

/// What a captioner file describes besides its tensors.
struct CaptionerSpec {
  CaptionerConfig config;
  Vocabulary vocabulary;
};

/// The captioner `info` describes, its vocabulary checked against the config and the
/// preprocessing against the encoder. Throws CheckpointError naming `path`.
CaptionerSpec captioner_spec_from_info(const ModelInfo& info, const std::string& path);

}  // namespace attnkit::vision
