// vision/data/scenes.cpp: scene layout, rendering and captions.
#include "vision/data/scenes.h"

#include <algorithm>
#include <random>
#include <stdexcept>

#include <torch/torch.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace attnkit::vision {
namespace {

constexpr int kItem = 28;

/// "a bag", "a bag and a shirt", "a bag , a shirt and a coat".
std::vector<std::string> phrase(const std::vector<const SceneObject*>& objects) {
  std::vector<std::string> words;
  for (size_t i = 0; i < objects.size(); ++i) {
    if (i > 0) words.push_back(i + 1 == objects.size() ? "and" : ",");
    // Plural-only nouns take "a pair of" (the word itself stays one token for the pointing game).
    if (objects[i]->word == "trousers") {
      words.insert(words.end(), {"a", "pair", "of"});
    } else {
      words.push_back("a");
    }
    words.push_back(objects[i]->word);
  }
  return words;
}

std::vector<std::string> join(std::vector<std::string> a, const std::vector<std::string>& relation,
                              const std::vector<std::string>& b) {
  a.insert(a.end(), relation.begin(), relation.end());
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

const std::vector<std::string>& scene_object_words() {
  static const std::vector<std::string> words = {"t-shirt", "trousers", "pullover", "dress",
                                                 "coat",    "sandal",   "shirt",    "sneaker",
                                                 "bag",     "boot"};
  return words;
}

std::vector<std::vector<std::string>> scene_captions(const std::vector<SceneObject>& objects) {
  std::vector<const SceneObject*> rows[2], columns[2];
  // Rows read left to right, columns top to bottom.
  for (int c = 0; c < 2; ++c) {
    for (int r = 0; r < 2; ++r) {
      for (const auto& o : objects) {
        if (o.row == r && o.column == c) columns[c].push_back(&o);
      }
    }
  }
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 2; ++c) {
      for (const auto& o : objects) {
        if (o.row == r && o.column == c) rows[r].push_back(&o);
      }
    }
  }
  std::vector<std::vector<std::string>> captions;
  if (!rows[0].empty() && !rows[1].empty()) {
    captions.push_back(join(phrase(rows[0]), {"above"}, phrase(rows[1])));
    captions.push_back(join(phrase(rows[1]), {"below"}, phrase(rows[0])));
  }
  if (!columns[0].empty() && !columns[1].empty()) {
    captions.push_back(join(phrase(columns[0]), {"to", "the", "left", "of"}, phrase(columns[1])));
    captions.push_back(join(phrase(columns[1]), {"to", "the", "right", "of"}, phrase(columns[0])));
  }
  return captions;
}

Scene make_scene(const LabeledImages& items, const SceneOptions& options, uint64_t seed,
                 int64_t index) {
  if (options.canvas < 2 * kItem || options.min_items < 2 || options.max_items > 4 ||
      options.min_items > options.max_items || options.jitter < 0) {
    throw std::invalid_argument(
        "SceneOptions: need canvas >= 56 and 2 <= min_items <= "
        "max_items <= 4");
  }
  TORCH_CHECK(items.size() > 0 && items.images.size(1) == 1 && items.images.size(2) == kItem &&
                  items.images.size(3) == kItem,
              "make_scene: expected (N, 1, 28, 28) items, got ", items.images.sizes());
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(index));
  const int count = std::uniform_int_distribution<int>(options.min_items, options.max_items)(rng);
  std::vector<int> slots = {0, 1, 2, 3};
  std::shuffle(slots.begin(), slots.end(), rng);
  slots.resize(count);
  // Any 2 of the 4 slots share a row, a column or a diagonal: every layout gets >= 2 captions.
  std::sort(slots.begin(), slots.end());

  Scene scene;
  scene.image = cv::Mat::zeros(options.canvas, options.canvas, CV_8UC1);
  const int half = options.canvas / 2;
  // Items stay inside their quadrant: the free space there bounds the jitter.
  const int range = std::min(2 * options.jitter, half - kItem);
  std::uniform_int_distribution<int64_t> pick(0, items.size() - 1);
  std::uniform_int_distribution<int> shift(0, range);
  auto images = items.images.contiguous();
  for (int slot : slots) {
    SceneObject o;
    o.row = slot / 2;
    o.column = slot % 2;
    const int64_t item = pick(rng);
    o.class_index = items.labels[item].item<int64_t>();
    o.word = scene_object_words().at(static_cast<size_t>(o.class_index));
    // Centre the item in its quadrant, then jitter.
    const int x = o.column * half + (half - kItem - range) / 2 + shift(rng);
    const int y = o.row * half + (half - kItem - range) / 2 + shift(rng);
    const cv::Mat pixels(kItem, kItem, CV_8UC1, images[item].data_ptr<uint8_t>());
    cv::Mat target = scene.image(cv::Rect(x, y, kItem, kItem));
    cv::max(target, pixels, target);
    cv::Mat mask = pixels > 0;
    const cv::Rect tight = cv::boundingRect(mask);
    o.box = tight.area() > 0 ? cv::Rect(x + tight.x, y + tight.y, tight.width, tight.height)
                             : cv::Rect(x, y, kItem, kItem);
    scene.objects.push_back(o);
  }
  scene.captions = scene_captions(scene.objects);
  return scene;
}

}  // namespace attnkit::vision
