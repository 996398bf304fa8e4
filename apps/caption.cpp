// apps/caption.cpp: `attn caption`: captions for many images with a Show-Attend-Tell model,
// each word with its probability and (in JSON) its attention grid.
#include <filesystem>
#include <iomanip>
#include <iostream>
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
    if (with_attention) {
      json grid = json::array();
      auto a = w.attention.accessor<float, 2>();
      for (int64_t r = 0; r < w.attention.size(0); ++r) {
        json row = json::array();
        for (int64_t c = 0; c < w.attention.size(1); ++c) row.push_back(a[r][c]);
        grid.push_back(row);
      }
      word["attention"] = grid;
    }
    words.push_back(word);
  }
  return {{"path", path},
          {"caption", caption.text()},
          {"log_prob", caption.log_prob},
          {"ended", caption.ended},
          {"words", words}};
}

}  // namespace

int run_caption(int argc, char** argv) {
  std::vector<std::string> inputs;
  std::string model_path, precision_name = "fp32";
  int64_t beam = 3, max_len = 20, batch_size = 32;
  int threads = 0;
  bool as_json = false, as_jsonl = false;
  Shard shard;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "inputs", po::value(&inputs)->multitoken(),
      "images, directories (searched recursively) or - to read paths from stdin")(
      "model,m", po::value(&model_path)->default_value(default_model_path("captioner")),
      "captioner model file")("beam", po::value(&beam)->default_value(beam),
                              "beam width (1 = greedy)")(
      "max-len", po::value(&max_len)->default_value(max_len), max_len_help().c_str())(
      "batch-size,b", po::value(&batch_size)->default_value(batch_size), "images per pass")(
      "precision,p", po::value(&precision_name)->default_value(precision_name),
      kInferencePrecisionHelp)("threads,t", po::value(&threads)->default_value(0), kThreadsHelp)(
      "json", po::bool_switch(&as_json),
      "one JSON document: per image the caption, per word its probability and attention grid")(
      "jsonl", po::bool_switch(&as_jsonl), "one JSON object per image, as they finish");
  add_max_pixels_option(options);
  add_shard_option(options, &shard);
  po::variables_map vm;
  if (!parse_command_line(
          argc, argv, options, "inputs", "attn caption [options] IMAGE|DIR|- ...",
          "Describes images in words with a Show, Attend and Tell captioner: a ViT encodes\n"
          "the image into a grid, an LSTM writes the caption attending over the grid at every\n"
          "word. Beam search ranks captions by log-probability per word.\n\n"
          "Examples:\n"
          "  attn caption --model scenes-captioner.safetensors samples/scenes/\n"
          "  attn caption --beam 5 --max-len 16 --json scene.png > caption.json",
          vm)) {
    return kExitOk;
  }
  if (inputs.empty()) throw UsageError("no inputs given (images, directories or -)");
  if (beam < 1) throw UsageError("--beam must be at least 1, got " + std::to_string(beam));
  check_max_len(max_len);
  if (batch_size < 1) throw UsageError("--batch-size must be at least 1");
  if (as_json && as_jsonl) throw UsageError("--json and --jsonl exclude each other");
  const auto precision = choose_precision_option("caption", precision_name);
  set_threads(threads);

  if (vm["model"].defaulted() && !std::filesystem::exists(model_path)) {
    print_error("caption", "the default captioner " + model_path +
                               " is not there; pass --model FILE (a captioner model file)");
    return kExitBadModel;
  }
  vision::LoadedCaptioner loaded;
  try {
    loaded = vision::load_captioner(model_path);
    vision::apply_inference_precision(*loaded.model, precision);
  } catch (const vision::Error& e) {
    print_error("caption", e.what());
    return kExitBadModel;
  }
  if (const auto error = beam_width_error(beam, loaded.vocabulary.size()); !error.empty()) {
    throw UsageError(error);
  }

  const auto items = select_shard(expand_inputs(inputs), shard);  // an empty shard: exit 0
  json results = json::array(), errors = json::array();
  int64_t succeeded = 0;
  ProgressBar progress("caption", static_cast<int64_t>(items.size()));
  auto report_error = [&](const std::string& path, const std::string& message) {
    progress.clear();
    print_error("caption", message);
    if (as_jsonl) {
      std::cout << json_text({{"path", path}, {"error", message}}) << std::endl;
    } else {
      errors.push_back({{"path", path}, {"error", message}});
    }
  };
  auto prepare = [&](const cv::Mat& rgb, const std::string&) {
    return vision::preprocess_image(rgb, loaded.info.preprocess);
  };
  auto caption_batch = [&](const torch::Tensor& images, const std::vector<std::string>& paths) {
    vision::EncodedImages encoded;
    {
      torch::NoGradGuard no_grad;
      encoded = loaded.model->encode(images);
    }
    const auto captions =
        vision::beam_search(loaded.model, encoded, loaded.vocabulary, beam, max_len);
    for (size_t b = 0; b < paths.size(); ++b) {
      ++succeeded;
      if (as_jsonl) {
        std::cout << json_text(caption_json(paths[b], captions[b], true)) << std::endl;
      } else if (as_json) {
        results.push_back(caption_json(paths[b], captions[b], true));
      } else {
        progress.clear();
        std::ostringstream probabilities;
        for (const auto& w : captions[b].words) {
          probabilities << (probabilities.tellp() > 0 ? " " : "") << std::fixed
                        << std::setprecision(2) << w.probability;
        }
        std::cout << paths[b] << "\n  " << captions[b].text() << (captions[b].ended ? "" : " ...")
                  << "\n  p: " << probabilities.str() << "\n";
      }
    }
  };
  for_each_image_batch(items, static_cast<size_t>(batch_size), prepare, report_error, caption_batch,
                       [&](int64_t n) { progress.advance(n); });
  progress.finish();
  if (as_json) {
    std::cout << json_text(json{{"model", model_path},
                                {"beam", beam},
                                {"results", results},
                                {"errors", errors}},
                           2)
              << std::endl;
  }
  if (succeeded == 0 && !items.empty()) return kExitNoInput;
  return succeeded == static_cast<int64_t>(items.size()) ? kExitOk : kExitSomeFailed;
}

}  // namespace attnkit::apps
