// apps/overlay_render.h: what `attn overlay` draws for a batch of images: a ViT's maps (one, or
// a panel of heads or layers) with the class and probability, or a captioner's per-word panel.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "vision/checkpoint/model_file.h"
#include "vision/image/overlay.h"
#include "vision/models/inference_precision.h"
#include "vision/models/vit_explain.h"

namespace attnkit::apps {

struct OverlaySettings {
  /// cls | rollout | grad-rollout | relevance | gradcam | pool | caption
  std::string method = "rollout";
  vision::ExplainOptions explain;
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

/// A loaded model that explains images; throws vision::Error for a model file it cannot use and
/// std::invalid_argument for settings the model cannot honour.
class OverlayRenderer {
 public:
  OverlayRenderer(const std::string& model_path, OverlaySettings settings);
  ~OverlayRenderer();
  /// Draws each RGB8 image. `single_map` forces one map per image (video frames): heads and
  /// layers are fused, caption words averaged.
  std::vector<RenderedOverlay> render(const std::vector<cv::Mat>& images, bool single_map);
  /// What the model file says about itself (labels, preprocessing, domain).
  const vision::ModelInfo& info() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnkit::apps
