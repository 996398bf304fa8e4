// tests/vision/data/scenes_test.cpp: scenes are deterministic, their captions name every item with
// the right spatial relation and their boxes cover the items; the Karpathy JSON round-trips;
// the vocabulary.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <opencv2/core.hpp>

#include "tests/vision/test_support.h"
#include "vision/data/karpathy.h"
#include "vision/data/scenes.h"
#include "vision/errors.h"
#include "vision/models/vocabulary.h"

namespace attnkit::vision {
namespace {

using attnkit::testing::TempDir;

/// Ten solid 28x28 items (class i has value 10 + 20 i) with an 8-pixel black border.
LabeledImages solid_items() {
  LabeledImages items;
  items.images = torch::zeros({10, 1, 28, 28}, torch::kUInt8);
  for (int64_t i = 0; i < 10; ++i) {
    items.images[i][0].narrow(0, 8, 12).narrow(1, 8, 12).fill_(10 + 20 * i);
  }
  items.labels = torch::arange(10);
  return items;
}

std::string joined(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "" : " ") + w;
  return s;
}

TEST(Scenes, AreDeterministicAndBoxesCoverTheItems) {
  const auto items = solid_items();
  SceneOptions options;
  for (int64_t index = 0; index < 50; ++index) {
    const auto a = make_scene(items, options, 7, index);
    const auto b = make_scene(items, options, 7, index);
    ASSERT_EQ(cv::countNonZero(a.image != b.image), 0);
    ASSERT_GE(a.objects.size(), 2u);
    ASSERT_LE(a.objects.size(), 4u);
    ASSERT_GE(a.captions.size(), 2u);
    for (const auto& o : a.objects) {
      // The tight box is exactly the 12x12 solid square, filled with the class's value.
      EXPECT_EQ(o.box.width, 12);
      EXPECT_EQ(o.box.height, 12);
      const cv::Mat inside = a.image(o.box);
      EXPECT_EQ(cv::countNonZero(inside != 10 + 20 * o.class_index), 0);
      // The box lies in the object's quadrant.
      EXPECT_EQ(o.box.x / 32, o.column);
      EXPECT_EQ(o.box.y / 32, o.row);
      EXPECT_EQ(o.word, scene_object_words()[static_cast<size_t>(o.class_index)]);
    }
  }
  EXPECT_NE(cv::countNonZero(make_scene(items, options, 7, 0).image !=
                             make_scene(items, options, 8, 0).image),
            0);
}

TEST(Scenes, CaptionsStateTheLayout) {
  std::vector<SceneObject> objects(3);
  objects[0].word = "bag";
  objects[0].row = 0;
  objects[0].column = 0;
  objects[1].word = "dress";
  objects[1].row = 1;
  objects[1].column = 0;
  objects[2].word = "trousers";
  objects[2].row = 1;
  objects[2].column = 1;
  std::vector<std::string> captions;
  for (const auto& c : scene_captions(objects)) captions.push_back(joined(c));
  EXPECT_EQ(captions,
            (std::vector<std::string>{"a bag above a dress and a pair of trousers",
                                      "a dress and a pair of trousers below a bag",
                                      "a bag and a dress to the left of a pair of trousers",
                                      "a pair of trousers to the right of a bag and a dress"}));
  // Two items side by side: only left / right captions.
  objects.pop_back();
  objects[1].row = 0;
  objects[1].column = 1;
  captions.clear();
  for (const auto& c : scene_captions(objects)) captions.push_back(joined(c));
  EXPECT_EQ(captions, (std::vector<std::string>{"a bag to the left of a dress",
                                                "a dress to the right of a bag"}));
}

// A one-image Karpathy file whose only object has the box `box`.
std::string object_box(const std::string& box) {
  return R"({"images":[{"filename":"x","split":"test","sentences":[{"tokens":["a"]}],)"
         R"("objects":[{"word":"a","box":)" +
         box + "}]}]}";
}

TEST(Karpathy, RoundTripsAndReadsRawOnlySentences) {
  TempDir dir;
  std::vector<CaptionRecord> records(2);
  records[0].filepath = "images";
  records[0].filename = "a.png";
  records[0].split = "train";
  records[0].captions = {{"a", "bag", "above", "a", "coat"}, {"a", "coat", "below", "a", "bag"}};
  records[0].objects = {{"bag", cv::Rect(1, 2, 3, 4)}, {"coat", cv::Rect(5, 6, 7, 8)}};
  records[1].filename = "b.jpg";
  records[1].split = "test";
  records[1].captions = {{"two", "dogs"}};
  save_karpathy_json(dir.file("d.json"), records, "test");
  const auto back = load_karpathy_json(dir.file("d.json"), "/root");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].image_path, "/root/images/a.png");
  EXPECT_EQ(back[1].image_path, "/root/b.jpg");
  EXPECT_EQ(back[0].captions, records[0].captions);
  ASSERT_EQ(back[0].objects.size(), 2u);
  EXPECT_EQ(back[0].objects[1].box, cv::Rect(5, 6, 7, 8));
  EXPECT_EQ(back[1].split, "test");

  std::ofstream(dir.file("raw.json"))
      << R"({"images":[{"filename":"x.jpg","split":"restval","sentences":[{"raw":"A Dog, running."}]}]})";
  const auto raw = load_karpathy_json(dir.file("raw.json"), ".");
  EXPECT_EQ(raw[0].captions[0], (std::vector<std::string>{"a", "dog", "running"}));

  for (const std::string& bad : std::vector<std::string>{
           "{\"images\": 3}", "[1]", "{\"images\":[{\"filename\":\"x\"}]}",
           "{\"images\":[{\"filename\":\"x\",\"split\":\"dev\","
           "\"sentences\":[{\"tokens\":[\"a\"]}]}]}",
           "not json", object_box("[0, 0, 1e300, 4]"), object_box("[0, 0, 4294967297, 4]"),
           object_box("[2147483000, 0, 1000, 4]"), object_box("[0, 0, 4]")}) {
    std::ofstream(dir.file("bad.json")) << bad;
    try {
      load_karpathy_json(dir.file("bad.json"), ".");
      ADD_FAILURE() << bad;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
    }
  }
}

TEST(Vocabulary, BuildsFromCountsAndRoundTrips) {
  const auto v = Vocabulary::build({{"a", "bag", "a"}, {"a", "coat", "bag"}, {"zebra"}}, 2);
  EXPECT_EQ(v.words(),
            (std::vector<std::string>{"<pad>", "<start>", "<end>", "<unk>", "a", "bag"}));
  EXPECT_EQ(v.encode({"a", "coat", "bag"}), (std::vector<int64_t>{4, Vocabulary::kUnk, 5}));
  EXPECT_EQ(v.decode({Vocabulary::kStart, 5, 4, Vocabulary::kEnd, 5}),
            (std::vector<std::string>{"bag", "a"}));
  EXPECT_EQ(Vocabulary::from_json(v.to_json()).words(), v.words());
  EXPECT_THROW(Vocabulary::from_json("[\"a\"]"), std::invalid_argument);
  EXPECT_THROW(v.word(99), std::out_of_range);
}

}  // namespace
}  // namespace attnkit::vision
