// apps/overlay_render.cpp: runs the model on a batch, maps its attention onto each original
// image (undoing the preprocessing crop) and draws labels and panels.
#include "apps/overlay_render.h"

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "apps/caption_options.h"
#include "apps/json_output.h"
#include "vision/checkpoint/captioner_file.h"
#include "vision/checkpoint/model_file.h"
#include "vision/errors.h"
#include "vision/image/preprocess.h"
#include "vision/models/caption_decoder.h"

namespace attnkit::apps {
namespace {

using nlohmann::json;

std::string percent(double p) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << 100.0 * p << "%";
  return out.str();
}

}  // namespace

struct OverlayRenderer::Impl {
  OverlaySettings settings;
  bool captioner = false;
  vision::LoadedViT vit;
  vision::LoadedCaptioner caption_model;
  vision::PreprocessConfig preprocess;

  /// The image as drawn: enlarged (nearest) when smaller than --upscale, and the crop box scaled
  /// to match.
  std::pair<cv::Mat, vision::CropBox> canvas(const cv::Mat& rgb) const {
    const auto box = vision::preprocess_crop_box(rgb.cols, rgb.rows, preprocess);
    const int longer = std::max(rgb.cols, rgb.rows);
    if (settings.upscale <= 0 || longer >= settings.upscale) return {rgb.clone(), box};
    return resized(rgb, box, static_cast<double>(settings.upscale) / longer, cv::INTER_NEAREST);
  }

  /// The image scaled by about `f` and the box scaled by the sides' exact factors.
  static std::pair<cv::Mat, vision::CropBox> resized(const cv::Mat& rgb, const vision::CropBox& box,
                                                     double f, int interpolation) {
    cv::Mat out;
    cv::resize(rgb, out,
               cv::Size(std::max(1, static_cast<int>(std::lround(rgb.cols * f))),
                        std::max(1, static_cast<int>(std::lround(rgb.rows * f)))),
               0, 0, interpolation);
    const double fx = static_cast<double>(out.cols) / rgb.cols;
    const double fy = static_cast<double>(out.rows) / rgb.rows;
    return {out, {box.x * fx, box.y * fy, box.width * fx, box.height * fy}};
  }

  /// Panels draw every tile at the tile size: a 4000x3000 photo with 144 head maps would
  /// otherwise need gigabytes.
  std::pair<cv::Mat, vision::CropBox> panel_canvas(const cv::Mat& rgb,
                                                   const vision::CropBox& box) const {
    const int side = tile_side(rgb);
    const int longer = std::max(rgb.cols, rgb.rows);
    if (longer <= side) return {rgb, box};
    return resized(rgb, box, static_cast<double>(side) / longer, cv::INTER_AREA);
  }

  cv::Mat draw(const cv::Mat& canvas_rgb, const vision::CropBox& box, const torch::Tensor& grid,
               const std::string& label) const {
    return vision::draw_overlay(canvas_rgb, grid, box, settings.style, label);
  }

  int tile_side(const cv::Mat& canvas_rgb) const {
    if (settings.panel_side > 0) return settings.panel_side;
    return std::clamp(std::max(canvas_rgb.cols, canvas_rgb.rows), 160, 512);
  }

  std::vector<RenderedOverlay> render_vit(const std::vector<cv::Mat>& images, bool single_map) {
    auto options = settings.explain;
    if (single_map) {
      if (options.head == vision::ExplainOptions::kAll) options.head = -1;
      if (options.layer == vision::ExplainOptions::kAll) options.layer = -1;
    }
    std::vector<torch::Tensor> batch;
    for (const auto& rgb : images) batch.push_back(vision::preprocess_image(rgb, preprocess));
    const auto explained = vision::explain_vit(vit.model, torch::stack(batch), options);
    std::vector<RenderedOverlay> out;
    for (size_t i = 0; i < images.size(); ++i) {
      const auto b = static_cast<int64_t>(i);
      const int64_t cls = explained.classes[b].item<int64_t>();
      const double p = explained.probabilities[b][cls].item<double>();
      const std::string name = vision::class_label(vit.info, cls);
      RenderedOverlay r;
      r.summary = name + " " + percent(p);
      const auto [canvas_rgb, box] = canvas(images[i]);
      const auto maps = explained.maps[b];  // (K, gh, gw)
      if (maps.size(0) == 1) {
        r.rgb = draw(canvas_rgb, box, maps[0], r.summary);
      } else {
        const auto [small, small_box] = panel_canvas(canvas_rgb, box);
        std::vector<cv::Mat> tiles;
        for (int64_t k = 0; k < maps.size(0); ++k) {
          tiles.push_back(draw(small, small_box, maps[k], r.summary));
        }
        r.rgb = vision::tile_panels(tiles, explained.map_titles, tile_side(canvas_rgb));
      }
      if (!settings.want_json) {
        out.push_back(std::move(r));
        continue;
      }
      json grids = json::array();
      for (int64_t k = 0; k < maps.size(0); ++k)
        grids.push_back(matrix_json<float>(maps[k].to(torch::kFloat)));
      r.json = json{
          {"method", settings.method},
          {"class", cls},
          {"label", name},
          {"probability", p},
          {"grid", {maps.size(1), maps.size(2)}},
          {"titles", explained.map_titles},
          {"maps",
           grids}}.dump();
      out.push_back(std::move(r));
    }
    return out;
  }

  std::vector<RenderedOverlay> render_caption(const std::vector<cv::Mat>& images, bool single_map) {
    std::vector<torch::Tensor> batch;
    for (const auto& rgb : images) batch.push_back(vision::preprocess_image(rgb, preprocess));
    vision::EncodedImages encoded;
    {
      torch::NoGradGuard no_grad;
      encoded = caption_model.model->encode(torch::stack(batch));
    }
    const auto captions = vision::beam_search(
        caption_model.model, encoded, caption_model.vocabulary, settings.beam, settings.max_len);
    std::vector<RenderedOverlay> out;
    for (size_t i = 0; i < images.size(); ++i) {
      const auto& caption = captions[i];
      RenderedOverlay r;
      r.summary = caption.text();
      const auto [canvas_rgb, box] = canvas(images[i]);
      std::vector<torch::Tensor> grids;
      for (const auto& w : caption.words) grids.push_back(w.attention);
      if (single_map) {
        r.rgb = draw(canvas_rgb, box, torch::stack(grids).mean(0), r.summary);
      } else {
        // As in the paper's figures: the image, then each word under its own map.
        const auto [small, small_box] = panel_canvas(canvas_rgb, box);
        std::vector<cv::Mat> tiles{small};
        std::vector<std::string> titles{""};
        for (size_t k = 0; k < grids.size(); ++k) {
          tiles.push_back(draw(small, small_box, grids[k], ""));
          titles.push_back(caption.words[k].word + " " + percent(caption.words[k].probability));
        }
        const int columns = std::min<int>(static_cast<int>(tiles.size()), 6);
        r.rgb = vision::tile_panels(tiles, titles, tile_side(canvas_rgb), columns);
      }
      if (!settings.want_json) {
        out.push_back(std::move(r));
        continue;
      }
      json words = json::array();
      for (const auto& w : caption.words) {
        words.push_back({{"word", w.word},
                         {"probability", w.probability},
                         {"attention", matrix_json<float>(w.attention.to(torch::kFloat))}});
      }
      r.json = json{
          {"method", "caption"},
          {"caption", r.summary},
          {"ended", caption.ended},
          {"grid", {encoded.grid_height, encoded.grid_width}},
          {"words",
           words}}.dump();
      out.push_back(std::move(r));
    }
    return out;
  }
};

OverlayRenderer::OverlayRenderer(const std::string& model_path, OverlaySettings settings)
    : impl_(std::make_unique<Impl>()) {
  impl_->settings = std::move(settings);
  auto& s = impl_->settings;
  impl_->captioner = s.method == "caption";
  if (impl_->captioner) {
    impl_->caption_model = vision::load_captioner(model_path);
    impl_->caption_model.model->eval();
    vision::apply_inference_precision(*impl_->caption_model.model, s.precision);
    const auto error = beam_width_error(s.beam, impl_->caption_model.vocabulary.size());
    if (!error.empty()) throw std::invalid_argument(error);
    impl_->preprocess = impl_->caption_model.info.preprocess;
    return;
  }
  s.explain.method = vision::map_method_from_string(s.method);
  impl_->vit = vision::load_vit(model_path);
  impl_->vit.model->eval();
  vision::apply_inference_precision(*impl_->vit.model, s.precision);
  impl_->preprocess = impl_->vit.info.preprocess;
  if (s.explain.method == vision::MapMethod::kPool &&
      impl_->vit.config.pooling != vision::Pooling::kMap) {
    throw std::invalid_argument("--method pool needs a model with an attention-pool (map) head; " +
                                model_path +
                                " has none (use cls, rollout, grad-rollout, relevance or gradcam)");
  }
  const auto& config = impl_->vit.config;
  if (config.num_classes == 0) {
    throw std::invalid_argument(model_path +
                                " has no classifier head: there is no prediction "
                                "to explain");
  }
  const auto& e = s.explain;
  if (e.head != vision::ExplainOptions::kAll && (e.head < -1 || e.head >= config.num_heads)) {
    throw std::invalid_argument("--head " + std::to_string(e.head) + ": " + model_path + " has " +
                                std::to_string(config.num_heads) + " heads (0.." +
                                std::to_string(config.num_heads - 1) +
                                ", -1 to fuse them, or all)");
  }
  if (e.layer != vision::ExplainOptions::kAll &&
      (e.layer < -config.depth || e.layer >= config.depth)) {
    throw std::invalid_argument("--layer " + std::to_string(e.layer) + ": " + model_path + " has " +
                                std::to_string(config.depth) + " layers (0.." +
                                std::to_string(config.depth - 1) + ", -1 for the last, or all)");
  }
  if (s.explain.target_class >= impl_->vit.config.num_classes) {
    throw std::invalid_argument("--class " + std::to_string(s.explain.target_class) + ": " +
                                model_path + " has " +
                                std::to_string(impl_->vit.config.num_classes) + " classes");
  }
  if (!s.target_label.empty()) {
    const auto& labels = impl_->vit.info.labels;
    const auto it = std::find(labels.begin(), labels.end(), s.target_label);
    if (it == labels.end()) {
      throw std::invalid_argument("--class '" + s.target_label + "' is not a label of " +
                                  model_path +
                                  " (give its name as 'attn inspect' lists it, or "
                                  "its index)");
    }
    s.explain.target_class = it - labels.begin();
  }
}

OverlayRenderer::~OverlayRenderer() = default;

std::vector<RenderedOverlay> OverlayRenderer::render(const std::vector<cv::Mat>& images,
                                                     bool single_map) {
  if (images.empty()) return {};
  return impl_->captioner ? impl_->render_caption(images, single_map)
                          : impl_->render_vit(images, single_map);
}

const vision::ModelInfo& OverlayRenderer::info() const {
  return impl_->captioner ? impl_->caption_model.info : impl_->vit.info;
}

}  // namespace attnkit::apps
