// apps/overlay_video.cpp: reads a video with OpenCV's FFmpeg backend, draws each frame and writes
// the result atomically, checking what OpenCV does not report.
#include "apps/overlay_video.h"

#include <chrono>
#include <set>

#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>

#include "apps/cli_common.h"
#include "vision/atomic_file.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"

namespace attnkit::apps {
namespace {

/// Video writers by output extension: MJPG in .avi, MPEG-4 part 2 elsewhere (what Debian's
/// OpenCV ffmpeg backend writes without extra codecs).
int fourcc_for(const std::string& path) {
  return vision::lower_extension(path) == ".avi" ? cv::VideoWriter::fourcc('M', 'J', 'P', 'G')
                                                 : cv::VideoWriter::fourcc('m', 'p', '4', 'v');
}

/// FFmpeg wherever this OpenCV has it. With CAP_ANY, a file that FFmpeg cannot open goes on to
/// every other backend: GStreamer (which prints its own errors) and gphoto2, which scans the USB
/// bus for cameras (seconds, and memory it never frees).
int video_backend() {
  return cv::videoio_registry::hasBackend(cv::CAP_FFMPEG) ? cv::CAP_FFMPEG : cv::CAP_ANY;
}

/// Up to `count` frames as RGB8. `more` turns false at the first frame that cannot be read:
/// nothing after it is read.
std::vector<cv::Mat> read_frames(cv::VideoCapture& capture, int count, bool& more) {
  std::vector<cv::Mat> batch;
  cv::Mat bgr;
  while (more && static_cast<int>(batch.size()) < count) {
    more = capture.read(bgr) && !bgr.empty();
    if (!more) break;
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    batch.push_back(rgb);
  }
  return batch;
}

/// The frames OpenCV can read back from a written file (0 when it cannot open it).
int64_t frames_in(const std::string& path) {
  cv::VideoCapture written(path, video_backend());
  return written.isOpened() ? static_cast<int64_t>(written.get(cv::CAP_PROP_FRAME_COUNT)) : 0;
}

}  // namespace

bool is_video(const std::string& path) {
  static const std::set<std::string> kVideo = {".mp4", ".avi", ".mkv",  ".mov", ".webm",
                                               ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"};
  return kVideo.count(vision::lower_extension(path)) > 0;
}

VideoOverlay write_video_overlay(
    const std::string& input, const std::string& path, int batch_size,
    const std::function<std::vector<RenderedOverlay>(const std::vector<cv::Mat>&)>& render,
    const std::function<void(const std::string&)>& warn) {
  cv::VideoCapture capture(input, video_backend());
  if (!capture.isOpened()) throw vision::ImageError(input + ": cannot open as a video");
  const double fps = capture.get(cv::CAP_PROP_FPS) > 0 ? capture.get(cv::CAP_PROP_FPS) : 25.0;
  const auto frame_count = static_cast<int64_t>(capture.get(cv::CAP_PROP_FRAME_COUNT));
  // The writer picks the container by the name, so the temporary keeps the extension. Declared
  // before the writer: on an error the writer closes first, then the temporary goes.
  vision::AtomicFile file(path, /*keep_extension=*/true);
  cv::VideoWriter writer;
  // OpenCV tells neither why a writer did not open nor that a write failed. Writing to the
  // temporary ourselves surfaces a full or read-only disk as a WriteError with its errno;
  // otherwise the problem is the video's.
  auto fail_video = [&](const std::string& problem) {
    writer.release();
    const std::vector<char> probe(64 * 1024);
    file.write(probe.data(), probe.size());
    throw vision::ImageError(path + ": " + problem);
  };
  ProgressBar frames_bar("frames", std::max<int64_t>(frame_count, 1));
  VideoOverlay result;
  const auto start = std::chrono::steady_clock::now();
  try {
    bool more = true;
    for (auto batch = read_frames(capture, batch_size, more); !batch.empty();
         batch = read_frames(capture, batch_size, more)) {
      for (const auto& r : render(batch)) {
        if (!writer.isOpened()) {
          writer.open(file.temp_path(), video_backend(), fourcc_for(path), fps, r.rgb.size());
          if (!writer.isOpened()) fail_video("cannot write this video format");
        }
        cv::Mat out_bgr;
        cv::cvtColor(r.rgb, out_bgr, cv::COLOR_RGB2BGR);
        writer.write(out_bgr);
      }
      result.frames += static_cast<int64_t>(batch.size());
      frames_bar.advance(static_cast<int64_t>(batch.size()));
    }
    frames_bar.finish();
    writer.release();
    if (result.frames == 0) throw vision::ImageError(input + ": no frames could be read");
    if (frame_count > 0 && result.frames < frame_count) {
      warn(input + ": the container announces " + std::to_string(frame_count) + " frames, " +
           std::to_string(result.frames) + " could be decoded");
    }
    // Read back before it replaces anything, since the writer reported nothing.
    const auto written_frames = frames_in(file.temp_path());
    if (written_frames != result.frames) {
      fail_video("cannot write: the video reads back with " + std::to_string(written_frames) +
                 " of " + std::to_string(result.frames) + " frames");
    }
    file.commit();
  } catch (...) {
    frames_bar.finish();
    writer.release();
    throw;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace attnkit::apps
