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

attention::GridCell cell_at_pixel(const cv::Point2d& pixel, const vision::CropBox& box,
                                  int64_t grid_height, int64_t grid_width) {
  // The pixel's centre, as a fraction of the crop box the grid spans.
  const double u = (pixel.x + 0.5 - box.x) / box.width;
  const double v = (pixel.y + 0.5 - box.y) / box.height;
  if (!(u >= 0 && u < 1 && v >= 0 && v < 1)) {
    std::ostringstream out;
    out << "pixel " << pixel.x << "," << pixel.y << " is outside the part of the image the model "
        << "sees (x " << box.x << " to " << box.x + box.width << ", y " << box.y << " to "
        << box.y + box.height << ")";
    throw std::out_of_range(out.str());
  }
  return {static_cast<int64_t>(v * static_cast<double>(grid_height)),
          static_cast<int64_t>(u * static_cast<double>(grid_width))};
}

std::vector<attention::GridCell> patch_cells(const std::vector<cv::Mat>& images,
                                             const PatchQuery& query,
                                             const vision::PreprocessConfig& preprocess,
                                             int64_t grid_height, int64_t grid_width) {
  std::vector<attention::GridCell> cells;
  for (const auto& rgb : images) {
    if (query.cell) {
      cells.push_back(*query.cell);
      continue;
    }
    TORCH_CHECK(query.pixel.has_value(), "patch_cells: neither a cell nor a pixel");
    if (query.pixel->x >= rgb.cols || query.pixel->y >= rgb.rows || query.pixel->x < 0 ||
        query.pixel->y < 0) {
      std::ostringstream out;
      out << "pixel " << query.pixel->x << "," << query.pixel->y << " is outside the " << rgb.cols
          << "x" << rgb.rows << " image";
      throw std::out_of_range(out.str());
    }
    cells.push_back(cell_at_pixel(*query.pixel,
                                  vision::preprocess_crop_box(rgb.cols, rgb.rows, preprocess),
                                  grid_height, grid_width));
  }
  return cells;
}

namespace {

/// How `attn overlay` lays out what it draws: the canvas, panel tiles, labels.
struct OverlayLayout {
  const OverlaySettings& settings;
  const vision::PreprocessConfig& preprocess;

  /// The image as drawn: enlarged (nearest) when smaller than --upscale, and the crop box
  /// scaled to match.
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
};

/// Image `index`'s query patch of a patch map (one cell for every image, or one each);
/// nullptr for the other methods.
const attention::GridCell* query_cell(const OverlaySettings& settings, int64_t index) {
  const auto& cells = settings.explain.cells;
  if (cells.empty()) return nullptr;
  return cells.size() == 1 ? &cells.front() : &cells[index];
}

/// "Sneaker 98.1%", with " from 3,4" for a patch map.
std::string vit_summary(const vision::Explanation& explained, int64_t index,
                        const vision::ModelInfo& info, const OverlaySettings& settings) {
  const int64_t cls = explained.classes[index].item<int64_t>();
  std::string summary = vision::class_label(info, cls) + " " +
                        percent(explained.probabilities[index][cls].item<double>());
  if (const auto* cell = query_cell(settings, index)) {
    summary += " from " + std::to_string(cell->row) + "," + std::to_string(cell->col);
  }
  return summary;
}

}  // namespace

json vit_overlay_json(const vision::Explanation& explained, int64_t index,
                      const vision::ModelInfo& info, const OverlaySettings& settings) {
  const int64_t cls = explained.classes[index].item<int64_t>();
  const auto maps = explained.maps[index];  // (K, gh, gw)
  json grids = json::array();
  for (int64_t k = 0; k < maps.size(0); ++k)
    grids.push_back(matrix_json<float>(maps[k].to(torch::kFloat)));
  json document{{"method", settings.method},
                {"class", cls},
                {"label", vision::class_label(info, cls)},
                {"probability", explained.probabilities[index][cls].item<double>()},
                {"grid", {maps.size(1), maps.size(2)}},
                {"titles", explained.map_titles},
                {"maps", grids}};
  if (const auto* cell = query_cell(settings, index)) document["cell"] = {cell->row, cell->col};
  return document;
}

RenderedOverlay draw_vit_overlay(const cv::Mat& rgb, const vision::Explanation& explained,
                                 int64_t index, const vision::ModelInfo& info,
                                 const OverlaySettings& settings) {
  const OverlayLayout layout{settings, info.preprocess};
  RenderedOverlay r;
  r.summary = vit_summary(explained, index, info, settings);
  const auto [canvas_rgb, box] = layout.canvas(rgb);
  const auto maps = explained.maps[index];  // (K, gh, gw)
  if (maps.size(0) == 1) {
    r.rgb = layout.draw(canvas_rgb, box, maps[0], r.summary);
  } else {
    const auto [small, small_box] = layout.panel_canvas(canvas_rgb, box);
    std::vector<cv::Mat> tiles;
    for (int64_t k = 0; k < maps.size(0); ++k) {
      tiles.push_back(layout.draw(small, small_box, maps[k], r.summary));
    }
    r.rgb = vision::tile_panels(tiles, explained.map_titles, layout.tile_side(canvas_rgb));
  }
  if (settings.want_json) r.json = json_text(vit_overlay_json(explained, index, info, settings));
  return r;
}

json caption_overlay_json(const vision::Caption& caption, int64_t grid_height, int64_t grid_width) {
  json words = json::array();
  for (const auto& w : caption.words) {
    words.push_back({{"word", w.word},
                     {"probability", w.probability},
                     {"attention", matrix_json<float>(w.attention.to(torch::kFloat))}});
  }
  return json{{"method", "caption"},
              {"caption", caption.text()},
              {"ended", caption.ended},
              {"grid", {grid_height, grid_width}},
              {"words", words}};
}

RenderedOverlay draw_caption_overlay(const cv::Mat& rgb, const vision::Caption& caption,
                                     int64_t grid_height, int64_t grid_width,
                                     const vision::ModelInfo& info, const OverlaySettings& settings,
                                     bool single_map) {
  const OverlayLayout layout{settings, info.preprocess};
  RenderedOverlay r;
  r.summary = caption.text();
  const auto [canvas_rgb, box] = layout.canvas(rgb);
  std::vector<torch::Tensor> grids;
  for (const auto& w : caption.words) grids.push_back(w.attention);
  if (single_map) {
    r.rgb = layout.draw(canvas_rgb, box, torch::stack(grids).mean(0), r.summary);
  } else {
    // As in the paper's figures: the image, then each word under its own map.
    const auto [small, small_box] = layout.panel_canvas(canvas_rgb, box);
    std::vector<cv::Mat> tiles{small};
    std::vector<std::string> titles{""};
    for (size_t k = 0; k < grids.size(); ++k) {
      tiles.push_back(layout.draw(small, small_box, grids[k], ""));
      titles.push_back(caption.words[k].word + " " + percent(caption.words[k].probability));
    }
    const int columns = std::min<int>(static_cast<int>(tiles.size()), 6);
    r.rgb = vision::tile_panels(tiles, titles, layout.tile_side(canvas_rgb), columns);
  }
  if (settings.want_json)
    r.json = json_text(caption_overlay_json(caption, grid_height, grid_width));
  return r;
}

void resolve_vit_settings(OverlaySettings& s, const vision::LoadedViT& vit,
                          const std::string& model_path) {
  s.explain.method = vision::map_method_from_string(s.method);
  if (s.explain.method == vision::MapMethod::kPool && vit.config.pooling != vision::Pooling::kMap) {
    throw std::invalid_argument("--method pool needs a model with an attention-pool (map) head; " +
                                model_path +
                                " has none (use cls, rollout, grad-rollout, relevance or gradcam)");
  }
  const auto& config = vit.config;
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
  if (s.patch.cell &&
      (s.patch.cell->row >= config.grid_height() || s.patch.cell->col >= config.grid_width())) {
    throw std::invalid_argument("--cell " + std::to_string(s.patch.cell->row) + "," +
                                std::to_string(s.patch.cell->col) + ": " + model_path + " sees a " +
                                std::to_string(config.grid_height()) + "x" +
                                std::to_string(config.grid_width()) + " grid of patches (rows 0.." +
                                std::to_string(config.grid_height() - 1) + ", columns 0.." +
                                std::to_string(config.grid_width() - 1) + ")");
  }
  if (s.explain.target_class >= vit.config.num_classes) {
    throw std::invalid_argument("--class " + std::to_string(s.explain.target_class) + ": " +
                                model_path + " has " + std::to_string(vit.config.num_classes) +
                                " classes");
  }
  if (!s.target_label.empty()) {
    const auto& labels = vit.info.labels;
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

struct OverlayRenderer::Impl {
  OverlaySettings settings;
  bool captioner = false;
  vision::LoadedViT vit;
  vision::LoadedCaptioner caption_model;
  vision::PreprocessConfig preprocess;

  std::vector<RenderedOverlay> render_vit(const std::vector<cv::Mat>& images, bool single_map) {
    auto options = settings.explain;
    if (single_map) {
      if (options.head == vision::ExplainOptions::kAll) options.head = -1;
      if (options.layer == vision::ExplainOptions::kAll) options.layer = -1;
    }
    std::vector<torch::Tensor> batch;
    for (const auto& rgb : images) batch.push_back(vision::preprocess_image(rgb, preprocess));
    const auto input = torch::stack(batch);
    if (settings.patch.given()) {
      const int64_t patch = vit.config.patch_size;
      options.cells = patch_cells(images, settings.patch, preprocess, input.size(2) / patch,
                                  input.size(3) / patch);
    }
    const auto explained = vision::explain_vit(vit.model, input, options);
    auto drawn_settings = settings;
    drawn_settings.explain = options;
    std::vector<RenderedOverlay> out;
    for (size_t i = 0; i < images.size(); ++i) {
      out.push_back(draw_vit_overlay(images[i], explained, static_cast<int64_t>(i), vit.info,
                                     drawn_settings));
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
      out.push_back(draw_caption_overlay(images[i], captions[i], encoded.grid_height,
                                         encoded.grid_width, caption_model.info, settings,
                                         single_map));
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
  impl_->vit = vision::load_vit(model_path);
  impl_->vit.model->eval();
  vision::apply_inference_precision(*impl_->vit.model, s.precision);
  impl_->preprocess = impl_->vit.info.preprocess;
  resolve_vit_settings(s, impl_->vit, model_path);
}

OverlayRenderer::~OverlayRenderer() = default;

std::vector<RenderedOverlay> OverlayRenderer::render(const std::vector<cv::Mat>& images,
                                                     bool single_map) {
  if (images.empty()) return {};
  return impl_->captioner ? impl_->render_caption(images, single_map)
                          : impl_->render_vit(images, single_map);
}

void OverlayRenderer::check_patch_query(const cv::Mat& rgb) const {
  if (impl_->captioner || !impl_->settings.patch.given()) return;
  const auto& config = impl_->vit.config;
  patch_cells({rgb}, impl_->settings.patch, impl_->preprocess, config.grid_height(),
              config.grid_width());
}

const vision::ModelInfo& OverlayRenderer::info() const {
  return impl_->captioner ? impl_->caption_model.info : impl_->vit.info;
}

}  // namespace attnkit::apps
