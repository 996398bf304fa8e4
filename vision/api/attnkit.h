// vision/api/attnkit.h: attnkit for other programs: load a model file, classify or caption an
// image, compute an explanation map and draw it. Images are cv::Mat; LibTorch stays inside.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "vision/errors.h"

namespace attnkit {

/// One class of a prediction.
struct Prediction {
  int64_t index = 0;
  std::string label;  ///< the model's name for the class; "class <index>" when it has none
  double probability = 0;
};

/// A map over the model's patch grid and what it explains.
struct AttentionMap {
  cv::Mat grid;              ///< CV_32F (gh, gw); larger = more attention or relevance
  std::string method;        ///< the method that made it ("rollout", "grad-rollout", ...)
  int64_t class_index = -1;  ///< the class a class-specific map explains; -1 for the others
};

/// How a map is drawn over its image: the renderer of `attn overlay`.
struct OverlayOptions {
  std::string colormap = "jet";  ///< jet, viridis, inferno, turbo, magma, plasma, hot, ...
  double alpha = 0.5;            ///< weight of the heat colours over the image, in [0, 1]
  double smooth = 0.0;           ///< Gaussian sigma in grid cells (0 = none)
  bool colorbar = true;          ///< a colour bar on the right, on images of 64 px or more
  std::string label;             ///< text for the top-left corner; empty = none
};

/// How a model is prepared when it is loaded.
struct LoadOptions {
  /// "fp32" (the default: logits match timm / torchvision), "bf16", "int8" or "auto" (the fastest
  /// this CPU runs natively; see the README's "Precision").
  std::string precision = "fp32";
};

/// A Vision Transformer classifier with its explanation maps. One object serves one thread at a
/// time; load one per thread to classify in parallel.
class Classifier {
 public:
  /// Loads a ViT model file: a shipped default (default_model_path("classifier")), the output of
  /// `attn train classifier`, or a timm / Hugging Face / torchvision checkpoint converted by
  /// `attn import`. Throws vision::CheckpointError naming the file and the problem.
  explicit Classifier(const std::string& model_path, const LoadOptions& options = {});
  ~Classifier();
  Classifier(Classifier&&) noexcept;
  Classifier& operator=(Classifier&&) noexcept;

  /// The `k` most probable classes of an image, best first. `rgb` is 8-bit RGB (CV_8UC3; grey
  /// CV_8UC1 is expanded), as load_image() returns it: convert cv::imread's BGR first. It is
  /// resized, cropped and normalised as the model's preprocessing says (PIL-exact, as timm and
  /// torchvision do). Throws std::invalid_argument for another pixel type or k < 1.
  std::vector<Prediction> classify(const cv::Mat& rgb, int k = 5) const;

  /// The same for many images, run in one batch.
  std::vector<std::vector<Prediction>> classify(const std::vector<cv::Mat>& rgbs, int k = 5) const;

  /// An explanation map of the image: `method` is "rollout" (Abnar and Zuidema 2020),
  /// "grad-rollout" or "relevance" (Chefer et al. 2021; the README recommends these two for "why
  /// this class"), "gradcam", "cls" (the last layer's class-token attention, heads averaged) or
  /// "pool" (attention-pool models). The class-specific methods explain `target_class`, or the
  /// top-1 class when it is -1. Throws std::invalid_argument for an unknown method, a method the
  /// model cannot give, or a class out of range.
  AttentionMap explain(const cv::Mat& rgb, const std::string& method = "rollout",
                       int64_t target_class = -1) const;

  /// The map drawn over the image it was computed from: upsampled through the model's crop,
  /// colour-mapped and blended. -> RGB8 of the image's size.
  cv::Mat overlay(const cv::Mat& rgb, const AttentionMap& map,
                  const OverlayOptions& options = {}) const;

  /// Class names in index order (may be empty for an imported model without labels).
  const std::vector<std::string>& labels() const;
  int64_t num_classes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One word of a caption and where the captioner looked to write it.
struct CaptionWord {
  std::string word;
  double probability = 0;  ///< p(word | image, the words before it)
  cv::Mat attention;       ///< CV_32F (gh, gw), sums to 1
};

struct Caption {
  std::string text;  ///< the words joined by spaces
  std::vector<CaptionWord> words;
  double log_prob = 0;  ///< sum of log p over the words (and the end token when emitted)
  bool ended = true;    ///< false when max_len cut the caption
};

/// A Show, Attend and Tell captioner. One object serves one thread at a time.
class Captioner {
 public:
  /// Loads a captioner model file (default_model_path("captioner"), or the output of `attn train
  /// captioner`). Throws vision::CheckpointError naming the file and the problem.
  explicit Captioner(const std::string& model_path, const LoadOptions& options = {});
  ~Captioner();
  Captioner(Captioner&&) noexcept;
  Captioner& operator=(Captioner&&) noexcept;

  /// The caption of an 8-bit RGB image by beam search (`beam` = 1: greedy), at most `max_len`
  /// words. Throws std::invalid_argument for another pixel type, beam < 1 or max_len < 1.
  Caption caption(const cv::Mat& rgb, int beam = 3, int max_len = 20) const;

  /// One word's attention drawn over the image it was computed from (RGB8, the image's size).
  cv::Mat overlay(const cv::Mat& rgb, const CaptionWord& word,
                  const OverlayOptions& options = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The path of a shipped default model, "classifier" (fashion-vit) or "captioner"
/// (scenes-captioner), found in this order: $ATTNKIT_WEIGHTS; weights/ or share/attnkit/weights/
/// beside the running program's folder; the install prefix's share/attnkit/weights/; the source
/// tree's weights/. Throws std::invalid_argument for another kind.
std::string default_model_path(const std::string& kind);

/// Loads an image file as 8-bit RGB with its EXIF orientation applied (PNG, JPEG, WebP, BMP,
/// TIFF, PNM), held to 100 megapixels. Throws vision::ImageError naming the file and the problem.
cv::Mat load_image(const std::string& path);

/// Writes an RGB8 image (.png, .jpg, .webp, .bmp) atomically: a failed write leaves nothing.
/// Throws vision::ImageError.
void save_image(const std::string& path, const cv::Mat& rgb);

}  // namespace attnkit
