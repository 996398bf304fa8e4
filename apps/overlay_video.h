// apps/overlay_video.h: `attn overlay` on a video: every frame drawn, the video written whole or
// not at all.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "apps/overlay_render.h"

namespace attnkit::apps {

/// True for the extensions of the video containers `attn overlay` reads (.mp4, .avi, .mkv, ...).
bool is_video(const std::string& path);

struct VideoOverlay {
  int64_t frames = 0;
  double seconds = 0;
};

/// Draws every frame of `input` with `render` (RGB8 frames, `batch_size` at a time) and writes
/// them to `path` (MJPG in .avi, MPEG-4 elsewhere, the input's frame rate) through a temporary
/// that replaces `path` only once the whole video reads back. `warn` hears about frames the
/// container announced but could not decode. Throws vision::ImageError (an unreadable input, a
/// format that cannot be written) or vision::WriteError (the disk).
VideoOverlay write_video_overlay(
    const std::string& input, const std::string& path, int batch_size,
    const std::function<std::vector<RenderedOverlay>(const std::vector<cv::Mat>&)>& render,
    const std::function<void(const std::string&)>& warn);

}  // namespace attnkit::apps
