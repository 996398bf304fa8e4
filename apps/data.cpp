// apps/data.cpp: `attn data scenes`: writes the synthetic captioned scenes as PNGs plus a
// Karpathy split JSON with object boxes, so the captioning loader reads them like COCO.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
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

/// Everything `attn data scenes` is told, with its defaults.
struct ScenesParams {
  std::string out_dir;
  std::string split = "train";
  std::string fashion_dir = vision::kFashionMnistDir;
  int64_t count = 1000;
  int64_t val_count = -1;  ///< -1 = 10% of a train split
  uint64_t seed = 0;
  vision::SceneOptions scene;
};

const char* const kScenesSummary =
    "Generates captioned scenes: 2 to 4 Fashion-MNIST items in a 2x2 layout on a black\n"
    "canvas, 2 to 4 reference captions each that need spatial words (\"a bag above a\n"
    "dress and a shirt\", \"a sneaker to the left of a coat\") and the box of every item.\n"
    "Deterministic: the same --seed and --count give the same files.\n\n"
    "Examples:\n"
    "  attn data scenes --out data/scenes-train --count 20000\n"
    "  attn data scenes --out data/scenes-test --split test --count 1000 --seed 1";

/// The command line, checked; nullopt after --help. Throws UsageError.
std::optional<ScenesParams> parse_scenes(int argc, char** argv) {
  ScenesParams p;
  auto& scene = p.scene;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")("out,o", po::value(&p.out_dir),
                                                    "output directory (images/ and scenes.json)")(
      "count,n", po::value(&p.count)->default_value(p.count), "number of scenes")(
      "seed", po::value(&p.seed)->default_value(p.seed),
      "the scene stream: same seed, same scenes")(
      "split", po::value(&p.split)->default_value(p.split),
      "train: items from Fashion-MNIST's train split (last --val-count scenes marked val); "
      "test: items from its test split, all marked test")(
      "val-count", po::value(&p.val_count)->default_value(p.val_count),
      "scenes marked val with --split train (-1 = 10%)")(
      "canvas", po::value(&scene.canvas)->default_value(scene.canvas), "canvas side in pixels")(
      "min-items", po::value(&scene.min_items)->default_value(scene.min_items),
      "fewest items per scene (>= 2)")("max-items",
                                       po::value(&scene.max_items)->default_value(scene.max_items),
                                       "most items per scene (<= 4)")(
      "fashion-dir", po::value(&p.fashion_dir)->default_value(p.fashion_dir),
      "where the Fashion-MNIST idx files are");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "", "attn data scenes --out DIR [options]",
                          kScenesSummary, vm)) {
    return std::nullopt;
  }
  if (p.out_dir.empty()) throw UsageError("--out is required");
  if (p.count < 1) throw UsageError("--count must be at least 1");
  if (p.split != "train" && p.split != "test") throw UsageError("--split must be train or test");
  if (p.val_count < 0) p.val_count = p.split == "train" ? p.count / 10 : 0;
  if (p.split == "train" && p.val_count >= p.count) {
    throw UsageError("--val-count leaves no train scenes");
  }
  if (scene.canvas < 56 || scene.min_items < 2 || scene.max_items > 4 ||
      scene.min_items > scene.max_items) {
    throw UsageError("need --canvas >= 56 and 2 <= --min-items <= --max-items <= 4");
  }
  return p;
}

/// Scene `i`: its PNG written under `image_dir`, its record returned. Throws vision::Error.
vision::CaptionRecord write_scene(const ScenesParams& p, const vision::LabeledImages& items,
                                  const std::filesystem::path& image_dir, int64_t i) {
  const auto s = vision::make_scene(items, p.scene, p.seed, i);
  std::ostringstream name;
  name << "scene_" << std::setw(6) << std::setfill('0') << i << ".png";
  cv::Mat rgb;
  cv::cvtColor(s.image, rgb, cv::COLOR_GRAY2RGB);
  vision::save_image_rgb((image_dir / name.str()).string(), rgb);
  vision::CaptionRecord r;
  r.filepath = "images";
  r.filename = name.str();
  r.split = p.split == "test" ? "test" : (i >= p.count - p.val_count ? "val" : "train");
  r.captions = s.captions;
  for (const auto& o : s.objects) r.objects.push_back({o.word, o.box});
  return r;
}

int run_data_scenes(int argc, char** argv) {
  const auto parsed = parse_scenes(argc, argv);
  if (!parsed) return kExitOk;
  const ScenesParams& p = *parsed;
  vision::LabeledImages items;
  try {
    items = vision::load_fashion_mnist(p.fashion_dir, p.split);
  } catch (const vision::Error& e) {
    print_error("data", e.what());
    return kExitNoInput;
  }
  const auto image_dir = std::filesystem::path(p.out_dir) / "images";
  std::filesystem::create_directories(image_dir);
  std::vector<vision::CaptionRecord> records;
  ProgressBar progress("scenes", p.count);
  for (int64_t i = 0; i < p.count; ++i) {
    try {
      records.push_back(write_scene(p, items, image_dir, i));
    } catch (const vision::Error& e) {
      print_error("data", e.what());
      return kExitNoInput;
    }
    progress.advance(1);
  }
  progress.finish();
  const auto json_path = (std::filesystem::path(p.out_dir) / "scenes.json").string();
  vision::save_karpathy_json(json_path, records, "attnkit-scenes");
  std::cout << "wrote " << p.count << " scenes (" << p.split << ", seed " << p.seed << ") to "
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
