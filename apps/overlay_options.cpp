// apps/overlay_options.cpp: `attn overlay`'s options, help and checks.
#include "apps/overlay_options.h"

#include <cmath>
#include <set>
#include <stdexcept>
#include <utility>

#include <boost/program_options.hpp>

#include "apps/caption_options.h"
#include "apps/inference_precision_option.h"
#include "vision/image/overlay.h"
#include "vision/models/vit_explain.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;

/// Option values as typed, before they are checked and resolved into OverlayParams.
struct TypedOptions {
  std::string head = "-1";
  std::string layer = "-1";
  std::string target;
  std::string colormap = "jet";
  std::string fusion = "mean";
  std::string format = "png";
  std::string precision = "fp32";
  std::string at;    ///< --at X,Y
  std::string cell;  ///< --cell ROW,COL
  bool no_colorbar = false;
};

po::options_description overlay_options(OverlayParams& p, TypedOptions& t) {
  auto& s = p.settings;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "inputs", po::value(&p.inputs)->multitoken(),
      "images, videos, directories of images (recursively) or - for paths on stdin")(
      "model,m", po::value(&p.model_path),
      "ViT model file (default: the shipped Fashion-MNIST ViT), or a captioner for "
      "--method caption (default: the shipped scenes captioner)")(
      "method", po::value(&s.method)->default_value(s.method),
      "cls: the class token's attention in one layer; rollout: attention rolled out over "
      "all layers (Abnar and Zuidema 2020); grad-rollout: rollout weighted by the gradient of "
      "--class ('why this class'); relevance: relevance propagated through every block's "
      "gradient-weighted attention (Chefer, Gur and Wolf 2021), for --class; gradcam: Grad-CAM "
      "on the tokens block --layer's attention reads, for --class; pool: the attention-pool "
      "head's weights; patch: what the patch at --at/--cell attends to in block --layer (head "
      "--head, or fused); patch-rollout: that patch's row of the rolled-out attention; caption: "
      "one map per generated word")(
      "at", po::value(&t.at),
      "patch, patch-rollout: the query patch as a pixel X,Y of the input image (e.g. 120,80)")(
      "cell", po::value(&t.cell),
      "patch, patch-rollout: the query patch as a grid cell ROW,COL from the top left (e.g. 3,5)")(
      "class", po::value(&t.target),
      "grad-rollout, relevance, gradcam: the class to explain, by index or label (default: "
      "each image's top-1)")(
      "head", po::value(&t.head)->default_value(t.head),
      "cls, patch: head index, -1 = fuse the heads (--fusion); cls: 'all' = a panel of every "
      "head")(
      "layer", po::value(&t.layer)->default_value(t.layer),
      "cls, patch: layer index (-1 = last); cls: 'all' = a panel of every layer; gradcam: the "
      "block whose tokens are weighted (-1 = last)")(
      "fusion", po::value(&t.fusion)->default_value(t.fusion), "head fusion: mean | max | min")(
      "discard", po::value(&s.explain.discard_ratio)->default_value(0.0),
      "rollout, grad-rollout, patch-rollout: zero the lowest fraction of each layer's attention "
      "first (e.g. 0.9)")("colormap", po::value(&t.colormap)->default_value(t.colormap),
                          ("OpenCV colormap: " + vision::colormap_names()).c_str())(
      "alpha", po::value(&s.style.alpha)->default_value(s.style.alpha),
      "opacity of the heat colours")(
      "smooth", po::value(&s.style.smooth)->default_value(0.0),
      "Gaussian smoothing, sigma in grid cells (SAT's figures smooth; 0 = off)")(
      "threshold", po::value(&s.style.threshold)->default_value(-1.0),
      "draw the contour where the normalised map >= this (0..1; -1 = off)")(
      "no-colorbar", po::bool_switch(&t.no_colorbar), "no colour bar on the right edge")(
      "upscale", po::value(&s.upscale)->default_value(0),
      "draw images smaller than this many pixels (longer side) enlarged to it, e.g. 224 for "
      "28x28 Fashion-MNIST items (0 = the original size)")(
      "beam", po::value(&s.beam)->default_value(s.beam), "caption: beam width")(
      "max-len", po::value(&s.max_len)->default_value(s.max_len),
      ("caption: " + max_len_help()).c_str())(
      "out,o", po::value(&p.out)->default_value(p.out),
      "output: a file (.png, .jpg, .webp; .mp4 or .avi for a video) for one input, else a "
      "directory that gets <name>.<method>.png per image and <name>.<method>.mp4 per video")(
      "format", po::value(&t.format)->default_value(t.format),
      "image format in an output directory: png | jpg | webp")(
      "json", po::bool_switch(&p.write_json),
      "also write the raw grids, prediction or caption as <output>.json (images)")(
      "batch-size,b", po::value(&p.batch_size)->default_value(p.batch_size),
      "images or video frames per forward pass")(
      "precision,p", po::value(&t.precision)->default_value(t.precision),
      (std::string(kInferencePrecisionHelp) +
       ".\ngrad-rollout, relevance and gradcam need gradients: their pass runs in fp32")
          .c_str())("threads,t", po::value(&p.threads)->default_value(p.threads), kThreadsHelp);
  add_max_pixels_option(options);
  add_shard_option(options, &p.shard);
  return options;
}

const char* const kOverlayUsage = "attn overlay [options] IMAGE|VIDEO|DIR|- ...";
const char* const kOverlaySummary =
    "Draws what a model looked at onto the original image (the preprocessing crop and\n"
    "resize are undone, EXIF orientation respected), with the predicted class and its\n"
    "probability, or for a caption a panel with each word under its own map. Videos\n"
    "(any container OpenCV's ffmpeg backend reads) get the overlay on every frame.\n\n"
    "Examples:\n"
    "  attn overlay samples/fashion/ --upscale 224 --out overlays/\n"
    "  attn overlay --model vit-b16.safetensors --method grad-rollout --class 'tabby cat' \\\n"
    "      cat.jpg --out cat-why.png\n"
    "  attn overlay --model vit-b16.safetensors --method cls --head all photo.jpg -o heads.png\n"
    "  attn overlay --model vit-b16.safetensors --method patch --at 120,80 --layer 5 photo.jpg\n"
    "  attn overlay --method caption samples/scenes/scene_000000.png --upscale 256 -o words.png\n"
    "  attn overlay --model vit-b16.safetensors clip.mp4 -o clip-rollout.mp4";

/// "3", "-1" or "all" -> an index or ExplainOptions::kAll.
int64_t index_or_all(const std::string& text, const std::string& option) {
  if (text == "all") return vision::ExplainOptions::kAll;
  try {
    size_t used = 0;
    const int64_t value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw UsageError(option + " must be a number or 'all', got '" + text + "'");
}

/// The numbers, written so that NaN fails every check.
void check_numbers(const OverlayParams& p) {
  const auto& s = p.settings;
  if (p.inputs.empty()) throw UsageError("no inputs given (images, videos, directories or -)");
  if (p.batch_size < 1) throw UsageError("--batch-size must be at least 1");
  if (!(s.style.alpha >= 0 && s.style.alpha <= 1)) throw UsageError("--alpha must be in [0, 1]");
  if (!(s.style.smooth >= 0 && s.style.smooth < 1e3)) throw UsageError("--smooth must be >= 0");
  if (!(s.style.threshold <= 1)) throw UsageError("--threshold must be <= 1 (-1 = off)");
  if (!(s.explain.discard_ratio >= 0 && s.explain.discard_ratio < 1)) {
    throw UsageError("--discard must be in [0, 1)");
  }
  if (s.upscale < 0) throw UsageError("--upscale must be >= 0");
  if (s.beam < 1) throw UsageError("--beam must be >= 1");
  check_max_len(s.max_len);
}

/// --class as an index (>= 0) or, when it is not a number, a label resolved on load.
void read_target_class(const std::string& target, OverlaySettings& s) {
  try {
    size_t used = 0;
    s.explain.target_class = std::stoll(target, &used);
    if (used != target.size()) throw std::invalid_argument(target);
    if (s.explain.target_class < 0) throw UsageError("--class must be >= 0");
  } catch (const std::invalid_argument&) {
    s.target_label = target;
  } catch (const std::out_of_range&) {
    throw UsageError("--class " + target + " is out of range");
  }
}

/// "3,5" or "120.5,80" -> the two numbers, or UsageError naming the option.
std::pair<double, double> number_pair(const std::string& text, const std::string& option,
                                      const std::string& form) {
  const auto comma = text.find(',');
  try {
    if (comma != std::string::npos) {
      size_t used_first = 0;
      size_t used_second = 0;
      const std::string second = text.substr(comma + 1);
      const double a = std::stod(text.substr(0, comma), &used_first);
      const double b = std::stod(second, &used_second);
      if (used_first == comma && used_second == second.size() && std::isfinite(a) &&
          std::isfinite(b)) {
        return {a, b};
      }
    }
  } catch (const std::exception&) {
  }
  throw UsageError(option + " must be " + form + ", got '" + text + "'");
}

/// --at X,Y or --cell ROW,COL, for the patch methods only.
void read_patch_query(const TypedOptions& t, OverlaySettings& s) {
  const bool patch = s.method == "patch" || s.method == "patch-rollout";
  if (!patch) {
    if (!t.at.empty() || !t.cell.empty())
      throw UsageError("--at and --cell choose the patch of --method patch or patch-rollout");
    return;
  }
  if (t.at.empty() == t.cell.empty()) {
    throw UsageError("--method " + s.method +
                     " needs the query patch: --at X,Y (pixels) or --cell ROW,COL (grid cells)");
  }
  if (!t.at.empty()) {
    const auto [x, y] = number_pair(t.at, "--at", "X,Y in pixels of the input image, e.g. 120,80");
    if (x < 0 || y < 0) throw UsageError("--at " + t.at + ": pixels are counted from 0");
    s.patch.pixel = cv::Point2d(x, y);
    return;
  }
  const auto [row, col] = number_pair(t.cell, "--cell", "ROW,COL grid cells, e.g. 3,5");
  if (row < 0 || col < 0 || row != std::floor(row) || col != std::floor(col) || row > 1e6 ||
      col > 1e6) {
    throw UsageError("--cell " + t.cell + ": row and column are whole numbers from 0");
  }
  s.patch.cell = attention::GridCell{static_cast<int64_t>(row), static_cast<int64_t>(col)};
}

/// --method and what chooses its map: --head, --layer, --class, --fusion, --at, --cell.
void resolve_map_choice(const TypedOptions& t, const po::variables_map& vm, OverlaySettings& s) {
  static const std::set<std::string> kMethods = {"cls",   "rollout",       "grad-rollout",
                                                 "pool",  "relevance",     "gradcam",
                                                 "patch", "patch-rollout", "caption"};
  if (kMethods.count(s.method) == 0) {
    throw UsageError(
        "--method must be cls, rollout, grad-rollout, relevance, gradcam, pool, patch, "
        "patch-rollout or caption, got '" +
        s.method + "'");
  }
  const bool class_specific =
      s.method != "caption" && vision::is_class_specific(vision::map_method_from_string(s.method));
  s.explain.head = index_or_all(t.head, "--head");
  s.explain.layer = index_or_all(t.layer, "--layer");
  if (!vm["head"].defaulted() && s.method != "cls" && s.method != "patch") {
    throw UsageError("--head chooses the map of --method cls or patch");
  }
  if (!vm["layer"].defaulted() && s.method != "cls" && s.method != "gradcam" &&
      s.method != "patch") {
    throw UsageError("--layer chooses the map of --method cls, patch or gradcam");
  }
  if ((s.method == "gradcam" || s.method == "patch") &&
      s.explain.layer == vision::ExplainOptions::kAll) {
    throw UsageError("--layer all is for --method cls; " + s.method + " takes one block");
  }
  if (s.method == "patch" && s.explain.head == vision::ExplainOptions::kAll) {
    throw UsageError("--head all is for --method cls; patch takes one head or -1 (fused)");
  }
  read_patch_query(t, s);
  if (!t.target.empty()) {
    if (!class_specific)
      throw UsageError("--class is for --method grad-rollout, relevance or gradcam");
    read_target_class(t.target, s);
  }
  try {
    s.explain.fusion = attention::head_fusion_from_string(t.fusion);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

}  // namespace

std::optional<OverlayParams> parse_overlay_params(int argc, char** argv) {
  OverlayParams p;
  TypedOptions t;
  auto options = overlay_options(p, t);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "inputs", kOverlayUsage, kOverlaySummary, vm)) {
    return std::nullopt;
  }
  check_numbers(p);
  auto& s = p.settings;
  resolve_map_choice(t, vm, s);
  try {
    s.style.colormap = vision::colormap_from_string(t.colormap);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  s.style.colorbar = !t.no_colorbar;
  s.want_json = p.write_json;
  if (t.format != "png" && t.format != "jpg" && t.format != "webp") {
    throw UsageError("--format must be png, jpg or webp");
  }
  p.image_ext = "." + t.format;
  s.precision = choose_precision_option("overlay", t.precision);
  return p;
}

}  // namespace attnkit::apps
