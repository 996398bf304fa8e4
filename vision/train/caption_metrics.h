// vision/train/caption_metrics.h: corpus BLEU-1..4 (Papineni et al. 2002, as NLTK's corpus_bleu
// computes it) and CIDEr-D (Vedantam et al. 2015, as the coco-caption evaluation computes it).
#pragma once

#include <array>
#include <string>
#include <vector>

#include <torch/types.h>

#include "vision/data/karpathy.h"

namespace attnkit::vision {

using Tokens = std::vector<std::string>;

struct BleuScores {
  std::array<double, 4> bleu{};       ///< BLEU-1..4: cumulative, uniform weights
  std::array<double, 4> precision{};  ///< clipped n-gram precisions p_1..p_4
  double brevity_penalty = 0;
  int64_t hypothesis_length = 0;  ///< c: total candidate words
  int64_t reference_length = 0;   ///< r: sum of the closest reference lengths
  /// Clipped n-gram matches and the n-gram denominators, summed over the sentences: with c and r,
  /// what the corpus scores are made from. They add up over parts of a corpus (bleu_from_counts).
  std::array<int64_t, 4> matched{};
  std::array<int64_t, 4> total{};
};

/// The scores of the counts in `counts` (matched, total, hypothesis_length, reference_length;
/// the rest is recomputed): BLEU of a corpus whose parts' counts were summed.
BleuScores bleu_from_counts(BleuScores counts);

/// Corpus BLEU: clipped n-gram counts summed over the corpus, the closest reference length per
/// sentence (the shorter on ties), BP = exp(1 - r/c) when c <= r. Without smoothing, a zero
/// precision makes the score 0, and a sentence shorter than n adds 1 to the n-gram denominator,
/// both as in NLTK 3.8. references[i] holds sentence i's references.
BleuScores corpus_bleu(const std::vector<std::vector<Tokens>>& references,
                       const std::vector<Tokens>& hypotheses);

/// CIDEr-D over a corpus: TF-IDF n-gram vectors (n = 1..4, document frequency over the corpus'
/// reference sets), candidate counts clipped by the reference's, a Gaussian length penalty
/// (sigma 6), averaged over references and n, times 10. Returns the corpus mean and fills
/// `per_image` when given.
double cider_d(const std::vector<std::vector<Tokens>>& references,
               const std::vector<Tokens>& hypotheses, std::vector<double>* per_image = nullptr);

/// The pointing game (Zhang et al. 2016, as used for captioning attention): for each generated
/// word that names an object of the image, is the attention maximum inside one of that word's
/// boxes? The maximum is the centre of the highest grid cell mapped onto the image.
struct PointingScore {
  int64_t hits = 0;
  int64_t total = 0;  ///< object words that name an object present in the image
  double accuracy() const { return total > 0 ? static_cast<double>(hits) / total : 0.0; }
  PointingScore& operator+=(const PointingScore& other);
};

/// The centre of cell `cell` (row-major) of a (grid_height, grid_width) grid laid over `region`,
/// in image pixels: where the pointing game places a cell.
cv::Point2d grid_cell_centre(int64_t cell, int64_t grid_height, int64_t grid_width,
                             const cv::Rect2d& region);

/// The pointing game's hit test: `point` lies in `box` (left and top edges in, right and bottom
/// edges out).
bool box_contains(const cv::Rect& box, const cv::Point2d& point);

/// words[i] with its attention grid attention[i] (gh, gw); the grid covers `region` of the
/// original image (the preprocessing crop, see preprocess_crop_box; the whole image for a squash
/// resize). Words naming no object of `objects` (including hallucinated ones) are not counted.
PointingScore pointing_game(const std::vector<std::string>& words,
                            const std::vector<torch::Tensor>& attention,
                            const std::vector<CaptionObject>& objects, const cv::Rect2d& region);

}  // namespace attnkit::vision
