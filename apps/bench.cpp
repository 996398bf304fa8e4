// apps/bench.cpp: `attn bench`: inference latency of ViTs (random weights or model files) at one
// or more precisions.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <optional>

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

/// Everything `attn bench` is told, with its defaults.
struct BenchParams {
  std::vector<std::string> archs;  ///< default: vit_base_patch16_224 vit_small_patch16_224
  std::vector<std::string> models;
  std::vector<int64_t> batch_sizes;     ///< default: 1 8
  std::vector<std::string> precisions;  ///< default: fp32
  int runs = 10;
  int warmup = 3;
  int threads = 0;
  bool json = false;
};

const char* const kBenchSummary =
    "Times the forward pass (inference mode) and reports the median\n"
    "latency per batch and per image. With several precisions the runs\n"
    "are interleaved (one of each in turn), so their ratios are fair on\n"
    "a machine whose speed drifts; compare other tools the same way.\n\n"
    "Examples:\n"
    "  attn bench --arch vit_base_patch16_224 -b 1 8 -p fp32 auto\n"
    "  attn bench -m vit-b16.safetensors -p fp32 bf16 int8 --json";

/// The command line with its defaults filled in; nullopt after --help. Throws UsageError.
std::optional<BenchParams> parse_bench(int argc, char** argv) {
  BenchParams p;
  const std::string precision_help =
      "precisions to time, side by side (default: fp32); each of:\n" +
      std::string(kInferencePrecisionHelp);
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "arch", po::value(&p.archs)->multitoken(),
      "standard ViTs with random weights (default: vit_base_patch16_224 vit_small_patch16_224)")(
      "model,m", po::value(&p.models)->multitoken(), "model files to time instead")(
      "batch-sizes,b", po::value(&p.batch_sizes)->multitoken(), "batch sizes (default: 1 8)")(
      "precision,p", po::value(&p.precisions)->multitoken(), precision_help.c_str())(
      "runs,r", po::value(&p.runs)->default_value(p.runs), "timed runs per case (median reported)")(
      "warmup,w", po::value(&p.warmup)->default_value(p.warmup), "untimed runs first")(
      "threads,t", po::value(&p.threads)->default_value(p.threads), kThreadsHelp)(
      "json", po::bool_switch(&p.json), "print JSON");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "", "attn bench [options]", kBenchSummary, vm)) {
    return std::nullopt;
  }
  if (p.archs.empty() && p.models.empty()) {
    p.archs = {"vit_base_patch16_224", "vit_small_patch16_224"};
  }
  if (p.batch_sizes.empty()) p.batch_sizes = {1, 8};
  if (p.precisions.empty()) p.precisions = {"fp32"};
  if (p.runs < 1) throw UsageError("--runs must be at least 1");
  if (p.warmup < 0) throw UsageError("--warmup must not be negative");
  for (int64_t b : p.batch_sizes) {
    if (b < 1) throw UsageError("--batch-sizes must be at least 1, got " + std::to_string(b));
  }
  return p;
}

/// One model at one precision.
struct BenchCase {
  std::string name;
  std::string precision;
  vision::VisionTransformer model{nullptr};
};

/// One model per (source, precision), the precisions of a source next to each other with the
/// same weights. Throws UsageError for an unknown architecture and vision::Error for a model
/// file.
std::vector<BenchCase> bench_cases(const BenchParams& p,
                                   const std::vector<vision::InferencePrecision>& precisions) {
  std::vector<BenchCase> cases;
  try {
    for (const auto& arch : p.archs) {
      const auto config = vision::ViTConfig::from_name(arch);
      for (const auto& precision : precisions) {
        torch::manual_seed(0);
        cases.push_back({arch, precision.name(), vision::VisionTransformer(config)});
        vision::apply_inference_precision(*cases.back().model, precision);
      }
    }
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  for (const auto& path : p.models) {
    for (const auto& precision : precisions) {
      cases.push_back({path, precision.name(), vision::load_vit(path).model});
      vision::apply_inference_precision(*cases.back().model, precision);
    }
  }
  for (auto& c : cases) c.model->eval();
  return cases;
}

/// Milliseconds of each forward pass of `models` on `input`, interleaved: `runs` rounds of one
/// pass each after `warmup` untimed rounds.
std::vector<std::vector<double>> interleaved_times(std::vector<BenchCase*> models,
                                                   const torch::Tensor& input, int warmup,
                                                   int runs) {
  std::vector<std::vector<double>> times(models.size());
  for (int i = 0; i < warmup; ++i) {
    for (auto* c : models) c->model->forward(input);
  }
  for (int i = 0; i < runs; ++i) {
    for (size_t k = 0; k < models.size(); ++k) {
      const auto start = std::chrono::steady_clock::now();
      models[k]->model->forward(input);
      times[k].push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
  }
  return times;
}

void print_header(int threads, const BenchParams& p) {
  std::cout << "threads " << threads << ", median of " << p.runs << " runs after " << p.warmup
            << " warm-up, precisions interleaved\n";
  std::cout << std::left << std::setw(28) << "model"
            << " " << std::setw(5) << "prec" << std::right << std::setw(7) << "batch"
            << std::setw(14) << "ms/batch" << std::setw(12) << "ms/image" << std::setw(12)
            << "images/s" << std::setw(9) << "speedup"
            << "\n";
}

}  // namespace

int run_bench(int argc, char** argv) {
  const auto parsed = parse_bench(argc, argv);
  if (!parsed) return kExitOk;
  const BenchParams& p = *parsed;
  std::vector<vision::InferencePrecision> chosen;
  for (const auto& name : p.precisions) chosen.push_back(choose_precision_option("bench", name));
  const int used_threads = set_threads(p.threads);
  std::vector<BenchCase> cases;
  try {
    cases = bench_cases(p, chosen);
  } catch (const vision::Error& e) {
    print_error("bench", e.what());
    return kExitBadModel;
  }

  json rows = json::array();
  if (!p.json) print_header(used_threads, p);
  c10::InferenceMode inference;
  const size_t per_source = chosen.size();
  for (size_t first = 0; first < cases.size(); first += per_source) {
    const auto& config = cases[first].model->config();
    std::vector<BenchCase*> source;
    for (size_t k = 0; k < per_source; ++k) source.push_back(&cases[first + k]);
    for (int64_t batch : p.batch_sizes) {
      torch::manual_seed(1);
      auto input =
          torch::randn({batch, config.in_channels, config.image_height, config.image_width});
      const auto times = interleaved_times(source, input, p.warmup, p.runs);
      const double reference_ms = median(times[0]);
      for (size_t k = 0; k < per_source; ++k) {
        const auto& c = *source[k];
        const double ms = median(times[k]);
        const double per_image = ms / static_cast<double>(batch);
        const double speedup = reference_ms / ms;
        if (p.json) {
          rows.push_back({{"model", c.name},
                          {"precision", c.precision},
                          {"batch", batch},
                          {"ms_per_batch", ms},
                          {"ms_per_image", per_image},
                          {"images_per_s", 1000.0 / per_image},
                          {"speedup_vs_first_precision", speedup},
                          {"threads", used_threads},
                          {"runs", p.runs},
                          {"ms_per_batch_runs", times[k]}});
        } else {
          std::cout << std::left << std::setw(28) << c.name << " " << std::setw(5) << c.precision
                    << std::right << std::setw(7) << batch << std::fixed << std::setprecision(1)
                    << std::setw(14) << ms << std::setw(12) << per_image << std::setw(12)
                    << 1000.0 / per_image << std::setw(8) << std::setprecision(2) << speedup << "x"
                    << std::endl;
        }
      }
    }
  }
  if (p.json) std::cout << json_text(rows, 2) << std::endl;
  return kExitOk;
}

}  // namespace attnkit::apps
