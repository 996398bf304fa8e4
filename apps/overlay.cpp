// apps/overlay.cpp: `attn overlay`: attention maps drawn on images and on every frame of a video,
// for a ViT classifier (cls, rollout, grad-rollout, relevance, gradcam, pool) or a captioner (one
// map per word).
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <set>
#include <vector>

#include "apps/classifier_data.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/image_batches.h"
#include "apps/overlay_options.h"
#include "apps/overlay_render.h"
#include "apps/overlay_video.h"
#include "vision/api/attnkit.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"

namespace attnkit::apps {
namespace {

namespace fs = std::filesystem;

struct OutputPlan {
  std::string target;  ///< --out
  bool single_file = false;
  std::set<std::string> used;

  /// Where the overlay of `input` goes: --out itself, or DIR/<stem>.<method>.<ext>.
  std::string path_for(const std::string& input, const std::string& method,
                       const std::string& image_ext) {
    if (single_file) return target;
    const bool video = is_video(input);
    const std::string ext =
        video ? (vision::lower_extension(input) == ".avi" ? ".avi" : ".mp4") : image_ext;
    const std::string stem = fs::path(input).stem().string() + "." + method;
    std::string candidate = (fs::path(target) / (stem + ext)).string();
    for (int n = 2; used.count(candidate) > 0; ++n) {  // a/x.png and b/x.png both given
      candidate = (fs::path(target) / (stem + "-" + std::to_string(n) + ext)).string();
    }
    used.insert(candidate);
    return candidate;
  }
};

/// Where the overlays go, checked against the inputs before anything is drawn. Throws
/// UsageError; the directory itself is made by make_output_directory.
OutputPlan plan_output(const OverlayParams& p) {
  OutputPlan plan;
  plan.target = p.out;
  plan.single_file = vision::has_writable_image_extension(p.out) || is_video(p.out);
  // A name with an extension (out.tiff, m.safetensors) means a file, not a directory to
  // create: say what can be written. An existing directory keeps its name, dots and all.
  std::error_code ec;
  if (!plan.single_file && !vision::lower_extension(p.out).empty() &&
      !fs::is_directory(p.out, ec)) {
    throw UsageError("--out " + p.out + ": cannot write " + vision::lower_extension(p.out) +
                     " files; name an image (.png, .jpg, .jpeg, .webp, .bmp), a video (.mp4, "
                     ".avi) or a directory (no extension, or one that exists)");
  }
  if (plan.single_file && p.shard.count > 1) {
    throw UsageError("--shard writes many files: --out must be a directory, not " + p.out);
  }
  return plan;
}

/// One output file for one input of the same kind, not the input itself. Throws UsageError.
void check_single_output(const std::string& out, const std::vector<InputItem>& items) {
  const auto parent = fs::path(out).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (items.size() == 1 && same_file(out, items[0].path)) {
    throw UsageError("--out " + out + " is the input file itself; choose another name");
  }
  if (items.size() != 1) {
    throw UsageError("--out " + out + " is one file but " + std::to_string(items.size()) +
                     " inputs were given; pass a directory");
  }
  const bool video = is_video(items[0].path);
  if (video != is_video(out)) {
    throw UsageError("--out " + out + ": a " + (video ? "video" : "image") + " input needs a " +
                     (video ? "video (.mp4, .avi)" : "image (.png, .jpg, .webp)") + " output");
  }
}

/// The output directory, made if needed; false (said) when it cannot be.
bool make_output_directory(const std::string& out) {
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec || !fs::is_directory(out)) {
    print_error("overlay", out + ": cannot create the output directory (" +
                               (ec ? ec.message() : std::string("a file has that name")) + ")");
    return false;
  }
  return true;
}

/// Draws and writes the overlays, images in batches and videos one at a time; one bad input
/// is reported and the rest go on.
class OverlayJob {
 public:
  OverlayJob(const OverlayParams& p, OverlayRenderer& renderer, OutputPlan plan,
             std::string model_path, int64_t total)
      : p_(p),
        renderer_(renderer),
        plan_(std::move(plan)),
        model_path_(std::move(model_path)),
        progress_("overlay", total) {}

  /// An image for the next batch; the batch is drawn once full.
  void add_image(const std::string& input, cv::Mat rgb) {
    warn_once_about_domain(input, rgb);
    pending_.emplace_back(input, std::move(rgb));
    if (static_cast<int>(pending_.size()) >= p_.batch_size) flush();
  }

  /// A video, drawn and written whole (after the pending images).
  void add_video(const std::string& input) {
    flush();
    try {
      const auto path = plan_.path_for(input, p_.settings.method, p_.image_ext);
      refuse_overwriting_source(input, path);
      const auto video = write_video_overlay(
          input, path, p_.batch_size,
          [&](const std::vector<cv::Mat>& frames) { return renderer_.render(frames, true); },
          [&](const std::string& warning) {
            progress_.clear();
            print_warning("overlay", warning);
          });
      progress_.clear();
      std::cout << input << " -> " << path << "  " << video.frames << " frames, " << std::fixed
                << std::setprecision(1) << video.frames / video.seconds << " frames/s\n";
      ++succeeded_;
    } catch (const vision::Error& e) {
      report(e.what());
    } catch (const std::exception& e) {
      report(input + ": " + e.what());
    }
    progress_.advance(1);
  }

  /// An input that could not be read.
  void fail(const std::string& message) {
    report(message);
    progress_.advance(1);
  }

  /// Draws what is pending, then the exit status for `total` inputs.
  int finish(size_t total) {
    flush();
    progress_.finish();
    if (succeeded_ == 0 && total > 0) return kExitNoInput;
    return succeeded_ == static_cast<int64_t>(total) ? kExitOk : kExitSomeFailed;
  }

 private:
  void report(const std::string& message) {
    progress_.clear();
    print_error("overlay", message);
  }

  // Photos given to the Fashion-MNIST demo model: said once.
  void warn_once_about_domain(const std::string& input, const cv::Mat& rgb) {
    if (warned_domain_) return;
    const auto warning = fashion_domain_warning(renderer_.info(), rgb.cols, rgb.rows, input);
    if (warning.empty()) return;
    warned_domain_ = true;
    progress_.clear();
    print_warning("overlay", warning);
  }

  // An output that is an input or the model (compared by device and inode, so links and
  // other spellings count) would destroy what it was made from.
  void refuse_overwriting_source(const std::string& input, const std::string& path) const {
    if (same_file(path, input)) {
      throw vision::ImageError(path + ": is the input itself; not overwritten");
    }
    if (same_file(path, model_path_)) {
      throw vision::ImageError(path + ": is the model file; not overwritten");
    }
  }

  void save(const std::string& input, const std::string& path, const RenderedOverlay& r) {
    refuse_overwriting_source(input, path);
    vision::save_image_rgb(path, r.rgb);
    if (p_.write_json) {
      const std::string text = r.json + "\n";
      vision::write_file_atomically(path + ".json",
                                    std::vector<unsigned char>(text.begin(), text.end()));
    }
    progress_.clear();
    std::cout << input << " -> " << path << "  " << r.summary << "\n";
  }

  /// Drops (and reports) the pending images whose --at pixel the model does not see, so that
  /// one of them does not fail the batch.
  void drop_images_without_the_patch() {
    std::vector<std::pair<std::string, cv::Mat>> kept;
    for (auto& [input, rgb] : pending_) {
      try {
        renderer_.check_patch_query(rgb);
        kept.emplace_back(input, std::move(rgb));
      } catch (const std::out_of_range& e) {
        report(input + ": " + e.what());
        progress_.advance(1);
      }
    }
    pending_ = std::move(kept);
  }

  void flush() {
    drop_images_without_the_patch();
    if (pending_.empty()) return;
    std::vector<cv::Mat> images;
    for (const auto& [input, rgb] : pending_) images.push_back(rgb);
    try {
      const auto rendered = renderer_.render(images, /*single_map=*/false);
      for (size_t i = 0; i < pending_.size(); ++i) {
        const auto& input = pending_[i].first;
        try {
          save(input, plan_.path_for(input, p_.settings.method, p_.image_ext), rendered[i]);
          ++succeeded_;
        } catch (const vision::Error& e) {
          report(e.what());
        }
      }
    } catch (const std::exception& e) {  // a forward pass or drawing failed for this batch
      std::string names;
      for (const auto& [input, rgb] : pending_) names += (names.empty() ? "" : ", ") + input;
      report(names + ": " + e.what());
    }
    progress_.advance(static_cast<int64_t>(pending_.size()));
    pending_.clear();
  }

  const OverlayParams& p_;
  OverlayRenderer& renderer_;
  OutputPlan plan_;
  std::string model_path_;
  ProgressBar progress_;
  std::vector<std::pair<std::string, cv::Mat>> pending_;
  int64_t succeeded_ = 0;
  bool warned_domain_ = false;
};

/// The renderer for --model (or the shipped model); nullptr after saying why, with the exit
/// status in `status`.
std::unique_ptr<OverlayRenderer> load_renderer(const std::string& model_path,
                                               const OverlaySettings& settings, int& status) {
  try {
    return std::make_unique<OverlayRenderer>(model_path, settings);
  } catch (const vision::Error& e) {
    print_error("overlay", e.what());
    status = kExitBadModel;
  } catch (const std::invalid_argument& e) {
    print_error("overlay", e.what());
    status = kExitUsage;
  }
  return nullptr;
}

}  // namespace

int run_overlay(int argc, char** argv) {
  const auto parsed = parse_overlay_params(argc, argv);
  if (!parsed) return kExitOk;
  const OverlayParams& p = *parsed;
  set_threads(p.threads);
  auto plan = plan_output(p);
  const auto items = select_shard(expand_inputs(p.inputs), p.shard);  // an empty shard: exit 0
  if (plan.single_file) {
    check_single_output(p.out, items);
  } else if (!make_output_directory(p.out)) {
    return kExitNoInput;
  }
  std::string model_path = p.model_path;
  if (model_path.empty()) {
    model_path = default_model_path(p.settings.method == "caption" ? "captioner" : "classifier");
    if (!fs::exists(model_path)) {
      print_error("overlay",
                  "the default model " + model_path + " is not there; pass --model FILE");
      return kExitBadModel;
    }
  }
  int status = kExitOk;
  const auto renderer = load_renderer(model_path, p.settings, status);
  if (!renderer) return status;

  OverlayJob job(p, *renderer, std::move(plan), model_path, static_cast<int64_t>(items.size()));
  // Images are decoded ahead on a reader thread; videos are read frame by frame by the job.
  ImageReader reader(items, static_cast<size_t>(p.batch_size),
                     [](const InputItem& item) { return is_video(item.path); });
  for (const auto& item : items) {
    auto decoded = reader.next();
    if (!item.error.empty()) {
      job.fail(item.error);
    } else if (decoded.skipped) {
      job.add_video(item.path);
    } else if (!decoded.error.empty()) {
      job.fail(decoded.error);
    } else {
      job.add_image(item.path, std::move(decoded.rgb));
    }
  }
  return job.finish(items.size());
}

}  // namespace attnkit::apps
