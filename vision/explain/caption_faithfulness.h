// vision/explain/caption_faithfulness.h: whether a captioner's word maps show where its words
// came from: per word, the drop in the word's probability when the cells its attention picked are
// masked, against masking as many random cells.
#pragma once

#include <vector>

#include "vision/explain/metric_summary.h"
#include "vision/models/caption_decoder.h"
#include "vision/models/captioner.h"

namespace attnkit::vision {

struct CaptionFaithfulnessOptions {
  /// The picked cells: the fewest highest-attention cells holding this share of the word's
  /// attention (at least one cell).
  double mass = 0.5;
  int64_t random_draws = 4;  ///< random cell sets per word, averaged
  uint64_t seed = 0;
};

/// One word's figures. Masked cells' features become the image's mean feature, in the whole
/// caption's teacher-forced pass (so the initial state, which reads the mean, moves too).
struct WordFaithfulness {
  std::string word;
  int64_t cells = 0;         ///< how many cells were picked (and masked at random)
  double probability = 0;    ///< p(word | image, previous words), unmasked
  double attended_drop = 0;  ///< probability - p with the picked cells masked
  double random_drop = 0;    ///< probability - p with as many random cells masked (mean)
};

/// Over many words: how much masking the picked cells lowers a word's probability, against
/// masking as many random cells, and how often the picked cells matter more.
struct CaptionFaithfulnessSummary {
  MetricSummary attended_drop, random_drop;
  MetricSummary difference;  ///< attended_drop - random_drop per word
  double attended_wins = 0;  ///< share of words whose attended drop exceeds the random one
  double mean_cells = 0;     ///< cells picked per word
  int64_t words = 0;
};
CaptionFaithfulnessSummary summarize_faithfulness(
    const std::vector<std::vector<WordFaithfulness>>& captions);

/// The cells holding `mass` of a distribution. attention (L) -> indices, highest first.
std::vector<int64_t> picked_cells(const torch::Tensor& attention, double mass);

/// For each image's caption, each word's figures. `encoded` holds the images the captions were
/// decoded from (features (B, L, D)); runs without autograd in evaluation mode.
std::vector<std::vector<WordFaithfulness>> caption_faithfulness(
    Captioner& model, const EncodedImages& encoded, const std::vector<Caption>& captions,
    const CaptionFaithfulnessOptions& options);

}  // namespace attnkit::vision
