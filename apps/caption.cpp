// apps/caption.cpp: `attn caption`: captions for many images with a Show-Attend-Tell model,
// each word with its probability and (in JSON) its attention grid.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include <torch/torch.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/caption_options.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/image_batches.h"
#include "apps/inference_precision_option.h"
#include "apps/json_output.h"
#include "apps/result_printer.h"
#include "vision/api/attnkit.h"
#include "vision/checkpoint/captioner_file.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"
#include "vision/models/caption_decoder.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

json caption_json(const std::string& path, const vision::Caption& caption, bool with_attention) {
  json words = json::array();
  for (const auto& w : caption.words) {
    json word = {{"word", w.word}, {"probability", w.probability}};
    if (with_attention) word["attention"] = matrix_json<float>(w.attention);
    words.push_back(word);
  }
  return {{"path", path},
          {"caption", caption.text()},
          {"log_prob", caption.log_prob},
          {"ended", caption.ended},
          {"words", words}};
}

/// Everything `attn caption` is told, with its defaults.
struct CaptionParams : PerImageParams {
  CaptionParams() { batch_size = 32; }
  DecodingParams decoding;
};

po::options_description caption_options(CaptionParams& p) {
  po::options_description options("Options");
  add_per_image_options(
      options, p,
      {default_model_path("captioner"), "captioner model file", "images per pass",
       "one JSON document: per image the caption, per word its probability and attention grid"});
  add_decoding_options(options, p.decoding);
  return options;
}

const char* const kCaptionSummary =
    "Describes images in words with a Show, Attend and Tell captioner: a ViT encodes\n"
    "the image into a grid, an LSTM writes the caption attending over the grid at every\n"
    "word. Beam search ranks captions by log-probability per word.\n\n"
    "Examples:\n"
    "  attn caption --model scenes-captioner.safetensors samples/scenes/\n"
    "  attn caption --beam 5 --max-len 16 --json scene.png > caption.json";

/// The command line, checked; nullopt after --help. Throws UsageError.
std::optional<CaptionParams> parse_caption(int argc, char** argv) {
  CaptionParams p;
  const auto options = caption_options(p);
  if (!parse_per_image_command(argc, argv, options, "attn caption [options] IMAGE|DIR|- ...",
                               kCaptionSummary, p)) {
    return std::nullopt;
  }
  check_decoding(p.decoding);
  return p;
}

/// The captioner, prepared for `precision`; nullopt after saying why it cannot be used.
std::optional<vision::LoadedCaptioner> load_model(const CaptionParams& p,
                                                  const vision::InferencePrecision& precision) {
  if (p.default_model && !std::filesystem::exists(p.model_path)) {
    print_error("caption", "the default captioner " + p.model_path +
                               " is not there; pass --model FILE (a captioner model file)");
    return std::nullopt;
  }
  try {
    auto loaded = vision::load_captioner(p.model_path);
    vision::apply_inference_precision(*loaded.model, precision);
    return loaded;
  } catch (const vision::Error& e) {
    print_error("caption", e.what());
    return std::nullopt;
  }
}

/// The caption and each word's probability, as text.
void print_caption(const std::string& path, const vision::Caption& caption) {
  std::ostringstream probabilities;
  for (const auto& w : caption.words) {
    probabilities << (probabilities.tellp() > 0 ? " " : "") << std::fixed << std::setprecision(2)
                  << w.probability;
  }
  std::cout << path << "\n  " << caption.text() << (caption.ended ? "" : " ...")
            << "\n  p: " << probabilities.str() << "\n";
}

}  // namespace

int run_caption(int argc, char** argv) {
  const auto parsed = parse_caption(argc, argv);
  if (!parsed) return kExitOk;
  const CaptionParams& p = *parsed;
  const auto precision = choose_precision_option("caption", p.precision);
  set_threads(p.threads);
  auto loaded = load_model(p, precision);
  if (!loaded) return kExitBadModel;
  if (const auto error = beam_width_error(p.decoding.beam, loaded->vocabulary.size());
      !error.empty()) {
    throw UsageError(error);
  }

  const auto items = select_shard(expand_inputs(p.inputs), p.shard);  // an empty shard: exit 0
  ResultPrinter printer("caption", p.json, p.jsonl, static_cast<int64_t>(items.size()));
  auto prepare = [&](const cv::Mat& rgb, const std::string&) {
    return vision::preprocess_image(rgb, loaded->info.preprocess);
  };
  auto caption_batch = [&](const torch::Tensor& images, const std::vector<std::string>& paths) {
    vision::EncodedImages encoded;
    {
      torch::NoGradGuard no_grad;
      encoded = loaded->model->encode(images);
    }
    const auto captions = vision::beam_search(loaded->model, encoded, loaded->vocabulary,
                                              p.decoding.beam, p.decoding.max_len);
    for (size_t b = 0; b < paths.size(); ++b) {
      printer.result([&] { return caption_json(paths[b], captions[b], true); },
                     [&] { print_caption(paths[b], captions[b]); });
    }
  };
  for_each_image_batch(
      items, static_cast<size_t>(p.batch_size), prepare,
      [&](const std::string& path, const std::string& message) { printer.error(path, message); },
      caption_batch, [&](int64_t n) { printer.advance(n); });
  return printer.finish({{"model", p.model_path}, {"beam", p.decoding.beam}}, items.size());
}

}  // namespace attnkit::apps
