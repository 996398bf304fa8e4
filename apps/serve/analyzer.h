// apps/serve/analyzer.h: what `attn serve` computes: an image's analysis (predictions, the
// attention of one pass, the caption, the first maps) and, from it, any map as JSON or as the
// PNG `attn overlay` draws, with the same functions `attn classify`, `attn caption` and
// `attn overlay` use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <opencv2/core/mat.hpp>

#include "apps/caption_options.h"
#include "apps/overlay_render.h"
#include "vision/checkpoint/captioner_file.h"
#include "vision/checkpoint/model_file.h"
#include "vision/models/caption_decoder.h"
#include "vision/models/vit.h"

namespace attnkit::apps {

/// The models `attn serve` loads, and how it runs them.
struct ServeModelFiles {
  std::string classifier;  ///< a ViT model file
  std::string captioner;   ///< a captioner model file; empty = none
  std::string precision = "fp32";
  DecodingParams decoding;
};

/// One image, analysed: kept in the cache for later map and overlay requests.
struct Analysis {
  std::string id;
  std::string name;
  cv::Mat rgb;                 ///< the decoded image (RGB8)
  torch::Tensor input;         ///< (1, C, H, W): the classifier's input
  vision::ViTOutput recorded;  ///< one pass's attention, detached
  std::optional<vision::Caption> caption;
  int64_t caption_grid_height = 0;
  int64_t caption_grid_width = 0;
  std::string document;  ///< the POST /api/analyze response, JSON text
  size_t bytes = 0;      ///< memory held, for the cache's bound
};

/// Query parameters, as (name, value) pairs in the order given.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

/// The map and style a request asks for, read by the very options parser of `attn overlay`
/// (`method=patch&cell=1,2` is `--method patch --cell 1,2`), so both accept and refuse the
/// same things. Knows method, layer, head, fusion, discard, class, at, cell, colormap, alpha,
/// smooth, threshold, upscale and colorbar (0 = --no-colorbar); `ignored` names parameters
/// that belong to the request rather than the map (id). Throws UsageError naming the
/// parameter at fault.
OverlaySettings overlay_settings_from_query(const QueryParams& params,
                                            const std::vector<std::string>& ignored);

/// The models of one worker and what they compute. A worker's Analyzer runs on one thread at a
/// time; map_json and overlay_png for settings that need no model (!needs_model) only read the
/// models' configuration, so any thread may call them on any worker's Analyzer.
class Analyzer {
 public:
  /// Loads the models. Throws vision::Error for a model file that cannot be used and
  /// std::invalid_argument for a precision or beam the models cannot run.
  explicit Analyzer(const ServeModelFiles& files);

  /// Runs the classifier (top `topk`, as `attn classify`), records its attention, computes
  /// the `first_maps` (of first_map_names(): the rollout, the top-1 grad-rollout, every layer x
  /// head class-token map), and the caption (as `attn caption`) when a captioner is loaded.
  /// `decode_ms`: what decoding the upload took, reported with the analysis' own times.
  std::shared_ptr<Analysis> analyze(cv::Mat rgb, const std::string& name, int topk,
                                    const std::vector<std::string>& first_maps,
                                    double decode_ms = 0.0);

  /// "rollout", "grad-rollout", "cls": the maps an analysis can bring along.
  static const std::vector<std::string>& first_map_names();

  /// Whether the map needs a new pass of the model (grad-rollout, relevance, gradcam): the
  /// caller must hold this worker.
  static bool needs_model(const OverlaySettings& settings);

  /// The map `settings` ask for, as `attn overlay --json` writes it (for the caption method,
  /// its caption, words and maps). Throws std::invalid_argument (std::out_of_range for a
  /// patch off the image) for settings the model or this analysis cannot honour.
  nlohmann::json map_json(const Analysis& analysis, OverlaySettings settings);

  /// The PNG `attn overlay` writes for the same settings, byte for byte. Throws as map_json.
  std::vector<unsigned char> overlay_png(const Analysis& analysis, OverlaySettings settings);

  const vision::LoadedViT& vit() const { return vit_; }
  /// nullptr without a captioner.
  const vision::LoadedCaptioner* captioner() const { return captioner_ ? &*captioner_ : nullptr; }
  const ServeModelFiles& files() const { return files_; }

 private:
  /// The explanation of the analysed image for ViT settings (resolved here).
  vision::Explanation explain(const Analysis& analysis, OverlaySettings& settings);
  /// The caption of the analysis, or std::invalid_argument when there is none.
  const vision::Caption& caption_of(const Analysis& analysis) const;

  ServeModelFiles files_;
  vision::LoadedViT vit_;
  std::optional<vision::LoadedCaptioner> captioner_;
};

}  // namespace attnkit::apps
