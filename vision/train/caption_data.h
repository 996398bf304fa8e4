// vision/train/caption_data.h: a captioning split in memory: preprocessed images, their encoded
// reference captions, and what evaluation needs (tokens, object boxes, image sizes).
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "vision/data/karpathy.h"
#include "vision/data/skipped_file.h"
#include "vision/image/preprocess_config.h"
#include "vision/models/vocabulary.h"

namespace attnkit::vision {

struct CaptionData {
  torch::Tensor images;                ///< (N, C, H, W) float32, normalised; undefined
                                       ///< when the features come from a FeatureCache
  std::vector<CaptionRecord> records;  ///< N: references, objects, paths
  std::vector<std::vector<std::vector<int64_t>>> encoded;  ///< per image, per reference
  std::vector<std::pair<int, int>> image_sizes;            ///< original (width, height) per image
  std::vector<SkippedFile> skipped;                        ///< images that could not be read
  /// Each image's row in the FeatureCache its features come from (empty without one).
  std::vector<int64_t> feature_rows;

  int64_t size() const { return static_cast<int64_t>(records.size()); }
};

/// Loads the records whose split is in `splits` ("train" also takes "restval"), preprocessing
/// each image. Unreadable images go to `skipped`. Throws DataError naming `source` (the
/// records' file) when none is left. Without `load_images`, no image is opened: `images` stays
/// undefined and `image_sizes` empty (a FeatureCache reads them; see with_feature_cache).
CaptionData load_caption_data(const std::vector<CaptionRecord>& records,
                              const std::vector<std::string>& splits,
                              const PreprocessConfig& preprocess, const Vocabulary& vocabulary,
                              const std::string& source, bool load_images = true);

class FeatureCache;

/// `data` (loaded without images) with the cache's figures: the images the cache could not
/// read are dropped into `skipped`, the others get their cache row and original size. The cache
/// must hold data's images in order. Throws DataError naming `source` when none is left.
CaptionData with_feature_cache(CaptionData data, const FeatureCache& cache,
                               const std::string& source);

/// (image index, reference index) pairs: one training example per reference caption.
std::vector<std::pair<int64_t, int64_t>> caption_pairs(const CaptionData& data);

/// Captions (B) -> (B, T + 1) long: <start> words <end> <pad>..., cut to max_len words.
torch::Tensor pad_captions(const std::vector<const std::vector<int64_t>*>& captions,
                           int64_t max_len);

}  // namespace attnkit::vision
