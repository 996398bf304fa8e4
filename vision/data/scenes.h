// vision/data/scenes.h: synthetic captioned scenes built deterministically from Fashion-MNIST
// items: 2 to 4 items on a canvas, reference captions that need spatial words, and every item's
// box, so a captioner's attention can be scored (pointing game).
#pragma once

#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "vision/data/labeled_images.h"

namespace attnkit::vision {

/// The word a caption uses for each Fashion-MNIST class, index order.
const std::vector<std::string>& scene_object_words();

struct SceneObject {
  int64_t class_index = 0;
  std::string word;  ///< e.g. "sneaker"
  int row = 0;       ///< slot in the 2x2 layout: 0 top, 1 bottom
  int column = 0;    ///< 0 left, 1 right
  cv::Rect box;      ///< tight box of the item's visible pixels, canvas coordinates
};

struct Scene {
  cv::Mat image;                     ///< canvas x canvas, CV_8UC1, items white on black
  std::vector<SceneObject> objects;  ///< in reading order (top row first, left first)
  std::vector<std::vector<std::string>> captions;  ///< 2 to 4 tokenised references
};

struct SceneOptions {
  int canvas = 64;  ///< square canvas side in pixels (>= 2 * 28)
  int min_items = 2;
  int max_items = 4;
  int jitter = 4;  ///< items move up to +-jitter pixels, within their quadrant
};

/// Scene number `index` of the stream `seed`, drawing items from `items` (28x28 uint8 images).
/// The same (items, options, seed, index) always gives the same scene.
Scene make_scene(const LabeledImages& items, const SceneOptions& options, uint64_t seed,
                 int64_t index);

/// The reference captions of a layout, e.g. {"a bag above a dress and a shirt", "a dress and a
/// shirt below a bag", ...}: rows joined by above/below, columns by to the left of / right of.
std::vector<std::vector<std::string>> scene_captions(const std::vector<SceneObject>& objects);

}  // namespace attnkit::vision
