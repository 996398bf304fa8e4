// vision/models/caption_decoder.h: greedy and beam-search decoding for the captioner, batched
// over images, always terminating, with each word's probability and attention map.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "vision/models/captioner.h"
#include "vision/models/vocabulary.h"

namespace attnkit::vision {

struct DecodedWord {
  int64_t index = 0;
  std::string word;
  double probability = 0;   ///< p(word | image, previous words)
  torch::Tensor attention;  ///< (gh, gw) float: the attention used to produce the word
};

struct Caption {
  std::vector<DecodedWord> words;  ///< never empty; without <end>
  double log_prob = 0;             ///< sum of log p over the words (and <end> when emitted)
  bool ended = false;              ///< false when --max-len cut it
  std::string text() const;        ///< the words joined by spaces
};

/// Argmax at every step. <pad>, <start> and <unk> are never produced and <end> not first, so a
/// caption has at least one word; at most max_len words. Runs without autograd, in eval mode.
std::vector<Caption> greedy_decode(Captioner& model, const EncodedImages& encoded,
                                   const Vocabulary& vocabulary, int64_t max_len);

/// Beam search with `beam` hypotheses per image; finished hypotheses are ranked by log p divided
/// by their length (words + <end>). beam = 1 gives greedy_decode's captions.
std::vector<Caption> beam_search(Captioner& model, const EncodedImages& encoded,
                                 const Vocabulary& vocabulary, int64_t beam, int64_t max_len);

}  // namespace attnkit::vision
