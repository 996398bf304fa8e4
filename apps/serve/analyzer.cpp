// apps/serve/analyzer.cpp: an analysis from one classifier pass (plus the caption), and maps and
// overlays read from it by the functions `attn overlay` uses.
#include "apps/serve/analyzer.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <stdexcept>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "apps/inference_precision_option.h"
#include "apps/json_output.h"
#include "apps/overlay_options.h"
#include "apps/predictions.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"
#include "vision/models/test_time_augmentation.h"

namespace attnkit::apps {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

/// 16 hex digits from the system's random source (getrandom): one id tells nothing of another,
/// as the state of a seeded generator would.
std::string new_analysis_id() {
  std::random_device source;
  static const char* const kHex = "0123456789abcdef";
  std::string id;
  for (int word = 0; word < 2; ++word) {
    auto bits = source();
    for (int i = 0; i < 8; ++i, bits >>= 4) id += kHex[bits & 15];
  }
  return id;
}

json crop_json(const vision::CropBox& box) {
  return {{"x", box.x}, {"y", box.y}, {"width", box.width}, {"height", box.height}};
}

size_t tensor_bytes(const torch::Tensor& t) { return t.defined() ? t.nbytes() : 0; }

/// The maps an analysis can bring, as `attn overlay` options: what the page shows first.
const std::vector<std::pair<std::string, QueryParams>>& first_map_queries() {
  static const std::vector<std::pair<std::string, QueryParams>> kMaps = {
      {"rollout", {{"method", "rollout"}}},
      {"grad-rollout", {{"method", "grad-rollout"}}},
      {"cls", {{"method", "cls"}, {"layer", "all"}, {"head", "all"}}}};
  return kMaps;
}

}  // namespace

OverlaySettings overlay_settings_from_query(const QueryParams& params,
                                            const std::vector<std::string>& ignored) {
  static const std::set<std::string> kOptions = {
      "method", "layer", "head",     "fusion",    "discard", "class",  "at",
      "cell",   "alpha", "colormap", "threshold", "smooth",  "upscale"};
  std::vector<std::string> args{"overlay"};
  std::set<std::string> seen;
  for (const auto& [name, value] : params) {
    if (std::find(ignored.begin(), ignored.end(), name) != ignored.end()) continue;
    if (!seen.insert(name).second) throw UsageError("parameter '" + name + "' given twice");
    if (name == "colorbar") {
      if (value == "0" || value == "false") {
        args.push_back("--no-colorbar");
      } else if (value != "1" && value != "true") {
        throw UsageError("colorbar must be 1 or 0, got '" + value + "'");
      }
      continue;
    }
    if (kOptions.count(name) == 0) {
      throw UsageError("unknown parameter '" + name +
                       "' (method, layer, head, fusion, discard, class, at, cell, colormap, "
                       "alpha, smooth, threshold, upscale, colorbar)");
    }
    // --name=value: a value such as -1 must not read as an option.
    args.push_back("--" + name + "=" + value);
  }
  args.push_back("request-image");
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  const auto parsed = parse_overlay_params(static_cast<int>(argv.size()), argv.data());
  if (!parsed) throw UsageError("no settings");
  // A request must not make the server draw a gigapixel canvas, or blur with a kernel wider
  // than the image.
  if (parsed->settings.upscale > 4096) throw UsageError("upscale must be at most 4096");
  if (parsed->settings.style.smooth > 16) throw UsageError("smooth must be at most 16");
  return parsed->settings;
}

Analyzer::Analyzer(const ServeModelFiles& files) : files_(files) {
  const auto precision = choose_precision_option("serve", files.precision);
  vit_ = vision::load_vit(files.classifier);
  vit_.model->eval();
  vision::apply_inference_precision(*vit_.model, precision);
  if (vit_.config.num_classes == 0) {
    throw std::invalid_argument(files.classifier +
                                " has no classifier head: there is nothing to classify or explain");
  }
  if (files.captioner.empty()) return;
  captioner_ = vision::load_captioner(files.captioner);
  captioner_->model->eval();
  vision::apply_inference_precision(*captioner_->model, precision);
  const auto error = beam_width_error(files.decoding.beam, captioner_->vocabulary.size());
  if (!error.empty()) throw std::invalid_argument(error);
}

bool Analyzer::needs_model(const OverlaySettings& settings) {
  return settings.method != "caption" &&
         vision::is_class_specific(vision::map_method_from_string(settings.method));
}

const std::vector<std::string>& Analyzer::first_map_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const auto& [name, query] : first_map_queries()) names.push_back(name);
    return names;
  }();
  return kNames;
}

std::shared_ptr<Analysis> Analyzer::analyze(cv::Mat rgb, const std::string& name, int topk,
                                            const std::vector<std::string>& first_maps,
                                            double decode_ms) {
  const auto start = Clock::now();
  auto a = std::make_shared<Analysis>();
  a->id = new_analysis_id();
  a->name = name;
  a->rgb = std::move(rgb);
  a->input = vision::preprocess_image(a->rgb, vit_.info.preprocess).unsqueeze(0);
  json timing{{"decode", decode_ms}};
  json predictions;
  {
    c10::InferenceMode inference;
    const auto probabilities =
        vision::class_log_probabilities(vit_.model, a->input, vision::TestTimeAugmentation::kNone)
            .exp();
    const int k = static_cast<int>(std::min<int64_t>(topk, vit_.config.num_classes));
    predictions = predictions_json(top_predictions(probabilities, k, vit_.info).front());
  }
  timing["classify"] = milliseconds_since(start);

  const auto maps_start = Clock::now();
  a->recorded = vision::record_attention(vit_.model, a->input);
  json maps = json::object();
  for (const auto& [key, query] : first_map_queries()) {
    if (std::find(first_maps.begin(), first_maps.end(), key) == first_maps.end()) continue;
    maps[key] = map_json(*a, overlay_settings_from_query(query, {}));
  }
  timing["maps"] = milliseconds_since(maps_start);

  json caption = nullptr;
  if (captioner_) {
    const auto caption_start = Clock::now();
    const auto& info = captioner_->info;
    vision::EncodedImages encoded;
    {
      torch::NoGradGuard no_grad;
      encoded =
          captioner_->model->encode(vision::preprocess_image(a->rgb, info.preprocess).unsqueeze(0));
    }
    a->caption = vision::beam_search(captioner_->model, encoded, captioner_->vocabulary,
                                     files_.decoding.beam, files_.decoding.max_len)
                     .front();
    a->caption_grid_height = encoded.grid_height;
    a->caption_grid_width = encoded.grid_width;
    caption = caption_overlay_json(*a->caption, encoded.grid_height, encoded.grid_width);
    caption["log_prob"] = a->caption->log_prob;
    caption["crop"] =
        crop_json(vision::preprocess_crop_box(a->rgb.cols, a->rgb.rows, info.preprocess));
    timing["caption"] = milliseconds_since(caption_start);
  }
  timing["total"] = decode_ms + milliseconds_since(start);

  const auto& config = vit_.config;
  const json document{
      {"id", a->id},
      {"name", name},
      {"width", a->rgb.cols},
      {"height", a->rgb.rows},
      {"crop",
       crop_json(vision::preprocess_crop_box(a->rgb.cols, a->rgb.rows, vit_.info.preprocess))},
      {"grid", {a->recorded.grid_height, a->recorded.grid_width}},
      {"layers", config.depth},
      {"heads", config.num_heads},
      {"model", files_.classifier},
      {"captioner", files_.captioner.empty() ? json(nullptr) : json(files_.captioner)},
      {"predictions", predictions},
      {"maps", maps},
      {"caption", caption},
      {"timing_ms", timing}};
  a->document = json_text(document);

  a->bytes = a->rgb.total() * a->rgb.elemSize() + tensor_bytes(a->input) +
             tensor_bytes(a->recorded.logits) + tensor_bytes(a->recorded.tokens) +
             tensor_bytes(a->recorded.pool_weights) + a->document.size();
  for (const auto& attention : a->recorded.attentions) a->bytes += tensor_bytes(attention);
  if (a->caption) {
    for (const auto& w : a->caption->words) a->bytes += tensor_bytes(w.attention);
  }
  return a;
}

vision::Explanation Analyzer::explain(const Analysis& analysis, OverlaySettings& settings) {
  resolve_vit_settings(settings, vit_, files_.classifier);
  if (settings.patch.given()) {
    settings.explain.cells =
        patch_cells({analysis.rgb}, settings.patch, vit_.info.preprocess,
                    analysis.recorded.grid_height, analysis.recorded.grid_width);
  }
  if (needs_model(settings))
    return vision::explain_vit(vit_.model, analysis.input, settings.explain);
  return vision::explain_recorded(vit_.config, analysis.recorded, settings.explain);
}

const vision::Caption& Analyzer::caption_of(const Analysis& analysis) const {
  if (!analysis.caption) {
    throw std::invalid_argument(
        "method caption: the server has no captioner (start it with "
        "--captioner FILE)");
  }
  return *analysis.caption;
}

json Analyzer::map_json(const Analysis& analysis, OverlaySettings settings) {
  if (settings.method == "caption") {
    return caption_overlay_json(caption_of(analysis), analysis.caption_grid_height,
                                analysis.caption_grid_width);
  }
  const auto explained = explain(analysis, settings);
  return vit_overlay_json(explained, 0, vit_.info, settings);
}

std::vector<unsigned char> Analyzer::overlay_png(const Analysis& analysis,
                                                 OverlaySettings settings) {
  settings.want_json = false;
  if (settings.method == "caption") {
    const auto& caption = caption_of(analysis);
    const auto drawn =
        draw_caption_overlay(analysis.rgb, caption, analysis.caption_grid_height,
                             analysis.caption_grid_width, captioner_->info, settings, false);
    return vision::encode_image_rgb(drawn.rgb, "overlay.png");
  }
  const auto explained = explain(analysis, settings);
  const auto drawn = draw_vit_overlay(analysis.rgb, explained, 0, vit_.info, settings);
  return vision::encode_image_rgb(drawn.rgb, "overlay.png");
}

}  // namespace attnkit::apps
