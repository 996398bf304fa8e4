// apps/data.cpp: `attn data scenes`: writes the synthetic captioned scenes as PNGs plus a
// Karpathy split JSON with object boxes, so the captioning loader reads them like COCO.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>
#include <opencv2/imgproc.hpp>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "vision/data/fashion_mnist.h"
#include "vision/data/karpathy.h"
#include "vision/data/scenes.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;

int run_data_scenes(int argc, char** argv) {
  std::string out_dir, split = "train", fashion_dir = vision::kFashionMnistDir;
  int64_t count = 1000, val_count = -1;
  uint64_t seed = 0;
  vision::SceneOptions scene;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")("out,o", po::value(&out_dir),
                                                    "output directory (images/ and scenes.json)")(
      "count,n", po::value(&count)->default_value(count), "number of scenes")(
      "seed", po::value(&seed)->default_value(seed), "the scene stream: same seed, same scenes")(
      "split", po::value(&split)->default_value(split),
      "train: items from Fashion-MNIST's train split (last --val-count scenes marked val); "
      "test: items from its test split, all marked test")(
      "val-count", po::value(&val_count)->default_value(-1),
      "scenes marked val with --split train (-1 = 10%)")(
      "canvas", po::value(&scene.canvas)->default_value(scene.canvas), "canvas side in pixels")(
      "min-items", po::value(&scene.min_items)->default_value(scene.min_items),
      "fewest items per scene (>= 2)")("max-items",
                                       po::value(&scene.max_items)->default_value(scene.max_items),
                                       "most items per scene (<= 4)")(
      "fashion-dir", po::value(&fashion_dir)->default_value(fashion_dir),
      "where the Fashion-MNIST idx files are");
  po::variables_map vm;
  if (!parse_command_line(
          argc, argv, options, "", "attn data scenes --out DIR [options]",
          "Generates captioned scenes: 2 to 4 Fashion-MNIST items in a 2x2 layout on a black\n"
          "canvas, 2 to 4 reference captions each that need spatial words (\"a bag above a\n"
          "dress and a shirt\", \"a sneaker to the left of a coat\") and the box of every item.\n"
          "Deterministic: the same --seed and --count give the same files.\n\n"
          "Examples:\n"
          "  attn data scenes --out data/scenes-train --count 20000\n"
          "  attn data scenes --out data/scenes-test --split test --count 1000 --seed 1",
          vm)) {
    return kExitOk;
  }
  if (out_dir.empty()) throw UsageError("--out is required");
  if (count < 1) throw UsageError("--count must be at least 1");
  if (split != "train" && split != "test") throw UsageError("--split must be train or test");
  if (val_count < 0) val_count = split == "train" ? count / 10 : 0;
  if (split == "train" && val_count >= count)
    throw UsageError("--val-count leaves no train scenes");
  if (scene.canvas < 56 || scene.min_items < 2 || scene.max_items > 4 ||
      scene.min_items > scene.max_items) {
    throw UsageError("need --canvas >= 56 and 2 <= --min-items <= --max-items <= 4");
  }

  vision::LabeledImages items;
  try {
    items = vision::load_fashion_mnist(fashion_dir, split);
  } catch (const vision::Error& e) {
    print_error("data", e.what());
    return kExitNoInput;
  }
  const auto image_dir = std::filesystem::path(out_dir) / "images";
  std::filesystem::create_directories(image_dir);
  std::vector<vision::CaptionRecord> records;
  ProgressBar progress("scenes", count);
  for (int64_t i = 0; i < count; ++i) {
    const auto s = vision::make_scene(items, scene, seed, i);
    std::ostringstream name;
    name << "scene_" << std::setw(6) << std::setfill('0') << i << ".png";
    cv::Mat rgb;
    cv::cvtColor(s.image, rgb, cv::COLOR_GRAY2RGB);
    try {
      vision::save_image_rgb((image_dir / name.str()).string(), rgb);
    } catch (const vision::Error& e) {
      print_error("data", e.what());
      return kExitNoInput;
    }
    vision::CaptionRecord r;
    r.filepath = "images";
    r.filename = name.str();
    r.split = split == "test" ? "test" : (i >= count - val_count ? "val" : "train");
    r.captions = s.captions;
    for (const auto& o : s.objects) r.objects.push_back({o.word, o.box});
    records.push_back(std::move(r));
    progress.advance(1);
  }
  progress.finish();
  const auto json_path = (std::filesystem::path(out_dir) / "scenes.json").string();
  vision::save_karpathy_json(json_path, records, "attnkit-scenes");
  std::cout << "wrote " << count << " scenes (" << split << ", seed " << seed << ") to "
            << json_path << "\n";
  return kExitOk;
}

}  // namespace

int run_data(int argc, char** argv) {
  return dispatch_subtask(
      argc, argv, "data",
      {{"scenes", run_data_scenes,
        "captioned Fashion-MNIST scenes with object boxes (Karpathy JSON + PNGs)"}});
}

}  // namespace attnkit::apps
