// apps/result_printer.cpp: per-image results as text, JSON lines or one JSON document.
#include "apps/result_printer.h"

#include <iostream>

#include <boost/program_options.hpp>

#include "apps/inference_precision_option.h"
#include "apps/json_output.h"

namespace attnkit::apps {

namespace po = boost::program_options;

void add_per_image_options(po::options_description& options, PerImageParams& p,
                           const PerImageHelp& help) {
  options.add_options()("help,h", "show this help")(
      "inputs", po::value(&p.inputs)->multitoken(),
      "images, directories (searched recursively) or - to read paths from stdin")(
      "model,m", po::value(&p.model_path)->default_value(help.default_model), help.model.c_str())(
      "batch-size,b", po::value(&p.batch_size)->default_value(p.batch_size),
      help.batch_size.c_str())("precision,p", po::value(&p.precision)->default_value(p.precision),
                               kInferencePrecisionHelp)(
      "threads,t", po::value(&p.threads)->default_value(p.threads), kThreadsHelp)(
      "json", po::bool_switch(&p.json), help.json.c_str())(
      "jsonl", po::bool_switch(&p.jsonl), "print one JSON object per image, as they finish");
  add_max_pixels_option(options);
  add_shard_option(options, &p.shard);
}

bool parse_per_image_command(int argc, char** argv, const po::options_description& options,
                             const std::string& usage, const std::string& summary,
                             PerImageParams& p) {
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "inputs", usage, summary, vm)) return false;
  p.default_model = vm["model"].defaulted();
  if (p.inputs.empty()) throw UsageError("no inputs given (images, directories or -)");
  if (p.batch_size < 1) {
    throw UsageError("--batch-size must be at least 1, got " + std::to_string(p.batch_size));
  }
  if (p.json && p.jsonl) throw UsageError("--json and --jsonl exclude each other");
  return true;
}

ResultPrinter::ResultPrinter(std::string command, bool json, bool jsonl, int64_t total)
    : command_(std::move(command)), json_(json), jsonl_(jsonl), progress_(command_, total) {}

void ResultPrinter::error(const std::string& path, const std::string& message) {
  progress_.clear();
  print_error(command_, message);
  if (jsonl_) {
    std::cout << json_text({{"path", path}, {"error", message}}) << std::endl;
  } else {
    errors_.push_back({{"path", path}, {"error", message}});
  }
}

void ResultPrinter::result(const std::function<nlohmann::json()>& as_json,
                           const std::function<void()>& print_text) {
  ++succeeded_;
  if (jsonl_) {
    std::cout << json_text(as_json()) << std::endl;
  } else if (json_) {
    results_.push_back(as_json());
  } else {
    progress_.clear();
    print_text();
  }
}

void ResultPrinter::warn(const std::string& message) {
  progress_.clear();
  print_warning(command_, message);
}

int ResultPrinter::finish(nlohmann::json document, size_t total) {
  progress_.finish();
  if (json_) {
    document["results"] = results_;
    document["errors"] = errors_;
    std::cout << json_text(document, 2) << std::endl;
  }
  if (succeeded_ == 0 && total > 0) return kExitNoInput;
  return succeeded_ == static_cast<int64_t>(total) ? kExitOk : kExitSomeFailed;
}

}  // namespace attnkit::apps
