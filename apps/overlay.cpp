// apps/overlay.cpp: `attn overlay`: attention maps drawn on images and on every frame of a video,
// for a ViT classifier (cls, rollout, grad-rollout, relevance, gradcam, pool) or a captioner (one
// map per word).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include <torch/torch.h>
#include <boost/program_options.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>

#include "apps/caption_options.h"
#include "apps/classifier_data.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/image_batches.h"
#include "apps/inference_precision_option.h"
#include "apps/overlay_render.h"
#include "vision/api/attnkit.h"
#include "vision/atomic_file.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"
#include "vision/models/vit_explain.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool is_video(const std::string& path) {
  static const std::set<std::string> kVideo = {".mp4", ".avi", ".mkv",  ".mov", ".webm",
                                               ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"};
  return kVideo.count(vision::lower_extension(path)) > 0;
}

/// "3", "-1" or "all" -> an index or ExplainOptions::kAll.
int64_t index_or_all(const std::string& text, const std::string& option) {
  if (text == "all") return vision::ExplainOptions::kAll;
  try {
    size_t used = 0;
    const int64_t value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw UsageError(option + " must be a number or 'all', got '" + text + "'");
}

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

}  // namespace

int run_overlay(int argc, char** argv) {
  std::vector<std::string> inputs;
  std::string model_path, out = "overlays", head = "-1", layer = "-1", target = "",
                          colormap = "jet", fusion = "mean", image_ext = ".png",
                          precision_name = "fp32";
  OverlaySettings s;
  int batch_size = 8, threads = 0;
  bool write_json = false, no_colorbar = false;
  Shard shard;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "inputs", po::value(&inputs)->multitoken(),
      "images, videos, directories of images (recursively) or - for paths on stdin")(
      "model,m", po::value(&model_path),
      "ViT model file (default: the shipped Fashion-MNIST ViT), or a captioner for "
      "--method caption (default: the shipped scenes captioner)")(
      "method", po::value(&s.method)->default_value(s.method),
      "cls: the class token's attention in one layer; rollout: attention rolled out over "
      "all layers (Abnar and Zuidema 2020); grad-rollout: rollout weighted by the gradient of "
      "--class ('why this class'); relevance: relevance propagated through every block's "
      "gradient-weighted attention (Chefer, Gur and Wolf 2021), for --class; gradcam: Grad-CAM "
      "on the tokens block --layer's attention reads, for --class; pool: the attention-pool "
      "head's weights; caption: one map per generated word")(
      "class", po::value(&target),
      "grad-rollout, relevance, gradcam: the class to explain, by index or label (default: "
      "each image's top-1)")(
      "head", po::value(&head)->default_value(head),
      "cls: head index, -1 = fuse the heads (--fusion), 'all' = a panel of every head")(
      "layer", po::value(&layer)->default_value(layer),
      "cls: layer index (-1 = last), 'all' = a panel of every layer; gradcam: the block whose "
      "tokens are weighted (-1 = last)")("fusion", po::value(&fusion)->default_value(fusion),
                                         "head fusion: mean | max | min")(
      "discard", po::value(&s.explain.discard_ratio)->default_value(0.0),
      "rollout: zero the lowest fraction of each layer's attention first (e.g. 0.9)")(
      "colormap", po::value(&colormap)->default_value(colormap),
      ("OpenCV colormap: " + vision::colormap_names()).c_str())(
      "alpha", po::value(&s.style.alpha)->default_value(s.style.alpha),
      "opacity of the heat colours")(
      "smooth", po::value(&s.style.smooth)->default_value(0.0),
      "Gaussian smoothing, sigma in grid cells (SAT's figures smooth; 0 = off)")(
      "threshold", po::value(&s.style.threshold)->default_value(-1.0),
      "draw the contour where the normalised map >= this (0..1; -1 = off)")(
      "no-colorbar", po::bool_switch(&no_colorbar), "no colour bar on the right edge")(
      "upscale", po::value(&s.upscale)->default_value(0),
      "draw images smaller than this many pixels (longer side) enlarged to it, e.g. 224 for "
      "28x28 Fashion-MNIST items (0 = the original size)")(
      "beam", po::value(&s.beam)->default_value(s.beam), "caption: beam width")(
      "max-len", po::value(&s.max_len)->default_value(s.max_len),
      ("caption: " + max_len_help()).c_str())(
      "out,o", po::value(&out)->default_value(out),
      "output: a file (.png, .jpg, .webp; .mp4 or .avi for a video) for one input, else a "
      "directory that gets <name>.<method>.png per image and <name>.<method>.mp4 per video")(
      "format", po::value(&image_ext)->default_value("png"),
      "image format in an output directory: png | jpg | webp")(
      "json", po::bool_switch(&write_json),
      "also write the raw grids, prediction or caption as <output>.json (images)")(
      "batch-size,b", po::value(&batch_size)->default_value(batch_size),
      "images or video frames per forward pass")(
      "precision,p", po::value(&precision_name)->default_value(precision_name),
      (std::string(kInferencePrecisionHelp) +
       ".\ngrad-rollout, relevance and gradcam need gradients: their pass runs in fp32")
          .c_str())("threads,t", po::value(&threads)->default_value(0), kThreadsHelp);
  add_max_pixels_option(options);
  add_shard_option(options, &shard);
  po::variables_map vm;
  if (!parse_command_line(
          argc, argv, options, "inputs", "attn overlay [options] IMAGE|VIDEO|DIR|- ...",
          "Draws what a model looked at onto the original image (the preprocessing crop and\n"
          "resize are undone, EXIF orientation respected), with the predicted class and its\n"
          "probability, or for a caption a panel with each word under its own map. Videos\n"
          "(any container OpenCV's ffmpeg backend reads) get the overlay on every frame.\n\n"
          "Examples:\n"
          "  attn overlay samples/fashion/ --upscale 224 --out overlays/\n"
          "  attn overlay --model vit-b16.safetensors --method grad-rollout --class 'tabby cat' "
          "\\\n"
          "      cat.jpg --out cat-why.png\n"
          "  attn overlay --model vit-b16.safetensors --method cls --head all photo.jpg -o "
          "heads.png\n"
          "  attn overlay --method caption samples/scenes/scene_000000.png --upscale 256 -o "
          "words.png\n"
          "  attn overlay --model vit-b16.safetensors clip.mp4 -o clip-rollout.mp4",
          vm)) {
    return kExitOk;
  }
  if (inputs.empty()) throw UsageError("no inputs given (images, videos, directories or -)");
  if (batch_size < 1) throw UsageError("--batch-size must be at least 1");
  // Written so that NaN fails every check.
  if (!(s.style.alpha >= 0 && s.style.alpha <= 1)) throw UsageError("--alpha must be in [0, 1]");
  if (!(s.style.smooth >= 0 && s.style.smooth < 1e3)) throw UsageError("--smooth must be >= 0");
  if (!(s.style.threshold <= 1)) throw UsageError("--threshold must be <= 1 (-1 = off)");
  if (!(s.explain.discard_ratio >= 0 && s.explain.discard_ratio < 1)) {
    throw UsageError("--discard must be in [0, 1)");
  }
  if (s.upscale < 0) throw UsageError("--upscale must be >= 0");
  if (s.beam < 1) throw UsageError("--beam must be >= 1");
  check_max_len(s.max_len);
  static const std::set<std::string> kMethods = {"cls",       "rollout", "grad-rollout", "pool",
                                                 "relevance", "gradcam", "caption"};
  if (kMethods.count(s.method) == 0) {
    throw UsageError(
        "--method must be cls, rollout, grad-rollout, relevance, gradcam, pool or "
        "caption, got '" +
        s.method + "'");
  }
  const bool class_specific =
      s.method != "caption" && vision::is_class_specific(vision::map_method_from_string(s.method));
  s.explain.head = index_or_all(head, "--head");
  s.explain.layer = index_or_all(layer, "--layer");
  if (!vm["head"].defaulted() && s.method != "cls") {
    throw UsageError("--head chooses the map of --method cls");
  }
  if (!vm["layer"].defaulted() && s.method != "cls" && s.method != "gradcam") {
    throw UsageError("--layer chooses the map of --method cls or gradcam");
  }
  if (s.method == "gradcam" && s.explain.layer == vision::ExplainOptions::kAll) {
    throw UsageError("--layer all is for --method cls; gradcam takes one block");
  }
  if (!target.empty()) {
    if (!class_specific) {
      throw UsageError("--class is for --method grad-rollout, relevance or gradcam");
    }
    try {
      size_t used = 0;
      s.explain.target_class = std::stoll(target, &used);
      if (used != target.size()) throw std::invalid_argument(target);
      if (s.explain.target_class < 0) throw UsageError("--class must be >= 0");
    } catch (const std::invalid_argument&) {
      s.target_label = target;
    } catch (const std::out_of_range&) {
      throw UsageError("--class " + target + " is out of range");
    }
  }
  try {
    s.explain.fusion = attention::head_fusion_from_string(fusion);
    s.style.colormap = vision::colormap_from_string(colormap);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  s.style.colorbar = !no_colorbar;
  s.want_json = write_json;
  if (image_ext != "png" && image_ext != "jpg" && image_ext != "webp") {
    throw UsageError("--format must be png, jpg or webp");
  }
  image_ext = "." + image_ext;
  s.precision = choose_precision_option("overlay", precision_name);
  set_threads(threads);

  OutputPlan plan;
  plan.target = out;
  plan.single_file = vision::has_writable_image_extension(out) || is_video(out);
  // A name with an extension (out.tiff, m.safetensors) means a file, not a directory to
  // create: say what can be written. An existing directory keeps its name, dots and all.
  std::error_code out_ec;
  if (!plan.single_file && !vision::lower_extension(out).empty() &&
      !fs::is_directory(out, out_ec)) {
    throw UsageError("--out " + out + ": cannot write " + vision::lower_extension(out) +
                     " files; name an image (.png, .jpg, .jpeg, .webp, .bmp), a video (.mp4, "
                     ".avi) or a directory (no extension, or one that exists)");
  }
  if (plan.single_file && shard.count > 1) {
    throw UsageError("--shard writes many files: --out must be a directory, not " + out);
  }
  const auto items = select_shard(expand_inputs(inputs), shard);  // an empty shard: exit 0
  if (plan.single_file) {
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
    if (is_video(items[0].path) != is_video(out)) {
      throw UsageError(
          "--out " + out + ": a " + (is_video(items[0].path) ? "video" : "image") +
          " input needs a " +
          (is_video(items[0].path) ? "video (.mp4, .avi)" : "image (.png, .jpg, .webp)") +
          " output");
    }
  } else {
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec || !fs::is_directory(out)) {
      print_error("overlay", out + ": cannot create the output directory (" +
                                 (ec ? ec.message() : std::string("a file has that name")) + ")");
      return kExitNoInput;
    }
  }

  if (!vm.count("model")) {
    model_path = default_model_path(s.method == "caption" ? "captioner" : "classifier");
    if (!fs::exists(model_path)) {
      print_error("overlay",
                  "the default model " + model_path + " is not there; pass --model FILE");
      return kExitBadModel;
    }
  }
  std::unique_ptr<OverlayRenderer> renderer;
  try {
    renderer = std::make_unique<OverlayRenderer>(model_path, s);
  } catch (const vision::Error& e) {
    print_error("overlay", e.what());
    return kExitBadModel;
  } catch (const std::invalid_argument& e) {
    print_error("overlay", e.what());
    return kExitUsage;
  }

  int64_t succeeded = 0;
  ProgressBar progress("overlay", static_cast<int64_t>(items.size()));
  auto report_error = [&](const std::string& message) {
    progress.clear();
    print_error("overlay", message);
  };
  // An output that is an input or the model (compared by device and inode, so links and
  // other spellings count) would destroy what it was made from.
  auto refuse_overwriting_source = [&](const std::string& input, const std::string& path) {
    if (same_file(path, input)) {
      throw vision::ImageError(path + ": is the input itself; not overwritten");
    }
    if (same_file(path, model_path)) {
      throw vision::ImageError(path + ": is the model file; not overwritten");
    }
  };
  auto save = [&](const std::string& input, const std::string& path, const RenderedOverlay& r) {
    refuse_overwriting_source(input, path);
    vision::save_image_rgb(path, r.rgb);
    if (write_json) {
      const std::string text = r.json + "\n";
      vision::write_file_atomically(path + ".json",
                                    std::vector<unsigned char>(text.begin(), text.end()));
    }
    progress.clear();
    std::cout << input << " -> " << path << "  " << r.summary << "\n";
  };

  // Videos one at a time, frames batched.
  auto overlay_video = [&](const std::string& input, const std::string& path) {
    refuse_overwriting_source(input, path);
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
    int64_t frames = 0;
    const auto start = Clock::now();
    std::string last_summary;
    try {
      bool more = true;
      while (more) {
        std::vector<cv::Mat> batch;
        cv::Mat bgr;
        while (static_cast<int>(batch.size()) < batch_size && (more = capture.read(bgr)) &&
               (more = !bgr.empty())) {
          cv::Mat rgb;
          cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
          batch.push_back(rgb);
        }
        if (batch.empty()) break;
        for (const auto& r : renderer->render(batch, /*single_map=*/true)) {
          if (!writer.isOpened()) {
            writer.open(file.temp_path(), video_backend(), fourcc_for(path), fps, r.rgb.size());
            if (!writer.isOpened()) fail_video("cannot write this video format");
          }
          cv::Mat out_bgr;
          cv::cvtColor(r.rgb, out_bgr, cv::COLOR_RGB2BGR);
          writer.write(out_bgr);
          last_summary = r.summary;
        }
        frames += static_cast<int64_t>(batch.size());
        frames_bar.advance(static_cast<int64_t>(batch.size()));
      }
      frames_bar.finish();
      writer.release();
      if (frames == 0) throw vision::ImageError(input + ": no frames could be read");
      if (frame_count > 0 && frames < frame_count) {
        progress.clear();
        print_warning("overlay", input + ": the container announces " +
                                     std::to_string(frame_count) + " frames, " +
                                     std::to_string(frames) + " could be decoded");
      }
      // Read back before it replaces anything, since the writer reported nothing.
      cv::VideoCapture written(file.temp_path(), video_backend());
      const auto written_frames =
          written.isOpened() ? static_cast<int64_t>(written.get(cv::CAP_PROP_FRAME_COUNT)) : 0;
      written.release();
      if (written_frames != frames) {
        fail_video("cannot write: the video reads back with " + std::to_string(written_frames) +
                   " of " + std::to_string(frames) + " frames");
      }
      file.commit();
    } catch (...) {
      frames_bar.finish();
      writer.release();
      throw;
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    progress.clear();
    std::cout << input << " -> " << path << "  " << frames << " frames, " << std::fixed
              << std::setprecision(1) << frames / seconds << " frames/s\n";
  };

  bool warned_domain = false;  // photos given to the Fashion-MNIST demo model: say so once
  std::vector<std::pair<std::string, cv::Mat>> pending;  // images waiting for a batch
  auto flush = [&]() {
    if (pending.empty()) return;
    std::vector<cv::Mat> images;
    for (const auto& [input, rgb] : pending) images.push_back(rgb);
    try {
      const auto rendered = renderer->render(images, /*single_map=*/false);
      for (size_t i = 0; i < pending.size(); ++i) {
        const auto& input = pending[i].first;
        try {
          save(input, plan.path_for(input, s.method, image_ext), rendered[i]);
          ++succeeded;
        } catch (const vision::Error& e) {
          report_error(e.what());
        }
      }
    } catch (const std::exception& e) {  // a forward pass or drawing failed for this batch
      std::string names;
      for (const auto& [input, rgb] : pending) names += (names.empty() ? "" : ", ") + input;
      report_error(names + ": " + e.what());
    }
    progress.advance(static_cast<int64_t>(pending.size()));
    pending.clear();
  };

  // Images are decoded ahead on a reader thread; videos are read frame by frame here.
  ImageReader reader(items, static_cast<size_t>(std::max(batch_size, 1)),
                     [](const InputItem& item) { return is_video(item.path); });
  for (const auto& item : items) {
    auto decoded = reader.next();
    if (!item.error.empty()) {
      report_error(item.error);
      progress.advance(1);
      continue;
    }
    if (decoded.skipped) {
      flush();
      try {
        overlay_video(item.path, plan.path_for(item.path, s.method, image_ext));
        ++succeeded;
      } catch (const vision::Error& e) {
        report_error(e.what());
      } catch (const std::exception& e) {
        report_error(item.path + ": " + e.what());
      }
      progress.advance(1);
      continue;
    }
    if (!decoded.error.empty()) {
      report_error(decoded.error);
      progress.advance(1);
      continue;
    }
    try {
      pending.emplace_back(item.path, std::move(decoded.rgb));
      const auto& rgb = pending.back().second;
      if (!warned_domain) {
        const auto warning =
            fashion_domain_warning(renderer->info(), rgb.cols, rgb.rows, item.path);
        if (!warning.empty()) {
          warned_domain = true;
          progress.clear();
          print_warning("overlay", warning);
        }
      }
    } catch (const vision::Error& e) {
      report_error(e.what());
      progress.advance(1);
    }
    if (static_cast<int>(pending.size()) >= batch_size) flush();
  }
  flush();
  progress.finish();
  if (succeeded == 0 && !items.empty()) return kExitNoInput;
  return succeeded == static_cast<int64_t>(items.size()) ? kExitOk : kExitSomeFailed;
}

}  // namespace attnkit::apps
