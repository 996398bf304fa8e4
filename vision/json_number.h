// vision/json_number.h: numbers out of nlohmann::json without its silent conversions (a float
// cast to an integer type is undefined behaviour when out of range; 2^64 - 1 wraps to -1).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace attnkit::vision {

/// `value` when it is a JSON integer that fits int64_t. Throws std::invalid_argument
/// "<what> must be an integer, got 1.5" / "<what> is out of range, got 1e+300" otherwise.
int64_t json_int64(const nlohmann::json& value, const std::string& what);

/// `value` when it is a finite JSON number. Throws std::invalid_argument naming `what`.
double json_double(const nlohmann::json& value, const std::string& what);

/// `value` for a message: ASCII (safe to cut and to print as JSON), at most 40 characters; lists
/// and objects are only described, since dump() recurses and hostile input nests a million deep.
std::string json_brief(const nlohmann::json& value);

}  // namespace attnkit::vision
