// apps/overlay_render.h: what `attn overlay` draws for a batch of images: a ViT's maps (one, or
// a panel of heads or layers) with the class and probability, or a captioner's per-word panel.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include "vision/checkpoint/model_file.h"
#include "vision/image/overlay.h"
#include "vision/models/inference_precision.h"
#include "vision/models/vit_explain.h"

namespace attnkit::vision {
struct Caption;
}

namespace attnkit::apps {

/// patch and patch-rollout: the query patch, as a grid cell (--cell) or a pixel of the input
/// image (--at), which each image maps to its own cell through its preprocessing crop.
struct PatchQuery {
  std::optional<attention::GridCell> cell;  ///< --cell ROW,COL
  std::optional<cv::Point2d> pixel;         ///< --at X,Y
  bool given() const { return cell.has_value() || pixel.has_value(); }
};

/// The grid cell (gh, gw grid over the crop `box` of an image) under `pixel`. Throws
/// std::out_of_range when the pixel lies outside the part of the image the model saw.
attention::GridCell cell_at_pixel(const cv::Point2d& pixel, const vision::CropBox& box,
                                  int64_t grid_height, int64_t grid_width);

struct OverlaySettings {
  /// cls | rollout | grad-rollout | relevance | gradcam | pool | patch | patch-rollout | caption
  std::string method = "rollout";
  vision::ExplainOptions explain;
  PatchQuery patch;          ///< patch, patch-rollout
  std::string target_label;  ///< --class given as a label name (resolved on load)
  vision::OverlayStyle style;
  int upscale = 0;         ///< draw images smaller than this (longer side) enlarged to it
  int64_t beam = 3;        ///< caption: beam width
  int64_t max_len = 20;    ///< caption: most words
  int panel_side = 0;      ///< tile size of panels (0 = the image's drawn size, 160 to 512)
  bool want_json = false;  ///< fill RenderedOverlay::json (costs a pass over every grid)
  vision::InferencePrecision precision;  ///< of the transformer's matmuls (--precision)
};

/// One drawn overlay and the figures behind it.
struct RenderedOverlay {
  cv::Mat rgb;          ///< RGB8: the original image's size (times --upscale), or a panel
  std::string summary;  ///< "Sneaker 98.1%" or the caption
  std::string json;     ///< the raw grids and predictions, a JSON object (when asked for)
};

/// Draws image `index` of `explained` as `attn overlay` does: one map with the class and its
/// probability, or a panel of heads or layers; fills `json` when settings.want_json.
RenderedOverlay draw_vit_overlay(const cv::Mat& rgb, const vision::Explanation& explained,
                                 int64_t index, const vision::ModelInfo& info,
                                 const OverlaySettings& settings);

/// The JSON `attn overlay --json` writes for image `index` of `explained`: method, class,
/// label, probability, grid, titles, maps (and cell for patch maps).
nlohmann::json vit_overlay_json(const vision::Explanation& explained, int64_t index,
                                const vision::ModelInfo& info, const OverlaySettings& settings);

/// Draws a caption as `attn overlay --method caption` does: a panel with each word under its
/// map, or (`single_map`) the words' mean map; fills `json` when settings.want_json.
RenderedOverlay draw_caption_overlay(const cv::Mat& rgb, const vision::Caption& caption,
                                     int64_t grid_height, int64_t grid_width,
                                     const vision::ModelInfo& info, const OverlaySettings& settings,
                                     bool single_map);

/// The JSON `attn overlay --method caption --json` writes: caption, ended, grid, words.
nlohmann::json caption_overlay_json(const vision::Caption& caption, int64_t grid_height,
                                    int64_t grid_width);

/// The query cells of a patch map for each image (one per image), from --cell or --at. Throws
/// std::out_of_range naming the image's size when --at falls outside what the model saw.
std::vector<attention::GridCell> patch_cells(const std::vector<cv::Mat>& images,
                                             const PatchQuery& query,
                                             const vision::PreprocessConfig& preprocess,
                                             int64_t grid_height, int64_t grid_width);

/// Checks `s` against the classifier `vit` (from `model_path`, named in messages) and resolves
/// what depends on it: the method, --class given as a label. Throws std::invalid_argument for
/// settings the model cannot honour (a head, layer, class or cell it does not have; pool
/// without a map head).
void resolve_vit_settings(OverlaySettings& s, const vision::LoadedViT& vit,
                          const std::string& model_path);

/// A loaded model that explains images; throws vision::Error for a model file it cannot use and
/// std::invalid_argument for settings the model cannot honour.
class OverlayRenderer {
 public:
  OverlayRenderer(const std::string& model_path, OverlaySettings settings);
  ~OverlayRenderer();
  /// Draws each RGB8 image. `single_map` forces one map per image (video frames): heads and
  /// layers are fused, caption words averaged.
  std::vector<RenderedOverlay> render(const std::vector<cv::Mat>& images, bool single_map);
  /// Throws std::out_of_range when the patch query (--at) falls outside what the model sees
  /// of this RGB8 image; nothing for other methods.
  void check_patch_query(const cv::Mat& rgb) const;
  /// What the model file says about itself (labels, preprocessing, domain).
  const vision::ModelInfo& info() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnkit::apps
