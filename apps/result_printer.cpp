// apps/result_printer.cpp: per-image results as text, JSON lines or one JSON document.
#include "apps/result_printer.h"

#include <iostream>

#include "apps/json_output.h"

namespace attnkit::apps {

void check_per_image_options(const std::vector<std::string>& inputs, int64_t batch_size, bool json,
                             bool jsonl) {
  if (inputs.empty()) throw UsageError("no inputs given (images, directories or -)");
  if (batch_size < 1) {
    throw UsageError("--batch-size must be at least 1, got " + std::to_string(batch_size));
  }
  if (json && jsonl) throw UsageError("--json and --jsonl exclude each other");
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
