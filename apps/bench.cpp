// apps/bench.cpp: `attn bench`: inference latency of ViTs (random weights or model files) at one
// or more precisions.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>

#include <torch/torch.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/inference_precision_option.h"
#include "apps/json_output.h"
#include "vision/checkpoint/model_file.h"
#include "vision/errors.h"
#include "vision/models/vit.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace

int run_bench(int argc, char** argv) {
  std::vector<std::string> archs, models, precisions;
  std::vector<int64_t> batch_sizes;
  int runs = 10, warmup = 3, threads = 0;
  bool as_json = false;
  const std::string precision_help =
      "precisions to time, side by side (default: fp32); each of:\n" +
      std::string(kInferencePrecisionHelp);
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "arch", po::value(&archs)->multitoken(),
      "standard ViTs with random weights (default: vit_base_patch16_224 vit_small_patch16_224)")(
      "model,m", po::value(&models)->multitoken(), "model files to time instead")(
      "batch-sizes,b", po::value(&batch_sizes)->multitoken(), "batch sizes (default: 1 8)")(
      "precision,p", po::value(&precisions)->multitoken(), precision_help.c_str())(
      "runs,r", po::value(&runs)->default_value(10), "timed runs per case (median reported)")(
      "warmup,w", po::value(&warmup)->default_value(3), "untimed runs first")(
      "threads,t", po::value(&threads)->default_value(0), kThreadsHelp)(
      "json", po::bool_switch(&as_json), "print JSON");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "", "attn bench [options]",
                          "Times the forward pass (inference mode) and reports the median\n"
                          "latency per batch and per image. With several precisions the runs\n"
                          "are interleaved (one of each in turn), so their ratios are fair on\n"
                          "a machine whose speed drifts; compare other tools the same way.\n\n"
                          "Examples:\n"
                          "  attn bench --arch vit_base_patch16_224 -b 1 8 -p fp32 auto\n"
                          "  attn bench -m vit-b16.safetensors -p fp32 bf16 int8 --json",
                          vm)) {
    return kExitOk;
  }
  if (archs.empty() && models.empty()) {
    archs = {"vit_base_patch16_224", "vit_small_patch16_224"};
  }
  if (batch_sizes.empty()) batch_sizes = {1, 8};
  if (precisions.empty()) precisions = {"fp32"};
  if (runs < 1) throw UsageError("--runs must be at least 1");
  if (warmup < 0) throw UsageError("--warmup must not be negative");
  for (int64_t b : batch_sizes) {
    if (b < 1) throw UsageError("--batch-sizes must be at least 1, got " + std::to_string(b));
  }
  std::vector<vision::InferencePrecision> chosen;
  for (const auto& p : precisions) chosen.push_back(choose_precision_option("bench", p));
  const int used_threads = set_threads(threads);

  // One model per (source, precision): every precision of a source gets the same weights.
  struct Case {
    std::string name;
    std::string precision;
    vision::VisionTransformer model{nullptr};
  };
  std::vector<Case> cases;
  try {
    for (const auto& arch : archs) {
      const auto config = vision::ViTConfig::from_name(arch);
      for (const auto& precision : chosen) {
        torch::manual_seed(0);
        cases.push_back({arch, precision.name(), vision::VisionTransformer(config)});
        vision::apply_inference_precision(*cases.back().model, precision);
      }
    }
    for (const auto& path : models) {
      for (const auto& precision : chosen) {
        cases.push_back({path, precision.name(), vision::load_vit(path).model});
        vision::apply_inference_precision(*cases.back().model, precision);
      }
    }
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  } catch (const vision::Error& e) {
    print_error("bench", e.what());
    return kExitBadModel;
  }

  json rows = json::array();
  if (!as_json) {
    std::cout << "threads " << used_threads << ", median of " << runs << " runs after " << warmup
              << " warm-up, precisions interleaved\n";
    std::cout << std::left << std::setw(28) << "model" << std::setw(6) << "prec" << std::right
              << std::setw(7) << "batch" << std::setw(14) << "ms/batch" << std::setw(12)
              << "ms/image" << std::setw(12) << "images/s" << std::setw(9) << "speedup"
              << "\n";
  }
  c10::InferenceMode inference;
  for (auto& c : cases) c.model->eval();
  const size_t per_source = chosen.size();
  for (size_t first = 0; first < cases.size(); first += per_source) {
    const auto& config = cases[first].model->config();
    for (int64_t batch : batch_sizes) {
      torch::manual_seed(1);
      auto input =
          torch::randn({batch, config.in_channels, config.image_height, config.image_width});
      std::vector<std::vector<double>> times(per_source);
      for (int i = 0; i < warmup; ++i) {
        for (size_t k = 0; k < per_source; ++k) cases[first + k].model->forward(input);
      }
      for (int i = 0; i < runs; ++i) {
        for (size_t k = 0; k < per_source; ++k) {
          const auto start = std::chrono::steady_clock::now();
          cases[first + k].model->forward(input);
          times[k].push_back(
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count());
        }
      }
      const double reference_ms = median(times[0]);
      for (size_t k = 0; k < per_source; ++k) {
        const auto& c = cases[first + k];
        const double ms = median(times[k]);
        const double per_image = ms / static_cast<double>(batch);
        const double speedup = reference_ms / ms;
        if (as_json) {
          rows.push_back({{"model", c.name},
                          {"precision", c.precision},
                          {"batch", batch},
                          {"ms_per_batch", ms},
                          {"ms_per_image", per_image},
                          {"images_per_s", 1000.0 / per_image},
                          {"speedup_vs_first_precision", speedup},
                          {"threads", used_threads},
                          {"runs", runs},
                          {"ms_per_batch_runs", times[k]}});
        } else {
          std::cout << std::left << std::setw(28) << c.name << std::setw(6) << c.precision
                    << std::right << std::setw(7) << batch << std::fixed << std::setprecision(1)
                    << std::setw(14) << ms << std::setw(12) << per_image << std::setw(12)
                    << 1000.0 / per_image << std::setw(8) << std::setprecision(2) << speedup << "x"
                    << std::endl;
        }
      }
    }
  }
  if (as_json) std::cout << json_text(rows, 2) << std::endl;
  return kExitOk;
}

}  // namespace attnkit::apps
