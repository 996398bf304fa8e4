// vision/models/captioner_config.h: the captioner's architecture (encoder, vocabulary size,
// decoder widths, attention mode) and its JSON form (`attnkit.config` of captioner files).
#pragma once

#include <cstdint>
#include <string>

#include "attention/spatial_attention.h"
#include "vision/models/vit_config.h"

namespace attnkit::vision {

/// A Show-Attend-Tell captioner: ViT encoder, LSTM decoder with additive attention.
struct CaptionerConfig {
  ViTConfig encoder;            ///< the trunk; its head is not used (num_classes is forced to 0)
  int64_t vocab_size = 0;       ///< V, including <pad> <start> <end> <unk>
  int64_t embed_dim = 128;      ///< word embedding E (m in the paper)
  int64_t hidden_dim = 256;     ///< LSTM state n
  int64_t attention_dim = 128;  ///< additive attention's hidden width
  attention::AttentionMode mode = attention::AttentionMode::kSoft;
  double dropout = 0.3;  ///< before the deep output layer

  void validate() const;  ///< throws std::invalid_argument
  std::string to_json() const;
  static CaptionerConfig from_json(const std::string& json);  ///< throws std::invalid_argument
};

}  // namespace attnkit::vision
