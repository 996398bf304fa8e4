// tests/apps/overlay_test.cpp: the real `attn overlay` end to end: images at their own size or
// enlarged, JSON grids, panels, per-word caption panels, a generated video in and out, and the
// errors: bad files, impossible methods, nothing half-written.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "tests/apps/cli_support.h"
#include "tests/apps/tiny_captioner.h"
#include "tests/vision/test_support.h"
#include "vision/image/image_io.h"

namespace attnkit::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kFashion = std::string(ATTNKIT_SOURCE_DIR) + "/samples/fashion";

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(OverlayCli, DrawsEveryImageAtItsOwnSizeWithItsGrids) {
  attnkit::testing::TempDir tmp;
  const auto r = run_attn("overlay " + kFashion + " --out " + tmp.file("maps") + " --json -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int images = 0;
  for (const auto& entry : fs::directory_iterator(kFashion)) {
    if (entry.path().extension() != ".png") continue;
    ++images;
    const auto out = tmp.file("maps/" + entry.path().stem().string() + ".rollout.png");
    ASSERT_TRUE(fs::exists(out)) << out;
    EXPECT_EQ(vision::load_image_rgb(out).size(),
              vision::load_image_rgb(entry.path().string()).size());
    std::ifstream in(out + ".json");
    const auto j = json::parse(in);
    EXPECT_EQ(j["method"], "rollout");
    EXPECT_EQ(j["grid"], json::array({7, 7}));
    EXPECT_EQ(j["maps"].size(), 1u);
    EXPECT_EQ(j["maps"][0].size(), 7u);
    EXPECT_GT(j["probability"].get<double>(), 0.0);
    EXPECT_NE(r.out.find(entry.path().string() + " -> " + out), std::string::npos) << r.out;
  }
  EXPECT_EQ(images, 10);
}

TEST(OverlayCli, UpscalesSmallImagesAndDrawsHeadPanels) {
  attnkit::testing::TempDir tmp;
  const std::string image = kFashion + "/test0009-sneaker.png";
  auto r = run_attn("overlay " + image + " --upscale 224 -o " + tmp.file("big.jpg") + " -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(vision::load_image_rgb(tmp.file("big.jpg")).size(), cv::Size(224, 224));
  r = run_attn("overlay " + image + " --method cls --head all --upscale 224 -o " +
               tmp.file("heads.png") + " --json -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto panel = vision::load_image_rgb(tmp.file("heads.png"));
  EXPECT_GT(panel.cols, 2 * 224);  // 4 heads, 2 x 2
  std::ifstream in(tmp.file("heads.png.json"));
  EXPECT_EQ(json::parse(in)["maps"].size(), 4u);
  r = run_attn("overlay " + image + " --method grad-rollout --class Sandal -o " +
               tmp.file("why.webp") + " --json -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream why(tmp.file("why.webp.json"));
  EXPECT_EQ(json::parse(why)["label"], "Sandal");
}

// Patch attention from a pixel or a cell: the pixel maps to the cell under it through the
// preprocessing (28x28 item, 7x7 grid: 4 pixels a cell), its row sums to at most 1, and a pixel
// off one image fails that image only.
TEST(OverlayCli, PatchAttentionFromAPixelOrACell) {
  attnkit::testing::TempDir tmp;
  const std::string image = kFashion + "/test0009-sneaker.png";
  auto r = run_attn("overlay " + image + " --method patch --at 13,6 --layer 2 --json -o " +
                    tmp.file("at.png") + " -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream at_file(tmp.file("at.png.json"));
  const auto at = json::parse(at_file);
  EXPECT_EQ(at["method"], "patch");
  EXPECT_EQ(at["cell"], json::array({1, 3}));  // y 6 -> row 1, x 13 -> column 3
  double total = 0;
  for (const auto& row : at["maps"][0]) {
    for (const auto& v : row) total += v.get<double>();
  }
  EXPECT_GT(total, 0.1);
  EXPECT_LE(total, 1.0 + 1e-5);
  r = run_attn("overlay " + image + " --method patch --cell 1,3 --layer 2 --json -o " +
               tmp.file("cell.png") + " -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream cell_file(tmp.file("cell.png.json"));
  EXPECT_EQ(json::parse(cell_file)["maps"], at["maps"]);
  r = run_attn("overlay " + image + " --method patch-rollout --cell 0,0 --json -o " +
               tmp.file("rolled.png") + " -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream rolled_file(tmp.file("rolled.png.json"));
  EXPECT_NE(json::parse(rolled_file)["maps"], at["maps"]);
  // A 28x28 item and a 451x300 photo: (100, 100) is off the first only.
  r = run_attn("overlay " + image + " " + std::string(ATTNKIT_SOURCE_DIR) +
               "/samples/chelsea.png --method patch --at 100,100 --out " + tmp.file("two") +
               " -t 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("pixel 100,100 is outside the 28x28 image"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(tmp.file("two/chelsea.patch.png")));
  EXPECT_FALSE(fs::exists(tmp.file("two/test0009-sneaker.patch.png")));
  // Usage errors: no patch, a patch for another method, a cell off the grid, head all.
  for (const std::string& args :
       {std::string("--method patch"), std::string("--method rollout --cell 1,1"),
        std::string("--method patch --cell 7,0"), std::string("--method patch --cell 1,x"),
        std::string("--method patch --cell 1,1 --head all")}) {
    r = run_attn("overlay " + image + " " + args + " -o " + tmp.file("bad.png"));
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
    EXPECT_FALSE(fs::exists(tmp.file("bad.png"))) << args;
  }
}

TEST(OverlayCli, BadInputsAreReportedAndNothingIsHalfWritten) {
  attnkit::testing::TempDir tmp;
  fs::create_directories(tmp.file("in"));
  fs::copy_file(kFashion + "/test0018-bag.png", tmp.file("in/bag.png"));
  std::ofstream(tmp.file("in/broken.png")) << "not a png";
  auto r = run_attn("overlay " + tmp.file("in") + " --out " + tmp.file("out") + " -t 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("broken.png"), std::string::npos) << r.err;
  EXPECT_EQ(files_in(tmp.file("out")), std::vector<std::string>{"bag.rollout.png"});

  r = run_attn("overlay " + tmp.file("in/broken.png") + " -o " + tmp.file("one.png"));
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_FALSE(fs::exists(tmp.file("one.png")));

  r = run_attn("overlay " + kFashion + " -o " + tmp.file("one.png"));
  EXPECT_EQ(r.exit_code, 2) << "many inputs, one output file";
  r = run_attn("overlay " + tmp.file("in/bag.png") + " --method pool -o " + tmp.file("pool.png"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("attention-pool"), std::string::npos) << r.err;
  r = run_attn("overlay " + tmp.file("in/bag.png") + " --method grad-rollout --class Scarf -o " +
               tmp.file("x.png"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("Scarf"), std::string::npos) << r.err;
  r = run_attn("overlay " + tmp.file("in/bag.png") + " --colormap plaid -o " + tmp.file("x.png"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_attn("overlay " + tmp.file("in/bag.png") + " --method cls --layer 9 -o " +
               tmp.file("x.png"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(fs::exists(tmp.file("x.png")));
}

TEST(OverlayCli, VideoGetsTheOverlayOnEveryFrame) {
  attnkit::testing::TempDir tmp;
  const auto item = vision::load_image_rgb(kFashion + "/test0000-ankle-boot.png");
  const std::string clip = tmp.file("clip.avi");
  {
    cv::VideoWriter writer(clip, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10.0,
                           cv::Size(56, 56));
    ASSERT_TRUE(writer.isOpened());
    for (int i = 0; i < 11; ++i) {
      cv::Mat frame = cv::Mat::zeros(56, 56, CV_8UC3);
      cv::Mat bgr;
      cv::cvtColor(item, bgr, cv::COLOR_RGB2BGR);
      bgr.copyTo(frame(cv::Rect(i * 2, 14, 28, 28)));  // the boot moves right
      writer.write(frame);
    }
  }
  for (const std::string out : {"clip.rollout.mp4", "clip.rollout.avi"}) {
    const auto r = run_attn("overlay " + clip + " -b 4 -t 1 -o " + tmp.file(out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("11 frames"), std::string::npos) << r.out;
    cv::VideoCapture capture(tmp.file(out));
    ASSERT_TRUE(capture.isOpened()) << out;
    int frames = 0;
    cv::Mat frame;
    while (capture.read(frame)) {
      EXPECT_EQ(frame.size(), cv::Size(56, 56));
      ++frames;
    }
    EXPECT_EQ(frames, 11) << out;
  }
  std::ofstream(tmp.file("broken.mp4")) << "not a video at all";
  const auto r =
      run_attn("overlay " + tmp.file("broken.mp4") + " -o " + tmp.file("broken.out.mp4"));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("broken.mp4"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp.file("broken.out.mp4")));
  for (const auto& f : files_in(tmp.path().string())) {
    EXPECT_EQ(f.find("partial"), std::string::npos) << f;
  }
}

TEST(OverlayCli, CaptionPanelsHaveOneMapPerWord) {
  attnkit::testing::TempDir tmp;
  save_tiny_captioner(tmp.file("captioner.safetensors"), 32, 32);
  const auto r =
      run_attn("overlay " + kFashion + "/test0018-bag.png --method caption --max-len 5 --model " +
               tmp.file("captioner.safetensors") + " -o " + tmp.file("words.png") + " --json -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(tmp.file("words.png.json"));
  const auto j = json::parse(in);
  ASSERT_GE(j["words"].size(), 1u);
  EXPECT_LE(j["words"].size(), 5u);
  EXPECT_EQ(j["grid"], json::array({4, 4}));
  EXPECT_EQ(j["words"][0]["attention"].size(), 4u);
  // The image plus one tile per word, side by side (at most 6 per row).
  const auto panel = vision::load_image_rgb(tmp.file("words.png"));
  const size_t tiles = j["words"].size() + 1;
  EXPECT_GE(panel.cols, static_cast<int>(std::min<size_t>(tiles, 6) * 160));
}

}  // namespace
}  // namespace attnkit::apps
