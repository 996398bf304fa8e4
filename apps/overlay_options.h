// apps/overlay_options.h: what `attn overlay` is told: its options with their defaults in one
// place, and the checks that run before any model is loaded or file written.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "apps/cli_common.h"
#include "apps/overlay_render.h"

namespace attnkit::apps {

struct OverlayParams {
  std::vector<std::string> inputs;  ///< images, videos, directories, or - for stdin
  std::string model_path;           ///< --model; empty = the shipped model for the method
  std::string out = "overlays";     ///< --out: a file for one input, else a directory
  std::string image_ext = ".png";   ///< --format, with its dot
  int batch_size = 8;               ///< images or frames per forward pass
  int threads = 0;                  ///< 0 = default_threads()
  bool write_json = false;          ///< --json: the grids beside each image
  Shard shard;
  OverlaySettings settings;  ///< the method, its map options, the style, the precision
};

/// Parses and checks `attn overlay`'s command line; nullopt when --help was shown. Throws
/// UsageError naming the option at fault.
std::optional<OverlayParams> parse_overlay_params(int argc, char** argv);

}  // namespace attnkit::apps
