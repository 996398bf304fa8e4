// apps/bench.cpp: `attn bench`: inference latency of ViTs (random weights or model files).
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "apps/cli_common.h"
#include "apps/json_output.h"
#include "apps/commands.h"
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
  std::vector<std::string> archs, models;
  std::vector<int64_t> batch_sizes;
  int runs = 10, warmup = 3, threads = 0;
  bool as_json = false;
  po::options_description options("Options");
  options.add_options()
      ("help,h", "show this help")
      ("arch", po::value(&archs)->multitoken(),
       "standard ViTs with random weights (default: vit_base_patch16_224 vit_small_patch16_224)")
      ("model,m", po::value(&models)->multitoken(), "model files to time instead")
      ("batch-sizes,b", po::value(&batch_sizes)->multitoken(), "batch sizes (default: 1 8)")
      ("runs,r", po::value(&runs)->default_value(10), "timed runs per case (median reported)")
      ("warmup,w", po::value(&warmup)->default_value(3), "untimed runs first")
      ("threads,t", po::value(&threads)->default_value(0), kThreadsHelp)
      ("json", po::bool_switch(&as_json), "print JSON");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "", "attn bench [options]",
                          "Times the forward pass (inference mode, float32) and reports the\n"
                          "median latency per batch and per image. Compare against a peer\n"
                          "measured in the same run: these machines vary +/-10%.",
                          vm)) {
    return kExitOk;
  }
  if (archs.empty() && models.empty()) {
    archs = {"vit_base_patch16_224", "vit_small_patch16_224"};
  }
  if (batch_sizes.empty()) batch_sizes = {1, 8};
  if (runs < 1) throw UsageError("--runs must be at least 1");
  const int used_threads = set_threads(threads);

  struct Case {
    std::string name;
    vision::VisionTransformer model{nullptr};
  };
  std::vector<Case> cases;
  try {
    for (const auto& arch : archs) cases.push_back({arch, vision::VisionTransformer(vision::ViTConfig::from_name(arch))});
    for (const auto& path : models) cases.push_back({path, vision::load_vit(path).model});
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  } catch (const vision::Error& e) {
    print_error("bench", e.what());
    return kExitBadModel;
  }

  json rows = json::array();
  if (!as_json) {
    std::cout << "threads " << used_threads << ", median of " << runs << " runs after " << warmup
              << " warm-up\n";
    std::cout << std::left << std::setw(28) << "model" << std::right << std::setw(7) << "batch"
              << std::setw(14) << "ms/batch" << std::setw(12) << "ms/image" << std::setw(12)
              << "images/s" << "\n";
  }
  c10::InferenceMode inference;
  for (auto& c : cases) {
    c.model->eval();
    const auto& config = c.model->config();
    for (int64_t batch : batch_sizes) {
      auto input = torch::randn({batch, config.in_channels, config.image_height, config.image_width});
      for (int i = 0; i < warmup; ++i) c.model->forward(input);
      std::vector<double> times;
      for (int i = 0; i < runs; ++i) {
        const auto start = std::chrono::steady_clock::now();
        c.model->forward(input);
        times.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
      }
      const double ms = median(times);
      const double per_image = ms / static_cast<double>(batch);
      if (as_json) {
        rows.push_back({{"model", c.name}, {"batch", batch}, {"ms_per_batch", ms},
                        {"ms_per_image", per_image}, {"images_per_s", 1000.0 / per_image},
                        {"threads", used_threads}, {"runs", runs}});
      } else {
        std::cout << std::left << std::setw(28) << c.name << std::right << std::setw(7) << batch
                  << std::fixed << std::setprecision(1) << std::setw(14) << ms << std::setw(12)
                  << per_image << std::setw(12) << 1000.0 / per_image << std::endl;
      }
    }
  }
  if (as_json) std::cout << json_text(rows, 2) << std::endl;
  return kExitOk;
}

}  // namespace attnkit::apps
