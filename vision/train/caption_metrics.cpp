// vision/train/caption_metrics.cpp: BLEU and CIDEr-D over tokenised captions.
#include "vision/train/caption_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>

#include <torch/torch.h>

namespace attnkit::vision {
namespace {

using NgramCounts = std::map<std::vector<std::string>, int64_t>;

NgramCounts count_ngrams(const Tokens& words, size_t n) {
  NgramCounts counts;
  for (size_t i = 0; i + n <= words.size(); ++i) {
    ++counts[std::vector<std::string>(words.begin() + i, words.begin() + i + n)];
  }
  return counts;
}

void check_corpus(const std::vector<std::vector<Tokens>>& references,
                  const std::vector<Tokens>& hypotheses, const char* metric) {
  if (references.size() != hypotheses.size()) {
    throw std::invalid_argument(std::string(metric) + ": " + std::to_string(hypotheses.size()) +
                                " hypotheses for " + std::to_string(references.size()) +
                                " reference sets");
  }
}

}  // namespace

BleuScores corpus_bleu(const std::vector<std::vector<Tokens>>& references,
                       const std::vector<Tokens>& hypotheses) {
  check_corpus(references, hypotheses, "BLEU");
  BleuScores out;
  auto& matched = out.matched;
  auto& total = out.total;
  for (size_t s = 0; s < hypotheses.size(); ++s) {
    const auto& hypothesis = hypotheses[s];
    for (size_t n = 1; n <= 4; ++n) {
      // Clip each n-gram's count by its largest count in any one reference.
      NgramCounts max_reference;
      for (const auto& reference : references[s]) {
        for (const auto& [gram, count] : count_ngrams(reference, n)) {
          max_reference[gram] = std::max(max_reference[gram], count);
        }
      }
      int64_t sentence_total = 0;
      for (const auto& [gram, count] : count_ngrams(hypothesis, n)) {
        auto it = max_reference.find(gram);
        matched[n - 1] += std::min(count, it == max_reference.end() ? 0 : it->second);
        sentence_total += count;
      }
      // NLTK's modified_precision divides by max(1, count): a sentence too short for any
      // n-gram of this order still adds 1 to the corpus denominator. Kept, to agree with it.
      total[n - 1] += std::max<int64_t>(1, sentence_total);
    }
    const auto c = static_cast<int64_t>(hypothesis.size());
    int64_t closest = 0;
    int64_t best_distance = std::numeric_limits<int64_t>::max();
    for (const auto& reference : references[s]) {
      const auto r = static_cast<int64_t>(reference.size());
      const int64_t distance = std::llabs(r - c);
      if (distance < best_distance || (distance == best_distance && r < closest)) {
        best_distance = distance;
        closest = r;
      }
    }
    out.hypothesis_length += c;
    out.reference_length += closest;
  }
  return bleu_from_counts(out);
}

BleuScores bleu_from_counts(BleuScores out) {
  const auto& matched = out.matched;
  const auto& total = out.total;
  const double c = static_cast<double>(out.hypothesis_length);
  const double r = static_cast<double>(out.reference_length);
  out.brevity_penalty = c > r ? 1.0 : (c == 0 ? 0.0 : std::exp(1.0 - r / c));
  double log_sum = 0;
  bool zero = false;
  for (size_t n = 0; n < 4; ++n) {
    out.precision[n] = total[n] > 0 ? static_cast<double>(matched[n]) / total[n] : 0.0;
    zero = zero || matched[n] == 0;
    log_sum += zero ? 0.0 : std::log(out.precision[n]);
    out.bleu[n] = zero ? 0.0 : out.brevity_penalty * std::exp(log_sum / static_cast<double>(n + 1));
  }
  return out;
}

double cider_d(const std::vector<std::vector<Tokens>>& references,
               const std::vector<Tokens>& hypotheses, std::vector<double>* per_image) {
  check_corpus(references, hypotheses, "CIDEr-D");
  constexpr size_t kMaxN = 4;
  constexpr double kSigma = 6.0;
  const size_t images = hypotheses.size();
  if (per_image) per_image->assign(images, 0.0);
  if (images == 0) return 0.0;

  // Document frequency: in how many images' reference sets each n-gram occurs.
  std::map<std::vector<std::string>, double> document_frequency;
  for (const auto& set : references) {
    std::set<std::vector<std::string>> seen;
    for (const auto& reference : set) {
      for (size_t n = 1; n <= kMaxN; ++n) {
        for (const auto& item : count_ngrams(reference, n)) seen.insert(item.first);
      }
    }
    for (const auto& gram : seen) document_frequency[gram] += 1.0;
  }
  const double log_images = std::log(static_cast<double>(images));

  struct Vector {
    std::array<std::map<std::vector<std::string>, double>, kMaxN> weights;
    std::array<double, kMaxN> norm{};
    double length = 0;
  };
  auto tf_idf = [&](const Tokens& words) {
    Vector v;
    for (size_t n = 1; n <= kMaxN; ++n) {
      for (const auto& [gram, count] : count_ngrams(words, n)) {
        auto it = document_frequency.find(gram);
        const double df =
            std::log(std::max(1.0, it == document_frequency.end() ? 0.0 : it->second));
        const double w = static_cast<double>(count) * (log_images - df);
        v.weights[n - 1][gram] = w;
        v.norm[n - 1] += w * w;
      }
    }
    for (auto& norm : v.norm) norm = std::sqrt(norm);
    // coco-caption's CiderScorer measures length in bigrams (its `n == 1` with 0-based n); we
    // keep that so scores match the published evaluation.
    v.length = static_cast<double>(std::max<size_t>(words.size(), 1) - 1);
    return v;
  };

  double sum = 0;
  for (size_t i = 0; i < images; ++i) {
    const auto& set = references[i];
    if (set.empty())
      throw std::invalid_argument("CIDEr-D: image " + std::to_string(i) + " has no references");
    const Vector hypothesis = tf_idf(hypotheses[i]);
    std::array<double, kMaxN> score{};
    for (const auto& words : set) {
      const Vector reference = tf_idf(words);
      const double delta = hypothesis.length - reference.length;
      const double penalty = std::exp(-(delta * delta) / (2 * kSigma * kSigma));
      for (size_t n = 0; n < kMaxN; ++n) {
        double dot = 0;
        for (const auto& [gram, w] : hypothesis.weights[n]) {
          auto it = reference.weights[n].find(gram);
          if (it != reference.weights[n].end()) dot += std::min(w, it->second) * it->second;
        }
        if (hypothesis.norm[n] != 0 && reference.norm[n] != 0) {
          dot /= hypothesis.norm[n] * reference.norm[n];
        }
        score[n] += dot * penalty;
      }
    }
    double image_score = 0;
    for (double s : score) image_score += s / static_cast<double>(set.size());
    image_score = 10.0 * image_score / static_cast<double>(kMaxN);
    if (per_image) (*per_image)[i] = image_score;
    sum += image_score;
  }
  return sum / static_cast<double>(images);
}

PointingScore& PointingScore::operator+=(const PointingScore& other) {
  hits += other.hits;
  total += other.total;
  return *this;
}

cv::Point2d grid_cell_centre(int64_t cell, int64_t grid_height, int64_t grid_width,
                             const cv::Rect2d& region) {
  return {region.x + (static_cast<double>(cell % grid_width) + 0.5) * region.width /
                         static_cast<double>(grid_width),
          region.y + (static_cast<double>(cell / grid_width) + 0.5) * region.height /
                         static_cast<double>(grid_height)};
}

bool box_contains(const cv::Rect& box, const cv::Point2d& point) {
  return point.x >= box.x && point.x < box.x + box.width && point.y >= box.y &&
         point.y < box.y + box.height;
}

PointingScore pointing_game(const std::vector<std::string>& words,
                            const std::vector<torch::Tensor>& attention,
                            const std::vector<CaptionObject>& objects, const cv::Rect2d& region) {
  if (words.size() != attention.size()) {
    throw std::invalid_argument("pointing_game: " + std::to_string(words.size()) + " words but " +
                                std::to_string(attention.size()) + " attention grids");
  }
  PointingScore score;
  for (size_t i = 0; i < words.size(); ++i) {
    std::vector<const CaptionObject*> named;
    for (const auto& o : objects) {
      if (o.word == words[i]) named.push_back(&o);
    }
    if (named.empty()) continue;
    const auto& grid = attention[i];
    TORCH_CHECK(grid.dim() == 2, "pointing_game: expected an attention grid (gh, gw), got ",
                grid.sizes());
    const int64_t cell = grid.reshape({-1}).argmax().item<int64_t>();
    const auto peak = grid_cell_centre(cell, grid.size(0), grid.size(1), region);
    ++score.total;
    for (const auto* o : named) {
      if (box_contains(o->box, peak)) {
        ++score.hits;
        break;
      }
    }
  }
  return score;
}

}  // namespace attnkit::vision
