// vision/json_number.cpp: checked reads of JSON numbers.
#include "vision/json_number.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace attnkit::vision {

std::string json_brief(const nlohmann::json& value) {
  if (value.is_array()) return "a list of " + std::to_string(value.size()) + " values";
  if (value.is_object()) return "an object";
  std::string text = value.dump(-1, ' ', /*ensure_ascii=*/true);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

int64_t json_int64(const nlohmann::json& value, const std::string& what) {
  if (value.is_number_unsigned() &&
      value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw std::invalid_argument(what + " is out of range, got " + json_brief(value));
  }
  if (!value.is_number_integer()) {
    throw std::invalid_argument(what + " must be an integer, got " + json_brief(value));
  }
  return value.get<int64_t>();
}

double json_double(const nlohmann::json& value, const std::string& what) {
  if (!value.is_number() || !std::isfinite(value.get<double>())) {
    throw std::invalid_argument(what + " must be a finite number, got " + json_brief(value));
  }
  return value.get<double>();
}

}  // namespace attnkit::vision
