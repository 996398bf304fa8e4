// apps/inspect.cpp: `attn inspect`: what a model file holds.
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <torch/torch.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/json_output.h"
#include "vision/checkpoint/model_file.h"
#include "vision/checkpoint/safetensors.h"
#include "vision/errors.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

std::string human_count(int64_t n) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  if (n >= 1000000) {
    out << n / 1e6 << "M";
  } else if (n >= 1000) {
    out << n / 1e3 << "K";
  } else {
    out << n;
  }
  return out.str();
}

}  // namespace

namespace {

/// What `attn inspect` reads from one model file.
struct ModelSummary {
  std::string path;
  vision::ModelInfo info;
  json config;  ///< the stored config, nesting past 64 levels dropped
  int64_t parameters = 0;
  size_t tensors = 0;
  std::map<std::string, int64_t> dtypes;  ///< tensors per stored dtype
  bool training_checkpoint = false;       ///< it holds optimizer state too
};

/// Throws vision::Error for a file that is not an attnkit model file.
ModelSummary summarize(const std::string& path) {
  ModelSummary s;
  s.path = path;
  const auto file = vision::SafetensorsFile::open(path);
  s.info = vision::read_model_info(path);
  s.tensors = file.entries().size();
  for (const auto& entry : file.entries()) {
    if (entry.name.rfind(vision::kTrainerTensorPrefix, 0) == 0) {
      s.training_checkpoint = true;  // optimizer state, not model weights
      continue;
    }
    int64_t numel = 1;
    for (auto d : entry.shape) numel *= d;
    s.parameters += numel;
    s.dtypes[entry.dtype] += 1;
  }
  // Printed as it is stored, but a model file is untrusted input: dump() recurses, and a
  // config nested a million levels deep would overflow the stack. No real config nests
  // deeper than 4, so past 64 the value is dropped (parse callbacks that return false).
  s.config = json::parse(
      s.info.config_json.empty() ? "{}" : s.info.config_json,
      [](int depth, json::parse_event_t, json&) { return depth <= 64; }, false);
  return s;
}

void print_json(const ModelSummary& s) {
  const json out = {{"path", s.path},
                    {"arch", s.info.arch},
                    {"config", s.config},
                    {"parameters", s.parameters},
                    {"tensors", s.tensors},
                    {"training_checkpoint", s.training_checkpoint},
                    {"file_bytes", std::filesystem::file_size(s.path)},
                    {"preprocess", json::parse(s.info.preprocess.to_json())},
                    {"num_labels", s.info.labels.size()},
                    {"labels", s.info.labels},
                    {"source", s.info.source}};
  std::cout << json_text(out, 2) << std::endl;
}

void print_vit_config(const json& config) {
  std::cout << "  vit           dim " << config.value("dim", 0) << ", depth "
            << config.value("depth", 0) << ", heads " << config.value("num_heads", 0) << ", patch "
            << config.value("patch_size", 0) << ", mlp " << config.value("mlp_hidden_dim", 0)
            << ", pooling " << config.value("pooling", std::string("?"));
  if (config.contains("stem_channels") && !config["stem_channels"].empty()) {
    std::cout << ", conv stem " << config["stem_channels"].dump();
    if (config.contains("stem_strides") && !config["stem_strides"].empty()) {
      std::cout << " strides " << config["stem_strides"].dump();
    }
  }
  std::cout << "\n  input         " << config["image_size"].dump() << " x "
            << config.value("in_channels", 3) << " channels\n";
  std::cout << "  tokens        class " << config.value("class_token", false) << ", distillation "
            << config.value("distillation_token", false) << ", registers "
            << config.value("register_tokens", 0) << ", layer scale "
            << config.value("layer_scale", false) << ", qk norm " << config.value("qk_norm", false)
            << ", norm eps " << config.value("norm_eps", 0.0) << "\n";
}

void print_captioner_config(const json& config) {
  const auto& encoder = config["encoder"];
  std::cout << "  captioner     " << config.value("mode", std::string("soft"))
            << " attention, vocabulary " << config.value("vocab_size", 0) << ", LSTM "
            << config.value("hidden_dim", 0) << ", encoder dim " << encoder.value("dim", 0)
            << " depth " << encoder.value("depth", 0) << " patch " << encoder.value("patch_size", 0)
            << "\n";
}

void print_text(const ModelSummary& s) {
  const auto& info = s.info;
  std::cout << s.path << "\n";
  std::cout << "  architecture  " << info.arch << "\n";
  if (s.config.is_object()) {
    if (info.arch == "vit") print_vit_config(s.config);
    if (info.arch == "captioner" && s.config.contains("encoder")) print_captioner_config(s.config);
    std::cout << "  config        " << s.config.dump() << "\n";
  }
  std::cout << "  parameters    " << human_count(s.parameters) << " (" << s.parameters << ") in "
            << s.tensors << " tensors (";
  bool first = true;
  for (const auto& [dtype, count] : s.dtypes) {
    std::cout << (first ? "" : ", ") << count << " " << dtype;
    first = false;
  }
  std::cout << ")" << (s.training_checkpoint ? " + optimizer state (training checkpoint)" : "")
            << "\n";
  std::cout << "  preprocess    " << info.preprocess.to_json() << "\n";
  std::cout << "  labels        " << info.labels.size();
  for (size_t i = 0; i < info.labels.size() && i < 5; ++i) {
    std::cout << (i ? ", " : ": ") << info.labels[i];
  }
  if (info.labels.size() > 5) std::cout << ", ...";
  std::cout << "\n  source        " << info.source << "\n";
}

}  // namespace

int run_inspect(int argc, char** argv) {
  std::vector<std::string> inputs;
  bool as_json = false;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "inputs", po::value(&inputs)->multitoken(), "model files")("json", po::bool_switch(&as_json),
                                                                 "print JSON");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "inputs", "attn inspect [options] MODEL ...",
                          "Prints a model file's architecture, parameter count, preprocessing,\n"
                          "labels and source.",
                          vm)) {
    return kExitOk;
  }
  if (inputs.empty()) throw UsageError("no model file given");
  int failed = 0;
  for (const auto& path : inputs) {
    try {
      const auto summary = summarize(path);
      if (as_json) {
        print_json(summary);
      } else {
        print_text(summary);
      }
    } catch (const vision::Error& e) {
      print_error("inspect", e.what());
      ++failed;
    }
  }
  if (failed == 0) return kExitOk;
  return failed == static_cast<int>(inputs.size()) ? kExitBadModel : kExitSomeFailed;
}

}  // namespace attnkit::apps
