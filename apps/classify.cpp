// apps/classify.cpp: `attn classify`: top-k classes for many images with a ViT model file.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include <torch/torch.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/classifier_data.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/image_batches.h"
#include "apps/inference_precision_option.h"
#include "apps/json_output.h"
#include "apps/predictions.h"
#include "apps/result_printer.h"
#include "vision/api/attnkit.h"
#include "vision/checkpoint/model_file.h"
#include "vision/errors.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"
#include "vision/models/test_time_augmentation.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

struct ClassifyParams : PerImageParams {
  int topk = 5;
  std::string tta = "none";
};

json result_json(const std::string& path, const std::vector<Prediction>& predictions) {
  return {{"path", path}, {"predictions", predictions_json(predictions)}};
}

void print_table_entry(const std::string& path, const std::vector<Prediction>& predictions) {
  std::cout << path << "\n";
  for (size_t i = 0; i < predictions.size(); ++i) {
    std::ostringstream prob;
    prob << std::fixed << std::setprecision(2) << 100.0 * predictions[i].probability << "%";
    std::cout << "  " << std::setw(2) << i + 1 << "  " << std::setw(7) << prob.str() << "  "
              << predictions[i].label << "  (" << predictions[i].index << ")\n";
  }
}

po::options_description classify_options(ClassifyParams& p) {
  po::options_description options("Options");
  add_per_image_options(options, p,
                        {default_model_path("classifier"),
                         "model file (.safetensors made by 'attn train' or 'attn import')",
                         "images per forward pass", "print one JSON document with every result"});
  options.add_options()("topk,k", po::value(&p.topk)->default_value(p.topk),
                        "classes to show per image (more than the model has: all, with a warning)")(
      "tta", po::value(&p.tta)->default_value(p.tta), kTtaHelp);
  return options;
}

const char* const kClassifySummary =
    "Classifies images with a Vision Transformer and prints the top-k classes.\n"
    "Each image is preprocessed exactly as the model's source did (resize, crop,\n"
    "normalise); see 'attn inspect MODEL'.\n\n"
    "Examples:\n"
    "  attn classify samples/\n"
    "  attn classify --model vit-b16.safetensors --topk 3 --json cat.jpg dog.png\n"
    "  attn classify --precision auto photos/     (bf16 or int8 where this CPU is fast)\n"
    "  find photos -name '*.jpg' | attn classify --jsonl -\n"
    "  attn classify --jsonl --shard $SLURM_ARRAY_TASK_ID/16 photos/ > part.jsonl";

/// The command line, checked; nullopt after --help. Throws UsageError.
std::optional<ClassifyParams> parse_classify(int argc, char** argv) {
  ClassifyParams p;
  const auto options = classify_options(p);
  if (!parse_per_image_command(argc, argv, options, "attn classify [options] IMAGE|DIR|- ...",
                               kClassifySummary, p)) {
    return std::nullopt;
  }
  if (p.topk < 1) throw UsageError("--topk must be at least 1, got " + std::to_string(p.topk));
  return p;
}

/// The model, prepared for `precision`, and the top-k it can give (said when less than
/// --topk). nullopt after saying why it cannot be used.
std::optional<std::pair<vision::LoadedViT, int>> load_classifier(
    const ClassifyParams& p, const vision::InferencePrecision& precision) {
  if (p.default_model && !std::filesystem::exists(p.model_path)) {
    print_error("classify", "the default model " + p.model_path +
                                " is not there; pass --model FILE (a model made by 'attn import' "
                                "or 'attn train'; see the README on importing public ViTs)");
    return std::nullopt;
  }
  vision::LoadedViT loaded;
  try {
    loaded = vision::load_vit(p.model_path);
    vision::apply_inference_precision(*loaded.model, precision);
  } catch (const vision::Error& e) {
    print_error("classify", e.what());
    return std::nullopt;
  }
  const int topk = static_cast<int>(std::min<int64_t>(p.topk, loaded.config.num_classes));
  if (topk < 1) {
    print_error("classify", p.model_path + ": the model has no classification head");
    return std::nullopt;
  }
  if (topk < p.topk) {
    print_warning("classify", "--topk " + std::to_string(p.topk) + " is more than the model's " +
                                  std::to_string(topk) + " classes; showing all " +
                                  std::to_string(topk));
  }
  return std::make_pair(std::move(loaded), topk);
}

}  // namespace

int run_classify(int argc, char** argv) {
  const auto parsed = parse_classify(argc, argv);
  if (!parsed) return kExitOk;
  const ClassifyParams& p = *parsed;
  const vision::TestTimeAugmentation tta = parse_tta_option(p.tta);
  const auto precision = choose_precision_option("classify", p.precision);
  set_threads(p.threads);
  auto model = load_classifier(p, precision);
  if (!model) return kExitBadModel;
  auto& loaded = model->first;
  const int topk = model->second;
  const auto& info = loaded.info;

  // An empty shard (few inputs, many shards) is a finished job, not a failure.
  const auto items = select_shard(expand_inputs(p.inputs), p.shard);
  ResultPrinter printer("classify", p.json, p.jsonl, static_cast<int64_t>(items.size()));
  c10::InferenceMode inference;
  // Photos fed to the Fashion-MNIST demo model get confident nonsense: said once.
  bool warned_domain = false;
  auto prepare = [&](const cv::Mat& rgb, const std::string& path) {
    if (!warned_domain) {
      const auto warning = fashion_domain_warning(info, rgb.cols, rgb.rows, path);
      if (!warning.empty()) printer.warn(warning);
      warned_domain = !warning.empty();
    }
    return vision::preprocess_image(rgb, info.preprocess);
  };
  auto classify_batch = [&](const torch::Tensor& images, const std::vector<std::string>& paths) {
    const auto probabilities = vision::class_log_probabilities(loaded.model, images, tta).exp();
    const auto top = top_predictions(probabilities, topk, info);
    for (size_t b = 0; b < paths.size(); ++b) {
      const auto& predictions = top[b];
      printer.result([&] { return result_json(paths[b], predictions); },
                     [&] { print_table_entry(paths[b], predictions); });
    }
  };
  for_each_image_batch(
      items, static_cast<size_t>(p.batch_size), prepare,
      [&](const std::string& path, const std::string& message) { printer.error(path, message); },
      classify_batch, [&](int64_t n) { printer.advance(n); });
  return printer.finish({{"model", p.model_path}}, items.size());
}

}  // namespace attnkit::apps
