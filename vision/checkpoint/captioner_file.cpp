// vision/checkpoint/captioner_file.cpp: saving and strictly loading captioners.
#include "vision/checkpoint/captioner_file.h"

#include <torch/torch.h>

#include "vision/errors.h"

namespace attnkit::vision {

void save_captioner(const std::string& path, Captioner& model, const Vocabulary& vocabulary,
                    ModelInfo info) {
  info.arch = "captioner";
  info.config_json = model->config().to_json();
  info.extra[kVocabularyKey] = vocabulary.to_json();
  save_model(path, *model, info);
}

LoadedCaptioner load_captioner(const std::string& path) {
  LoadedCaptioner loaded;
  loaded.info = read_model_info(path);
  if (loaded.info.arch != "captioner") {
    throw CheckpointError(path + ": is a '" + loaded.info.arch + "' model, expected a 'captioner'");
  }
  try {
    loaded.config = CaptionerConfig::from_json(loaded.info.config_json);
    auto vocab = loaded.info.extra.find(kVocabularyKey);
    if (vocab == loaded.info.extra.end()) {
      throw CheckpointError(path + ": no vocabulary ('" + kVocabularyKey + "' metadata)");
    }
    loaded.vocabulary = Vocabulary::from_json(vocab->second);
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(path + ": " + e.what());
  }
  if (loaded.vocabulary.size() != loaded.config.vocab_size) {
    throw CheckpointError(path + ": the vocabulary has " +
                          std::to_string(loaded.vocabulary.size()) + " words, the model " +
                          std::to_string(loaded.config.vocab_size));
  }
  if (loaded.info.preprocess.channels != loaded.config.encoder.in_channels) {
    throw CheckpointError(path + ": preprocessing gives " +
                          std::to_string(loaded.info.preprocess.channels) +
                          " channels, the encoder takes " +
                          std::to_string(loaded.config.encoder.in_channels));
  }
  loaded.model = Captioner(loaded.config);
  load_tensors_strict(*loaded.model, model_tensors_from_file(path), path);
  loaded.model->eval();
  return loaded;
}

}  // namespace attnkit::vision
