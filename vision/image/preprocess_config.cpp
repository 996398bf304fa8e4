// vision/image/preprocess_config.cpp: PreprocessConfig to and from the JSON of model files,
// every value checked.
#include "vision/image/preprocess_config.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "vision/json_error.h"

namespace attnkit::vision {
namespace {

[[noreturn]] void bad_config(const std::string& what) {
  throw std::invalid_argument("preprocess config: " + what);
}

CropMode crop_mode_from_string(const std::string& name) {
  if (name == "center") return CropMode::kCenter;
  if (name == "squash") return CropMode::kSquash;
  bad_config("unknown crop_mode \"" + name + "\" (expected center or squash)");
}

std::string to_string(CropMode mode) { return mode == CropMode::kSquash ? "squash" : "center"; }

int64_t read_positive_int(const nlohmann::json& value, const char* key, int64_t max) {
  if (!value.is_number_integer()) bad_config(std::string(key) + " must be an integer");
  const auto v = value.get<int64_t>();
  if (v <= 0 || v > max) {
    bad_config(std::string(key) + " must be in [1, " + std::to_string(max) + "], got " +
               std::to_string(v));
  }
  return v;
}

// mean/std: 3 numbers, or 1 number used for every channel (grey models).
std::array<double, 3> read_triple(const nlohmann::json& value, const char* key) {
  if (!value.is_array() || (value.size() != 1 && value.size() != 3)) {
    bad_config(std::string(key) + " must be an array of 1 or 3 numbers");
  }
  std::array<double, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    const nlohmann::json& item = value.size() == 1 ? value[0] : value[i];
    if (!item.is_number()) bad_config(std::string(key) + " must hold numbers");
    out[i] = item.get<double>();
    if (!std::isfinite(out[i])) bad_config(std::string(key) + " must be finite");
  }
  return out;
}

}  // namespace

Interpolation interpolation_from_string(const std::string& name) {
  if (name == "nearest") return Interpolation::kNearest;
  if (name == "box") return Interpolation::kBox;
  if (name == "bilinear") return Interpolation::kBilinear;
  if (name == "hamming") return Interpolation::kHamming;
  if (name == "bicubic") return Interpolation::kBicubic;
  if (name == "lanczos") return Interpolation::kLanczos;
  throw std::invalid_argument("unknown interpolation \"" + name +
                              "\" (expected nearest, box, bilinear, hamming, bicubic or lanczos)");
}

std::string to_string(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::kNearest:
      return "nearest";
    case Interpolation::kBox:
      return "box";
    case Interpolation::kBilinear:
      return "bilinear";
    case Interpolation::kHamming:
      return "hamming";
    case Interpolation::kBicubic:
      return "bicubic";
    case Interpolation::kLanczos:
      return "lanczos";
  }
  return "unknown";
}

std::string PreprocessConfig::to_json() const {
  nlohmann::json j;
  j["height"] = height;
  j["width"] = width;
  j["crop_pct"] = crop_pct;
  j["crop_mode"] = to_string(crop_mode);
  j["interpolation"] = to_string(interpolation);
  j["mean"] = mean;
  j["std"] = std;
  j["channels"] = channels;
  return j.dump();
}

PreprocessConfig PreprocessConfig::from_json(const std::string& json) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e400
    bad_config(std::string("not valid JSON (") + json_error_text(e) + ")");
  }
  if (!j.is_object()) bad_config("expected a JSON object");

  // Sizes above this are certainly a corrupt file, and would overflow the resize arithmetic.
  constexpr int64_t kMaxSize = 1 << 15;
  PreprocessConfig c;
  if (j.contains("height")) c.height = read_positive_int(j["height"], "height", kMaxSize);
  if (j.contains("width")) c.width = read_positive_int(j["width"], "width", kMaxSize);
  if (j.contains("crop_pct")) {
    if (!j["crop_pct"].is_number()) bad_config("crop_pct must be a number");
    c.crop_pct = j["crop_pct"].get<double>();
    if (!(c.crop_pct > 0.0 && c.crop_pct <= 1.0)) {
      bad_config("crop_pct must be in (0, 1], got " + j["crop_pct"].dump());
    }
  }
  if (j.contains("crop_mode")) {
    if (!j["crop_mode"].is_string()) bad_config("crop_mode must be a string");
    c.crop_mode = crop_mode_from_string(j["crop_mode"].get<std::string>());
  }
  if (j.contains("interpolation")) {
    if (!j["interpolation"].is_string()) bad_config("interpolation must be a string");
    try {
      c.interpolation = interpolation_from_string(j["interpolation"].get<std::string>());
    } catch (const std::invalid_argument& e) {
      bad_config(e.what());
    }
  }
  if (j.contains("mean")) c.mean = read_triple(j["mean"], "mean");
  if (j.contains("std")) {
    c.std = read_triple(j["std"], "std");
    for (double s : c.std) {
      if (!(s > 0.0)) bad_config("std must be positive, got " + j["std"].dump());
    }
  }
  if (j.contains("channels")) {
    if (!j["channels"].is_number_integer()) bad_config("channels must be 1 or 3");
    c.channels = j["channels"].get<int64_t>();
    if (c.channels != 1 && c.channels != 3) {
      bad_config("channels must be 1 or 3, got " + j["channels"].dump());
    }
  }
  if (std::floor(static_cast<double>(std::max(c.height, c.width)) / c.crop_pct) > kMaxSize) {
    bad_config("crop_pct " + nlohmann::json(c.crop_pct).dump() +
               " makes the resize target too large");
  }
  return c;
}

}  // namespace attnkit::vision
