// vision/json_error.h: nlohmann-json's exception text without its "[json.exception...]" tag, so
// messages about a user's file read in attnkit's words.
#pragma once

#include <exception>
#include <string>

namespace attnkit::vision {

/// "parse error at line 1, column 9: syntax error ..." for nlohmann's
/// "[json.exception.parse_error.101] parse error at line 1, ..."; other texts unchanged.
inline std::string json_error_text(const std::exception& e) {
  std::string text = e.what();
  const size_t tag_end = text.find("] ");
  if (text.rfind("[json.exception.", 0) == 0 && tag_end != std::string::npos) {
    text.erase(0, tag_end + 2);
  }
  return text;
}

}  // namespace attnkit::vision
