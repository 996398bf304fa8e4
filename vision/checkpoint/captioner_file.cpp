// vision/checkpoint/captioner_file.cpp: saving and strictly loading captioners.
#include "vision/checkpoint/captioner_file.h"

#include <torch/torch.h>

#include "vision/checkpoint/safetensors.h"

namespace attnkit::vision {

void save_captioner(const std::string& path, Captioner& model, const Vocabulary& vocabulary,
                    ModelInfo info) {
  info.arch = "captioner";
  info.config_json = model->config().to_json();
  info.extra[kVocabularyKey] = vocabulary.to_json();
  save_model(path, *model, info);
}

LoadedCaptioner load_captioner(const std::string& path) {
  const auto file = SafetensorsFile::open(path);
  LoadedCaptioner loaded;
  loaded.info = model_info_from_metadata(file.metadata(), path);
  auto spec = captioner_spec_from_info(loaded.info, path);
  loaded.config = std::move(spec.config);
  loaded.vocabulary = std::move(spec.vocabulary);
  loaded.model = Captioner(loaded.config);
  load_tensors_strict(*loaded.model, model_tensors_from_file(file), path);
  loaded.model->eval();
  return loaded;
}

}  // namespace attnkit::vision
