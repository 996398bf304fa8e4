// vision/train/caption_data.cpp: loading and batching captioning data.
#include "vision/train/caption_data.h"

#include <algorithm>

#include <torch/torch.h>

#include "vision/errors.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"
#include "vision/train/feature_cache.h"

namespace attnkit::vision {

CaptionData load_caption_data(const std::vector<CaptionRecord>& records,
                              const std::vector<std::string>& splits,
                              const PreprocessConfig& preprocess, const Vocabulary& vocabulary,
                              const std::string& source, bool load_images) {
  auto wanted = [&](const std::string& split) {
    for (const auto& s : splits) {
      if (s == split || (s == "train" && split == "restval")) return true;
    }
    return false;
  };
  CaptionData data;
  std::vector<torch::Tensor> images;
  for (const auto& record : records) {
    if (!wanted(record.split)) continue;
    if (!load_images) {
      data.records.push_back(record);
      auto& encoded = data.encoded.emplace_back();
      for (const auto& caption : record.captions) encoded.push_back(vocabulary.encode(caption));
      continue;
    }
    try {
      const auto rgb = load_image_rgb(record.image_path);
      images.push_back(preprocess_image(rgb, preprocess));
      data.image_sizes.emplace_back(rgb.cols, rgb.rows);
    } catch (const ImageError& e) {
      data.skipped.push_back({record.image_path, e.what()});
      continue;
    }
    data.records.push_back(record);
    std::vector<std::vector<int64_t>> encoded;
    for (const auto& caption : record.captions) encoded.push_back(vocabulary.encode(caption));
    data.encoded.push_back(std::move(encoded));
  }
  if (data.records.empty()) {
    std::string which;
    for (const auto& s : splits) which += (which.empty() ? "" : "/") + s;
    throw DataError(
        source + ": " +
        (data.skipped.empty() ? "no images in the " + which + " split"
                              : "no readable images in the " + which + " split") +
        (data.skipped.empty() ? "" : " (first problem: " + data.skipped.front().error + ")"));
  }
  if (load_images) data.images = torch::stack(images);
  return data;
}

CaptionData with_feature_cache(CaptionData data, const FeatureCache& cache,
                               const std::string& source) {
  TORCH_CHECK(cache.size() == data.size(), "with_feature_cache: ", cache.size(),
              " cached images for ", data.size(), " records");
  std::vector<bool> unreadable(static_cast<size_t>(data.size()), false);
  for (const auto& [index, file] : cache.unreadable()) {
    unreadable[static_cast<size_t>(index)] = true;
    data.skipped.push_back(file);
  }
  CaptionData kept;
  kept.skipped = std::move(data.skipped);
  for (int64_t i = 0; i < data.size(); ++i) {
    if (unreadable[static_cast<size_t>(i)]) continue;
    kept.records.push_back(std::move(data.records[i]));
    kept.encoded.push_back(std::move(data.encoded[i]));
    kept.image_sizes.push_back(cache.image_sizes()[static_cast<size_t>(i)]);
    kept.feature_rows.push_back(i);
  }
  if (kept.records.empty()) {
    throw DataError(source + ": no readable images in the training split (first problem: " +
                    kept.skipped.front().error + ")");
  }
  return kept;
}

std::vector<std::pair<int64_t, int64_t>> caption_pairs(const CaptionData& data) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t i = 0; i < data.size(); ++i) {
    for (int64_t r = 0; r < static_cast<int64_t>(data.encoded[i].size()); ++r) {
      pairs.emplace_back(i, r);
    }
  }
  return pairs;
}

torch::Tensor pad_captions(const std::vector<const std::vector<int64_t>*>& captions,
                           int64_t max_len) {
  int64_t longest = 0;
  for (const auto* c : captions) {
    longest = std::max<int64_t>(longest, std::min<int64_t>(max_len, c->size()));
  }
  auto out = torch::full({static_cast<int64_t>(captions.size()), longest + 2}, Vocabulary::kPad,
                         torch::kLong);
  auto a = out.accessor<int64_t, 2>();
  for (size_t b = 0; b < captions.size(); ++b) {
    const auto& words = *captions[b];
    const int64_t n = std::min<int64_t>(max_len, words.size());
    a[b][0] = Vocabulary::kStart;
    for (int64_t t = 0; t < n; ++t) a[b][t + 1] = words[t];
    a[b][n + 1] = Vocabulary::kEnd;
  }
  return out;
}

}  // namespace attnkit::vision
