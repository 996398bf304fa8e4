// apps/caption_options.cpp: range checks of the decoding options.
#include "apps/caption_options.h"

#include <filesystem>

#include <boost/program_options.hpp>

#include "apps/cli_common.h"

namespace attnkit::apps {

void add_decoding_options(boost::program_options::options_description& options,
                          DecodingParams& decoding) {
  namespace po = boost::program_options;
  options.add_options()("beam", po::value(&decoding.beam)->default_value(decoding.beam),
                        "beam width (1 = greedy)")(
      "max-len", po::value(&decoding.max_len)->default_value(decoding.max_len),
      max_len_help().c_str());
}

void check_decoding(const DecodingParams& decoding) {
  if (decoding.beam < 1) {
    throw UsageError("--beam must be at least 1, got " + std::to_string(decoding.beam));
  }
  check_max_len(decoding.max_len);
}

void check_split_json(const std::string& data, std::string& images) {
  if (data.empty()) throw UsageError("--data is required (a Karpathy split JSON)");
  if (images.empty()) images = std::filesystem::path(data).parent_path().string();
}

std::string max_len_help() {
  return "most words per caption (1 to " + std::to_string(kMaxCaptionWords) + ")";
}

void check_max_len(int64_t max_len) {
  if (max_len < 1 || max_len > kMaxCaptionWords) {
    throw UsageError("--max-len must be between 1 and " + std::to_string(kMaxCaptionWords) +
                     ", got " + std::to_string(max_len));
  }
}

std::string beam_width_error(int64_t beam, int64_t vocabulary_size) {
  if (beam < 1) return "--beam must be at least 1, got " + std::to_string(beam);
  if (beam > vocabulary_size) {
    return "--beam " + std::to_string(beam) + " is larger than the model's vocabulary (" +
           std::to_string(vocabulary_size) + " words)";
  }
  return "";
}

}  // namespace attnkit::apps
