// vision/train/feature_cache.h: a frozen encoder's features of a training set, on disk in fp16
// or bf16 shards: computed once (resumably, split over data-parallel ranks), reused by later runs
// and by every rank, read back a batch at a time, so memory stays bounded whatever the dataset.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vision/data/skipped_file.h"
#include "vision/image/preprocess_config.h"

namespace attnkit::vision {

class DataParallel;

struct FeatureCacheOptions {
  std::string directory;                   ///< the cache root (one folder per key inside)
  torch::ScalarType dtype = torch::kHalf;  ///< kHalf or kBFloat16 on disk
  int64_t shard_images = 2048;             ///< images per shard file
  int64_t batch_size = 64;                 ///< images per encoder pass while computing
};

/// The encoder: normalised images (B, C, H, W) -> features (B, L, D) on a (gh, gw) grid.
struct FeatureEncoder {
  std::function<torch::Tensor(const torch::Tensor&)> encode;
  int64_t tokens = 0;  ///< L
  int64_t dim = 0;     ///< D
  int64_t grid_height = 0;
  int64_t grid_width = 0;
  /// What makes its features what they are: a hash of its weights, its config and the
  /// preprocessing (feature_cache_key).
  uint64_t key = 0;
};

/// A hash of the tensors' bytes, shapes and names and of `description` (configs as JSON).
uint64_t feature_cache_key(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                           const std::string& description);

class FeatureCache {
 public:
  /// Opens the cache of `image_paths` as `encoder` sees them after `preprocess`, under
  /// options.directory/<key of the encoder, the preprocessing, the dtype and the paths>/. Shards
  /// already complete there are reused; the missing ones are computed, images decoded a batch at
  /// a time, each shard written atomically when done (so a killed pass resumes where it
  /// stopped). With `parallel`, each rank computes every N-th missing shard, then waits for the
  /// others. `on_progress(done, total)` counts images. Throws WriteError when a shard cannot be
  /// written, DataError when the folder holds another cache's files.
  static std::shared_ptr<FeatureCache> open(
      const FeatureEncoder& encoder, const std::vector<std::string>& image_paths,
      const PreprocessConfig& preprocess, const FeatureCacheOptions& options,
      DataParallel* parallel = nullptr,
      const std::function<void(int64_t, int64_t)>& on_progress = {});
  ~FeatureCache();

  int64_t size() const;    ///< N images
  int64_t tokens() const;  ///< L
  int64_t dim() const;     ///< D
  int64_t grid_height() const;
  int64_t grid_width() const;
  std::string folder() const;  ///< where the shards are
  int64_t reused_shards() const;
  int64_t computed_shards() const;
  /// Original (width, height) of each image; (0, 0) for an unreadable one.
  const std::vector<std::pair<int, int>>& image_sizes() const;
  /// The images that could not be read (their features are zeros), by index.
  const std::vector<std::pair<int64_t, SkippedFile>>& unreadable() const;

  /// The features of images `rows` (B): (B, L, D) float32, read from the shards.
  torch::Tensor gather(const std::vector<int64_t>& rows) const;

 private:
  FeatureCache();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnkit::vision
