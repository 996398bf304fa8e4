// vision/json_number.cpp: checked reads of JSON numbers.
#include "vision/json_number.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace attnkit::vision {
namespace {

// The offending value for a message: ASCII (safe to cut and to print as JSON) and short. Lists
// and objects are only named: dump() recurses, and a hostile value nests a million levels deep.
std::string shown(const nlohmann::json& value) {
  if (value.is_array()) return "a list";
  if (value.is_object()) return "an object";
  std::string text = value.dump(-1, ' ', /*ensure_ascii=*/true);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

}  // namespace

int64_t json_int64(const nlohmann::json& value, const std::string& what) {
  if (value.is_number_unsigned() &&
      value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw std::invalid_argument(what + " is out of range, got " + shown(value));
  }
  if (!value.is_number_integer()) {
    throw std::invalid_argument(what + " must be an integer, got " + shown(value));
  }
  return value.get<int64_t>();
}

double json_double(const nlohmann::json& value, const std::string& what) {
  if (!value.is_number() || !std::isfinite(value.get<double>())) {
    throw std::invalid_argument(what + " must be a finite number, got " + shown(value));
  }
  return value.get<double>();
}

}  // namespace attnkit::vision
